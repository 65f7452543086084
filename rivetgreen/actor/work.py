"""Tracked work: every greenlet that runs user code for an actor, counted by kind for the sleep predicates.

Each kind has the reference's policy (core.md §1.8, ``work_registry.rs``): whether it blocks idle sleep, whether the
sleep/destroy grace waits for it, and whether it is killed when the grace deadline is reached.
"""

from __future__ import annotations

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


class WorkKind:
    """A kind of tracked work and its policy. The kinds are the module constants below (identity-compared, so
    counting by kind on the hot path costs no hashing in Python)."""

    __slots__ = ("name", "policy")

    def __init__(self, name: str, policy: WorkPolicy) -> None:
        self.name = name
        self.policy = policy

    def __repr__(self) -> str:
        return f"WorkKind.{self.name}"


WorkKind.ACTION = WorkKind("ACTION", WorkPolicy(blocks_idle_sleep=True, drains_grace=True, aborted_at_deadline=True))
WorkKind.KEEP_AWAKE = WorkKind("KEEP_AWAKE", WorkPolicy(True, True, True))
WorkKind.INTERNAL_KEEP_AWAKE = WorkKind("INTERNAL_KEEP_AWAKE", WorkPolicy(True, True, False))
WorkKind.WAIT_UNTIL = WorkKind("WAIT_UNTIL", WorkPolicy(False, True, True))
WorkKind.HTTP_REQUEST = WorkKind("HTTP_REQUEST", WorkPolicy(True, True, True))
WorkKind.WEBSOCKET_CALLBACK = WorkKind("WEBSOCKET_CALLBACK", WorkPolicy(True, True, True))
WorkKind.DISCONNECT_CALLBACK = WorkKind("DISCONNECT_CALLBACK", WorkPolicy(True, True, True))
# onSleep / onDestroy and grace-time disconnects, dispatched by the lifecycle itself.
WorkKind.SHUTDOWN_HOOK = WorkKind("SHUTDOWN_HOOK", WorkPolicy(False, True, True))
# State-change notifications hold the user keep-awake counter (core.md §3.2).
WorkKind.STATE_CHANGE = WorkKind("STATE_CHANGE", WorkPolicy(True, True, True))

ALL_KINDS = (
    WorkKind.ACTION, WorkKind.KEEP_AWAKE, WorkKind.INTERNAL_KEEP_AWAKE, WorkKind.WAIT_UNTIL, WorkKind.HTTP_REQUEST,
    WorkKind.WEBSOCKET_CALLBACK, WorkKind.DISCONNECT_CALLBACK, WorkKind.SHUTDOWN_HOOK, WorkKind.STATE_CHANGE,
)


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
        self.counts: dict[WorkKind, int] = {kind: 0 for kind in ALL_KINDS}
        self.idle_blocking = 0  # live work whose kind blocks idle sleep
        self.grace_draining = 0  # live work the grace waits for
        self.live: set[WorkGreenlet] = set()
        self.refusing = False

    def spawn(self, kind: WorkKind, function: Callable[..., Any], *args: Any, conn: Any = None) -> WorkGreenlet:
        """Start ``function(*args)`` in a counted greenlet of ``kind``."""
        if self.refusing:
            raise WorkRefused(f"{kind.name.lower()} work refused: the actor is tearing down")
        greenlet = WorkGreenlet(kind, conn, function, *args)
        self._count(kind, 1)
        self.live.add(greenlet)
        greenlet.rawlink(self._finished)
        greenlet.start()
        self._on_change(kind)
        return greenlet

    @contextmanager
    def region(self, kind: WorkKind) -> Iterator[None]:
        """Count the current greenlet as work of ``kind`` while the block runs."""
        self._count(kind, 1)
        self._on_change(kind)
        try:
            yield
        finally:
            self._count(kind, -1)
            self._on_change(kind)

    def _finished(self, greenlet: WorkGreenlet) -> None:
        self.live.discard(greenlet)
        self._count(greenlet.kind, -1)
        if greenlet.exception is not None and not isinstance(greenlet.exception, gevent.GreenletExit):
            log.debug("work greenlet %s ended with %r", greenlet.kind.name, greenlet.exception)
        self._on_change(greenlet.kind)

    def _count(self, kind: WorkKind, delta: int) -> None:
        self.counts[kind] += delta
        if kind.policy.blocks_idle_sleep:
            self.idle_blocking += delta
        if kind.policy.drains_grace:
            self.grace_draining += delta

    def kill_at_deadline(self) -> int:
        """Kill every live greenlet whose kind is aborted at the grace deadline; returns how many."""
        doomed = [g for g in self.live if g.kind.policy.aborted_at_deadline]
        gevent.killall(doomed, block=False)
        return len(doomed)

    def join_all(self) -> None:
        gevent.joinall(list(self.live))
