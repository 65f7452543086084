"""Tracked work: every greenlet that runs user code for an actor, counted by kind for the sleep predicates.

Each kind has the reference's policy (core.md §1.8, ``work_registry.rs``): whether it blocks idle sleep and whether
the sleep/destroy grace waits for it. At the grace deadline every kind is aborted (:func:`abort`): unlike the
reference's internal keep-awake regions, which only core code holds, all work here runs user code.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, ClassVar

import gevent
import gevent.event

from rivetgreen import clock
from rivetgreen.errors import ActorAborted

log = logging.getLogger("rivetgreen.actor")

# Clock seconds that aborted user code has to unwind. Code that catches the abort and keeps running is abandoned
# after this: the actor stops without it (with a warning naming it) and it runs on, detached, until it ends.
ABANDON_AFTER = 1.0


@dataclass(frozen=True)
class WorkPolicy:
    blocks_idle_sleep: bool
    drains_grace: bool


class WorkKind:
    """A kind of tracked work and its policy. The kinds are the module constants below (identity-compared, so
    counting by kind on the hot path costs no hashing in Python)."""

    __slots__ = ("name", "policy")

    ACTION: ClassVar[WorkKind]
    KEEP_AWAKE: ClassVar[WorkKind]
    SCHEDULED_ACTION: ClassVar[WorkKind]
    WAIT_UNTIL: ClassVar[WorkKind]
    HTTP_REQUEST: ClassVar[WorkKind]
    WEBSOCKET_CALLBACK: ClassVar[WorkKind]
    DISCONNECT_CALLBACK: ClassVar[WorkKind]
    SHUTDOWN_HOOK: ClassVar[WorkKind]
    STATE_CHANGE: ClassVar[WorkKind]

    def __init__(self, name: str, policy: WorkPolicy) -> None:
        self.name = name
        self.policy = policy

    def __repr__(self) -> str:
        return f"WorkKind.{self.name}"


WorkKind.ACTION = WorkKind("ACTION", WorkPolicy(blocks_idle_sleep=True, drains_grace=True))
WorkKind.KEEP_AWAKE = WorkKind("KEEP_AWAKE", WorkPolicy(True, True))
# A scheduled action holds the reference's internal keep-awake counter while it runs.
WorkKind.SCHEDULED_ACTION = WorkKind("SCHEDULED_ACTION", WorkPolicy(True, True))
WorkKind.WAIT_UNTIL = WorkKind("WAIT_UNTIL", WorkPolicy(False, True))
WorkKind.HTTP_REQUEST = WorkKind("HTTP_REQUEST", WorkPolicy(True, True))
WorkKind.WEBSOCKET_CALLBACK = WorkKind("WEBSOCKET_CALLBACK", WorkPolicy(True, True))
WorkKind.DISCONNECT_CALLBACK = WorkKind("DISCONNECT_CALLBACK", WorkPolicy(True, True))
# onSleep / onDestroy and grace-time disconnects, dispatched by the lifecycle itself.
WorkKind.SHUTDOWN_HOOK = WorkKind("SHUTDOWN_HOOK", WorkPolicy(False, True))
# State-change notifications hold the user keep-awake counter (core.md §3.2).
WorkKind.STATE_CHANGE = WorkKind("STATE_CHANGE", WorkPolicy(True, True))

ALL_KINDS = (
    WorkKind.ACTION, WorkKind.KEEP_AWAKE, WorkKind.SCHEDULED_ACTION, WorkKind.WAIT_UNTIL, WorkKind.HTTP_REQUEST,
    WorkKind.WEBSOCKET_CALLBACK, WorkKind.DISCONNECT_CALLBACK, WorkKind.SHUTDOWN_HOOK, WorkKind.STATE_CHANGE,
)


def abort(greenlets: Sequence[gevent.Greenlet[..., Any]]) -> list[gevent.Greenlet[..., Any]]:
    """Raise :class:`ActorAborted` in every greenlet and wait at most :data:`ABANDON_AFTER` clock seconds for them
    to end; returns those still running (they caught the abort)."""
    running = [greenlet for greenlet in greenlets if not greenlet.dead]
    gevent.killall(running, exception=ActorAborted, block=False)
    return wait_ended(running, clock.monotonic() + ABANDON_AFTER)


def wait_ended(greenlets: Sequence[gevent.Greenlet[..., Any]], deadline: float) -> list[gevent.Greenlet[..., Any]]:
    """Wait until every greenlet has ended or the clock reaches ``deadline``; returns those still running."""
    running = [greenlet for greenlet in greenlets if not greenlet.dead]
    if not running:
        return []
    all_ended = gevent.event.Event()

    def one_ended(_: gevent.Greenlet[..., Any]) -> None:
        if all(greenlet.dead for greenlet in running):
            all_ended.set()

    for greenlet in running:
        greenlet.rawlink(one_ended)
    try:
        clock.wait(all_ended, deadline)
    finally:
        for greenlet in running:
            greenlet.unlink(one_ended)
    return [greenlet for greenlet in running if not greenlet.dead]


class WorkGreenlet(gevent.Greenlet):
    """A greenlet running user code for one actor; ``conn`` is the connection it serves, if any, ``label`` says
    what it runs (for logs), ``reply`` is the client reply it owes, if any."""

    def __init__(
        self, kind: WorkKind, conn: Any, label: str, reply: Any, function: Callable[..., Any], *args: Any
    ) -> None:
        super().__init__(function, *args)
        self.kind = kind
        self.conn = conn
        self.label = label
        self.reply = reply


def serve_connection(conn: Any) -> None:
    """Make ``conn`` the connection the running work serves (what ``c.conn`` returns)."""
    current: Any = gevent.getcurrent()  # normally a WorkGreenlet; c.conn reads the attribute of any greenlet
    current.conn = conn


class WorkRefused(Exception):
    """Raised when work is spawned after the actor's teardown began."""


