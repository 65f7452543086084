"""Tracked work: every greenlet that runs user code for an actor, counted by kind for the sleep predicates.

Each kind has the reference's policy (core.md §1.8, ``work_registry.rs``): whether it blocks idle sleep, whether the
sleep/destroy grace waits for it, and whether it is killed when the grace deadline is reached.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import gevent

log = logging.getLogger("rivetgreen.actor")


@dataclass(frozen=True)
class WorkPolicy:
    blocks_idle_sleep: bool
    drains_grace: bool
    aborted_at_deadline: bool


class WorkKind(enum.Enum):
    ACTION = "action"
    KEEP_AWAKE = "keep_awake"
    INTERNAL_KEEP_AWAKE = "internal_keep_awake"
    WAIT_UNTIL = "wait_until"
    HTTP_REQUEST = "http_request"
    WEBSOCKET_CALLBACK = "websocket_callback"
    DISCONNECT_CALLBACK = "disconnect_callback"
    # onSleep / onDestroy and grace-time disconnects, dispatched by the lifecycle itself.
    SHUTDOWN_HOOK = "shutdown_hook"
    # State-change notifications hold the user keep-awake counter (core.md §3.2).
    STATE_CHANGE = "state_change"

    @property
    def policy(self) -> WorkPolicy:
        return POLICIES[self]


POLICIES = {
    WorkKind.ACTION: WorkPolicy(blocks_idle_sleep=True, drains_grace=True, aborted_at_deadline=True),
    WorkKind.KEEP_AWAKE: WorkPolicy(blocks_idle_sleep=True, drains_grace=True, aborted_at_deadline=True),
    WorkKind.INTERNAL_KEEP_AWAKE: WorkPolicy(blocks_idle_sleep=True, drains_grace=True, aborted_at_deadline=False),
    WorkKind.WAIT_UNTIL: WorkPolicy(blocks_idle_sleep=False, drains_grace=True, aborted_at_deadline=True),
    WorkKind.HTTP_REQUEST: WorkPolicy(blocks_idle_sleep=True, drains_grace=True, aborted_at_deadline=True),
    WorkKind.WEBSOCKET_CALLBACK: WorkPolicy(blocks_idle_sleep=True, drains_grace=True, aborted_at_deadline=True),
    WorkKind.DISCONNECT_CALLBACK: WorkPolicy(blocks_idle_sleep=True, drains_grace=True, aborted_at_deadline=True),
    WorkKind.SHUTDOWN_HOOK: WorkPolicy(blocks_idle_sleep=False, drains_grace=True, aborted_at_deadline=True),
    WorkKind.STATE_CHANGE: WorkPolicy(blocks_idle_sleep=True, drains_grace=True, aborted_at_deadline=True),
}


class WorkGreenlet(gevent.Greenlet):
    """A greenlet running user code for one actor; ``conn`` is the connection it serves, if any."""

    def __init__(self, kind: WorkKind, conn: Any, function: Callable[..., Any], *args: Any) -> None:
        super().__init__(function, *args)
        self.kind = kind
        self.conn = conn


class WorkRefused(Exception):
    """Raised when work is spawned after the actor's teardown began."""


class WorkRegistry:
    """Counts and owns the live work greenlets of one actor generation."""

    def __init__(self, on_change: Callable[[WorkKind], None]) -> None:
        self._on_change = on_change
        self.counts: dict[WorkKind, int] = {kind: 0 for kind in WorkKind}
        self.live: set[WorkGreenlet] = set()
        self.refusing = False

    def spawn(self, kind: WorkKind, function: Callable[..., Any], *args: Any, conn: Any = None) -> WorkGreenlet:
        """Start ``function(*args)`` in a counted greenlet of ``kind``."""
        if self.refusing:
            raise WorkRefused(f"{kind.name.lower()} work refused: the actor is tearing down")
        greenlet = WorkGreenlet(kind, conn, function, *args)
        self.counts[kind] += 1
        self.live.add(greenlet)
        greenlet.rawlink(self._finished)
        greenlet.start()
        self._on_change(kind)
        return greenlet

    @contextmanager
    def region(self, kind: WorkKind) -> Iterator[None]:
        """Count the current greenlet as work of ``kind`` while the block runs."""
        self.counts[kind] += 1
        self._on_change(kind)
        try:
            yield
        finally:
            self.counts[kind] -= 1
            self._on_change(kind)

    def _finished(self, greenlet: WorkGreenlet) -> None:
        self.live.discard(greenlet)
        self.counts[greenlet.kind] -= 1
        if greenlet.exception is not None and not isinstance(greenlet.exception, gevent.GreenletExit):
            log.debug("work greenlet %s ended with %r", greenlet.kind.name, greenlet.exception)
        self._on_change(greenlet.kind)

    def blocking_idle_sleep(self) -> int:
        return sum(n for kind, n in self.counts.items() if n and kind.policy.blocks_idle_sleep)

    def draining_grace(self) -> int:
        return sum(n for kind, n in self.counts.items() if n and kind.policy.drains_grace)

    def kill_at_deadline(self) -> int:
        """Kill every live greenlet whose kind is aborted at the grace deadline; returns how many."""
        doomed = [g for g in self.live if g.kind.policy.aborted_at_deadline]
        gevent.killall(doomed, block=False)
        return len(doomed)

    def join_all(self) -> None:
        gevent.joinall(list(self.live))
