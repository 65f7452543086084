"""Prometheus metrics of one registry (core.md §7.6), served as text at ``GET /metrics``.

Every registry owns a :class:`RuntimeMetrics` (``registry.metrics``) with its own ``CollectorRegistry``, so two
registries in one process never share or collide on series. Every series is labelled by ``actor_name`` (plus the
listed extras), never by actor key or id: the number of series stays bounded by the number of actor definitions.

Two kinds of series:

* counters and histograms, updated where things happen (engine start/stop, action runs, connects, queue sends and
  receives, state saves, grace). The code that updates them holds an :class:`ActorMetrics`, one per actor name,
  whose label children are bound once, so an update is an ``inc()``/``observe()`` on plain numbers with no label
  lookup and no lock (well under a microsecond per action call); ``prometheus_client`` renders them when scraped;
* gauges read from the live actors when scraped (active count, lifecycle states, connections, queue depth, inbox
  depths, live work), so they cost nothing on the request path and can never drift. A scrape never reopens a
  parked actor database: the queue depth of a woken actor is counted on its first scrape or queue use while its
  database is open, and is 0 until then.

Durations are measured on the rivetgreen clock (``rivetgreen.clock.monotonic``), so under the virtual clock of the
tests they are exact virtual seconds.

Names follow the reference where one fits. Ours (not in the reference): ``rivetkit_actor_lifecycle_count``,
``rivetkit_actor_wake_duration_seconds``, ``rivetkit_actor_action_total``, ``rivetkit_actor_state_saves_total``
and ``rivetkit_actor_state_save_bytes_total``.

Access: open when no token is configured (bind the host to loopback, the default of ``rivetgreen.server.serve``);
with a token (``metrics_token=`` or ``RIVETKIT_METRICS_TOKEN``) every scrape needs ``Authorization: Bearer
<token>``, else 401 ``metrics/unauthorized``. ``RIVETKIT_METRICS_ENABLED=0`` (or ``false``/``no``/``off``) turns
the endpoints off (403 ``metrics/disabled``, as the reference answers when metrics are not enabled); unset or any
other value leaves them on. Collection itself is always on.
"""

from __future__ import annotations

import itertools
import json
import os
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Info, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from rivetgreen.errors import RivetError
from rivetgreen.http import Response
from rivetgreen.tokens import bearer_token, tokens_match

if TYPE_CHECKING:
    from rivetgreen.actor.task import ActorTask

TOKEN_ENV = "RIVETKIT_METRICS_TOKEN"
ENABLED_ENV = "RIVETKIT_METRICS_ENABLED"
_OFF_VALUES = {"0", "false", "no", "off"}

# Seconds. Fine at the low end: an in-process action or a wake takes about a millisecond.
DURATION_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
)
STOP_REASONS = ("sleep", "destroy", "crash")
INBOXES = ("lifecycle", "events", "dispatch")
# What ``rivetkit_actor_lifecycle_count`` reports; "sleeping" is every stored actor without a live generation.
LIFECYCLE_STATES = (
    "sleeping", "loading", "started", "sleep_grace", "sleep_finalize", "destroy_grace", "destroying",
)


class ActionMeter:
    """The bound series of one kind of action run (client or scheduled) of one actor name."""

    __slots__ = ("duration", "error", "ok")

    def __init__(self, metrics: RuntimeMetrics, name: str, kind: str) -> None:
        self.ok = metrics.action_total.labels(name, kind, "ok")
        self.error = metrics.action_total.labels(name, kind, "error")
        self.duration = metrics.user_task_duration.labels(name, kind)


