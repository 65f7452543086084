"""Shutdown always finishes: at the grace deadline everything the actor runs is aborted, what ignores the abort is
abandoned after ``work.ABANDON_AFTER`` with a warning naming it, and the actor id works again (core.md §1.6-1.8)."""

from __future__ import annotations

import logging

import gevent
import gevent.event
import pytest

from rivetgreen import actor, clock
from rivetgreen.actor.task import ActorTask
from rivetgreen.actor.work import ABANDON_AFTER
from rivetgreen.engine.local import stop_bound
from rivetgreen.errors import RivetError

GRACE = 5.0
STEP = 0.05


def time_to_finish(virtual_clock, function, *args, limit=120.0):
    """Run ``function(*args)`` in a greenlet, moving the virtual clock in small steps until it returns; the
    virtual seconds it took."""
    started = clock.monotonic()
    greenlet = gevent.spawn(function, *args)
    virtual_clock.settle()
    while not greenlet.dead and clock.monotonic() - started < limit:
        virtual_clock.advance(STEP)
    assert greenlet.dead, f"{function.__name__} still running after {limit} virtual seconds"
    greenlet.get()
    return clock.monotonic() - started


def stubborn(release):
    """User code that catches the abort (``except BaseException``) and keeps going until ``release`` is set."""
    while not release.is_set():
        try:
            clock.sleep(1)
        except BaseException:  # noqa: B036 - the point of the test
            pass


def warnings_naming(caplog, text):
    return [r for r in caplog.records if r.levelno == logging.WARNING and text in r.getMessage()]


@pytest.fixture
def release(virtual_clock):
    event = gevent.event.Event()
    yield event
    event.set()  # let the abandoned code end
    virtual_clock.advance(1)


def make_actor(options=None):
    definition = actor("worker", state={"n": 0}, options={"sleep_grace_period": GRACE, **(options or {})})

    @definition.action
    def ping(c):
        return "pong"

    return definition


def test_a_run_handler_that_catches_the_abort_is_abandoned_and_sleep_still_finishes(
    virtual_clock, make_registry, release, caplog
):
    definition = make_actor()
    definition.run(lambda c: stubborn(release))
    registry = make_registry(definition)
    handle = registry.get_or_create("worker", ["a"])
    actor_id = handle.resolve()
    handle.ping()  # awake

    took = time_to_finish(virtual_clock, registry.sleep, actor_id)

    assert took == pytest.approx(GRACE + ABANDON_AFTER, abs=STEP + 1e-6)
    assert actor_id not in registry.engine.instances
    assert warnings_naming(caplog, "run handler ignored the abort")
    assert handle.ping() == "pong"  # the id works again: a new generation


def test_a_run_handler_that_swallows_queue_aborts_with_except_exception_ends_at_grace_start(
    virtual_clock, make_registry
):
    definition = make_actor()
    swallowed = []

    @definition.run
    def loop(c):
        while True:
            try:
                c.queue.next("jobs")
            except Exception as error:  # the abort is a BaseException: not caught here
                swallowed.append(error)

    registry = make_registry(definition)
    handle = registry.get_or_create("worker", ["a"])
    actor_id = handle.resolve()
    handle.ping()  # awake

    assert time_to_finish(virtual_clock, registry.sleep, actor_id) < STEP  # no deadline needed
    assert swallowed == []
    assert handle.ping() == "pong"


def test_an_action_that_catches_the_abort_gets_actor_aborted_and_destroy_finishes(
    virtual_clock, make_registry, release, caplog
):
    definition = make_actor({"action_timeout": 3600.0})

    @definition.action
    def hold(c):
        stubborn(release)

    registry = make_registry(definition)
    handle = registry.get_or_create("worker", ["a"])
    actor_id = handle.resolve()
    handle.ping()  # awake
    call = gevent.spawn(handle.hold)
    virtual_clock.settle()

    took = time_to_finish(virtual_clock, registry.destroy, actor_id)

    assert took == pytest.approx(GRACE + ABANDON_AFTER, abs=STEP + 1e-6)
    with pytest.raises(RivetError) as caught:
        call.get(timeout=0)
    assert caught.value.code == "aborted"
    assert warnings_naming(caplog, "action 'hold' ignored the abort")
    fresh = registry.get_or_create("worker", ["a"])  # the key is free again: a new actor
    assert fresh.resolve() != actor_id
    assert fresh.ping() == "pong"


def test_registry_shutdown_finishes_with_work_that_ignores_the_abort(virtual_clock, make_registry, release):
    definition = make_actor()

    @definition.action
    def start(c):
        c.keep_awake(stubborn, release)

    definition.run(lambda c: stubborn(release))
    registry = make_registry(definition)
    for key in ("a", "b"):
        registry.get_or_create("worker", [key]).start()

    took = time_to_finish(virtual_clock, registry.shutdown)

    assert took == pytest.approx(GRACE + ABANDON_AFTER, abs=STEP + 1e-6)
    assert registry.engine.instances == {}


