"""``ActorTask``: the lifecycle state machine of one actor generation (core.md §1), on one greenlet.

The loop owns three inboxes (lifecycle commands, lifecycle events, client dispatch) and a few timers. Each turn it
handles exactly one item, in the reference's strict priority: lifecycle command, lifecycle event, activity signal,
grace deadline, dispatch (only while accepting), state-save timer, alarm timer, idle-sleep timer. When nothing is
ready it waits on one wake-up event until the nearest deadline, through the clock.

User code never runs on the loop greenlet: dispatch runs in counted work greenlets (``work.py``) and hooks run
through ``call_with_timeout``. The loop may *wait* for a hook (startup runs the preamble inline, as the reference
does) but never executes one.
"""

from __future__ import annotations

import logging
import secrets
from typing import TYPE_CHECKING, Any, Protocol

import gevent
import gevent.event

from rivetgreen import clock, errors
from rivetgreen.actor import sleep
from rivetgreen.actor.actions import run_action
from rivetgreen.actor.calls import call_with_timeout
from rivetgreen.actor.changes import ChangeFeed
from rivetgreen.actor.connection import ConnectionManager, HibernatableTransport
from rivetgreen.actor.context import ActorContext
from rivetgreen.actor.failures import report_failure
from rivetgreen.actor.lifecycle import (
    Dispatch,
    FireAlarm,
    LifecycleCommand,
    LifecycleState,
    SaveRequested,
    Start,
    Stop,
    StopReason,
)
from rivetgreen.actor.queue import ActorQueue
from rivetgreen.actor.state import ActorState
from rivetgreen.actor.work import WorkKind, WorkRefused, WorkRegistry, abort
from rivetgreen.encoding.cbor import decode
from rivetgreen.metrics import standalone

if TYPE_CHECKING:
    from rivetgreen.actor.definition import ActorDefinition
    from rivetgreen.metrics import ActorMetrics
    from rivetgreen.storage import ActorStore

log = logging.getLogger("rivetgreen.actor")

MAX_STOP_ERROR_MESSAGE = 2048


class Placement(Protocol):
    """What a task asks of whoever placed it (the embedded engine or the Rivet Engine envoy)."""

    def request_sleep(self, task: ActorTask) -> None: ...

    def request_destroy(self, task: ActorTask, error: str | None) -> None: ...

    def set_alarm(self, task: ActorTask, alarm_ms: int | None) -> None: ...

    def hold_connections(self, task: ActorTask, transports: dict[str, HibernatableTransport]) -> None:
        """Keep these live transports (by connection id) while the actor sleeps."""

    def release_connections(self, task: ActorTask) -> dict[str, HibernatableTransport]:
        """The transports held for this actor (handed over once)."""