class ActorMetrics:
    """The series of one actor name, bound once; what tasks, connections and queues update."""

    def __init__(self, metrics: RuntimeMetrics, name: str) -> None:
        self._metrics = metrics
        self.name = name
        self.started = metrics.started.labels(name)
        self.stopped = {reason: metrics.stopped.labels(name, reason) for reason in STOP_REASONS}
        self.shutdown_wait = {reason: metrics.shutdown_wait.labels(name, reason) for reason in STOP_REASONS[:2]}
        self.shutdown_timeout = {reason: metrics.shutdown_timeout.labels(name, reason) for reason in STOP_REASONS[:2]}
        self.action = ActionMeter(metrics, name, "action")
        self.scheduled_action = ActionMeter(metrics, name, "scheduled_action")
        self.connections_total = metrics.connections_total.labels(name)
        self.queue_sent = metrics.queue_sent.labels(name)
        self.queue_received = metrics.queue_received.labels(name)
        self.state_saves = metrics.state_saves.labels(name)
        self.state_save_bytes = metrics.state_save_bytes.labels(name)
        self._startup: dict[tuple[str, bool | None, str], Any] = {}
        self._wake: dict[bool, Any] = {}

    def startup_phase(self, phase: str, seconds: float, is_new: bool | None, outcome: str = "ok") -> None:
        """``rivetkit_actor_startup_phase_duration_seconds``; ``is_new`` None when the failure came before it was
        known."""
        child = self._startup.get((phase, is_new, outcome))
        if child is None:
            label = "unknown" if is_new is None else str(is_new).lower()
            child = self._startup[(phase, is_new, outcome)] = self._metrics.startup_phase.labels(
                self.name, phase, label, outcome
            )
        child.observe(seconds)

    def wake(self, seconds: float, is_new: bool) -> None:
        """``rivetkit_actor_wake_duration_seconds``: from the first request for a stopped actor to its readiness."""
        child = self._wake.get(is_new)
        if child is None:
            child = self._wake[is_new] = self._metrics.wake_duration.labels(self.name, str(is_new).lower())
        child.observe(seconds)

    def state_saved(self, size: int) -> None:
        self.state_saves.inc()
        self.state_save_bytes.inc(size)


