"""Failures of user code are visible on the server: each exception is logged once, with its traceback and the
actor's name, key and id, whatever the client is told. A public error (``UserError``) is one INFO line."""

from __future__ import annotations

import logging

import gevent
import gevent.event
import pytest

from rivetgreen import UserError, actor
from rivetgreen.client import Client
from rivetgreen.errors import RivetError
from rivetgreen.registry import Registry

WAIT = 10.0


def failures(caplog, what):
    """Log records (from rivetgreen) that report ``what`` failing."""
    return [r for r in caplog.records if r.name.startswith("rivetgreen") and f"{what} failed" in r.getMessage()]


def assert_logged_once_with_traceback(caplog, what, actor_id, error_type):
    records = failures(caplog, what)
    assert len(records) == 1, [r.getMessage() for r in caplog.records]
    record = records[0]
    assert record.levelno == logging.ERROR
    assert record.exc_info is not None and record.exc_info[0] is error_type
    message = record.getMessage()
    assert "failing" in message and "['k']" in message and actor_id in message  # name, key, id


def make_failing():
    definition = actor("failing", state={"n": 0}, options={"sleep_grace_period": 5.0})

    @definition.action
    def add(c, a, b):
        return a + b

    @definition.action
    def refuse(c):
        raise UserError("not today", code="not_today")

    return definition


def test_a_bug_in_an_action_is_logged_once_with_its_traceback(virtual_clock, make_registry, caplog):
    caplog.set_level(logging.DEBUG)
    registry = make_registry(make_failing())
    handle = registry.get_or_create("failing", ["k"])
    with pytest.raises(RivetError) as caught:
        handle.add(1, "one")  # 1 + "one": a TypeError inside the action's body
    assert (caught.value.group, caught.value.code) == ("core", "internal_error")
    assert_logged_once_with_traceback(caplog, "action 'add'", handle.resolve(), TypeError)


def test_an_action_called_with_the_wrong_arguments_is_the_clients_error_and_one_info_line(
    virtual_clock, make_registry, caplog
):
    caplog.set_level(logging.DEBUG)
    registry = make_registry(make_failing())
    handle = registry.get_or_create("failing", ["k"])
    with pytest.raises(RivetError) as caught:
        handle.add(1)  # add(c, a, b) cannot take one argument: refused before it runs (rivetgreen.actor.actions)
    assert (caught.value.group, caught.value.code) == ("actor", "invalid_request")
    records = [r for r in caplog.records if "action 'add'" in r.getMessage()]
    assert len(records) == 1, [r.getMessage() for r in caplog.records]
    assert records[0].levelno == logging.INFO and records[0].exc_info is None
    assert "actor/invalid_request" in records[0].getMessage() and handle.resolve() in records[0].getMessage()


def test_a_user_error_is_one_info_line_without_traceback(virtual_clock, make_registry, caplog):
    caplog.set_level(logging.DEBUG)
    registry = make_registry(make_failing())
    handle = registry.get_or_create("failing", ["k"])
    with pytest.raises(RivetError) as caught:
        handle.refuse()
    assert (caught.value.group, caught.value.code) == ("user", "not_today")
    records = [r for r in caplog.records if "action 'refuse'" in r.getMessage()]
    assert len(records) == 1
    assert records[0].levelno == logging.INFO and records[0].exc_info is None
    assert "user/not_today: not today" in records[0].getMessage() and handle.resolve() in records[0].getMessage()


@pytest.mark.parametrize("hook", ["on_sleep", "on_disconnect", "on_state_change"])
def test_hooks_that_raise_are_logged_once(hook, virtual_clock, make_registry, caplog):
    definition = make_failing()

    @definition.action
    def touch(c):
        c.state["n"] += 1

    def broken(c, *args):
        raise ZeroDivisionError(hook)

    getattr(definition, hook)(broken)
    registry = make_registry(definition)
    handle = registry.get_or_create("failing", ["k"])
    actor_id = handle.resolve()
    handle.touch()  # a transient connection (on_disconnect) and a state change (on_state_change)
    virtual_clock.settle()
    registry.sleep(actor_id)  # on_sleep
    assert_logged_once_with_traceback(caplog, hook, actor_id, ZeroDivisionError)


