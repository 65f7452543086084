"""Hibernatable connections (core.md §1.4 step 8, §1.6, §3.8): ``/connect`` connections survive the actor's sleep.

The host keeps the socket open while the actor sleeps; the next frame from the client wakes the actor, which
restores the connection (same id, params, state and subscriptions) without running ``on_connect`` again.
"""

from __future__ import annotations

import uuid

import gevent.queue
import pytest

import rivetgreen
from rivetgreen import actor
from rivetgreen.client import Client
from rivetgreen.server.serve import make_server

WAIT = 10.0
LOG: list[tuple] = []

room = actor("room", state={"count": 0})


@room.create_conn_state
def conn_state(c, params):
    return {"user": (params or {}).get("user"), "calls": 0}


@room.on_connect
def on_connect(c, conn):
    if conn.state["user"]:
        LOG.append(("connect", conn.state["user"]))


@room.on_disconnect
def on_disconnect(c, conn):
    if conn.state["user"]:
        LOG.append(("disconnect", conn.state["user"]))


@room.on_wake
def on_wake(c):
    LOG.append(("wake", sorted(conn.state["user"] for conn in c.conns.values() if conn.state["user"])))


@room.action
def bump(c):
    c.state["count"] += 1
    if c.conn is not None:
        c.conn.state["calls"] += 1
    c.broadcast("count", c.state["count"])
    return c.state["count"]


@room.action
def me(c):
    return {"id": c.conn.id, "state": c.conn.state, "params": c.conn.params}


@room.action
def nap(c):
    c.sleep()


@room.action
def users(c):
    return sorted(conn.state["user"] for conn in c.conns.values() if conn.state["user"])


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    registry = rivetgreen.setup(room, data_dir=str(tmp_path_factory.mktemp("hibernation")))
    server = make_server(registry.flask_app(), "127.0.0.1", 0)
    with Client(f"http://127.0.0.1:{server.server_port}", timeout=WAIT) as client:
        yield registry, client
    server.stop(timeout=5)
    registry.shutdown()


@pytest.fixture
def room_handle(live):
    LOG.clear()
    return live[1].room.get_or_create([uuid.uuid4().hex])


def asleep(registry, handle):
    return handle.resolve() not in registry.engine.instances


def test_a_hibernated_connection_receives_a_broadcast_after_wake(live, room_handle):
    registry, _ = live
    conn = room_handle.connect({"user": "ann"})
    events: gevent.queue.Queue = gevent.queue.Queue()
    conn.on("count", events.put)
    assert conn.bump() == 1
    assert events.get(timeout=WAIT) == 1
    registry.sleep(room_handle.resolve())
    assert asleep(registry, room_handle)
    assert room_handle.bump() == 2  # another client's call wakes the actor ...
    assert events.get(timeout=WAIT) == 2  # ... and the restored connection is still subscribed
    conn.close()


def test_restored_connection_keeps_id_params_and_state_and_hooks_do_not_rerun(live, room_handle):
    registry, _ = live
    conn = room_handle.connect({"user": "bob"})
    conn.bump()
    before = conn.me()
    registry.sleep(room_handle.resolve())
    after = conn.me()  # this frame wakes the actor
    expected = {"id": conn.connection_id, "state": {"user": "bob", "calls": 1}, "params": {"user": "bob"}}
    assert after == before == expected
    assert LOG == [("wake", []), ("connect", "bob"), ("wake", ["bob"])]  # on_wake sees it; no (dis)connect again
    conn.close()
    gevent.sleep(0)


def test_c_sleep_from_an_action_hibernates_the_caller_too(live, room_handle):
    registry, _ = live
    conn = room_handle.connect({"user": "cy"})
    conn.bump()
    conn.nap()
    for _ in range(100):  # bounded wait for the sleep the action requested
        if asleep(registry, room_handle):
            break
        gevent.sleep(0.01)
    assert asleep(registry, room_handle)
    assert conn.bump() == 2
    conn.close()


def test_a_connection_closed_while_asleep_is_gone_after_wake(live, room_handle):
    registry, client = live
    leaving = room_handle.connect({"user": "dee"})
    staying = room_handle.connect({"user": "eve"})
    leaving.wait_connected()
    staying.wait_connected()
    assert room_handle.users() == ["dee", "eve"]
    actor_id = room_handle.resolve()
    registry.sleep(actor_id)
    assert registry.engine.held_connections(actor_id) == {leaving.connection_id, staying.connection_id}
    leaving.close()
    for _ in range(200):  # bounded: until the server has seen the close
        if registry.engine.held_connections(actor_id) == {staying.connection_id}:
            break
        gevent.sleep(0.01)
    assert registry.engine.held_connections(actor_id) == {staying.connection_id}
    assert staying.users() == ["eve"]
    assert ("disconnect", "dee") not in LOG  # it went away while asleep: no hook ran for it
    staying.close()


def test_destroy_disconnects_hibernatable_connections(live, room_handle):
    registry, _ = live
    conn = room_handle.connect({"user": "fay"})
    closed: gevent.queue.Queue = gevent.queue.Queue()
    conn.on_close(lambda: closed.put(True))
    conn.bump()
    registry.destroy(room_handle.resolve())
    assert closed.get(timeout=WAIT) is True
    assert ("disconnect", "fay") in LOG
    conn.close()


def test_in_process_connections_are_not_hibernatable(tmp_path):
    registry = rivetgreen.setup(room, data_dir=str(tmp_path))
    try:
        LOG.clear()
        handle = registry.get_or_create("room", ["local"])
        local = handle.connect({"user": "gus"})
        local.bump()
        registry.sleep(handle.resolve())
        assert ("disconnect", "gus") in LOG
    finally:
        registry.shutdown()


def make_echo(name: str, hibernate: bool):
    definition = actor(name, state={"handlers": 0}, options={"can_hibernate_websocket": hibernate})

    @definition.on_websocket
    def on_websocket(c, ws, request):
        c.state["handlers"] += 1
        while (message := ws.receive()) is not None:
            ws.send(f"{c.state['handlers']}:{message}")

    return definition


@pytest.fixture(scope="module")
def echo_live(tmp_path_factory):
    registry = rivetgreen.setup(
        make_echo("sleepyEcho", True), make_echo("plainEcho", False),
        data_dir=str(tmp_path_factory.mktemp("raw-hibernation")),
    )
    server = make_server(registry.flask_app(), "127.0.0.1", 0)
    with Client(f"http://127.0.0.1:{server.server_port}", timeout=WAIT) as client:
        yield registry, client
    server.stop(timeout=5)
    registry.shutdown()


def test_raw_websocket_with_can_hibernate_survives_sleep_and_wakes_the_actor(echo_live):
    registry, client = echo_live
    handle = client.sleepyEcho.get_or_create([uuid.uuid4().hex])
    ws = handle.websocket("/chat")
    ws.send("one")
    assert ws.receive(timeout=WAIT) == "1:one"
    registry.sleep(handle.resolve())
    assert asleep(registry, handle)
    ws.send("two")  # wakes the actor; on_websocket runs again on the same socket
    assert ws.receive(timeout=WAIT) == "2:two"
    assert not ws.closed
    ws.close()


def test_raw_websocket_without_can_hibernate_is_closed_when_the_actor_sleeps(echo_live):
    registry, client = echo_live
    handle = client.plainEcho.get_or_create([uuid.uuid4().hex])
    ws = handle.websocket("/chat")
    ws.send("one")
    assert ws.receive(timeout=WAIT) == "1:one"
    registry.sleep(handle.resolve())
    assert ws.receive(timeout=WAIT) is None
    assert ws.closed
