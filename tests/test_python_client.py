"""The Python network client (rivetgreen.client) against a live rivetgreen server in the same process and hub,
in every encoding; plus one test where the official JS client and the Python client share an actor's events."""

from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path
from types import SimpleNamespace

import gevent
import gevent.event
import gevent.queue
import gevent.subprocess
import pytest

import rivetgreen
from rivetgreen import RivetError, actor
from rivetgreen.client import ActorConnection, Client, ClientTimeout
from rivetgreen.client import connection as connection_module
from rivetgreen.client.errors import error_from_close, error_from_http, parse_close_reason
from rivetgreen.client.urls import ActorTarget, gateway_url, parse_endpoint, websocket_protocols
from rivetgreen.encoding.client_protocol import encode_http_error
from rivetgreen.server.serve import make_server
from tests.compat.actors import ACTORS
from tests.compat.conftest import node_client  # noqa: F401  (the fixture, used by the last test)

ENCODINGS = ["bare", "cbor", "json"]
SHARED_EVENTS = Path(__file__).parent / "compat" / "shared_events.mjs"
WAIT = 10.0  # seconds any single wait in these tests may take before it fails

# An actor whose action blocks until the test releases it (for timeouts and pending calls).
GATE = gevent.event.Event()
blocker = actor("blocker")


@blocker.action
def block(c):
    return GATE.wait(timeout=WAIT)


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    """A live server on a free loopback port serving the compat actors (and ``blocker``)."""
    registry = rivetgreen.setup(*ACTORS, blocker, data_dir=str(tmp_path_factory.mktemp("python-client")))
    server = make_server(registry.flask_app(), "127.0.0.1", 0)
    yield SimpleNamespace(url=f"http://127.0.0.1:{server.server_port}", registry=registry)
    server.stop(timeout=5)
    registry.shutdown()


@pytest.fixture(params=ENCODINGS)
def client(request, live):
    with Client(live.url, encoding=request.param, timeout=WAIT) as client:
        yield client


@pytest.fixture
def bare_client(live):
    with Client(live.url, timeout=WAIT) as client:
        yield client


@pytest.fixture
def gate():
    GATE.clear()
    yield GATE
    GATE.set()


def unique(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:10]}"


def next_matching(events: gevent.queue.Queue, predicate, what: str, limit: int = 50):
    """The first queued item that satisfies ``predicate`` (bounded: ``limit`` items, ``WAIT`` s each)."""
    seen = []
    for _ in range(limit):
        try:
            item = events.get(timeout=WAIT)
        except gevent.queue.Empty:
            break
        seen.append(item)
        if predicate(item):
            return item
    pytest.fail(f"never got {what}; got {seen}")


def confirm_subscribed(conn: ActorConnection, events: gevent.queue.Queue) -> int:
    """Probe with increment(0) until our own event arrives (bounded); returns the count."""
    for _ in range(5):
        count = conn.increment(0)
        try:
            while events.get(timeout=2) != count:
                pass
            return count
        except gevent.queue.Empty:
            continue
    pytest.fail("the subscription never became active")


# Actions --------------------------------------------------------------------------------------------------------

def test_actions_round_trip_values(client):
    counter = client.counter.get_or_create([unique("values")])
    assert counter.increment(5) == 5
    assert counter.action("increment", 2) == 7
    values = [
        42, -7, 1.5, 2**40, 2**53 + 1, 1 << 70, -(1 << 70), "héllo ✓", True, None,
        {"nested": {"list": [1, "two", {"three": 3}], "empty": {}}}, b"\x00\x01\xff", ["$x", 1], [],
    ]
    assert counter.echo(*values) == values
    assert counter.describe(1 << 70, b"\x09\x08", 2**40, 3, "s") == ["int", "bytes", "int", "int", "str"]
    assert counter.getCount() == 7


def test_user_error_with_metadata_and_masked_internal_error(client):
    counter = client.counter.get_or_create([unique("errors")])
    with pytest.raises(RivetError) as caught:
        counter.fail("bad things", "teapot", {"hint": 418, "big": 1 << 70})
    error = caught.value
    assert (error.group, error.code, error.message) == ("user", "teapot", "bad things")
    assert error.metadata == {"hint": 418, "big": 1 << 70}
    with pytest.raises(RivetError) as caught:
        counter.crash()
    assert (caught.value.group, caught.value.code) == ("core", "internal_error")
    assert "secret" not in caught.value.message
    assert counter.getCount() == 0