def test_a_scheduled_action_running_at_the_deadline_is_aborted_with_the_rest(virtual_clock, make_registry):
    definition = make_actor()
    ended = []

    @definition.action
    def plan(c):
        c.schedule.after(1, "slow")

    @definition.action
    def slow(c):
        try:
            clock.sleep(100)  # longer than the grace and than its 60 s action timeout
        finally:
            ended.append(clock.monotonic())

    registry = make_registry(definition)
    handle = registry.get_or_create("worker", ["a"])
    actor_id = handle.resolve()
    handle.ping()  # awake
    handle.plan()
    virtual_clock.advance(1.5)  # the scheduled action is running

    took = time_to_finish(virtual_clock, registry.sleep, actor_id)

    assert took == pytest.approx(GRACE, abs=STEP + 1e-6)  # not the action's 60 s timeout
    virtual_clock.advance(100)
    assert ended == [pytest.approx(1.5 + GRACE)]  # stopped at the grace deadline, not left running
    assert handle.ping() == "pong"


def test_a_scheduled_action_that_catches_the_abort_is_abandoned_with_a_warning(
    virtual_clock, make_registry, release, caplog
):
    definition = make_actor()

    @definition.action
    def plan(c):
        c.schedule.after(1, "slow")

    @definition.action
    def slow(c):
        stubborn(release)

    registry = make_registry(definition)
    handle = registry.get_or_create("worker", ["a"])
    actor_id = handle.resolve()
    handle.ping()  # awake
    handle.plan()
    virtual_clock.advance(1.5)

    took = time_to_finish(virtual_clock, registry.sleep, actor_id)

    assert took == pytest.approx(GRACE + ABANDON_AFTER, abs=STEP + 1e-6)
    assert warnings_naming(caplog, "scheduled action 'slow' ignored the abort")
    assert handle.ping() == "pong"


@pytest.mark.parametrize("hook", ["on_sleep", "keep_awake", "wait_until"])
def test_hooks_and_background_work_that_catch_the_abort_are_abandoned(
    hook, virtual_clock, make_registry, release, caplog
):
    definition = make_actor()

    @definition.action
    def start(c):
        if hook == "keep_awake":
            c.keep_awake(stubborn, release)
        elif hook == "wait_until":
            c.wait_until(stubborn, release)

    if hook == "on_sleep":
        definition.on_sleep(lambda c: stubborn(release))
    registry = make_registry(definition)
    handle = registry.get_or_create("worker", ["a"])
    actor_id = handle.resolve()
    handle.ping()  # awake
    handle.start()

    took = time_to_finish(virtual_clock, registry.sleep, actor_id)

    assert took == pytest.approx(GRACE + ABANDON_AFTER, abs=STEP + 1e-6)
    assert warnings_naming(caplog, f"{hook}" if hook == "on_sleep" else f"{hook} work 'stubborn'")
    assert handle.ping() == "pong"


def test_a_cleanup_step_that_raises_still_answers_the_stop(virtual_clock, make_registry, caplog):
    definition = make_actor()
    registry = make_registry(definition)
    handle = registry.get_or_create("worker", ["a"])
    actor_id = handle.resolve()
    handle.ping()  # awake
    store = registry.engine.instances[actor_id].task.store
    real_close = store.close

    def broken_close():
        real_close()
        raise OSError("disk went away")

    store.close = broken_close

    assert time_to_finish(virtual_clock, registry.sleep, actor_id) < STEP
    assert any("could not close storage" in r.getMessage() for r in caplog.records if r.levelno == logging.ERROR)
    assert handle.ping() == "pong"


def test_the_engine_stops_waiting_on_an_actor_whose_stop_never_finishes(virtual_clock, make_registry, caplog):
    definition = make_actor()
    registry = make_registry(definition)
    handle = registry.get_or_create("worker", ["a"])
    actor_id = handle.resolve()
    handle.ping()  # awake
    task = registry.engine.instances[actor_id].task
    never = gevent.event.Event()
    task.store.close = lambda: never.wait()  # the last cleanup step hangs on the actor's own loop

    took = time_to_finish(virtual_clock, registry.sleep, actor_id)

    assert took == pytest.approx(stop_bound(task), abs=STEP + 1e-6)
    assert any("no answer to stop" in r.getMessage() for r in caplog.records)
    assert task.greenlet.dead  # killed, not left waiting
    assert handle.ping() == "pong"


def test_a_crash_of_the_actor_loop_releases_whoever_waits_on_it(virtual_clock, make_registry, monkeypatch):
    definition = make_actor()

    @definition.action
    def save(c):
        c.state["n"] += 1
        c.save_state(immediate=True)

    registry = make_registry(definition)
    handle = registry.get_or_create("worker", ["a"])
    handle.ping()

    def crash(task, event):
        raise RuntimeError("bug in the loop")

    monkeypatch.setattr(ActorTask, "_handle_event", crash)  # the loop crashes on the save request
    call = gevent.spawn(handle.save)
    virtual_clock.advance(ABANDON_AFTER)
    with pytest.raises(RivetError) as caught:
        call.get(timeout=0)  # answered, not left waiting for a save that will never come
    assert caught.value.code == "aborted"
    monkeypatch.undo()
    assert handle.ping() == "pong"  # a new generation
