"""Lifecycle states, stop reasons, and the items that travel through an ActorTask's inboxes."""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import gevent.event

from rivetgreen import errors


class LifecycleState(enum.Enum):
    LOADING = "loading"
    STARTED = "started"
    SLEEP_GRACE = "sleep_grace"
    SLEEP_FINALIZE = "sleep_finalize"
    DESTROY_GRACE = "destroy_grace"
    DESTROYING = "destroying"
    TERMINATED = "terminated"

    @property
    def started(self) -> bool:
        """True exactly in STARTED and SLEEP_GRACE (core.md §1)."""
        return self in (LifecycleState.STARTED, LifecycleState.SLEEP_GRACE)

    @property
    def accepts_dispatch(self) -> bool:
        return self in (LifecycleState.STARTED, LifecycleState.SLEEP_GRACE, LifecycleState.DESTROY_GRACE)

    @property
    def in_grace(self) -> bool:
        return self in (LifecycleState.SLEEP_GRACE, LifecycleState.DESTROY_GRACE)


class StopReason(enum.Enum):
    SLEEP = "sleep"
    DESTROY = "destroy"


class Reply:
    """A one-shot answer. Answering twice is ignored; :meth:`drop` answers ``actor/dropped_reply``."""

    __slots__ = ("_result",)

    def __init__(self) -> None:
        self._result = gevent.event.AsyncResult()

    def send(self, value: Any = None) -> None:
        if not self._result.ready():
            self._result.set(value)

    def fail(self, error: BaseException) -> None:
        if not self._result.ready():
            self._result.set_exception(error)

    def drop(self) -> None:
        self.fail(errors.dropped_reply())

    @property
    def answered(self) -> bool:
        return self._result.ready()

    @property
    def waitable(self) -> gevent.event.AsyncResult:
        return self._result

    def get(self) -> Any:
        """Block until answered; raise the error if it failed."""
        return self._result.get()


# Lifecycle commands (trusted, from placement) -------------------------------------------------------------------
@dataclass
class Start:
    reply: Reply = field(default_factory=Reply)


@dataclass
class Stop:
    reason: StopReason
    reply: Reply = field(default_factory=Reply)


@dataclass
class FireAlarm:
    reply: Reply = field(default_factory=Reply)


LifecycleCommand = Start | Stop | FireAlarm


# Lifecycle events (internal, from the context) -----------------------------------------------------------------
@dataclass
class SaveRequested:
    immediate: bool


# Client dispatch (untrusted) --------------------------------------------------------------------------------------
# What client work of each kind runs, for logs, when its Dispatch does not say more.
_LABELS = {"ACTION": "client work", "HTTP_REQUEST": "on_request", "WEBSOCKET_CALLBACK": "on_websocket"}


@dataclass
class Dispatch:
    """Client work: ``handler(task)`` runs in a work greenlet and must answer ``reply``. ``label`` says what user
    code it runs (e.g. "action 'add'"), for logs."""

    kind: Any  # a WorkKind
    handler: Callable[[Any], None]
    conn: Any = None
    reply: Reply = field(default_factory=Reply)
    greenlet: Any = None  # the work greenlet serving it, once spawned
    task: Any = None  # the ActorTask it was given to
    label: str = ""

    def __post_init__(self) -> None:
        if not self.label:
            self.label = _LABELS.get(self.kind.name, self.kind.name.lower())
