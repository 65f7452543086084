"""Sleep and destroy sequences, grace and its deadline (core.md §1.6-1.8, §1.10)."""

from __future__ import annotations

import gevent
import gevent.event
import gevent.queue
import pytest

from rivetgreen import actor, clock
from rivetgreen.client import Client
from rivetgreen.errors import RivetError
from rivetgreen.server.serve import make_server
from tests.helpers import stored_state


def awake(registry, actor_id):
    return actor_id in registry.engine.instances




def test_sleep_grace_waits_for_in_flight_action_then_finalizes(virtual_clock, make_registry):
    definition = actor("worker", state={"done": 0}, options={"action_timeout": 600.0})
    order = []

    @definition.action
    def work(c):
        clock.sleep(10)
        c.state["done"] += 1
        order.append("action finished")
        return "ok"

    @definition.on_sleep
    def on_sleep(c):
        order.append("on_sleep")

    registry = make_registry(definition)
    handle = registry.get_or_create("worker", ["a"])
    actor_id = handle.resolve()
    call = gevent.spawn(handle.work)
    virtual_clock.settle()
    sleeper = gevent.spawn(registry.sleep, actor_id)
    virtual_clock.advance(5)
    assert awake(registry, actor_id)  # grace is waiting for the action
    virtual_clock.advance(5)
    assert call.get() == "ok"
    sleeper.get()
    assert order == ["on_sleep", "action finished"]
    assert not awake(registry, actor_id)
    assert stored_state(registry, actor_id) == {"done": 1}  # the final save has the action's change


def test_grace_deadline_aborts_stuck_work_and_the_actor_still_terminates(virtual_clock, make_registry):
    definition = actor(
        "stuck", state={"n": 0},
        options={"sleep_grace_period": 15.0, "action_timeout": 3600.0, "state_save_interval": 60.0},
    )
    never = gevent.event.Event()

    @definition.action
    def bump(c):
        c.state["n"] += 1
        c.save_state(immediate=True)

    @definition.action
    def hang(c):
        clock.sleep(1)
        c.state["n"] = 999  # not saved before the deadline (throttle: 60 s), so the deadline discards it
        never.wait()

    registry = make_registry(definition)
    handle = registry.get_or_create("stuck", ["a"])
    actor_id = handle.resolve()
    handle.bump()
    call = gevent.spawn(handle.hang)
    virtual_clock.settle()
    sleeper = gevent.spawn(registry.sleep, actor_id)
    virtual_clock.advance(14.9)
    assert awake(registry, actor_id)
    virtual_clock.advance(0.1)
    sleeper.get()
    assert not awake(registry, actor_id)
    with pytest.raises(RivetError) as caught:
        call.get()
    assert caught.value.code == "aborted"
    assert stored_state(registry, actor_id) == {"n": 1}


def test_on_sleep_sees_aborted_signal_and_its_changes_are_saved(virtual_clock, make_registry):
    definition = actor("saver", state={"slept": 0})
    seen = []

    @definition.on_sleep
    def on_sleep(c):
        seen.append(c.aborted)
        c.state["slept"] += 1

    @definition.action
    def ping(c):
        return "pong"

    registry = make_registry(definition)
    handle = registry.get_or_create("saver", ["a"])
    actor_id = handle.resolve()
    handle.ping()
    registry.sleep(actor_id)
    assert seen == [True]
    assert stored_state(registry, actor_id) == {"slept": 1}


def test_run_handler_sees_abort_and_sleep_grace_waits_for_it(virtual_clock, make_registry):
    definition = actor("runner", state={"ticks": 0})
    stopped = []

    @definition.run
    def loop(c):
        while not c.aborted:
            c.state["ticks"] += 1
            clock.wait_timeout(c.abort_event, 1)
        clock.sleep(2)  # cleanup after abort; grace waits for it
        stopped.append(clock.monotonic())

    @definition.action
    def ping(c):
        return "pong"

    registry = make_registry(definition)
    handle = registry.get_or_create("runner", ["a"])
    actor_id = handle.resolve()
    handle.ping()
    virtual_clock.advance(3.5)
    sleeper = gevent.spawn(registry.sleep, actor_id)
    virtual_clock.advance(1)
    assert awake(registry, actor_id)
    virtual_clock.advance(1)
    sleeper.get()
    assert len(stopped) == 1
    assert stored_state(registry, actor_id)["ticks"] == 4