def test_a_failing_start_hook_is_logged_once(virtual_clock, make_registry, caplog):
    definition = make_failing()

    @definition.on_wake
    def on_wake(c):
        raise KeyError("missing")

    registry = make_registry(definition)
    handle = registry.get_or_create("failing", ["k"])
    with pytest.raises(RivetError):
        handle.add(1, 2)
    assert_logged_once_with_traceback(caplog, "start", handle.resolve(), KeyError)


def test_a_run_handler_that_raises_is_logged_once_and_the_actor_lives_on(virtual_clock, make_registry, caplog):
    definition = make_failing()

    @definition.run
    def run(c):
        raise ValueError("run broke")

    registry = make_registry(definition)
    handle = registry.get_or_create("failing", ["k"])
    assert handle.add(1, 2) == 3
    virtual_clock.settle()
    assert_logged_once_with_traceback(caplog, "run handler", handle.resolve(), ValueError)
    assert handle.add(2, 2) == 4


def test_a_scheduled_action_that_raises_is_logged_once(virtual_clock, make_registry, caplog):
    definition = make_failing()

    @definition.action
    def plan(c):
        c.schedule.after(1, "add", 1, "one")  # 1 + "one" raises inside the action

    registry = make_registry(definition)
    handle = registry.get_or_create("failing", ["k"])
    handle.plan()
    virtual_clock.advance(1)
    assert_logged_once_with_traceback(caplog, "scheduled action 'add'", handle.resolve(), TypeError)


@pytest.mark.parametrize("api", ["keep_awake", "wait_until"])
def test_background_work_that_raises_is_logged_once(api, virtual_clock, make_registry, caplog):
    definition = make_failing()

    def chore():
        raise RuntimeError("chore broke")

    @definition.action
    def start(c):
        getattr(c, api)(chore)

    registry = make_registry(definition)
    handle = registry.get_or_create("failing", ["k"])
    handle.start()
    virtual_clock.settle()
    assert_logged_once_with_traceback(caplog, f"{api} work 'chore'", handle.resolve(), RuntimeError)


# on_request and on_websocket, through the Flask host ------------------------------------------------------------------
raw = actor("failing")


@raw.on_request
def on_request(c, request):
    return {"answer": 1 / 0}


@raw.on_websocket
def on_websocket(c, ws, request):
    raise LookupError("no socket for you")


@pytest.fixture
def registry(tmp_path):
    registry = Registry([raw], str(tmp_path / "data"))
    yield registry
    registry.shutdown()


def test_on_request_and_on_websocket_failures_are_logged_once(registry, port, caplog):
    with Client(f"http://127.0.0.1:{port}", timeout=WAIT) as client:
        handle = client.get_or_create("failing", ["k"])
        response = handle.fetch("/boom")
        assert response.status == 500
        actor_id = handle.resolve()
        assert_logged_once_with_traceback(caplog, "on_request", actor_id, ZeroDivisionError)

        socket = handle.websocket("/x")
        assert socket.receive(timeout=WAIT) is None  # closed by the host after the handler raised
        assert_logged_once_with_traceback(caplog, "on_websocket", actor_id, LookupError)


def test_an_action_that_times_out_is_logged_as_a_warning(virtual_clock, make_registry, caplog):
    definition = actor("failing", options={"action_timeout": 2.0})
    never = gevent.event.Event()

    @definition.action
    def stall(c):
        never.wait()

    registry = make_registry(definition)
    handle = registry.get_or_create("failing", ["k"])
    call = gevent.spawn(handle.stall)
    virtual_clock.advance(2)
    with pytest.raises(RivetError):
        call.get(timeout=0)
    assert any(
        r.levelno == logging.WARNING and "action 'stall'" in r.getMessage() and "timed out" in r.getMessage()
        for r in caplog.records
    )
