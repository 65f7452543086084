"""Hook and action timeouts, failed starts, and replies that are never sent (core.md §1.4, §4, §0.2)."""

from __future__ import annotations

import gevent
import gevent.event
import pytest

from rivetgreen import actor, clock
from rivetgreen.actor.lifecycle import Dispatch, Start
from rivetgreen.actor.work import WorkKind
from rivetgreen.errors import RivetError


def raises_code(code, function, *args):
    with pytest.raises(RivetError) as caught:
        function(*args)
    assert caught.value.code == code, caught.value
    return caught.value


def test_action_timeout_gives_action_timed_out_and_stops_the_action(virtual_clock, make_registry):
    definition = actor("slow", state={"finished": 0}, options={"action_timeout": 2.0})

    @definition.action
    def slow(c):
        clock.sleep(5)
        c.state["finished"] += 1

    @definition.action
    def finished(c):
        return c.state["finished"]

    registry = make_registry(definition)
    handle = registry.get_or_create("slow", ["a"])
    handle.finished()
    call = gevent.spawn(raises_code, "action_timed_out", handle.slow)
    virtual_clock.advance(1.9)
    assert not call.ready()
    virtual_clock.advance(0.1)
    error = call.get()
    assert error.actor["actorId"] == handle.resolve()
    virtual_clock.advance(10)
    assert handle.finished() == 0  # the timed-out action was stopped, not left running


@pytest.mark.parametrize(
    ("hook", "option"),
    [
        ("on_migrate", "on_migrate_timeout"),
        ("create_state", "create_state_timeout"),
        ("on_create", "on_create_timeout"),
        ("create_vars", "create_vars_timeout"),
        ("on_wake", "on_wake_timeout"),
    ],
)
def test_startup_hook_timeout_fails_the_start_with_callback_timed_out(virtual_clock, make_registry, hook, option):
    definition = actor("hooked", options={option: 3.0})
    definition._set_hook(hook, lambda c, *args: clock.sleep(10))

    @definition.action
    def ping(c):
        return "pong"

    registry = make_registry(definition)
    handle = registry.get_or_create("hooked", ["a"])
    call = gevent.spawn(raises_code, "callback_timed_out", handle.ping)
    virtual_clock.advance(2.9)
    assert not call.ready()
    virtual_clock.advance(0.1)
    assert call.get().metadata == {"hook": hook}
    assert handle.resolve() not in registry.engine.instances


def test_failed_first_start_runs_create_state_again_next_time(virtual_clock, make_registry):
    definition = actor("flaky")
    attempts = []

    @definition.create_state
    def create_state(c, input):
        attempts.append(input)
        return {"input": input}

    @definition.on_wake
    def on_wake(c):
        if len(attempts) == 1:
            raise RuntimeError("first wake fails")

    @definition.action
    def state(c):
        return c.state

    registry = make_registry(definition)
    handle = registry.get_or_create("flaky", ["a"], input={"seed": 7})
    error = raises_code("internal_error", handle.state)
    assert error.group == "core"
    assert handle.state() == {"input": {"seed": 7}}
    assert attempts == [{"seed": 7}, {"seed": 7}]


def test_connect_hook_timeouts_reject_the_call(virtual_clock, make_registry):
    definition = actor("guarded", options={"on_before_connect_timeout": 1.0})

    @definition.on_before_connect
    def check(c, params):
        if params == "slow":
            clock.sleep(5)
        if params == "bad":
            raise RivetError("auth", "forbidden", "go away")

    @definition.action
    def ping(c):
        return "pong"

    registry = make_registry(definition)
    handle = registry.get_or_create("guarded", ["a"])
    assert handle.action("ping", params="ok") == "pong"
    raises_code("forbidden", lambda: handle.action("ping", params="bad"))
    call = gevent.spawn(raises_code, "callback_timed_out", lambda: handle.action("ping", params="slow"))
    virtual_clock.advance(1)
    assert call.get().metadata == {"hook": "on_before_connect"}


def test_a_reply_that_is_never_sent_becomes_dropped_reply(make_task, virtual_clock):
    task = make_task(actor("silent"))
    task.send_command(Start()).get()
    item = Dispatch(WorkKind.ACTION, lambda task: None)  # returns without answering
    task.dispatch(item)
    raises_code("dropped_reply", item.reply.get)


def test_queued_work_is_dropped_with_dropped_reply_when_the_task_ends(make_task, virtual_clock):
    task = make_task(actor("ending"))
    item = Dispatch(WorkKind.ACTION, lambda task: item.reply.send("never"))
    task.dispatch(item)  # queued while Loading: not polled until Started
    task.greenlet.kill()
    raises_code("dropped_reply", item.reply.get)
