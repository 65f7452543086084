"""A change feed: tooling (the inspector) learns that parts of an actor changed without polling.

Notifications are coalesced per hub tick: however many mutations an action makes, each listener is called once
with the set of topics that changed. With no listener, reporting a change costs one attribute check.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import gevent

log = logging.getLogger("rivetgreen.actor")

TOPICS = ("state", "connections", "queue", "schedules")
Listener = Callable[[set[str]], None]


class ChangeFeed:
    """Topics that changed, delivered to listeners once per hub tick."""

    def __init__(self) -> None:
        self._listeners: list[Listener] = []
        self._pending: set[str] = set()

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener(topics)`` after changes (from a hub callback: keep it short); returns an unsubscribe."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    @property
    def watched(self) -> bool:
        return bool(self._listeners)

    def changed(self, topic: str) -> None:
        if not self._listeners:
            return
        if not self._pending:
            gevent.get_hub().loop.run_callback(self._flush)
        self._pending.add(topic)

    def _flush(self) -> None:
        topics, self._pending = self._pending, set()
        for listener in list(self._listeners):
            try:
                listener(topics)
            except Exception:
                log.exception("change listener failed")
