"""The embedded engine: the in-process stand-in for the Rivet Engine.

It owns lifecycle authority, as the engine does (core.md §0): it starts a new generation when work arrives for
a sleeping actor and holds that work until the actor is ready, turns the actor's sleep and destroy *intents*
into Stop commands, wakes sleeping actors when their alarm is due, and removes a destroyed actor's data.
"""

from __future__ import annotations

import enum
import logging
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import gevent
import gevent.event

from rivetgreen import clock, errors
from rivetgreen.actor.actions import perform
from rivetgreen.actor.connection import HibernatableTransport
from rivetgreen.actor.lifecycle import Dispatch, Start, Stop, StopReason
from rivetgreen.actor.task import ActorTask
from rivetgreen.actor.work import ABANDON_AFTER, wait_ended
from rivetgreen.encoding.actor_key import serialize_key
from rivetgreen.engine.admission import registry_admission
from rivetgreen.engine.directory import ActorRecord, Directory
from rivetgreen.metrics import RuntimeMetrics
from rivetgreen.storage import ActorStore, LocalSqliteBackend
from rivetgreen.storage.actor_store import read_inspector_token

if TYPE_CHECKING:
    from rivetgreen.actor.definition import ActorDefinition

log = logging.getLogger("rivetgreen.engine")

MAX_DISPATCH_ATTEMPTS = 3
FINAL_SAVE_CAP = 15.0  # seconds: core/src/actor/task.rs SERIALIZE_STATE_SHUTDOWN_SANITY_CAP (at least)
ACTION_TIMEOUT: Any = object()  # perform()'s default: the actor's action_timeout
_START_FAILED = errors.RivetError("actor", "start_failed", "The actor failed to start.")
# Refusals that mean "this generation is going away", not "this request is wrong".
RETRYABLE_REJECTIONS = {"stopping", "not_ready", "dropped_reply"}


def stop_bound(task: ActorTask) -> float:
    """How long the engine waits for an actor to stop: its grace, the time aborted work has to unwind, and the
    reference's sanity cap on the final save (max(15 s, grace), core.md §2)."""
    grace = task.options.sleep_grace_period
    return grace + ABANDON_AFTER + max(FINAL_SAVE_CAP, grace)


class InstanceStatus(enum.Enum):
    STARTING = "starting"
    ACTIVE = "active"
    STOPPING = "stopping"


class ActorInstance:
    """The engine's view of one running generation."""

    def __init__(self, record: ActorRecord) -> None:
        self.record = record
        self.task: ActorTask | None = None
        self.status = InstanceStatus.STARTING
        self.stop_reason: StopReason | None = None
        self.ready = gevent.event.AsyncResult()
        self.stopped = gevent.event.Event()
        self.requested_at = clock.monotonic()  # when work for the stopped actor arrived (wake latency)