def test_unknown_action_over_http_and_over_a_connection(client):
    counter = client.counter.get_or_create([unique("unknown")])
    with pytest.raises(RivetError) as caught:
        counter.noSuchAction(1)
    assert (caught.value.group, caught.value.code) == ("actor", "action_not_found")
    with counter.connect() as conn:
        with pytest.raises(RivetError) as caught:
            conn.noSuchAction(1)
        assert (caught.value.group, caught.value.code) == ("actor", "action_not_found")
        assert conn.getCount() == 0  # an action error leaves the connection usable


# Connections and events -----------------------------------------------------------------------------------------

def test_events_reach_subscribed_connections(client):
    counter = client.counter.get_or_create([unique("events")])
    with counter.connect() as conn:
        events = gevent.queue.Queue()
        conn.on("newCount", events.put)
        assert conn.increment(1) == 1
        assert events.get(timeout=WAIT) == 1
        assert counter.increment(10) == 11  # over HTTP: the connection still sees the event
        assert events.get(timeout=WAIT) == 11
        with pytest.raises(RivetError) as caught:
            conn.fail("over the socket", "socket_error", {"n": 1})
        assert (caught.value.group, caught.value.code, caught.value.metadata) == ("user", "socket_error", {"n": 1})
        assert conn.getCount() == 11


def test_concurrent_calls_on_one_connection_are_matched_by_id(client):
    with client.counter.get_or_create([unique("concurrent")]).connect() as conn:
        calls = [gevent.spawn(conn.echo, index, f"text-{index}") for index in range(20)]
        gevent.joinall(calls, timeout=WAIT, raise_error=True)
        assert [call.value for call in calls] == [[index, f"text-{index}"] for index in range(20)]


def test_calls_made_before_init_are_queued_and_once_and_unsubscribe(bare_client):
    counter = bare_client.counter.get_or_create([unique("queued")])
    conn = counter.connect()
    try:
        assert conn.status == "connecting"  # nothing is open yet: the call below waits for Init
        once, every = gevent.queue.Queue(), gevent.queue.Queue()
        conn.once("newCount", once.put)
        unsubscribe = conn.on("newCount", every.put)
        assert conn.increment(2) == 2
        assert conn.status == "connected" and conn.actor_id == counter.resolve()
        assert once.get(timeout=WAIT) == 2 and every.get(timeout=WAIT) == 2
        assert conn.increment(3) == 5
        assert every.get(timeout=WAIT) == 5
        assert once.empty()
        unsubscribe()
        assert conn.increment(1) == 6
        assert every.empty()
    finally:
        conn.close()
    assert conn.status == "idle"
    with pytest.raises(RivetError) as caught:
        conn.getCount()
    assert (caught.value.group, caught.value.code) == ("client", "connection_disposed")


@pytest.mark.parametrize(("params", "sent_over_websocket"), [({}, True), ([], True), (0, False), ("", False)])
def test_falsy_connection_params_travel_as_the_official_client_sends_them(client, params, sent_over_websocket):
    """HTTP calls send any params given (``params !== undefined``); a WebSocket carries them when they are truthy in
    JavaScript (``if (params)``), so ``{}`` and ``[]`` reach on_before_connect, which refuses them, and 0 and ""
    arrive as no params at all, which it accepts."""
    room = client.chatRoom.get_or_create([unique("room")], params=params)
    with pytest.raises(RivetError) as caught:
        room.whoamiHttp()
    assert caught.value.code == "missing_user"
    connection = room.connect(params)
    try:
        if sent_over_websocket:
            with pytest.raises(RivetError) as caught:
                connection.whoami()
            assert caught.value.code == "missing_user"
        else:
            assert connection.whoami() is None
    finally:
        connection.close()


def test_connection_params_and_on_before_connect_refusal(client):
    key = [unique("room")]
    room = client.chatRoom.get_or_create(key)
    with room.connect({"user": "alice"}) as alice:
        messages = gevent.queue.Queue()
        alice.on("message", messages.put)
        assert alice.whoami() == "alice"
        assert alice.post("hi there") == 1
        assert messages.get(timeout=WAIT) == {"user": "alice", "text": "hi there"}
    assert room.whoamiHttp() is None
    assert client.chatRoom.get_or_create(key, params={"user": "bob"}).whoamiHttp() == {"user": "bob"}

    refused = room.connect({"user": ""})
    errors = gevent.queue.Queue()
    refused.on_error(errors.put)
    with pytest.raises(RivetError) as caught:
        refused.whoami()
    assert (caught.value.group, caught.value.code) == ("user", "missing_user")
    assert refused.status == "idle"  # a refusal before Init is final
    with pytest.raises(RivetError) as caught:
        refused.whoami()
    assert caught.value.code == "missing_user"
    assert errors.get(timeout=WAIT).code == "missing_user"
    refused.close()