class WorkRegistry:
    """Counts and owns the live work greenlets of one actor generation."""

    def __init__(self, on_change: Callable[[WorkKind, bool], None]) -> None:
        self._on_change = on_change
        self.counts: dict[WorkKind, int] = {kind: 0 for kind in ALL_KINDS}
        self.idle_blocking = 0  # live work whose kind blocks idle sleep
        self.grace_draining = 0  # live work the grace waits for
        self.live: set[WorkGreenlet] = set()
        self.refusing = False

    def spawn(
        self, kind: WorkKind, function: Callable[..., Any], *args: Any, label: str, conn: Any = None,
        reply: Any = None,
    ) -> WorkGreenlet:
        """Start ``function(*args)`` in a counted greenlet of ``kind``; ``label`` names the user code it runs."""
        if self.refusing:
            raise WorkRefused(f"{kind.name.lower()} work refused: the actor is tearing down")
        greenlet = WorkGreenlet(kind, conn, label, reply, function, *args)
        self._count(kind, 1)
        self.live.add(greenlet)
        greenlet.rawlink(self._finished)
        greenlet.start()
        self._on_change(kind, False)
        return greenlet

    @contextmanager
    def region(self, kind: WorkKind) -> Iterator[None]:
        """Count the current greenlet as work of ``kind`` while the block runs."""
        self._count(kind, 1)
        self._on_change(kind, False)
        try:
            yield
        finally:
            self._count(kind, -1)
            self._on_change(kind, True)

    def _finished(self, greenlet: WorkGreenlet) -> None:
        self.live.discard(greenlet)
        self._count(greenlet.kind, -1)
        if greenlet.exception is not None and not isinstance(greenlet.exception, gevent.GreenletExit):
            log.debug("work greenlet %s ended with %r", greenlet.label, greenlet.exception)
        self._on_change(greenlet.kind, True)

    def _count(self, kind: WorkKind, delta: int) -> None:
        self.counts[kind] += delta
        if kind.policy.blocks_idle_sleep:
            self.idle_blocking += delta
        if kind.policy.drains_grace:
            self.grace_draining += delta
