"""The durable queue (core.md §3.6): FIFO, limits, completable messages, waits, and sleep interplay."""

from __future__ import annotations

import gevent
import pytest

from rivetgreen import actor
from rivetgreen.errors import ActorAborted, RivetError


def make_inbox(options=None):
    definition = actor("inbox", state={"seen": []}, options=options or {})

    @definition.action
    def push(c, name, body):
        return c.queue.send(name, body).id

    @definition.action
    def take(c, names=None, timeout=0):
        message = c.queue.next(names, timeout=timeout)
        return None if message is None else [message.id, message.name, message.body]

    @definition.action
    def take_batch(c, count):
        return [m.body for m in c.queue.next_batch(count=count, timeout=0)]

    @definition.action
    def take_completable(c):
        message = c.queue.next(timeout=0, completable=True)
        return None if message is None else message.body

    @definition.action
    def size(c):
        return c.queue.size()

    return definition


def code_of(function, *args):
    with pytest.raises(RivetError) as caught:
        function(*args)
    return f"{caught.value.group}/{caught.value.code}"


def test_fifo_with_name_filters_and_batches(virtual_clock, make_registry):
    registry = make_registry(make_inbox())
    handle = registry.get_or_create("inbox", ["a"])
    ids = [handle.push("jobs", 1), handle.push("mail", 2), handle.push("jobs", 3), handle.push("jobs", 4)]
    assert ids == [1, 2, 3, 4]
    assert handle.take("mail") == [2, "mail", 2]
    assert handle.take() == [1, "jobs", 1]
    assert handle.take_batch(5) == [3, 4]
    assert handle.take() is None
    assert handle.size() == 0


def test_limits_give_queue_full_and_message_too_large(virtual_clock, make_registry):
    registry = make_registry(make_inbox({"max_queue_size": 2, "max_queue_message_size": 100}))
    handle = registry.get_or_create("inbox", ["a"])
    handle.push("jobs", 1)
    handle.push("jobs", 2)
    assert code_of(handle.push, "jobs", 3) == "queue/full"
    handle.take()
    assert code_of(handle.push, "jobs", "x" * 200) == "queue/message_too_large"
    assert handle.size() == 1


def test_queue_survives_a_registry_restart(virtual_clock, make_registry, tmp_path):
    data_dir = str(tmp_path / "q")
    first = make_registry(make_inbox(), data_dir=data_dir)
    first.get_or_create("inbox", ["a"]).push("jobs", {"n": 1})
    first.get_or_create("inbox", ["a"]).push("jobs", {"n": 2})
    first.shutdown()
    second = make_registry(make_inbox(), data_dir=data_dir)
    handle = second.get_or_create("inbox", ["a"])
    assert handle.take() == [1, "jobs", {"n": 1}]
    assert handle.push("jobs", 3) == 3  # ids keep increasing after a restart


def test_completable_message_is_redelivered_after_sleep_until_completed(virtual_clock, make_registry):
    registry = make_registry(make_inbox())
    handle = registry.get_or_create("inbox", ["a"])
    handle.push("jobs", "important")
    assert handle.take_completable() == "important"
    assert handle.take_completable() is None  # handed out, not completed: nobody else gets it meanwhile
    registry.sleep(handle.resolve())
    assert handle.take_completable() == "important"  # the new generation gets it again


def test_complete_answers_enqueue_and_wait_and_twice_is_an_error(virtual_clock, make_registry):
    definition = make_inbox()
    outcomes = []

    @definition.action
    def ask(c, body):
        return c.queue.enqueue_and_wait("questions", body, timeout=10)

    @definition.action
    def answer(c):
        message = c.queue.next("questions", timeout=0, completable=True)
        message.complete({"answer": message.body * 2})
        try:
            message.complete("again")
        except RivetError as error:
            outcomes.append(error.code)

    registry = make_registry(definition)
    handle = registry.get_or_create("inbox", ["a"])
    asking = gevent.spawn(handle.ask, 21)
    virtual_clock.settle()
    handle.answer()
    assert asking.get() == {"answer": 42}
    assert outcomes == ["already_completed"]