# Queue, raw HTTP and raw WebSocket ------------------------------------------------------------------------------

def test_queue_send_with_and_without_wait(client):
    worker = client.worker.get_or_create([unique("queue")])
    assert worker.send("jobs", {"task": "a"}) is None
    assert worker.send("jobs", {"task": "b"}, wait=True, timeout=5) == {
        "status": "completed", "response": {"done": "b"},
    }
    # Nobody consumes "slow": the server gives up after the timeout and says so.
    assert worker.send("slow", {"task": "c"}, wait=True, timeout=0.2)["status"] == "timedOut"
    assert worker.processed() == ["a", "b"]


def test_raw_fetch(bare_client):
    raw = bare_client.rawServer.get_or_create([unique("raw")])
    response = raw.fetch("/hello/world?x=1", method="POST", body="hi", headers={"x-custom": "1"})
    assert response.status == 200 and response.ok
    assert response.json() == {"method": "POST", "path": "/hello/world", "query": "x=1", "body": "hi", "custom": "1"}
    assert response.headers.get("X-Served-By") == "rivetgreen"
    assert json.loads(response.text)["body"] == "hi"
    missing = raw.fetch("missing")
    assert missing.status == 404 and missing.body == b"not here"
    get = raw.fetch("/hello/world")
    assert get.json()["method"] == "GET" and get.json()["body"] == ""


def test_raw_websocket_echo(bare_client):
    raw = bare_client.rawServer.get_or_create([unique("rawws")])
    ws = raw.websocket("/echo?room=1")
    try:
        assert ws.subprotocol == "rivet"
        ws.send("ping")
        assert ws.receive(timeout=WAIT) == "echo:ping"
        ws.send(b"\x00\x01\x02")
        assert ws.receive(timeout=WAIT) == b"\x00\x01\x02"
        big = "x" * 200_000
        ws.send(big)
        assert ws.receive(timeout=WAIT) == "echo:" + big
    finally:
        ws.close()
    assert ws.closed and ws.close_code == 1000
    assert ws.receive(timeout=WAIT) is None


# Addressing -----------------------------------------------------------------------------------------------------

def test_create_get_get_for_id_resolve_and_duplicate_key(client):
    name = unique("addr")
    created = client.counter.create([name], input={"start": 7})
    actor_id = created.resolve()
    assert isinstance(actor_id, str) and created.target.actor_id == actor_id
    assert client.counter.get_for_id(actor_id).getCount() == 7
    assert client.counter.get([name]).getCount() == 7
    assert client.get("counter", [name]).resolve() == actor_id
    assert client["counter"].get_or_create([name]).resolve() == actor_id
    assert client.get_or_create("counter", [name]).increment(1) == 8
    with pytest.raises(RivetError) as caught:
        client.counter.create([name])
    assert (caught.value.group, caught.value.code) == ("actor", "duplicate_key")
    for call in (lambda: client.counter.get([name, "missing"]).getCount(),
                 lambda: client.counter.get([name, "missing"]).resolve()):
        with pytest.raises(RivetError) as caught:
            call()
        assert (caught.value.group, caught.value.code) == ("actor", "not_found")
    assert client.counter.get_or_create([name, "input"], input={"start": 3}).getCount() == 3
    odd = client.counter.get_or_create([name, "k/2", "back\\slash", "ü"])
    assert odd.increment(1) == 1
    assert odd.resolve() == client.counter.get([name, "k/2", "back\\slash", "ü"]).resolve()
    with client.counter.get_for_id(actor_id).connect() as conn:  # the direct form for /connect too
        assert conn.getCount() == 8


# Server-side close, reconnect, retries, timeouts ----------------------------------------------------------------

def test_server_side_close_then_automatic_reconnect(client):
    counter = client.counter.get_or_create([unique("reconnect")])
    with counter.connect() as conn:
        opened, closed, events = gevent.queue.Queue(), gevent.queue.Queue(), gevent.queue.Queue()
        conn.on_open(lambda: opened.put(conn.connection_id))
        conn.on_close(lambda: closed.put(True))
        conn.on("newCount", events.put)
        assert conn.increment(1) == 1
        first_id = opened.get(timeout=WAIT)
        with pytest.raises(RivetError) as caught:
            conn.kickMe()  # the actor disconnects this conn: the call in flight fails with the close reason
        assert (caught.value.group, caught.value.code) == ("client", "connection_lost")
        assert caught.value.metadata == {"closeCode": 1000, "reason": "kicked"}
        assert closed.get(timeout=WAIT) is True
        assert conn.increment(1) == 2  # through a new WebSocket
        assert opened.get(timeout=WAIT) != first_id
        assert next_matching(events, lambda count: count == 2, "the event after the reconnect") == 2


