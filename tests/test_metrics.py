"""Prometheus metrics (core.md §7.6): ``GET /metrics`` and the per-actor ``/gateway/{id}/metrics``.

Counters and histograms are checked after real work (actions, starts, sleeps, destroys, connections, queue
traffic, stuck shutdowns); every series is labelled by actor name only, never by actor id or key. Time is the
virtual clock, so durations measured with it are exact.
"""

from __future__ import annotations

import gevent
import gevent.event
import pytest
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from rivetgreen import Registry, UserError, actor

NAME = "meter"
SECRET_KEY = "key-that-must-not-leak"


@pytest.fixture(autouse=True)
def _no_metrics_environment(monkeypatch):
    """The tests set what they need; a token or switch in the developer's environment must not leak in."""
    monkeypatch.delenv("RIVETKIT_METRICS_TOKEN", raising=False)
    monkeypatch.delenv("RIVETKIT_METRICS_ENABLED", raising=False)


def make_meter(options=None):
    definition = actor(NAME, state={"count": 0}, vars={}, options=options or {})

    @definition.action
    def increment(c, amount=1):
        c.state["count"] += amount
        c.save_state(immediate=True)
        return c.state["count"]

    @definition.action
    def fail(c):
        raise UserError("no")

    @definition.action
    def push(c, body):
        return c.queue.send("jobs", body).id

    @definition.action
    def take(c):
        message = c.queue.next(timeout=0)
        return None if message is None else message.body

    @definition.action
    def take_completable(c):
        message = c.queue.next(timeout=0, completable=True)
        c.vars["held"] = message
        return message.body

    @definition.action
    def complete(c):
        c.vars["held"].complete("done")

    @definition.action
    def later(c, seconds):
        c.schedule.after(seconds, "increment", 10)

    return definition


def scrape(client, path="/metrics", token=None):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = client.get(path, headers=headers)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.headers["Content-Type"].startswith("text/plain")
    return response.get_data(as_text=True)