class LocalEngine:
    """Places every actor in this process; durable in ``data_dir``."""

    def __init__(
        self,
        definitions: dict[str, ActorDefinition],
        data_dir: str,
        region: str = "",
        metrics: RuntimeMetrics | None = None,
    ) -> None:
        self.definitions = definitions
        self.data_dir = data_dir
        self.region = region
        os.makedirs(os.path.join(data_dir, "actors"), exist_ok=True)
        self.directory = Directory(data_dir)
        self.instances: dict[str, ActorInstance] = {}
        # Directory records never change until destroy, so lookups on the request path are served from memory.
        self._ids_by_key: dict[tuple[str, str], ActorRecord] = {}  # name + serialized key -> record
        self._records_by_id: dict[str, ActorRecord] = {}
        self._held: dict[str, dict[str, HibernatableTransport]] = {}  # live sockets of sleeping actors
        self._alarms = self.directory.alarms()
        self._attempted_alarms: dict[str, int] = {}
        self._alarms_changed = gevent.event.Event()
        self._closed = False
        self.metrics = metrics if metrics is not None else RuntimeMetrics()
        self.metrics.watch(lambda: self.definitions, self._live_tasks, self._stored_counts)
        for name in definitions:
            self.metrics.for_actor(name)  # every series exists (at zero) from the first scrape
        self._alarm_greenlet = gevent.spawn(self._alarm_loop)

    # directory -------------------------------------------------------------------------------------------------
    def create(self, name: str, key: list[str], create_input: bytes | None = None) -> ActorRecord:
        self._definition(name)
        return self.directory.create(name, key, create_input)

    def get(self, name: str, key: list[str]) -> ActorRecord | None:
        self._definition(name)
        cache_key = (name, serialize_key(key))
        record = self._ids_by_key.get(cache_key)
        if record is None:
            record = self.directory.find(name, key)
            if record is not None:
                self._ids_by_key[cache_key] = record
        return record

    def get_or_create(self, name: str, key: list[str], create_input: bytes | None = None) -> tuple[ActorRecord, bool]:
        """The actor for ``name`` + ``key``, created if absent; also says whether it was created."""
        record = self.get(name, key)
        if record is not None:
            return record, False
        return self.create(name, key, create_input), True

    def lookup(self, actor_id: str) -> ActorRecord:
        record = self._records_by_id.get(actor_id)
        if record is None:
            record = self.directory.get(actor_id)
            if record is None:
                raise errors.not_found(actor_id)
            self._records_by_id[actor_id] = record
        return record

    def stored_inspector_token(self, actor_id: str) -> str | None:
        """The actor's inspector token without waking it: the running generation's, else the one stored in its
        database (None before its first start). ``actor/not_found`` for an unknown id."""
        instance = self.instances.get(actor_id)
        if instance is not None and instance.task is not None and instance.task.inspector_token:
            return instance.task.inspector_token
        return read_inspector_token(self._actor_path(self.lookup(actor_id).actor_id))

    def _definition(self, name: str) -> ActorDefinition:
        definition = self.definitions.get(name)
        if definition is None:
            raise errors.not_registered(name)
        return definition

    # running actors ----------------------------------------------------------------------------------------------
    def running_task(self, actor_id: str) -> ActorTask:
        """The actor's live task, woken on demand; waits while it starts or finishes falling asleep."""
        while True:
            self._check_open()
            instance = self.instances.get(actor_id)
            if instance is None:
                instance = self._start(self.lookup(actor_id))
            if instance.status is InstanceStatus.STARTING:
                instance.ready.get()  # raises the start error
                continue
            if instance.status is InstanceStatus.STOPPING and instance.stop_reason is StopReason.SLEEP:
                # As the engine's gateway does, hold the work for the next generation instead of routing it
                # into a generation that is going to sleep.
                instance.stopped.wait()
                continue
            rejection = registry_admission(actor_id, instance.task, instance.stop_reason)
            if rejection is not None:
                raise instance.task.annotate(rejection)
            return instance.task

    def perform(self, actor_id: str, make_item: Callable[[], Dispatch], timeout: Any = ACTION_TIMEOUT) -> Any:
        """Run client work on the actor, waking it if needed, and wait for its reply: at most the actor's
        ``action_timeout`` unless ``timeout`` says otherwise (None: no limit). Work the actor refused before
        running it (it was falling asleep) is retried on the next generation."""
        for attempt in range(MAX_DISPATCH_ATTEMPTS):
            task = self.running_task(actor_id)
            item = make_item()
            try:
                return perform(task, item, task.options.action_timeout if timeout is ACTION_TIMEOUT else timeout)
            except errors.RivetError as error:
                retryable = item.greenlet is None and not task.destroy_requested and error.code in RETRYABLE_REJECTIONS
                if not retryable or attempt == MAX_DISPATCH_ATTEMPTS - 1:
                    raise
        raise AssertionError("unreachable")

    def _start(self, record: ActorRecord) -> ActorInstance:
        instance = ActorInstance(record)
        self.instances[record.actor_id] = instance
        gevent.spawn(self._run_start, instance)
        return instance

    def _run_start(self, instance: ActorInstance) -> None:
        record = instance.record
        try:
            definition = self._definition(record.name)
            generation = self.directory.next_generation(record.actor_id)
            store = ActorStore(LocalSqliteBackend(self._actor_path(record.actor_id)))
            task = ActorTask(
                definition, record.actor_id, record.key, generation, store, self, record.input, self.region,
                metrics=self.metrics.for_actor(record.name),
            )
            instance.task = task
            task.spawn().rawlink(lambda _: self._task_exited(instance))
            is_new = task.send_command(Start()).get()
        except BaseException as error:  # every failure must release the waiters
            self._abandon_start(instance, error)
            return
        if instance.status is InstanceStatus.STARTING:  # a stop requested during startup keeps STOPPING
            instance.status = InstanceStatus.ACTIVE
        instance.task.metrics.started.inc()
        instance.task.metrics.wake(clock.monotonic() - instance.requested_at, is_new)
        instance.ready.set(instance.task)
        self._alarms_changed.set()

    def _abandon_start(self, instance: ActorInstance, error: BaseException) -> None:
        """A start failed: waiters get the error, the next request tries a new generation."""
        self.instances.pop(instance.record.actor_id, None)
        try:
            if instance.task is not None:
                instance.task.store.close()
            rivet_error = errors.from_exception(error)
        except BaseException:  # even building the error may fail (e.g. out of file descriptors)
            rivet_error = _START_FAILED
        finally:
            instance.stopped.set()
        instance.ready.set_exception(rivet_error)

    def _task_exited(self, instance: ActorInstance) -> None:
        """A task that ended without a stop (it crashed) frees its slot: the next request starts a new one."""
        if self.instances.get(instance.record.actor_id) is instance and instance.status is InstanceStatus.ACTIVE:
            actor_id = instance.record.actor_id
            log.error("actor %s: task ended unexpectedly; it will restart on the next request", actor_id)
            self.instances.pop(instance.record.actor_id, None)
            instance.task.metrics.stopped["crash"].inc()
            instance.stopped.set()
            self._alarms_changed.set()

    def _actor_path(self, actor_id: str) -> str:
        return os.path.join(self.data_dir, "actors", f"{actor_id}.sqlite")

    # placement, as the actor task sees it --------------------------------------------------------------------------
    def request_sleep(self, task: ActorTask) -> None:
        self._stop(task, StopReason.SLEEP)

    def request_destroy(self, task: ActorTask, error: str | None) -> None:
        if error is not None:
            log.error("actor %s (%s) stopped with error: %s", task.name, task.actor_id, error)
        self._stop(task, StopReason.DESTROY)

    def set_alarm(self, task: ActorTask, alarm_ms: int | None) -> None:
        self.directory.set_alarm(task.actor_id, alarm_ms)
        if alarm_ms is None:
            self._alarms.pop(task.actor_id, None)
        else:
            self._alarms[task.actor_id] = alarm_ms
        self._alarms_changed.set()

    def hold_connections(self, task: ActorTask, transports: dict[str, HibernatableTransport]) -> None:
        self._held.setdefault(task.actor_id, {}).update(transports)

    def release_connections(self, task: ActorTask) -> dict[str, HibernatableTransport]:
        return self._held.pop(task.actor_id, {})

    def held_connections(self, actor_id: str) -> set[str]:
        """Ids of the hibernated connections whose sockets are held open for a sleeping actor."""
        return set(self._held.get(actor_id, ()))

    def forget_connection(self, actor_id: str, conn_id: str) -> None:
        """A hibernating connection's socket closed: nothing to restore for it."""
        self._held.get(actor_id, {}).pop(conn_id, None)

    def _stop(self, task: ActorTask, reason: StopReason) -> gevent.event.Event:
        instance = self.instances.get(task.actor_id)
        if instance is None or instance.task is not task:
            return gevent.event.Event()
        if instance.status is InstanceStatus.STOPPING:
            if reason is StopReason.DESTROY and instance.stop_reason is StopReason.SLEEP:
                task.destroy_requested = True  # escalation; the running stop finishes as a destroy
                instance.stop_reason = StopReason.DESTROY
            return instance.stopped
        instance.status = InstanceStatus.STOPPING
        instance.stop_reason = reason
        if reason is StopReason.DESTROY:
            task.destroy_requested = True
        gevent.spawn(self._run_stop, instance, reason)
        return instance.stopped

    def _run_stop(self, instance: ActorInstance, reason: StopReason) -> None:
        task = instance.task
        started = clock.monotonic()
        try:
            self._await_stop(task, reason)
            if instance.stop_reason is StopReason.DESTROY:
                self._remove_data(task.actor_id)
        except Exception:
            log.exception("actor %s: stopping failed", task.actor_id)
        finally:  # whatever happened, the actor id must work again
            self.instances.pop(task.actor_id, None)
            task.metrics.stopped[instance.stop_reason.value].inc()
            task.metrics.shutdown_wait[instance.stop_reason.value].observe(clock.monotonic() - started)
            instance.stopped.set()
            self._alarms_changed.set()

    def _await_stop(self, task: ActorTask, reason: StopReason) -> None:
        """Send Stop and wait for the reply and the task's end, at most :func:`stop_bound`; a task that overruns
        it is killed and left behind."""
        reply = task.send_command(Stop(reason))
        if not clock.wait(reply.waitable, clock.monotonic() + stop_bound(task)):
            log.error("actor %s: no answer to stop within %.1f s; killing its task", task.actor_id, stop_bound(task))
        else:
            if not reply.waitable.successful():
                log.error("actor %s: stop failed: %s", task.actor_id, reply.waitable.exception)
            if task.greenlet is None or not wait_ended([task.greenlet], clock.monotonic() + ABANDON_AFTER):
                return
            log.error("actor %s: its task did not end after answering stop; killing it", task.actor_id)
        if task.greenlet is not None:
            task.greenlet.kill(block=False)

    def _remove_data(self, actor_id: str) -> None:
        record = self.directory.get(actor_id)
        if record is not None:
            self._ids_by_key.pop((record.name, serialize_key(record.key)), None)
        self._records_by_id.pop(actor_id, None)
        self.directory.delete(actor_id)
        self._alarms.pop(actor_id, None)
        for transport in self._held.pop(actor_id, {}).values():
            transport.close("actor.destroyed")
        for suffix in ("", "-wal", "-shm"):
            path = self._actor_path(actor_id) + suffix
            if os.path.exists(path):
                os.remove(path)

    # metrics (read when scraped) ---------------------------------------------------------------------------------
    def _live_tasks(self) -> list[ActorTask]:
        return [instance.task for instance in list(self.instances.values()) if instance.task is not None]

    def _stored_counts(self) -> dict[str, int]:
        """Stored actors per name (none once the registry has shut down)."""
        return {} if self._closed else self.directory.count_by_name()

    # management ------------------------------------------------------------------------------------------------------
    def sleep(self, actor_id: str) -> None:
        """Put a running actor to sleep and wait until it is stopped (no-op when it is not running)."""
        instance = self.instances.get(actor_id)
        if instance is not None and instance.status is InstanceStatus.STARTING:
            instance.ready.wait()
            instance = self.instances.get(actor_id)
        if instance is not None and instance.task is not None:
            self._stop(instance.task, StopReason.SLEEP).wait()

    def destroy(self, actor_id: str) -> None:
        """Destroy an actor, running or asleep, and wait until its data is gone."""
        task = self.running_task(actor_id)
        self._stop(task, StopReason.DESTROY).wait()

    def shutdown(self) -> None:
        """Put every running actor to sleep (a host drain), then stop the alarm timer and close the directory."""
        if self._closed:
            return
        self._closed = True  # from now on nothing wakes: work held for an actor going to sleep is refused
        gevent.joinall([gevent.spawn(self.sleep, actor_id) for actor_id in list(self.instances)])
        self._alarm_greenlet.kill()
        self.directory.close()

    def _check_open(self) -> None:
        if self._closed:
            raise errors.RivetError("registry", "shut_down", "The registry has shut down.")

    # alarms of sleeping actors -------------------------------------------------------------------------------------
    def _alarm_loop(self) -> None:
        while True:
            self._alarms_changed.clear()
            actor_id, alarm_ms = self._next_sleeping_alarm()
            if actor_id is None:
                clock.wait(self._alarms_changed, None)
                continue
            delay = max(0.0, (alarm_ms - clock.now_ms()) / 1000)
            if clock.wait(self._alarms_changed, clock.monotonic() + delay):
                continue
            gevent.spawn(self._wake_for_alarm, actor_id, alarm_ms)
            self._attempted_alarms[actor_id] = alarm_ms  # not retried until the alarm changes or the wake succeeds

    def _next_sleeping_alarm(self) -> tuple[str | None, int]:
        best: tuple[str | None, int] = (None, 0)
        for actor_id, alarm_ms in self._alarms.items():
            if actor_id in self.instances or self._attempted_alarms.get(actor_id) == alarm_ms:
                continue
            if best[0] is None or alarm_ms < best[1]:
                best = (actor_id, alarm_ms)
        return best

    def _wake_for_alarm(self, actor_id: str, alarm_ms: int) -> None:
        try:
            self.running_task(actor_id)
        except errors.RivetError as error:
            log.error("actor %s: waking for its alarm failed: %s", actor_id, error)
            return
        self._attempted_alarms.pop(actor_id, None)