def test_connections_hibernate_while_the_actor_sleeps_and_the_next_call_wakes_it(bare_client, live):
    counter = bare_client.counter.get_or_create([unique("sleep")])
    with counter.connect() as conn:
        events, closed = gevent.queue.Queue(), gevent.queue.Queue()
        conn.on("newCount", events.put)
        conn.on_close(lambda: closed.put(True))
        assert conn.increment(4) == 4
        connection_id = conn.connection_id
        live.registry.sleep(conn.actor_id)
        assert conn.actor_id not in live.registry.engine.instances  # asleep, yet the socket stays open
        assert conn.increment(1) == 5  # the frame woke the actor, which restored the connection
        assert next_matching(events, lambda count: count == 5, "the event after waking") == 5
        assert conn.connection_id == connection_id
        assert closed.empty()


def test_close_before_init_is_retried_for_lifecycle_codes_and_bounded(bare_client, monkeypatch):
    monkeypatch.setattr(connection_module, "FIRST_OPEN_BACKOFF", 0.01)
    monkeypatch.setattr(connection_module, "MAX_OPEN_BACKOFF", 0.05)
    retried = gevent.event.Event()
    original = connection_module.is_retryable

    def spy(error, query_target, can_create):
        retried.set()
        return original(error, query_target, can_create)

    monkeypatch.setattr(connection_module, "is_retryable", spy)
    name = unique("late")
    conn = bare_client.counter.get([name]).connect()  # the actor does not exist yet: closed "actor.not_found"
    try:
        call = gevent.spawn(conn.getCount)
        assert retried.wait(WAIT)
        bare_client.counter.create([name], input={"start": 9})
        assert call.get(timeout=WAIT) == 9
    finally:
        conn.close()

    monkeypatch.setattr(connection_module, "MAX_OPEN_RETRIES", 2)
    doomed = bare_client.counter.get([unique("never")]).connect()
    with pytest.raises(RivetError) as caught:
        doomed.getCount()
    assert (caught.value.group, caught.value.code) == ("actor", "not_found")
    assert doomed.status == "idle"
    doomed.close()


def test_every_blocking_call_times_out(bare_client, gate):
    blocked = bare_client.blocker.get_or_create([unique("block")])
    with pytest.raises(ClientTimeout) as caught:
        blocked.block(timeout=0.2)
    assert isinstance(caught.value, TimeoutError) and (caught.value.group, caught.value.code) == ("client", "timeout")
    with blocked.connect() as conn:
        with pytest.raises(TimeoutError):
            conn.block(timeout=0.2)
        pending = gevent.spawn(conn.block)
        gevent.idle()
        gate.set()
        assert pending.get(timeout=WAIT) is True
        gate.clear()
        pending = gevent.spawn(conn.block)
        gevent.idle()
    with pytest.raises(RivetError) as caught:  # closing the connection fails the call still pending
        pending.get(timeout=WAIT)
    assert caught.value.code == "connection_disposed"
    ws = bare_client.rawServer.get_or_create([unique("quiet")]).websocket("/quiet")
    with pytest.raises(ClientTimeout):
        ws.receive(timeout=0.1)
    ws.close()


# Pure helpers ---------------------------------------------------------------------------------------------------

