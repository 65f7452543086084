"""``ActorContext``: the ``c`` every action and hook receives (core.md §3)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import gevent
import gevent.event

from rivetgreen import clock, errors
from rivetgreen.actor.database import ActorDatabase
from rivetgreen.actor.failures import report_failure
from rivetgreen.actor.kv import ActorKv
from rivetgreen.actor.schedule import Schedule
from rivetgreen.actor.work import WorkGreenlet, WorkKind

if TYPE_CHECKING:
    from rivetgreen.actor.connection import Conn
    from rivetgreen.actor.queue import ActorQueue
    from rivetgreen.actor.task import ActorTask


class ActorContext:
    """What actor code may see and do. One context per actor generation."""

    def __init__(self, task: ActorTask) -> None:
        self._task = task
        self.vars: Any = None
        self.kv = ActorKv(task.store)
        self.db = ActorDatabase(task.store.db)
        self.schedule = Schedule(task)
        logger = logging.getLogger(f"rivetgreen.actor.{task.name}")
        self.log = logging.LoggerAdapter(logger, {"actor_id": task.actor_id})
        self._state_change_pending = False

    # identity ------------------------------------------------------------------------------------------------
    @property
    def actor_id(self) -> str:
        return self._task.actor_id

    @property
    def name(self) -> str:
        return self._task.name

    @property
    def key(self) -> list[str]:
        return list(self._task.key)

    @property
    def region(self) -> str:
        return self._task.region

    @property
    def generation(self) -> int:
        return self._task.generation

    @property
    def input(self) -> Any:
        """The input the actor was created with (None if none)."""
        return self._task.input

    # state ---------------------------------------------------------------------------------------------------
    @property
    def state(self) -> Any:
        """The persisted state; mutations (also of nested dicts and lists) are saved on the save throttle."""
        if not self._task.state.enabled:
            raise errors.actor_error("state_not_enabled", "This actor has no state; declare state= or create_state.")
        return self._task.state.root

    @state.setter
    def state(self, value: Any) -> None:
        if not self._task.state.enabled:
            raise errors.actor_error("state_not_enabled", "This actor has no state; declare state= or create_state.")
        self._task.state.replace(value)

    def request_save(self, immediate: bool = False, max_wait: float | None = None) -> None:
        """Ask for a state save without waiting: at once, within ``max_wait`` seconds, or on the throttle."""
        self._task.state.request_save(immediate, max_wait, clock.monotonic())

    def save_state(self, immediate: bool = False, max_wait: float | None = None) -> None:
        """Request a save; with ``immediate=True`` block until the current state is on disk."""
        state = self._task.state
        if not immediate:
            self.request_save(False, max_wait)
            return
        revision = state.revision
        if state.saved_revision >= revision:
            return
        saved = state.saved_event_for(revision)
        self.request_save(True)
        saved.wait()
        if state.saved_revision < revision:
            raise state.save_error or errors.stopping()

    def before_state_mutation(self) -> None:
        """Called by the tracked state before every change: refuse re-entrant changes, notify on_state_change."""
        current = gevent.getcurrent()
        if isinstance(current, WorkGreenlet) and current.kind is WorkKind.STATE_CHANGE:
            raise errors.actor_error(
                "state_mutation_reentrant", "State cannot be changed inside on_state_change."
            )
        self._task.changes.changed("state")
        if "on_state_change" in self._task.definition.hooks and not self._state_change_pending:
            self._state_change_pending = True
            gevent.get_hub().loop.run_callback(self._notify_state_change)

    def _notify_state_change(self) -> None:
        self._state_change_pending = False
        try:
            self._task.work.spawn(WorkKind.STATE_CHANGE, self._run_state_change, label="on_state_change")
        except Exception:
            self.log.debug("on_state_change skipped: actor is tearing down")

    def _run_state_change(self) -> None:
        try:
            self._task.definition.hooks["on_state_change"](self, self._task.state.root)
        except Exception as error:
            report_failure(self._task, "on_state_change", error)

    @property
    def queue(self) -> ActorQueue:
        """The actor's durable message queue."""
        return self._task.queue

    # connections and events ----------------------------------------------------------------------------------
    @property
    def conns(self) -> dict[str, Conn]:
        """Open connections by id (a copy)."""
        return dict(self._task.conns.conns)

    @property
    def conn(self) -> Conn | None:
        """The connection the current action or request came from (None for schedules and hooks)."""
        return getattr(gevent.getcurrent(), "conn", None)

    def broadcast(self, name: str, *args: Any) -> None:
        """Send event ``name`` to every connection subscribed to it."""
        self._task.conns.broadcast(name, list(args))

    # lifecycle -------------------------------------------------------------------------------------------------
    def sleep(self) -> None:
        """Ask to be put to sleep now (idempotent)."""
        self._task.request_sleep()

    def destroy(self) -> None:
        """Destroy this actor: new work is refused at once, then its data is removed."""
        self._task.request_destroy()

    def stop_with_error(self, message: str) -> None:
        """Destroy this actor, reporting ``message`` as a crash."""
        self._task.request_destroy(message)

    @property
    def aborted(self) -> bool:
        """True once the actor began shutting down; long-running work should stop."""
        return self._task.aborted

    @property
    def abort_event(self) -> gevent.event.Event:
        """Set when shutdown begins; wait on it to stop with the actor."""
        return self._task.abort_event

    def keep_awake(self, function: Callable[..., Any], *args: Any, **kwargs: Any) -> gevent.Greenlet[..., Any]:
        """Run ``function`` in the background; the actor does not sleep until it ends. Returns its greenlet."""
        return self._spawn(WorkKind.KEEP_AWAKE, "keep_awake", function, args, kwargs)

    def wait_until(self, function: Callable[..., Any], *args: Any, **kwargs: Any) -> gevent.Greenlet[..., Any]:
        """Run ``function`` in the background; it may not keep the actor awake, but shutdown waits for it."""
        return self._spawn(WorkKind.WAIT_UNTIL, "wait_until", function, args, kwargs)

    def _spawn(
        self, kind: WorkKind, api: str, function: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> gevent.Greenlet[..., Any]:
        label = f"{api} work {getattr(function, '__name__', function)!r}"
        task = self._task

        def run() -> Any:
            try:
                return function(*args, **kwargs)
            except Exception as error:
                report_failure(task, label, error)
                raise

        return task.work.spawn(kind, run, label=label)