def samples(text):
    """{(sample name, sorted label items): value} of a text exposition."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def value(found, name, **labels):
    return found.get((name, tuple(sorted({"actor_name": NAME, **labels}.items()))), 0.0)


def total(found, name, **labels):
    """Sum over every sample of ``name`` whose labels include ``labels`` (e.g. a histogram count over is_new)."""
    wanted = set(labels.items())
    return sum(v for (sample, items), v in found.items() if sample == name and wanted <= set(items))


def test_counters_after_actions_starts_sleep_and_destroy(virtual_clock, make_registry):
    registry = make_registry(make_meter())
    client = registry.flask_app().test_client()
    first = registry.get_or_create(NAME, [SECRET_KEY, "a"])
    second = registry.get_or_create(NAME, [SECRET_KEY, "b"])
    for _ in range(3):
        first.increment()
    second.increment(5)
    second.increment(5)
    with pytest.raises(UserError):
        first.fail()
    first_id, second_id = first.resolve(), second.resolve()

    registry.sleep(first_id)
    assert first.increment() == 4  # wakes it: a third start, not new
    registry.destroy(second_id)

    text = scrape(client)
    found = samples(text)
    assert first_id not in text and second_id not in text and SECRET_KEY not in text
    assert value(found, "rivetkit_actor_started_total") == 3
    assert value(found, "rivetkit_actor_stopped_total", reason="sleep") == 1
    assert value(found, "rivetkit_actor_stopped_total", reason="destroy") == 1
    assert value(found, "rivetkit_actor_stopped_total", reason="crash") == 0
    assert value(found, "rivetkit_actor_action_total", kind="action", outcome="ok") == 6
    assert value(found, "rivetkit_actor_action_total", kind="action", outcome="error") == 1
    assert value(found, "rivetkit_actor_user_task_duration_seconds_count", kind="action") == 7
    assert value(found, "rivetkit_actor_active_count") == 1
    assert value(found, "rivetkit_actor_lifecycle_count", state="started") == 1
    assert value(found, "rivetkit_actor_lifecycle_count", state="sleeping") == 0

    # Startup and wake latency: two new actors and one wake of a stored one.
    startup = "rivetkit_actor_startup_phase_duration_seconds_count"
    assert value(found, startup, phase="total", is_new="true", outcome="ok") == 2
    assert value(found, startup, phase="total", is_new="false", outcome="ok") == 1
    assert total(found, startup, phase="load_persisted") == 3
    assert total(found, startup, phase="runtime_preamble") == 3
    assert total(found, "rivetkit_actor_wake_duration_seconds_count") == 3
    assert value(found, "rivetkit_actor_wake_duration_seconds_count", is_new="false") == 1

    # Saves: the initial state of each new actor, one immediate save per increment, and the final save on stop
    # only if something was still unsaved (nothing was).
    saves = value(found, "rivetkit_actor_state_saves_total")
    assert saves >= 2 + 6
    assert value(found, "rivetkit_actor_state_save_bytes_total") >= saves * len(b"\xa1ecount\x00")

    # Stops measured on the virtual clock: both finished without waiting.
    assert value(found, "rivetkit_actor_shutdown_wait_seconds_count", reason="sleep") == 1
    assert value(found, "rivetkit_actor_shutdown_wait_seconds_count", reason="destroy") == 1
    assert value(found, "rivetkit_actor_shutdown_timeout_total", reason="sleep") == 0

    # Every actor series is labelled by actor_name (and the listed extras) only.
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            assert not {"actor_id", "actor_key", "key", "id"} & set(sample.labels)
            if sample.name.startswith("rivetkit_actor_"):
                assert sample.labels["actor_name"] == NAME
    assert ("rivetkit_info", (("runtime", "rivetkit"), ("type", "local"), ("version", _version()))) in found

    registry.sleep(first_id)
    found = samples(scrape(client))
    assert value(found, "rivetkit_actor_active_count") == 0
    assert value(found, "rivetkit_actor_lifecycle_count", state="sleeping") == 1


def _version():
    from rivetgreen import __version__

    return __version__


def test_connections_gauge_follows_connect_and_close(virtual_clock, make_registry):
    registry = make_registry(make_meter())
    client = registry.flask_app().test_client()
    handle = registry.get_or_create(NAME, ["a"])
    handle.increment()  # one transient connection
    found = samples(scrape(client))
    assert value(found, "rivetkit_actor_connections_active") == 0
    assert value(found, "rivetkit_actor_connections_total") == 1

    first, second = handle.connect(), handle.connect()
    found = samples(scrape(client))
    assert value(found, "rivetkit_actor_connections_active") == 2
    assert value(found, "rivetkit_actor_connections_total") == 3

    first.close()
    assert value(samples(scrape(client)), "rivetkit_actor_connections_active") == 1
    second.close()
    assert value(samples(scrape(client)), "rivetkit_actor_connections_active") == 0


def test_queue_depth_and_traffic(virtual_clock, make_registry):
    registry = make_registry(make_meter())
    client = registry.flask_app().test_client()
    handle = registry.get_or_create(NAME, ["a"])
    for body in ("one", "two", "three", "four"):
        handle.push(body)
    assert handle.take() == "one"
    found = samples(scrape(client))
    assert value(found, "rivetkit_actor_queue_depth") == 3
    assert value(found, "rivetkit_actor_queue_messages_sent_total") == 4
    assert value(found, "rivetkit_actor_queue_messages_received_total") == 1

    # A completable message stays stored (and counted) until it is completed.
    assert handle.take_completable() == "two"
    assert value(samples(scrape(client)), "rivetkit_actor_queue_depth") == 3
    handle.complete()
    found = samples(scrape(client))
    assert value(found, "rivetkit_actor_queue_depth") == 2
    assert value(found, "rivetkit_actor_queue_messages_received_total") == 2

    # Depth covers live actors; a woken actor's stored messages are counted when it is scraped (or uses its queue).
    actor_id = handle.resolve()
    registry.sleep(actor_id)
    assert value(samples(scrape(client)), "rivetkit_actor_queue_depth") == 0
    handle.increment()
    assert value(samples(scrape(client)), "rivetkit_actor_queue_depth") == 2
    virtual_clock.advance(11)  # the idle database is parked; the known depth needs no reopening
    store = registry.engine.instances[actor_id].task.store
    assert store.db.parked
    assert value(samples(scrape(client)), "rivetkit_actor_queue_depth") == 2
    assert store.db.parked

    # A scrape never reopens a parked database: a woken actor whose queue was not used yet and whose database is
    # parked reports no depth until it uses its queue.
    registry.sleep(actor_id)
    handle.increment()
    virtual_clock.advance(11)
    store = registry.engine.instances[actor_id].task.store
    assert value(samples(scrape(client)), "rivetkit_actor_queue_depth") == 0
    assert store.db.parked
    assert handle.take() == "three"
    assert value(samples(scrape(client)), "rivetkit_actor_queue_depth") == 1


def test_stuck_stop_counts_a_shutdown_timeout_and_the_wait_on_the_clock(virtual_clock, make_registry):
    definition = make_meter({"sleep_grace_period": 15.0, "action_timeout": 3600.0})
    never = gevent.event.Event()

    @definition.action
    def stall(c):
        never.wait()

    registry = make_registry(definition)
    client = registry.flask_app().test_client()
    handle = registry.get_or_create(NAME, ["a"])
    actor_id = handle.resolve()
    call = gevent.spawn(handle.stall)
    virtual_clock.settle()
    found = samples(scrape(client))
    assert value(found, "rivetkit_actor_user_tasks_active", kind="action") == 1
    assert value(found, "rivetkit_actor_inbox_depth", inbox="dispatch") == 0
    assert {labels for (name, labels) in found if name == "rivetkit_actor_inbox_depth"} == {
        (("actor_name", NAME), ("inbox", box)) for box in ("lifecycle", "events", "dispatch")
    }

    sleeper = gevent.spawn(registry.sleep, actor_id)
    virtual_clock.advance(1)
    assert value(samples(scrape(client)), "rivetkit_actor_lifecycle_count", state="sleep_grace") == 1
    virtual_clock.advance(15)
    sleeper.get(timeout=5)
    with pytest.raises(Exception):  # noqa: B017 - killed at the deadline; the exact error is not the point here
        call.get(timeout=5)

    found = samples(scrape(client))
    assert value(found, "rivetkit_actor_shutdown_timeout_total", reason="sleep") == 1
    assert value(found, "rivetkit_actor_shutdown_wait_seconds_count", reason="sleep") == 1
    assert value(found, "rivetkit_actor_shutdown_wait_seconds_sum", reason="sleep") == pytest.approx(15.0)
    assert value(found, "rivetkit_actor_action_total", kind="action", outcome="error") == 1
    assert value(found, "rivetkit_actor_stopped_total", reason="sleep") == 1


def test_scheduled_actions_are_their_own_kind(virtual_clock, make_registry):
    registry = make_registry(make_meter())
    client = registry.flask_app().test_client()
    handle = registry.get_or_create(NAME, ["a"])
    handle.later(5)
    virtual_clock.advance(6)
    assert handle.increment(0) == 10
    found = samples(scrape(client))
    assert value(found, "rivetkit_actor_action_total", kind="scheduled_action", outcome="ok") == 1
    assert value(found, "rivetkit_actor_user_task_duration_seconds_count", kind="scheduled_action") == 1
    assert value(found, "rivetkit_actor_action_total", kind="action", outcome="ok") == 2


def test_token_is_required_when_configured(virtual_clock, tmp_path):
    registry = Registry([make_meter()], str(tmp_path / "data"), metrics_token="s3cret")
    try:
        client = registry.flask_app().test_client()
        actor_id = registry.get_or_create(NAME, ["a"]).resolve()
        for path in ("/metrics", f"/gateway/{actor_id}/metrics"):
            for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic s3cret"}):
                response = client.get(path, headers=headers)
                assert response.status_code == 401, (path, headers)
                assert response.get_json()["group"] == "metrics"
                assert response.get_json()["code"] == "unauthorized"
            assert "rivetkit_actor_started_total" in scrape(client, path, token="s3cret")
    finally:
        registry.shutdown()


def test_token_from_the_environment_and_disabling(virtual_clock, make_registry, monkeypatch, tmp_path):
    monkeypatch.setenv("RIVETKIT_METRICS_TOKEN", "from-env")
    client = make_registry(make_meter()).flask_app().test_client()
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer from-env"}).status_code == 200

    monkeypatch.delenv("RIVETKIT_METRICS_TOKEN")
    monkeypatch.setenv("RIVETKIT_METRICS_ENABLED", "0")
    registry = make_registry(make_meter(), data_dir=str(tmp_path / "off"))
    response = registry.flask_app().test_client().get("/metrics")
    assert response.status_code == 403
    assert response.get_json()["code"] == "disabled"
    registry.get_or_create(NAME, ["a"]).increment()  # still collected, for registry.metrics users
    assert b"rivetkit_actor_started_total" in registry.metrics.render()


def test_open_without_a_token_and_the_per_actor_route(virtual_clock, make_registry):
    registry = make_registry(make_meter())
    client = registry.flask_app().test_client()
    handle = registry.get_or_create(NAME, ["a"])
    handle.increment()
    actor_id = handle.resolve()
    registry.sleep(actor_id)

    text = scrape(client, f"/gateway/{actor_id}/metrics")
    assert value(samples(text), "rivetkit_actor_started_total") == 1
    assert actor_id not in registry.engine.instances  # the route does not wake the actor
    assert client.post(f"/gateway/{actor_id}/metrics").status_code == 405
    assert client.get("/gateway/no-such-actor/metrics").status_code == 404


def test_two_registries_in_one_process_do_not_collide(virtual_clock, make_registry, tmp_path):
    first = make_registry(make_meter())
    second = make_registry(make_meter(), data_dir=str(tmp_path / "other"))
    assert first.metrics.registry is not second.metrics.registry
    assert first.metrics.registry is not REGISTRY
    for _ in range(3):
        first.get_or_create(NAME, ["a"]).increment()
    second.get_or_create(NAME, ["a"]).increment()

    found_first = samples(scrape(first.flask_app().test_client()))
    found_second = samples(scrape(second.flask_app().test_client()))
    assert value(found_first, "rivetkit_actor_action_total", kind="action", outcome="ok") == 3
    assert value(found_second, "rivetkit_actor_action_total", kind="action", outcome="ok") == 1
    assert value(found_first, "rivetkit_actor_started_total") == 1
    assert value(found_second, "rivetkit_actor_started_total") == 1
    assert not any(name.startswith("rivetkit_") for name in _global_names())


def _global_names():
    return {sample.name for family in REGISTRY.collect() for sample in family.samples}


def test_every_definition_has_zeroed_series_before_any_actor_runs(virtual_clock, make_registry):
    quiet = actor("quiet")
    found = samples(scrape(make_registry(make_meter(), quiet).flask_app().test_client()))
    for name in (NAME, "quiet"):
        assert found[("rivetkit_actor_started_total", (("actor_name", name),))] == 0
        assert found[("rivetkit_actor_active_count", (("actor_name", name),))] == 0


def test_histogram_buckets_are_inclusive_and_cumulative():
    from rivetgreen.metrics import DURATION_BUCKETS, RuntimeMetrics

    metrics = RuntimeMetrics(enabled=True)
    duration = metrics.for_actor(NAME).action.duration
    for seconds in (0.0, DURATION_BUCKETS[0], DURATION_BUCKETS[1], DURATION_BUCKETS[-1] + 1):
        duration.observe(seconds)
    found = samples(metrics.render().decode())

    def bucket(le):
        return value(found, "rivetkit_actor_user_task_duration_seconds_bucket", kind="action", le=le)

    assert bucket("0.0005") == 2  # 0 and exactly the first bound
    assert bucket("0.001") == 3
    assert bucket("300.0") == 3
    assert bucket("+Inf") == 4
    assert value(found, "rivetkit_actor_user_task_duration_seconds_count", kind="action") == 4
    assert value(found, "rivetkit_actor_user_task_duration_seconds_sum", kind="action") == pytest.approx(301.0015)