def test_gateway_urls_and_subprotocols_match_the_js_client():
    endpoint = parse_endpoint("http://ns1:tok123@127.0.0.1:18083/")
    assert (endpoint.namespace, endpoint.token, endpoint.prefix) == ("ns1", "tok123", "")
    query = ActorTarget("counter", ("k1", "k,2", "k/3"), "getOrCreate")
    assert gateway_url(endpoint, query, "/action/increment") == (
        "http://127.0.0.1:18083/gateway/counter/action/increment?rvt-namespace=ns1&rvt-method=getOrCreate"
        "&rvt-runner=default&rvt-key=k1%2Ck%2C2%2Ck%2F3&rvt-crash-policy=sleep&rvt-token=tok123"
    )
    plain = parse_endpoint("http://127.0.0.1:18083/api//rivet/")
    assert gateway_url(plain, ActorTarget("counter", ("a",), "get"), "/request/hello/world?x=1") == (
        "http://127.0.0.1:18083/api/rivet/gateway/counter/request/hello/world?x=1&rvt-namespace=default&rvt-method=get"
        "&rvt-key=a"
    )
    direct = ActorTarget("counter", actor_id="1d7c1c9d")
    assert gateway_url(endpoint, direct, "/action/increment") == (
        "http://127.0.0.1:18083/gateway/1d7c1c9d@tok123/action/increment"
    )
    assert websocket_protocols("json", {"p": "x y"}) == [
        "rivet", "rivet_encoding.json", "rivet_conn_params.%7B%22p%22%3A%22x%20y%22%7D",
    ]
    assert websocket_protocols("bare", None) == ["rivet", "rivet_encoding.bare"]
    assert websocket_protocols("bare", {}) == ["rivet", "rivet_encoding.bare", "rivet_conn_params.%7B%7D"]
    with pytest.raises(ValueError):
        parse_endpoint("http://:tok@host")
    with pytest.raises(ValueError):
        parse_endpoint("http://host/?x=1")


def test_errors_from_close_reasons_and_http_bodies():
    assert parse_close_reason("actor.not_found#ray1") == ("actor", "not_found", "ray1")
    assert parse_close_reason("kicked") is None
    structured = error_from_close(1011, "ws.going_away", clean=True)
    assert (structured.group, structured.code) == ("ws", "going_away")
    lost = error_from_close(1006, "", clean=False)
    assert (lost.group, lost.code) == ("client", "connection_lost") and "lost" in lost.message
    body = {"group": "user", "code": "teapot", "message": "m", "metadata": {"a": [1, b"x"]}}
    for encoding in ENCODINGS:
        content_type = "application/json" if encoding == "json" else "application/octet-stream"
        error = error_from_http(encoding, 400, "Bad Request", content_type, encode_http_error(encoding, body))
        assert (error.group, error.code, error.message, error.metadata) == ("user", "teapot", "m", {"a": [1, b"x"]})
    as_json = error_from_http("bare", 404, "Not Found", "application/json", json.dumps(body | {"metadata": 1}).encode())
    assert (as_json.code, as_json.metadata) == ("teapot", 1)
    html = error_from_http("bare", 500, "Internal Server Error", "text/html", b"<h1>oops</h1>")
    assert (html.group, html.code, html.metadata["status"]) == ("client", "http_error", 500)


# The official JS client and the Python client on one actor -------------------------------------------------------

def read_json_line(process, stderr_path: Path) -> dict:
    """The next stdout line of ``process`` that is a JSON object (bounded by the process's output)."""
    for _ in range(1000):
        line = process.stdout.readline()
        if not line:
            pytest.fail(f"the node script ended early:\n{stderr_path.read_text()[-3000:]}")
        if line.startswith("{"):
            return json.loads(line)
    pytest.fail("the node script printed too much")


def test_official_js_client_and_python_client_share_events(node_client, live, tmp_path):  # noqa: F811
    shutil.copy(SHARED_EVENTS, node_client / SHARED_EVENTS.name)
    key = unique("shared")
    with Client(live.url, encoding="bare", timeout=30) as client:
        counter = client.counter.get_or_create([key])
        conn = counter.connect()
        events = gevent.queue.Queue()
        conn.on("newCount", events.put)
        confirm_subscribed(conn, events)
        stderr_path = tmp_path / "node.stderr"
        with stderr_path.open("w") as stderr:
            process = gevent.subprocess.Popen(
                ["node", SHARED_EVENTS.name, live.url, "cbor", key, "100", "1000"],
                cwd=node_client, stdout=gevent.subprocess.PIPE, stderr=stderr, text=True,
                env={**os.environ, "RIVET_LOG_LEVEL": "error"},
            )
        try:
            with gevent.Timeout(60):
                subscribed = read_json_line(process, stderr_path)
                assert subscribed.get("subscribed") is True, subscribed
                base = subscribed["base"]
                assert counter.increment(100) == base + 100  # over HTTP; the JS connection must see it
                outcome = read_json_line(process, stderr_path)
            assert outcome["ok"], outcome
            result = outcome["result"]
            assert result["sawPython"] == base + 100
            assert result["own"] == base + 1100
            # ... and the Python connection sees the event caused by the JS client's increment.
            assert next_matching(events, lambda count: count == base + 1100, "the JS client's event") == base + 1100
        finally:
            if process.poll() is None:
                process.kill()
            process.wait(timeout=10)
            conn.close()
