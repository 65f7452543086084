"""Every route family under hostile requests, in bare, cbor and json: the engine API (``/actors``), the gateway's path
and query, ``/action``, ``/queue``, raw ``/request``, ``/inspector``, ``/metadata``, ``/metrics`` through Flask's
test client, and ``/connect`` frames through a served host.

The property: an answer is a success or a 4xx (no route here documents a 5xx for client input) whose body is the
spec's error shape ``{group, code, message, ...}`` in the request's encoding (JSON on the engine API and the
inspector); never a 500, an HTML page, an error log or a greenlet that died of an exception.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import assume, example, given
from hypothesis import strategies as st
from wsproto.connection import ConnectionState

from rivetgreen.encoding import client_protocol as protocol
from rivetgreen.errors import RivetError
from tests.fuzz.strategies import (
    ENCODINGS,
    action_bodies,
    actor_bodies,
    hostile,
    queue_bodies,
    to_server_frames,
)
from tests.test_server import connect

METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
RVT = ("rvt-namespace=default&rvt-method=getOrCreate&rvt-runner=default&rvt-crash-policy=sleep&rvt-key=")
# Werkzeug's path converter does not match "\n" (a URL with %0A there reaches no route of the host).
url_text = st.text(max_size=12).map(lambda text: text.replace("\n", ""))  # st.text() has no lone surrogates
# A gateway segment names an actor: one or more characters and no "/" (else no route of the host matches the URL,
# and the answer is the host app's own 404 page).
segment_text = st.text(min_size=1, max_size=12).map(lambda text: text.replace("/", "").replace("\n", "") or "x")
conn_params = st.none() | st.sampled_from(['{"user":"x"}', "[" * 300 + "]" * 300, '"\\ud800"', "9" * 5000, "{"])


def assert_answer(response: Any, encoding: str = "json", crashes: Any = None) -> None:
    """The fuzz property for one HTTP answer."""
    content_type = response.headers.get("content-type", "")
    assert response.status_code < 500, (response.status_code, response.data[:300])
    assert "html" not in content_type, response.data[:300]
    if response.status_code >= 400 and response.data:
        error = protocol.decode_http_error(encoding if encoding in ENCODINGS else "json", response.data, content_type)
        assert all(isinstance(error[field], str) for field in ("group", "code", "message")), error
    if crashes is not None:
        crashes.assert_none()


def gateway_url(key: str, path: str) -> str:
    return f"/gateway/counter{path}?{RVT}{quote(key, safe='')}"


# The engine API -----------------------------------------------------------------------------------------------------

@given(method=st.sampled_from(["PUT", "POST"]), body=hostile(actor_bodies()))
def test_actor_bodies(client, crashes, method, body):
    crashes.clear()
    response = client.open("/actors?namespace=default", method=method, data=body,
                           headers={"content-type": "application/json"})
    assert_answer(response, crashes=crashes)
    assert response.headers["content-type"].startswith("application/json")


@given(name=st.none() | url_text, key=st.none() | url_text, actor_ids=st.none() | url_text)
def test_actor_queries(client, crashes, name, key, actor_ids):
    crashes.clear()
    query = {"name": name, "key": key, "actor_ids": actor_ids, "namespace": "default"}
    response = client.get("/actors", query_string={field: value for field, value in query.items() if value is not None})
    assert_answer(response, crashes=crashes)
    # An id holding "/" is a URL no route of the host matches (the app's own 404), not a bad actor id.
    actor_id = (actor_ids or "x").replace("/", "") or "x"
    assert_answer(client.delete(f"/actors/{quote(actor_id, safe='')}"), crashes=crashes)


# The gateway: path, query, and every per-actor route -----------------------------------------------------------------

@given(method=st.sampled_from(METHODS), segment=segment_text, path=url_text, query=hostile(st.sampled_from([
    RVT + "a%2Cb", "rvt-method=get&rvt-key=x", RVT + "k&rvt-input=oWFhAQ", "own=1&" + RVT + "%E6%97%A5",
    RVT + "k&rvt-token=t", "rvt-method=getOrCreate",
])).map(lambda data: data.decode("latin-1")))
def test_gateway_paths_and_queries(client, crashes, method, segment, path, query):
    crashes.clear()
    url = f"/gateway/{quote(segment, safe='@')}/{quote(path, safe='/')}"
    response = client.open(url, method=method, environ_overrides={"QUERY_STRING": query})
    assert_answer(response, crashes=crashes)


@pytest.mark.parametrize("encoding", ENCODINGS)
@given(data=st.data())
def test_actions(client, crashes, encoding, data):
    crashes.clear()
    name = data.draw(st.sampled_from(["echo", "describe", "getCount", "nope"]) | url_text)
    key = data.draw(st.sampled_from(["fuzz", "日本", "😀", ""]) | url_text)
    headers = {"x-rivet-encoding": encoding, "content-type": protocol.content_type(encoding)}
    params = data.draw(conn_params)
    if params is not None:
        headers["x-rivet-conn-params"] = params
    body = data.draw(hostile(action_bodies(encoding)))
    response = client.post(gateway_url(key, "/action/" + quote(name, safe="")), data=body, headers=headers)
    assert_answer(response, encoding, crashes)


@pytest.mark.parametrize("encoding", ENCODINGS)
@given(data=st.data())
def test_queue_sends(client, crashes, encoding, data):
    crashes.clear()
    name = data.draw(st.sampled_from(["q", "日本"]) | url_text)
    body = data.draw(hostile(queue_bodies(encoding)))
    try:  # a request that asks to wait blocks until its (absent) consumer answers: not this property's case
        waits = protocol.decode_queue_send_request(encoding, body).wait
    except RivetError:
        waits = False
    assume(not waits)
    headers = {"x-rivet-encoding": encoding, "content-type": protocol.content_type(encoding)}
    response = client.post(gateway_url("fuzz-queue", "/queue/" + quote(name, safe="")), data=body, headers=headers)
    assert_answer(response, encoding, crashes)


@given(method=st.sampled_from(METHODS), path=st.sampled_from(["/request/hello/world", "/request", "/metadata",
                                                               "/metrics", "/health", "/", "/inspector/state",
                                                               "/inspector/action/echo", "/inspector/queue",
                                                               "/inspector/database/rows"]) | url_text,
       body=hostile(st.sampled_from([b'{"state":{"a":1}}', b'{"args":[1]}', b'{"sql":"select 1"}'])),
       authorization=st.none() | st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF).filter(
           lambda char: char != "\x7f"), max_size=40))
def test_raw_inspector_and_framework_routes(client, crashes, method, path, body, authorization):
    crashes.clear()
    headers = {"content-type": "application/json"}
    if authorization is not None:
        headers["authorization"] = "Bearer " + authorization
    actor = "rawServer" if path.startswith("/request") else "counter"
    url = f"/gateway/{actor}{quote(path, safe='/')}?{RVT}fuzz-raw"
    response = client.open(url, method=method, data=body, headers=headers)
    if path.startswith("/request"):  # the actor's own answer; only the host's failures count
        assert response.status_code < 500 and not crashes.records
        return
    assert_answer(response, crashes=crashes)
    assert_answer(client.get("/metadata"), crashes=crashes)
    assert_answer(client.get("/metrics", headers={"authorization": headers.get("authorization", "")}),
                  crashes=crashes)


# /connect frames through a served host ------------------------------------------------------------------------------

@pytest.mark.parametrize("encoding", ENCODINGS)
@given(data=st.data())
def test_connect_frames(port, crashes, encoding, data):
    """A frame is answered (an action's response or error) or the socket closes with the spec's codes for bad
    input (1011 ``actor.invalid_request`` or ``message.incoming_too_long``); never ``core.internal_error``."""
    crashes.clear()
    frames = data.draw(st.lists(hostile(to_server_frames(encoding)), min_size=1, max_size=3))
    ws = connect(port, f"/gateway/counter/connect?{RVT}fuzz-ws", encoding)
    try:
        assert isinstance(protocol.decode_to_client(encoding, ws.receive_message()), protocol.Init)
        for frame in frames:
            ws.send(frame.decode("utf-8", "replace") if encoding == "json" else frame)
        # A last valid action tells where the server got to: its answer, or the close it sent first.
        ws.send(protocol.encode_to_server(encoding, protocol.ActionRequest(2**64 - 1, "getCount", [])))
        for _ in range(20):
            message = ws.receive()
            if not isinstance(message, (str, bytes)):
                assert (message.code, message.reason) in ((1011, "actor.invalid_request"),
                                                          (1011, "message.incoming_too_long")), message
                break
            decoded = protocol.decode_to_client(encoding, message)
            if isinstance(decoded, protocol.ErrorMessage):
                assert (decoded.group, decoded.code) != ("core", "internal_error"), decoded
            if getattr(decoded, "id", None) == 2**64 - 1 or getattr(decoded, "action_id", None) == 2**64 - 1:
                break
        else:
            pytest.fail("the server neither answered the last action nor closed")
    finally:
        ws.close()
    crashes.assert_none()


def test_the_fuzzed_host_still_serves(client):
    response = client.post(gateway_url("after-fuzz", "/action/echo"), data=json.dumps({"args": [1]}),
                           headers={"x-rivet-encoding": "json", "content-type": "application/json"})
    assert response.status_code == 200 and response.get_json() == {"output": [1]}


INSPECTOR_FRAMES = [json.dumps(message) for message in (
    {"tag": "StateRequest", "val": {"id": 1}},
    {"tag": "PatchStateRequest", "val": {"id": 2, "state": {"count": 1, "nested": [1, {"a": "b"}]}}},
    {"tag": "ActionRequest", "val": {"id": 3, "name": "echo", "args": [1, "x", None]}},
    {"tag": "ConnectionsRequest", "val": {"id": 4}},
)]


@given(frames=st.lists(hostile(st.sampled_from(INSPECTOR_FRAMES)), min_size=1, max_size=3))
@example(frames=[b"[" * 5000])  # a RecursionError here ended the socket with 1011 core.internal_error
def test_inspector_websocket_frames(port, registry, crashes, frames):
    """Inspector frames are answered (a response or an Error message); the socket never dies of one."""
    crashes.clear()
    actor_id = registry.get_or_create("counter", ["fuzz-inspector"]).resolve()
    token = registry.engine.running_task(actor_id).inspector_token
    ws = connect(port, f"/gateway/{actor_id}/inspector/connect", None, [f"rivet_inspector_token.{token}"])
    try:
        for frame in frames:
            ws.send(frame.decode("utf-8", "replace"))
        ws.send(json.dumps({"tag": "StateRequest", "val": {"id": "last"}}))
        for _ in range(50):  # pushes and the answers to the fuzzed frames come first
            message = json.loads(ws.receive_message())
            if message["val"].get("rid") == "last":
                assert message["tag"] == "StateResponse", message
                break
        else:
            pytest.fail("the inspector never answered the last request")
    finally:
        ws.close()
    crashes.assert_none()


@given(path=st.sampled_from(["/connect", "/websocket/echo", "/inspector/connect", "/nowhere"]),
       encoding=st.none() | st.sampled_from([*ENCODINGS, "xml", ""]),
       params=st.none() | hostile(st.just(b'{"user":"fuzz"}')).map(lambda data: data.decode("utf-8", "replace")))
def test_websocket_setup(port, crashes, path, encoding, params):
    """Sub-protocols (encoding, connection params) on every WebSocket route: the socket opens, or closes with a
    clear reason; never ``core.internal_error``."""
    crashes.clear()
    extra = [] if params is None else ["rivet_conn_params." + quote(params, safe="")]
    actor = "rawServer" if path.startswith("/websocket") else "chatRoom"
    ws = connect(port, f"/gateway/{actor}{path}?{RVT}fuzz-setup", encoding, extra)
    try:
        if ws.ws.state is ConnectionState.OPEN:  # a refused setup may have closed it already
            ws.send("hello")
        first = ws.receive()  # a setup failure closes before anything else is sent
        if not isinstance(first, (str, bytes)):
            assert first.reason != "core.internal_error", (first.code, first.reason)
    finally:
        ws.close()
    crashes.assert_none()