class RuntimeMetrics:
    """The metrics of one registry: definitions, a per-actor-name cache of bound series, and the scrape endpoint."""

    def __init__(self, token: str | None = None, *, enabled: bool | None = None) -> None:
        self.token = token or os.environ.get(TOKEN_ENV) or None
        if enabled is None:
            enabled = os.environ.get(ENABLED_ENV, "").strip().lower() not in _OFF_VALUES
        self.enabled = enabled
        self.registry = CollectorRegistry()
        self._by_name: dict[str, ActorMetrics] = {}
        series = _Series()
        name = ["actor_name"]
        self.started = series.counter("rivetkit_actor_started", "Actor generations started.", name)
        self.stopped = series.counter(
            "rivetkit_actor_stopped", "Actor generations stopped, by reason (sleep, destroy, crash).",
            [*name, "reason"],
        )
        self.startup_phase = series.histogram(
            "rivetkit_actor_startup_phase_duration_seconds",
            "Actor startup phases (load_persisted, runtime_preamble, total), measured inside the actor task.",
            [*name, "phase", "is_new", "outcome"],
        )
        self.wake_duration = series.histogram(
            "rivetkit_actor_wake_duration_seconds",
            "From the first request for an actor without a live generation to that generation being ready.",
            [*name, "is_new"],
        )
        self.shutdown_wait = series.histogram(
            "rivetkit_actor_shutdown_wait_seconds",
            "From the engine's stop command (sleep or destroy grace begins) to the generation being stopped.",
            [*name, "reason"],
        )
        self.shutdown_timeout = series.counter(
            "rivetkit_actor_shutdown_timeout", "Stops that reached the grace deadline and aborted work.",
            [*name, "reason"],
        )
        self.action_total = series.counter(
            "rivetkit_actor_action", "Action runs by kind (action, scheduled_action) and outcome (ok, error).",
            [*name, "kind", "outcome"],
        )
        self.user_task_duration = series.histogram(
            "rivetkit_actor_user_task_duration_seconds",
            "Duration of user code runs by kind (action, scheduled_action).",
            [*name, "kind"],
        )
        self.connections_total = series.counter(
            "rivetkit_actor_connections", "Connections opened (including the transient one of each HTTP action).",
            name,
        )
        self.queue_sent = series.counter("rivetkit_actor_queue_messages_sent", "Queue messages stored.", name)
        self.queue_received = series.counter(
            "rivetkit_actor_queue_messages_received", "Queue messages handed to a receiver.", name
        )
        self.state_saves = series.counter("rivetkit_actor_state_saves", "State snapshots written.", name)
        self.state_save_bytes = series.counter(
            "rivetkit_actor_state_save_bytes", "Bytes of state snapshots written (CBOR).", name
        )
        self.registry.register(series)
        from rivetgreen import __version__  # set after the package's imports, which reach this module

        Info("rivetkit", "The runtime serving these metrics.", registry=self.registry).info(
            {"runtime": "rivetkit", "version": __version__, "type": "local"}
        )

    # actors ----------------------------------------------------------------------------------------------------
    def for_actor(self, name: str) -> ActorMetrics:
        """The bound series of actor name ``name`` (created once)."""
        actor_metrics = self._by_name.get(name)
        if actor_metrics is None:
            actor_metrics = self._by_name[name] = ActorMetrics(self, name)
        return actor_metrics

    def watch(
        self,
        names: Callable[[], Iterable[str]],
        live_tasks: Callable[[], Iterable[ActorTask]],
        stored_counts: Callable[[], dict[str, int]] | None = None,
    ) -> None:
        """Report the scrape-time gauges of the actors these callables describe (the engine calls this once)."""
        self.registry.register(_LiveActors(names, live_tasks, stored_counts))

    # the endpoint --------------------------------------------------------------------------------------------
    def render(self) -> bytes:
        """The Prometheus text exposition of every series."""
        return generate_latest(self.registry)

    def access_error(self, authorization: str | None) -> tuple[int, RivetError] | None:
        """Why a scrape with this ``Authorization`` header value is refused (status and error), or None."""
        if not self.enabled:
            return 403, RivetError("metrics", "disabled", f"Metrics are disabled ({ENABLED_ENV}).", public=True)
        if self.token is not None and not tokens_match(bearer_token(authorization), self.token):
            return 401, RivetError(
                "metrics", "unauthorized", "Metrics require a valid bearer token.", public=True, status=401
            )
        return None

    def http_response(self, authorization: str | None) -> Response:
        """The answer to ``GET /metrics``: the text, or a JSON error."""
        refused = self.access_error(authorization)
        if refused is not None:
            status, error = refused
            return Response(json.dumps(error.to_client()), status, {"content-type": "application/json"})
        return Response(self.render(), headers={"content-type": CONTENT_TYPE_LATEST})