def test_enqueue_and_wait_times_out_and_leaves_the_message(virtual_clock, make_registry):
    definition = make_inbox()

    @definition.action
    def ask(c):
        return c.queue.enqueue_and_wait("questions", "?", timeout=5)

    registry = make_registry(definition)
    handle = registry.get_or_create("inbox", ["a"])
    asking = gevent.spawn(code_of, handle.ask)
    virtual_clock.advance(4.9)
    assert not asking.ready()
    virtual_clock.advance(0.1)
    assert asking.get() == "queue/timed_out"
    assert handle.size() == 1


def test_next_waits_for_a_message_or_its_timeout(virtual_clock, make_registry):
    registry = make_registry(make_inbox())
    handle = registry.get_or_create("inbox", ["a"])
    waiting = gevent.spawn(handle.take, None, 30)
    virtual_clock.advance(10)
    assert not waiting.ready()
    handle.push("jobs", "late")
    virtual_clock.settle()
    assert waiting.get() == [1, "jobs", "late"]
    timing_out = gevent.spawn(handle.take, None, 3)
    virtual_clock.advance(3)
    assert timing_out.get() is None


def test_run_handler_waiting_on_the_queue_does_not_keep_the_actor_awake(virtual_clock, make_registry):
    definition = actor("consumer", state={"got": []})
    stops = []

    @definition.run
    def consume(c):
        for message in c.queue.iter("jobs"):
            c.state["got"].append(message.body)
        stops.append("iteration ended quietly")

    @definition.action
    def got(c):
        return c.state["got"]

    @definition.action
    def push(c, body):
        c.queue.send("jobs", body)

    registry = make_registry(definition)
    handle = registry.get_or_create("consumer", ["a"])
    handle.push(1)
    virtual_clock.settle()
    assert handle.got() == [1]
    virtual_clock.advance(30)
    assert handle.resolve() not in registry.engine.instances  # asleep although the run handler was "running"
    assert stops == ["iteration ended quietly"]  # the abort ended the receive loop


def test_an_http_queue_send_wakes_a_sleeping_actor_which_consumes_it(virtual_clock, make_registry):
    definition = actor("consumer", state={"got": []})

    @definition.run
    def consume(c):
        for message in c.queue.iter("jobs"):
            c.state["got"].append(message.body)

    @definition.action
    def got(c):
        return c.state["got"]

    registry = make_registry(definition)
    handle = registry.get_or_create("consumer", ["a"])
    actor_id = handle.resolve()
    handle.got()
    registry.sleep(actor_id)
    assert actor_id not in registry.engine.instances
    response = registry.flask_app().test_client().post(
        f"/gateway/{actor_id}/queue/jobs", json={"body": "hello", "name": "jobs", "wait": False},
        headers={"x-rivet-encoding": "json"},
    )
    assert response.status_code == 200 and response.get_json() == {"status": "completed"}
    virtual_clock.settle()
    assert handle.got() == ["hello"]


def test_waiting_receiver_ends_with_aborted_when_the_actor_stops(virtual_clock, make_registry):
    definition = make_inbox()
    errors_seen = []

    @definition.action
    def wait_forever(c):
        try:
            c.queue.next("never", timeout=None)
        except Exception:
            errors_seen.append("swallowed")  # the abort is a BaseException: `except Exception` does not catch it
        except ActorAborted:
            errors_seen.append("aborted")
            raise

    registry = make_registry(definition)
    handle = registry.get_or_create("inbox", ["a"])
    call = gevent.spawn(code_of, handle.wait_forever)
    virtual_clock.settle()
    stopping = gevent.spawn(registry.sleep, handle.resolve())
    virtual_clock.settle()
    assert errors_seen == ["aborted"]
    assert call.get() == "actor/aborted"
    stopping.get()