def test_destroy_refuses_new_work_at_once_and_removes_the_actor(virtual_clock, make_registry):
    definition = actor("doomed", state={"n": 0})
    release = gevent.event.Event()
    destroyed = []

    @definition.action
    def destroy(c):
        c.destroy()
        with pytest.raises(RivetError) as again:
            c.destroy()
        destroyed.append(again.value.code)

    @definition.action
    def ping(c):
        return "pong"

    @definition.on_destroy
    def on_destroy(c):
        release.wait()
        destroyed.append("on_destroy")

    registry = make_registry(definition)
    handle = registry.get_or_create("doomed", ["a"])
    actor_id = handle.resolve()
    handle.destroy()
    assert destroyed == ["stopping"]
    with pytest.raises(RivetError) as refused:
        registry.get_for_id(actor_id).ping()
    assert refused.value.code == "destroying"
    release.set()
    virtual_clock.settle()
    assert destroyed == ["stopping", "on_destroy"]
    with pytest.raises(RivetError) as gone:
        registry.get_for_id(actor_id).ping()
    assert gone.value.code == "not_found"


def test_destroy_does_not_wait_for_the_run_handler(virtual_clock, make_registry):
    definition = actor("looping")
    forever = gevent.event.Event()

    @definition.run
    def loop(c):
        forever.wait()  # ignores the abort signal

    registry = make_registry(definition)
    actor_id = registry.get_or_create("looping", ["a"]).resolve()
    registry.destroy(actor_id)
    assert not awake(registry, actor_id)


def test_sleep_requested_during_startup_is_honoured_after_start(virtual_clock, make_registry):
    definition = actor("early")
    wakes = []

    @definition.on_wake
    def on_wake(c):
        wakes.append(c.generation)
        if c.generation == 1:
            c.sleep()  # the preamble runs after the Started transition (core.md §1.4 step 9): accepted

    @definition.action
    def ping(c):
        return c.generation

    registry = make_registry(definition)
    # The first generation goes to sleep right after starting; the call is served by the next one.
    assert registry.get_or_create("early", ["a"]).ping() == 2
    assert wakes == [1, 2]


def test_sleep_and_destroy_before_started_are_refused_with_starting(make_task, placement):
    definition = actor("plain")
    task = make_task(definition)
    for call in (task.ctx.sleep, task.ctx.destroy):
        with pytest.raises(RivetError) as caught:
            call()
        assert caught.value.code == "starting"
    assert placement.sleep_requests == [] and placement.destroy_requests == []


def test_stop_with_error_is_a_destroy_with_a_truncated_message(make_task, placement):
    from rivetgreen.actor.lifecycle import Start

    definition = actor("crashy")
    task = make_task(definition)
    task.send_command(Start()).get()
    task.ctx.stop_with_error("x" * 5000)
    [(requested_task, message)] = placement.destroy_requests
    assert requested_task is task
    assert message.endswith("... (truncated)") and len(message) == 2048 + len("... (truncated)")
    with pytest.raises(RivetError) as caught:
        task.ctx.destroy()
    assert caught.value.code == "stopping"


def test_on_disconnect_at_destroy_runs_before_the_socket_closes_so_a_farewell_arrives(make_registry):
    definition = actor("host", state={})
    seen_in_conns = []

    @definition.action
    def ping(c):
        return "pong"

    @definition.on_disconnect
    def farewell(c, conn):
        seen_in_conns.append(conn.id in c.conns)
        conn.send("bye", "see you")

    registry = make_registry(definition)
    server = make_server(registry.flask_app(), "127.0.0.1", 0)
    try:
        with Client(f"http://127.0.0.1:{server.server_port}", timeout=10) as client:
            handle = client.get_or_create("host", ["a"])
            connection = handle.connect()
            farewells = gevent.queue.Queue()
            connection.on("bye", farewells.put)
            assert connection.ping() == "pong"
            registry.destroy(handle.resolve())
            assert farewells.get(timeout=10) == "see you"
            assert seen_in_conns == [True]
            connection.close()
    finally:
        server.stop(timeout=5)