class _CounterChild:
    """One counter series: a plain number (updates happen on the hub's greenlets, one at a time)."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def inc(self, amount: float = 1) -> None:
        self.value += amount


class _HistogramChild:
    """One histogram series: per-bucket counts (not cumulative; the last is +Inf) and the sum."""

    __slots__ = ("counts", "total")

    def __init__(self) -> None:
        self.counts = [0] * (len(DURATION_BUCKETS) + 1)
        self.total = 0.0

    def observe(self, amount: float) -> None:
        self.counts[bisect_left(DURATION_BUCKETS, amount)] += 1  # first bucket whose bound is >= amount
        self.total += amount


class _Family:
    """A named metric with labelled children; ``labels(...)`` binds one (call it once and keep the child)."""

    def __init__(self, name: str, documentation: str, labelnames: list[str], child: type) -> None:
        self.name = name
        self.documentation = documentation
        self.labelnames = labelnames
        self.child_type = child
        self.children: dict[tuple[str, ...], Any] = {}

    def labels(self, *values: str) -> Any:
        child = self.children.get(values)
        if child is None:
            child = self.children[values] = self.child_type()
        return child


class _Series(Collector):
    """The counters and histograms of a registry, kept as plain numbers and rendered by ``prometheus_client``
    when scraped. ``prometheus_client``'s own Counter and Histogram take a lock and validate on every update (about
    4 us per action call in all); these cost a few attribute updates."""

    def __init__(self) -> None:
        self._families: list[_Family] = []

    def counter(self, name: str, documentation: str, labelnames: list[str]) -> _Family:
        family = _Family(name, documentation, labelnames, _CounterChild)
        self._families.append(family)
        return family

    def histogram(self, name: str, documentation: str, labelnames: list[str]) -> _Family:
        family = _Family(name, documentation, labelnames, _HistogramChild)
        self._families.append(family)
        return family

    def collect(self) -> Iterator[CounterMetricFamily | HistogramMetricFamily]:
        bounds = [floatToGoString(bound) for bound in DURATION_BUCKETS] + ["+Inf"]
        for family in self._families:
            if family.child_type is _CounterChild:
                counter = CounterMetricFamily(family.name, family.documentation, labels=family.labelnames)
                for values, child in list(family.children.items()):
                    counter.add_metric(list(values), child.value)
                yield counter
                continue
            histogram = HistogramMetricFamily(family.name, family.documentation, labels=family.labelnames)
            for values, child in list(family.children.items()):
                cumulative = list(itertools.accumulate(child.counts))
                histogram.add_metric(list(values), list(zip(bounds, cumulative, strict=True)), child.total)
            yield histogram


class _LiveActors(Collector):
    """Gauges computed from the live generations at scrape time."""

    def __init__(
        self,
        names: Callable[[], Iterable[str]],
        live_tasks: Callable[[], Iterable[ActorTask]],
        stored_counts: Callable[[], dict[str, int]] | None,
    ) -> None:
        self._names = names
        self._live_tasks = live_tasks
        self._stored_counts = stored_counts

    def collect(self) -> Iterator[GaugeMetricFamily]:
        names = list(self._names())
        active = dict.fromkeys(names, 0)
        conns = dict.fromkeys(names, 0)
        queue = dict.fromkeys(names, 0)
        states = {(name, state): 0 for name in names for state in LIFECYCLE_STATES}
        inbox = {(name, box): 0 for name in names for box in INBOXES}
        work: dict[tuple[str, str], int] = {}
        for task in self._live_tasks():
            name = task.name
            lifecycle = task.lifecycle.value
            if lifecycle == "terminated":
                continue
            active[name] = active.get(name, 0) + 1
            states[(name, lifecycle)] = states.get((name, lifecycle), 0) + 1
            conns[name] = conns.get(name, 0) + len(task.conns.conns)
            queue[name] = queue.get(name, 0) + task.queue.known_depth()
            for box, depth in zip(INBOXES, task.inbox_depths(), strict=True):
                inbox[(name, box)] = inbox.get((name, box), 0) + depth
            for kind, count in task.work.counts.items():
                key = (name, kind.name.lower())
                work[key] = work.get(key, 0) + count
        if self._stored_counts is not None:
            for name, stored in self._stored_counts().items():
                states[(name, "sleeping")] = max(0, stored - active.get(name, 0))

        yield _family("rivetkit_actor_active_count", "Live actor generations.", active)
        yield _family(
            "rivetkit_actor_lifecycle_count",
            "Actors by lifecycle state; sleeping = stored actors without a live generation.", states, "state",
        )
        yield _family("rivetkit_actor_connections_active", "Open connections of live actors.", conns)
        yield _family("rivetkit_actor_queue_depth", "Stored queue messages of live actors.", queue)
        yield _family("rivetkit_actor_inbox_depth", "Items waiting in the actor task inboxes.", inbox, "inbox")
        yield _family("rivetkit_actor_user_tasks_active", "Live tracked work by kind.", work, "kind")


def _family(name: str, documentation: str, values: dict[Any, int], extra: str | None = None) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, documentation, labels=["actor_name"] if extra is None else ["actor_name", extra])
    for labels, value in values.items():
        family.add_metric(list(labels) if extra is not None else [labels], value)
    return family


_standalone: RuntimeMetrics | None = None


def standalone(name: str) -> ActorMetrics:
    """Series for a task built without a registry (tests drive bare tasks); shared, never served."""
    global _standalone
    if _standalone is None:
        _standalone = RuntimeMetrics(enabled=False)
    return _standalone.for_actor(name)