class ActorTask:
    """One generation of one actor: its state machine, inboxes, timers, context and work."""

    # Slots: thousands of idle actors may be awake at once; a per-instance dict would cost ~2 KiB each.
    __slots__ = (
        "definition", "actor_id", "name", "key", "generation", "region", "store", "placement", "create_input",
        "input", "lifecycle", "options", "metrics", "_commands", "_events", "_dispatch", "_wakeup",
        "_activity_dirty", "_last_activity", "_grace_deadline", "_sleep_deadline", "_alarm_deadline",
        "_alarms_suspended", "_last_pushed_alarm", "_earliest_schedule", "sleep_requested", "destroy_requested",
        "_deadline_reached", "_stop_reason", "_stop_reply", "aborted", "_abort_event", "run_greenlet",
        "queue_waits", "inspector_token", "changes", "work", "conns", "queue", "state", "ctx", "greenlet",
    )

    def __init__(
        self,
        definition: ActorDefinition,
        actor_id: str,
        key: list[str],
        generation: int,
        store: ActorStore,
        placement: Placement,
        create_input: bytes | None = None,
        region: str = "",
        *,
        metrics: ActorMetrics | None = None,
    ) -> None:
        self.definition = definition
        self.actor_id = actor_id
        self.name = definition.name
        self.key = key
        self.generation = generation
        self.region = region
        self.store = store
        self.placement = placement
        self.create_input = create_input
        self.input: Any = None
        self.lifecycle = LifecycleState.LOADING
        self.options = definition.options
        self.metrics = metrics if metrics is not None else standalone(definition.name)

        # Plain lists: the inboxes are almost always empty, and an empty deque costs ~0.7 KiB per idle actor.
        self._commands: list[LifecycleCommand] = []
        self._events: list[SaveRequested] = []
        self._dispatch: list[Dispatch] = []
        self._wakeup = gevent.event.Event()
        self._activity_dirty = False
        self._last_activity = 0.0

        self._grace_deadline: float | None = None
        self._sleep_deadline: float | None = None
        self._alarm_deadline: float | None = None
        self._alarms_suspended = False
        self._last_pushed_alarm: int | None = None
        self._earliest_schedule: int | None = None  # as of the last sync_alarm

        self.sleep_requested = False
        self.destroy_requested = False
        self._deadline_reached = False
        self._stop_reason: StopReason | None = None
        self._stop_reply: Any = None

        self.aborted = False
        self._abort_event: gevent.event.Event | None = None  # created on first use (~1.5 KiB per actor)
        self.run_greenlet: gevent.Greenlet | None = None
        self.queue_waits = 0
        self.inspector_token: str | None = None

        self.changes = ChangeFeed()
        self.work = WorkRegistry(self._work_changed)
        self.conns = ConnectionManager(self)
        self.queue = ActorQueue(self)
        self.state = ActorState(
            definition.has_state, self.options.state_save_interval, self._before_state_mutation, self._save_requested
        )
        self.ctx = ActorContext(self)
        self.greenlet: gevent.Greenlet | None = None

    @property
    def abort_event(self) -> gevent.event.Event:
        """Set when shutdown begins (``c.abort_event``)."""
        if self._abort_event is None:
            self._abort_event = gevent.event.Event()
            if self.aborted:
                self._abort_event.set()
        return self._abort_event

    def __repr__(self) -> str:
        return f"<ActorTask {self.name}/{self.actor_id} gen={self.generation} {self.lifecycle.value}>"

    # ---------------------------------------------------------------------------------------------------------
    # Inboxes: the only way other greenlets talk to the loop.
    # ---------------------------------------------------------------------------------------------------------
    def spawn(self) -> gevent.Greenlet:
        self.greenlet = gevent.spawn(self.run)
        # Runs however the loop ends, even if it was killed before it ever ran.
        self.greenlet.rawlink(lambda _: self._drain_after_exit())
        return self.greenlet

    def send_command(self, command: LifecycleCommand) -> Any:
        """Queue a lifecycle command; returns its reply."""
        if self.lifecycle is LifecycleState.TERMINATED:
            self._answer_after_exit(command)
        else:
            self._commands.append(command)
            self._wakeup.set()
        return command.reply

    def dispatch(self, item: Dispatch) -> None:
        """Queue client work. Refused at once when the actor can no longer run it."""
        item.task = self
        if (
            self.lifecycle is LifecycleState.STARTED
            and not self.destroy_requested
            and not (self._commands or self._events or self._dispatch)
        ):
            # Nothing outranks this item, so the loop's next turn would only spawn its work greenlet: do that now
            # and spare the loop a wake-up (user code still runs on the work greenlet, never here).
            self._handle_dispatch(item)
            return
        rejection = self.dispatch_rejection()
        if rejection is not None and self.lifecycle is not LifecycleState.LOADING:
            item.reply.fail(self.annotate(rejection))
            return
        self._dispatch.append(item)
        self._wakeup.set()

    def inbox_depths(self) -> tuple[int, int, int]:
        """Items waiting in the lifecycle, event and dispatch inboxes (metrics)."""
        return len(self._commands), len(self._events), len(self._dispatch)

    def signal_activity(self) -> None:
        """Something that feeds the sleep predicates changed."""
        self._last_activity = clock.monotonic()
        if self._sleep_deadline is not None and self.lifecycle is LifecycleState.STARTED:
            return  # the armed idle deadline re-checks everything when it fires (_on_idle_deadline)
        self._activity_dirty = True
        self._wakeup.set()

    def _work_changed(self, kind: WorkKind, ended: bool) -> None:
        # Work that does not block idle sleep (wait_until, shutdown hooks) does not restart the idle window when it
        # starts, but grace waits for every kind, and wait_until work that ends restarts it, as in the reference.
        if kind.policy.blocks_idle_sleep or self.lifecycle.in_grace or (ended and kind is WorkKind.WAIT_UNTIL):
            self.signal_activity()

    def _save_requested(self, immediate: bool) -> None:
        self._events.append(SaveRequested(immediate))
        self._wakeup.set()

    # ---------------------------------------------------------------------------------------------------------
    # The loop.
    # ---------------------------------------------------------------------------------------------------------
    def run(self) -> None:
        try:
            while self.lifecycle is not LifecycleState.TERMINATED:
                if not self._handle_next():
                    self._wait()
        except Exception:
            log.exception("actor task %s crashed", self)
            self._cleanup_step("abort its work", self._abort_work)
            self._cleanup_step("wake its save waiters", self.state.fail_waiters)
            self._cleanup_step("drop its queue waiters", self.queue.drop_waiters)
            self._cleanup_step("close storage", self.store.close)
            raise
        finally:
            self.lifecycle = LifecycleState.TERMINATED

    def _handle_next(self) -> bool:
        """Handle the single most urgent ready item; False when nothing is ready."""
        if self._commands:
            self._handle_command(self._commands.pop(0))
            return True
        if self._events:
            self._handle_event(self._events.pop(0))
            return True
        if self._activity_dirty:
            self._activity_dirty = False
            self._on_activity()
            return True
        now = clock.monotonic()
        if self._grace_deadline is not None and now >= self._grace_deadline:
            self._on_grace_deadline()
            return True
        if self._dispatch and self.lifecycle.accepts_dispatch:
            self._handle_dispatch(self._dispatch.pop(0))
            return True
        save_deadline = self._save_deadline(now)
        if save_deadline is not None and now >= save_deadline:
            self._save_tick()
            return True
        if self._alarm_deadline is not None and now >= self._alarm_deadline:
            self._alarm_deadline = None
            self._drain_due_schedules()
            return True
        if self._sleep_deadline is not None and now >= self._sleep_deadline:
            self._sleep_deadline = None
            self._on_idle_deadline()
            return True
        park_deadline = self._park_deadline()
        if park_deadline is not None and now >= park_deadline:
            self.store.park_if_idle(self.options.database_idle_timeout, now)
            return True
        return False

    def _wait(self) -> None:
        self._wakeup.clear()
        if self._commands or self._events or self._activity_dirty or (
            self._dispatch and self.lifecycle.accepts_dispatch
        ):
            return
        now = clock.monotonic()
        deadlines = [
            d for d in (
                self._grace_deadline, self._save_deadline(now), self._alarm_deadline, self._sleep_deadline,
                self._park_deadline(),
            )
            if d is not None
        ]
        clock.wait(self._wakeup, min(deadlines) if deadlines else None)

    def _park_deadline(self) -> float | None:
        """When an idle awake actor releases its database connection (it reopens on the next statement)."""
        if self.lifecycle is not LifecycleState.STARTED or not self.options.database_idle_timeout:
            return None
        return self.store.park_deadline(self.options.database_idle_timeout)

    def _save_deadline(self, now: float) -> float | None:
        if self.lifecycle not in (LifecycleState.STARTED, LifecycleState.SLEEP_GRACE):
            return None
        deadline = self.state.save_deadline(now)
        retry_at = self.store.save_retry.retry_at  # after a failed save: not before its backoff
        return deadline if deadline is None or retry_at is None else max(deadline, retry_at)

    def _transition(self, state: LifecycleState) -> None:
        log.debug("actor %s: %s -> %s", self.actor_id, self.lifecycle.value, state.value)
        if state is LifecycleState.STARTED:
            self.sleep_requested = False
        self.lifecycle = state

    # ---------------------------------------------------------------------------------------------------------
    # Lifecycle commands (core.md §1.2).
    # ---------------------------------------------------------------------------------------------------------
    def _handle_command(self, command: LifecycleCommand) -> None:
        if isinstance(command, Start):
            self._handle_start(command)
        elif isinstance(command, Stop):
            self._handle_stop(command)
        elif isinstance(command, FireAlarm):
            if self.lifecycle is LifecycleState.STARTED:
                self._drain_due_schedules()
            command.reply.send()

    def _handle_start(self, command: Start) -> None:
        if self.lifecycle is not LifecycleState.LOADING:
            command.reply.fail(self.annotate(errors.stopping()))
            return
        started = clock.monotonic()
        try:
            is_new = self._startup()
        except BaseException as error:
            report_failure(self, "start", error)
            self.metrics.startup_phase("total", clock.monotonic() - started, None, "error")
            self._abandon_startup()
            command.reply.fail(self.annotate(errors.from_exception(error)))
            return
        self.metrics.startup_phase("total", clock.monotonic() - started, is_new)
        command.reply.send(is_new)

    def _handle_stop(self, command: Stop) -> None:
        state = self.lifecycle
        if state is LifecycleState.LOADING:
            command.reply.fail(self.annotate(errors.not_ready()))
        elif state is LifecycleState.STARTED:
            self._stop_reply = command.reply
            self._stop_reason = command.reason
            while self._dispatch:  # work already queued is still served (core.md §1.6 step 2)
                self._handle_dispatch(self._dispatch.pop(0))
            self._begin_grace(command.reason)
        elif state.in_grace:
            if command.reason is not self._stop_reason:
                log.warning("actor %s: conflicting %s stop during grace, ignoring", self.actor_id, command.reason.value)
            command.reply.send()
        else:
            log.warning("actor %s: duplicate stop while %s", self.actor_id, state.value)
            command.reply.send()

    # ---------------------------------------------------------------------------------------------------------
    # Startup (core.md §1.4).
    # ---------------------------------------------------------------------------------------------------------
    def _startup(self) -> bool:
        """Start this generation; True when the actor is new (its first start)."""
        started = clock.monotonic()
        self.store.open()
        persisted = self.store.load()
        is_new = not persisted.has_initialized
        loaded = clock.monotonic()
        self.metrics.startup_phase("load_persisted", loaded - started, is_new)
        if is_new and persisted.input is None and self.create_input is not None:
            stored_input = self.create_input
            self.store.write_actor_record(False, stored_input)
        else:
            stored_input = persisted.input
        self._last_pushed_alarm = persisted.last_pushed_alarm
        self.inspector_token = persisted.inspector_token or self._new_inspector_token()
        self._restore_hibernated_connections()
        self._transition(LifecycleState.STARTED)
        self.input = decode(stored_input) if stored_input is not None else None
        preamble_started = clock.monotonic()
        self._run_preamble(is_new, persisted.state, self.input)
        self.metrics.startup_phase("runtime_preamble", clock.monotonic() - preamble_started, is_new)
        if is_new:
            self.store.write_actor_record(True, stored_input)
        self.signal_activity()
        self._drain_due_schedules()
        return is_new

    def _new_inspector_token(self) -> str:
        token = secrets.token_urlsafe(32)
        self.store.set_inspector_token(token)
        return token

    def _run_preamble(self, is_new: bool, snapshot: bytes | None, create_input: Any) -> None:
        hooks = self.definition.hooks
        options = self.options
        self._call_hook("on_migrate", options.on_migrate_timeout, is_new)
        if is_new or (snapshot is None and "create_state" in hooks):
            if self.definition.has_static_state:
                self.state.install(self.definition.static_state(), clock.monotonic())
            elif "create_state" in hooks:
                created = self._call_hook("create_state", options.create_state_timeout, create_input)
                self.state.install(created, clock.monotonic())
            self._call_hook("on_create", options.on_create_timeout, create_input)
            if self.state.enabled:
                self._write_state_now()
        elif self.state.enabled:
            restored = decode(snapshot) if snapshot is not None else self.definition.static_state()
            self.state.install(restored, clock.monotonic())
        if "create_vars" in hooks:
            self.ctx.vars = self._call_hook("create_vars", options.create_vars_timeout)
        else:
            self.ctx.vars = self.definition.static_vars()
        self._call_hook("on_wake", options.on_wake_timeout)
        if "run" in hooks:
            self.run_greenlet = gevent.spawn(self._run_handler, hooks["run"])
            self.run_greenlet.name = "run handler"
            self.run_greenlet.rawlink(lambda _: self.signal_activity())

    def _call_hook(self, hook: str, timeout: float, *args: Any) -> Any:
        function = self.definition.hooks.get(hook)
        if function is None:
            return None
        return call_with_timeout(function, (self.ctx, *args), timeout, lambda: errors.callback_timed_out(hook))

    def _abandon_startup(self) -> None:
        """A failed start leaves nothing running; storage keeps ``has_initialized`` false for a new actor, and
        restored connections go back to sleep for the next attempt."""
        self._abort_work()
        try:
            self._hibernate_connections()
        except Exception:
            log.exception("actor %s: could not keep its connections after a failed start", self.actor_id)
        self.store.close()
        self._transition(LifecycleState.TERMINATED)

    def _run_handler(self, function: Any) -> None:
        """The user's ``run`` (core.md §1.11): returning or raising is only logged; the actor lives on and sleeps
        when idle. The abort ends it at shutdown."""
        try:
            function(self.ctx)
            log.info("actor %s %r (%s): run handler returned; the actor stays alive", self.name, self.key,
                     self.actor_id)
        except gevent.GreenletExit as exit_:  # the abort (ActorAborted) included
            report_failure(self, "run handler", exit_)
            raise
        except Exception as error:
            report_failure(self, "run handler", error)

    @property
    def run_handler_active(self) -> bool:
        return self.run_greenlet is not None and not self.run_greenlet.dead

    # ---------------------------------------------------------------------------------------------------------
    # Dispatch and admission (core.md §1.3).
    # ---------------------------------------------------------------------------------------------------------
    def dispatch_rejection(self) -> errors.RivetError | None:
        """The error new client work gets now, or None when it is accepted."""
        state = self.lifecycle
        if self.destroy_requested:
            return errors.destroying()
        if state.started:
            return None
        if state in (LifecycleState.SLEEP_FINALIZE, LifecycleState.DESTROY_GRACE):
            return errors.stopping()
        if state in (LifecycleState.DESTROYING, LifecycleState.TERMINATED):
            return errors.destroying()
        return errors.not_ready()

    def _handle_dispatch(self, item: Dispatch) -> None:
        rejection = self.dispatch_rejection()
        if rejection is not None:
            item.reply.fail(self.annotate(rejection))
            return
        try:
            item.greenlet = self.work.spawn(
                item.kind, self._serve, item, conn=item.conn, label=item.label, reply=item.reply
            )
        except WorkRefused:
            item.reply.fail(self.annotate(errors.stopping()))

    def _serve(self, item: Dispatch) -> None:
        try:
            item.handler(self)
        except errors.ActorAborted:
            item.reply.fail(self.annotate(errors.aborted()))
            raise
        except Exception as error:
            report_failure(self, item.label, error)
            item.reply.fail(self.annotate(errors.from_exception(error)))
        finally:
            if not item.reply.answered:
                item.reply.fail(self.annotate(errors.dropped_reply()))

    def annotate(self, error: errors.RivetError) -> errors.RivetError:
        return error.with_actor(self.actor_id, self.generation, self.key)

    # ---------------------------------------------------------------------------------------------------------
    # State saving (core.md §3.2).
    # ---------------------------------------------------------------------------------------------------------
    def _before_state_mutation(self) -> None:
        self.ctx.before_state_mutation()

    def _handle_event(self, event: SaveRequested) -> None:
        # A normal request only moves the save deadline (derived from the state's flags when the loop next waits);
        # an immediate one is served now.
        if event.immediate and self.lifecycle in (LifecycleState.STARTED, LifecycleState.SLEEP_GRACE):
            self._save_tick()

    def _save_tick(self) -> None:
        try:
            self._write_state_now()
        except Exception as error:
            # The state stays dirty and is retried after a capped backoff (a full disk must not become a busy loop
            # or a flood of logs); callers waiting on this save get the error now, and the next caller that asks
            # for an immediate save gets its own attempt (so its answer does not wait for the backoff).
            self.store.save_retry.failed(error, clock.monotonic(), log, f"actor {self.actor_id}: saving state")
            self.state.save_error = errors.from_exception(error)
            self.state.immediate_requested = False
            self.state.fail_waiters()

    def _write_state_now(self) -> None:
        revision = self.state.revision
        if self.state.enabled:
            snapshot = self.state.serialize()
            self.store.write_state(snapshot)
            self.metrics.state_saved(len(snapshot))
        self.state.save_error = None
        if self.store.save_retry.failures:
            self.store.save_retry.succeeded(log, f"actor {self.actor_id}: saving state")
            self.signal_activity()  # the failing save kept the actor awake; its idle window starts again
        self.state.mark_saved(revision, clock.monotonic())

    # ---------------------------------------------------------------------------------------------------------
    # Idle sleep (core.md §1.5).
    # ---------------------------------------------------------------------------------------------------------
    def _on_activity(self) -> None:
        if self.lifecycle is LifecycleState.STARTED:
            self._rearm_sleep_deadline()
        elif self.lifecycle.in_grace:
            self._try_finish_grace()

    def _rearm_sleep_deadline(self) -> None:
        if sleep.idle_sleep_blocker(self) is None:
            self._sleep_deadline = self._last_activity + self.options.sleep_timeout
        else:
            self._sleep_deadline = None

    def _on_idle_deadline(self) -> None:
        # Activity does not move an armed deadline (that would wake the loop on every call); it is checked here.
        blocker = sleep.idle_sleep_blocker(self)
        if blocker is not None:
            log.debug("actor %s: idle deadline elapsed but actor stayed awake (%s)", self.actor_id, blocker)
            return  # disarmed: the activity that removes the blocker arms it again
        idle_until = self._last_activity + self.options.sleep_timeout
        if clock.monotonic() < idle_until:
            self._sleep_deadline = idle_until
            return
        try:
            self.request_sleep()
        except errors.RivetError:
            pass  # already requested

    def request_sleep(self) -> None:
        """Ask placement to put this actor to sleep (``c.sleep()``); idempotent within a generation."""
        if not self.lifecycle.started:
            raise errors.stopping() if (self.sleep_requested or self.destroy_requested) else errors.starting()
        if self.sleep_requested:
            return
        self.sleep_requested = True
        self._sleep_deadline = None
        self.placement.request_sleep(self)

    def request_destroy(self, error_message: str | None = None) -> None:
        """Ask placement to destroy this actor (``c.destroy()``); work is refused from now on."""
        if not self.lifecycle.started and not (self.sleep_requested or self.destroy_requested):
            raise errors.starting()
        if self.destroy_requested:
            raise errors.stopping()
        self.destroy_requested = True
        if error_message is not None and len(error_message.encode()) > MAX_STOP_ERROR_MESSAGE:
            error_message = error_message.encode()[:MAX_STOP_ERROR_MESSAGE].decode(errors="ignore") + "... (truncated)"
        if self.state.enabled and self.state.dirty and self.lifecycle.started:
            self.state.request_save(immediate=True)
        self.placement.request_destroy(self, error_message)

    # ---------------------------------------------------------------------------------------------------------
    # Grace and shutdown (core.md §1.6-1.8).
    # ---------------------------------------------------------------------------------------------------------
    def _begin_grace(self, reason: StopReason) -> None:
        self._alarms_suspended = True
        self._alarm_deadline = None
        if reason is StopReason.DESTROY:
            self.destroy_requested = True
        self._transition(LifecycleState.SLEEP_GRACE if reason is StopReason.SLEEP else LifecycleState.DESTROY_GRACE)
        self._sleep_deadline = None
        self.aborted = True
        if self._abort_event is not None:
            self._abort_event.set()
        self.queue.notify()  # receivers waiting on the queue end with actor/aborted
        self._grace_deadline = clock.monotonic() + self.options.sleep_grace_period
        for conn in list(self.conns.conns.values()):
            if reason is StopReason.SLEEP and conn.is_hibernatable:
                continue  # survives the sleep (core.md §1.6 step 3)
            self.work.spawn(
                WorkKind.SHUTDOWN_HOOK, self.conns.disconnect_at_shutdown, conn, "actor stopping",
                label=f"on_disconnect of {conn!r}",
            )
        hook = "on_sleep" if reason is StopReason.SLEEP else "on_destroy"
        self.work.spawn(WorkKind.SHUTDOWN_HOOK, self._graceful_cleanup, hook, label=hook)
        self._try_finish_grace()

    def _graceful_cleanup(self, hook: str) -> None:
        function = self.definition.hooks.get(hook)
        if function is not None:
            try:
                function(self.ctx)
            except Exception as error:
                report_failure(self, hook, error)  # shutdown continues
        if self.state.enabled and self.state.dirty:
            self._write_state_now()

    def _try_finish_grace(self) -> None:
        if sleep.finalize_blocker(self, self._stop_reason) is None:
            self._run_shutdown()

    def _on_grace_deadline(self) -> None:
        self._deadline_reached = True
        if self._stop_reason is not None:
            self.metrics.shutdown_timeout[self._stop_reason.value].inc()
        log.warning(
            "actor %s: %s grace deadline reached; aborting %s",
            self.actor_id, self._stop_reason.value if self._stop_reason else "?", sleep.describe_counters(self),
        )
        # The reference aborts the runtime before its final save (core.md §1.6 step 6).
        self._abort_work()
        self._run_shutdown()

    def _run_shutdown(self) -> None:
        """Finalize (core.md §1.6 step 7): every step runs even if one before it failed, and the Stop is answered
        in every case, so the placement never waits on this actor forever."""
        reason = self._stop_reason
        self._grace_deadline = None
        self._sleep_deadline = None
        self._transition(
            LifecycleState.SLEEP_FINALIZE if reason is StopReason.SLEEP else LifecycleState.DESTROYING
        )
        failures: list[BaseException] = []
        try:
            failures += self._cleanup_step("save the final state", self._final_save)
            if reason is StopReason.SLEEP:
                failures += self._cleanup_step("hibernate its connections", self._hibernate_connections)
            if not self._deadline_reached:  # else _on_grace_deadline aborted everything already
                # The run handler may still run: destroy does not wait for it.
                failures += self._cleanup_step("abort its work", self._abort_work)
            alarm = None if reason is StopReason.DESTROY else self._earliest_schedule
            failures += self._cleanup_step("push its alarm", self._push_alarm, alarm)
        finally:
            self._cleanup_step("wake its save waiters", self.state.fail_waiters)
            self._cleanup_step("drop its queue waiters", self.queue.drop_waiters)
            failures += self._cleanup_step("close storage", self.store.close)
            self._transition(LifecycleState.TERMINATED)
            self._answer_stop(failures[0] if failures else None)

    def _cleanup_step(self, what: str, step: Any, *args: Any) -> list[BaseException]:
        """Run one shutdown step; a failure is logged and returned, never raised."""
        try:
            step(*args)
        except Exception as error:
            log.exception("actor %s: could not %s while stopping", self.actor_id, what)
            return [error]
        return []

    def _answer_stop(self, failure: BaseException | None) -> None:
        if self._stop_reply is None:
            return
        if failure is None:
            self._stop_reply.send()
        else:
            self._stop_reply.fail(self.annotate(errors.from_exception(failure)))

    def _abort_work(self) -> None:
        """Refuse new work, abort the run handler and every live work greenlet, and wait at most
        ``work.ABANDON_AFTER`` for them; what is still running then (it caught the abort) is abandoned with a
        warning, and the reply it owes a client becomes ``actor/aborted``."""
        self.work.refusing = True
        doomed: list[gevent.Greenlet] = list(self.work.live)
        if self.run_greenlet is not None:
            doomed.append(self.run_greenlet)
        for survivor in abort(doomed):
            log.warning(
                "actor %s %r (%s): %s ignored the abort; abandoned, it keeps running detached from the actor",
                self.name, self.key, self.actor_id, getattr(survivor, "label", None) or survivor.name,
            )
        for greenlet in doomed:
            reply = getattr(greenlet, "reply", None)
            if reply is not None:
                reply.fail(self.annotate(errors.aborted()))  # ignored when it was answered

    def _final_save(self) -> None:
        if not self.state.dirty:
            return
        if self._deadline_reached:
            # The reference aborts the runtime before its final serialize, so only what was already saved is
            # kept (core.md §1.6, "consequence worth copying exactly").
            log.warning("actor %s: grace deadline reached; unsaved state changes are discarded", self.actor_id)
            return
        self._write_state_now()

    def _hibernate_connections(self) -> None:
        taken = self.conns.hibernate_all()
        if not taken:
            return
        self.store.write_hibernated_connections([record for record, _ in taken])
        self.placement.hold_connections(self, {record.conn_id: transport for record, transport in taken})
        for _, transport in taken:
            transport.hibernate()

    def _restore_hibernated_connections(self) -> None:
        """Startup step 8: bring back stored connections whose transport is still live; drop the others."""
        transports = self.placement.release_connections(self)
        for record in self.store.take_hibernated_connections():
            transport = transports.pop(record.conn_id, None)
            if transport is None or transport.closed:
                log.info("actor %s: connection %s went away while asleep", self.actor_id, record.conn_id)
                continue
            self.conns.restore(record, transport)
        for transport in transports.values():  # held without a record (it could not be stored): end it
            transport.close("actor.connection_lost")

    def _drain_after_exit(self) -> None:
        self.work.refusing = True
        self._answer_stop(errors.dropped_reply())  # ignored when answered; here if the loop died mid-shutdown
        while self._dispatch:
            self._dispatch.pop(0).reply.fail(self.annotate(errors.dropped_reply()))
        while self._commands:
            self._answer_after_exit(self._commands.pop(0))

    def _answer_after_exit(self, command: LifecycleCommand) -> None:
        if isinstance(command, Stop):
            command.reply.send()
        else:
            command.reply.fail(self.annotate(errors.destroying() if self.destroy_requested else errors.stopping()))

    # ---------------------------------------------------------------------------------------------------------
    # Schedules and alarms (core.md §1.9, §3.7).
    # ---------------------------------------------------------------------------------------------------------
    def _drain_due_schedules(self) -> None:
        if self._alarms_suspended:
            return
        try:
            due = self.store.take_due_schedules(clock.now_ms())
        except errors.RivetError as error:
            log.error("actor %s: reading due schedules failed: %s", self.actor_id, error)
            return
        for row in due:
            args = decode(row.args) if row.args else []
            try:
                self.work.spawn(
                    WorkKind.SCHEDULED_ACTION, self._fire_schedule, row.action, args,
                    label=f"scheduled action {row.action!r}",
                )
            except WorkRefused:
                log.warning("actor %s: schedule %s dropped during teardown", self.actor_id, row.event_id)
        self.sync_alarm()

    def _fire_schedule(self, action: str, args: list[Any]) -> None:
        try:
            call_with_timeout(
                run_action, (self, action, args, True), self.options.action_timeout, errors.action_timed_out
            )
        except Exception as error:
            report_failure(self, f"scheduled action {action!r}", error)

    def sync_alarm(self) -> None:
        """Re-arm the local alarm timer and tell placement about the earliest schedule."""
        self.changes.changed("schedules")
        earliest = self._earliest_schedule = self.store.earliest_trigger()
        if earliest is None or self._alarms_suspended:
            self._alarm_deadline = None
        else:
            self._alarm_deadline = clock.monotonic() + max(0, earliest - clock.now_ms()) / 1000
            self._wakeup.set()
        self._push_alarm(earliest)

    def _push_alarm(self, alarm_ms: int | None) -> None:
        if alarm_ms == self._last_pushed_alarm:
            return
        self.placement.set_alarm(self, alarm_ms)
        self.store.set_last_pushed_alarm(alarm_ms)
        self._last_pushed_alarm = alarm_ms
