"""The Flask host under bad and edge input (client-protocol.md §1–§7, §11; core.md §5, §7.3–7.4).

Every test asserts what a client would see (status, content type, the error's group and code, WebSocket close
codes and reasons) and that the host keeps serving afterwards. HTTP goes through Flask's test client, which runs
the WSGI app in-process; WebSocket and chunked-body cases run against a real gevent server on loopback, spoken to
by the minimal clients below (wsproto and raw HTTP/1.1 over ``gevent.socket``: the server shares the hub with the
test, so nothing here may block it). Every socket read is bounded by ``TIMEOUT``.
"""

from __future__ import annotations

import base64
import json
import os
from collections import deque
from typing import Any
from urllib.parse import quote, quote_plus, unquote

import cbor2
import gevent.socket
import pytest
from wsproto import ConnectionType, WSConnection
from wsproto.connection import ConnectionState
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Ping,
    RejectConnection,
    RejectData,
    Request,
    TextMessage,
)

from rivetgreen import Response, actor, setup
from rivetgreen.encoding import client_protocol as protocol
from rivetgreen.errors import INTERNAL_MESSAGE
from tests.compat.actors import ACTORS

TIMEOUT = 10.0  # seconds, for any one socket operation
KIB = 1024
MIB = 1024 * KIB
ENCODINGS = protocol.ENCODINGS

# Actors of this module (the compat actors provide counter, chatRoom, worker and rawServer). ------------------

bulky = actor("bulky")


@bulky.action
def make(c, size):
    return "x" * size


@bulky.action
def size_of(c, text):
    return len(text)


limited = actor("limited", options={"max_incoming_message_size": 1 * KIB, "max_outgoing_message_size": 2 * KIB})


@limited.action
def length(c, text):
    return len(text)


@limited.action
def produce(c, size):
    return "y" * size


raw_echo = actor("rawEcho")


@raw_echo.on_request
def echo_request(c, request):
    if request.path == "/boom":
        raise RuntimeError("secret raw detail")
    return Response(request.body, headers={"content-type": "application/octet-stream", "x-echo-path": request.path})


odd_names = actor("oddNames")
ODD_ACTION_NAMES = ["a%41", "aA", "50%", "100%25", "a b", "a/b", "a.b", "é€", "?x=1#y"]
for _name in ODD_ACTION_NAMES:
    odd_names.action(_name)(lambda c, _name=_name: _name)


@odd_names.action
def queued(c):
    return [message.name for message in c.queue.messages()]


# Fixtures -----------------------------------------------------------------------------------------------------

@pytest.fixture
def registry(tmp_path):
    registry = setup(*ACTORS, bulky, limited, raw_echo, odd_names, data_dir=str(tmp_path / "data"))
    yield registry
    registry.shutdown()


# Addressing helpers --------------------------------------------------------------------------------------------

def form(value: str) -> str:
    """``URLSearchParams`` form encoding (``,`` → ``%2C``, ``/`` → ``%2F``, space → ``+``)."""
    return quote_plus(value, safe="")


def query(name: str, path: str, key: list[str], method: str = "getOrCreate", extra: str = "") -> str:
    """The query-form gateway URL the official client builds for ``get``/``getOrCreate`` (§1.4)."""
    params = [("rvt-namespace", "default"), ("rvt-method", method)]
    if method == "getOrCreate":
        params.append(("rvt-runner", "default"))
    if key:
        params.append(("rvt-key", ",".join(key)))
    rvt = "&".join(f"{param}={form(value)}" for param, value in params)
    if method == "getOrCreate":
        rvt += "&rvt-crash-policy=sleep"
    own, _, actor_query = path.partition("?")
    return f"/gateway/{quote(name, safe='')}{own}?{actor_query + '&' if actor_query else ''}{rvt}{extra}"


def direct(actor_id: str, path: str, token: str | None = None) -> str:
    return f"/gateway/{quote(actor_id, safe='')}{'@' + quote(token, safe='') if token else ''}{path}"


def action_headers(encoding: str, **extra: str) -> dict[str, str]:
    return {"x-rivet-encoding": encoding, "content-type": protocol.content_type(encoding), **extra}


def call(client, url: str, args: list[Any], encoding: str = "json", headers: dict[str, str] | None = None):
    """``POST`` an action body as the official client encodes it."""
    return client.post(url, data=protocol.encode_action_request(encoding, args),
                       headers={**action_headers(encoding), **(headers or {})})


def output(response, encoding: str = "json") -> Any:
    """A successful action's result, decoded as the client does (with the request's encoding)."""
    assert response.status_code == 200, (response.status_code, response.data[:500])
    return protocol.decode_action_response(encoding, response.data)


def client_error(response, encoding: str = "json") -> dict[str, Any]:
    """An error body as the official client reads it: JSON when the content type says so, else the request's
    encoding (§3)."""
    return protocol.decode_http_error(encoding, response.data, response.headers.get("content-type"))


def assert_error(response, status: int, group: str, code: str, encoding: str = "json") -> dict[str, Any]:
    assert response.status_code == status, (response.status_code, response.data[:500])
    content_type = response.headers.get("content-type", "")
    if encoding == "json":
        assert content_type.startswith("application/json")
    else:  # a binary body (octet-stream in the request's encoding) or JSON, which clients also accept
        assert content_type.startswith(("application/octet-stream", "application/json"))
    error = client_error(response, encoding)
    assert (error["group"], error["code"]) == (group, code), error
    assert isinstance(error["message"], str) and error["message"]
    return error


def engine_error(response, status: int, group: str, code: str) -> dict[str, Any]:
    """An engine-API error: always JSON (§2)."""
    assert response.status_code == status, (response.status_code, response.data[:500])
    assert response.headers["content-type"].startswith("application/json")
    body = response.get_json()
    assert (body["group"], body["code"]) == (group, code), body
    assert isinstance(body["message"], str)
    return body


def put_actor(client, name: str, key: str, **extra: Any):
    body = {"name": name, "key": key, "runner_name_selector": "default", "crash_policy": "sleep", **extra}
    return client.put("/actors?namespace=default", json=body)


def post_actor(client, name: str, key: str, **extra: Any):
    body = {"name": name, "key": key, "runner_name_selector": "default", "crash_policy": "sleep", **extra}
    return client.post("/actors?namespace=default", json=body)


def actor_id_of(client, name: str, key: str) -> str:
    response = put_actor(client, name, key)
    assert response.status_code == 200, response.data
    return response.get_json()["actor"]["actor_id"]


def assert_serving(client) -> None:
    """The host still answers the engine API and runs actions."""
    assert client.get("/metadata?namespace=default").status_code == 200
    url = query("counter", "/action/increment", ["still-serving"])
    first = output(call(client, url, [1]))
    assert output(call(client, url, [1])) == first + 1


# Engine API: /metadata and /actors (§1.2, §2) -------------------------------------------------------------------

def test_metadata_shape(client):
    response = client.get("/metadata?namespace=default")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    body = response.get_json()
    assert body["runtime"] == "rivetkit"
    assert isinstance(body["version"], str) and body["version"]
    assert body["envoy"]["kind"] == {"normal": {}}
    assert isinstance(body["envoyProtocolVersion"], int)
    assert set(body["actorNames"]) == {"counter", "chatRoom", "worker", "rawServer", "bulky", "limited", "rawEcho",
                                      "oddNames"}
    # Without clientEndpoint the client keeps talking to this host; the override fields must not appear alone.
    assert "clientEndpoint" not in body and "clientNamespace" not in body and "clientToken" not in body
    # The Rust client sends no namespace and reads the same document.
    assert client.get("/metadata").get_json() == body


def test_list_by_name_and_key_of_a_missing_actor_is_an_empty_list(client):
    response = client.get("/actors?name=counter&key=nobody&namespace=default")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    assert response.get_json()["actors"] == []
    assert client.get("/actors?name=counter&namespace=default").get_json()["actors"] == []


def test_get_or_create_reports_created_then_existing(client):
    first = put_actor(client, "counter", "gc")
    assert first.status_code == 200
    assert first.headers["content-type"].startswith("application/json")
    body = first.get_json()
    assert body["created"] is True
    record = body["actor"]
    assert record["name"] == "counter" and record["key"] == "gc"
    assert isinstance(record["actor_id"], str) and record["actor_id"]
    for field in ("create_ts", "start_ts", "connectable_ts", "sleep_ts", "destroy_ts", "error"):
        assert field in record
    second = put_actor(client, "counter", "gc").get_json()
    assert second["created"] is False
    assert second["actor"]["actor_id"] == record["actor_id"]
    listed = client.get("/actors?name=counter&key=gc&namespace=default").get_json()["actors"]
    assert [item["actor_id"] for item in listed] == [record["actor_id"]]


def test_list_by_actor_ids(client):
    first = actor_id_of(client, "counter", "ids-1")
    second = actor_id_of(client, "chatRoom", "ids-2")
    listed = client.get(f"/actors?actor_ids={first},{second},no-such-id&namespace=default").get_json()["actors"]
    assert sorted(item["actor_id"] for item in listed) == sorted([first, second])
    only = client.get(f"/actors?actor_ids={first}&namespace=default").get_json()["actors"]
    assert [(item["actor_id"], item["name"], item["key"]) for item in only] == [(first, "counter", "ids-1")]
    assert client.get("/actors?actor_ids=no-such-id&namespace=default").get_json()["actors"] == []


def test_list_without_name_or_ids_is_400(client):
    engine_error(client.get("/actors?namespace=default"), 400, "api", "invalid_request")
    assert_serving(client)


def test_create_then_duplicate_key_is_400_duplicate_key(client):
    created = post_actor(client, "counter", "dup")
    assert created.status_code == 200
    actor_id = created.get_json()["actor"]["actor_id"]
    assert created.get_json()["actor"]["key"] == "dup"
    duplicate = engine_error(post_actor(client, "counter", "dup"), 400, "actor", "duplicate_key")
    assert "already exists" in duplicate["message"]
    # The existing actor is untouched and still reachable by its key.
    again = put_actor(client, "counter", "dup").get_json()
    assert again["created"] is False and again["actor"]["actor_id"] == actor_id
    # The same key under another name is a different actor.
    assert post_actor(client, "chatRoom", "dup").status_code == 200


@pytest.mark.parametrize(("key", "serialized"), [
    (["k1", "k,2", "k/3"], "k1/k,2/k\\/3"),
    (["back\\slash"], "back\\\\slash"),
    (["a", "", "b"], "a/\\0/b"),
    ([], "/"),
    (["only/slash/"], "only\\/slash\\/"),
])
def test_escaped_key_strings_round_trip(client, key, serialized):
    response = put_actor(client, "counter", serialized)
    assert response.status_code == 200, response.data
    record = response.get_json()["actor"]
    assert record["key"] == serialized
    listed = client.get(f"/actors?name=counter&key={quote(serialized, safe='')}&namespace=default").get_json()
    assert [item["actor_id"] for item in listed["actors"]] == [record["actor_id"]]
    assert [item["key"] for item in listed["actors"]] == [serialized]
    # The actor's key header is the same serialized string.
    answer = call(client, direct(record["actor_id"], "/action/getCount"), [])
    assert output(answer) == 0
    assert answer.headers["x-rivet-actor-key"] == serialized
    # The query form joins parts with unescaped commas and the engine splits on them, so it reaches the same actor
    # unless a part holds a comma (client-protocol.md §11.5).
    via_query = call(client, query("counter", "/action/getCount", key), [])
    assert output(via_query) == 0
    assert (via_query.headers["x-rivet-actor"] == record["actor_id"]) is not any("," in part for part in key)


def test_unknown_actor_name(client):
    engine_error(put_actor(client, "nope", "a"), 400, "actor", "not_registered")
    engine_error(post_actor(client, "nope", "a"), 400, "actor", "not_registered")
    assert client.get("/actors?name=nope&key=a&namespace=default").get_json()["actors"] == []
    engine_error(client.post(query("nope", "/action/x", ["a"]), data=b'{"args":[]}', headers=action_headers("json")),
                 400, "actor", "not_registered")
    assert_serving(client)


@pytest.mark.parametrize("body", [b"{not json", b"", b"[]", b'"counter"', b'{"key":"a"}', b'{"name":5}',
                                  b'{"name":"counter","key":5}', b'{"name":"counter","key":"a","input":"@@"}'])
@pytest.mark.parametrize("method", ["PUT", "POST"])
def test_invalid_actor_bodies_are_400(client, method, body):
    response = client.open("/actors?namespace=default", method=method, data=body,
                           headers={"content-type": "application/json"})
    assert response.status_code == 400, response.data
    assert response.headers["content-type"].startswith("application/json")
    error = response.get_json()
    assert error["code"] == "invalid_request" and error["group"] in ("api", "actor"), error
    assert_serving(client)


def test_key_over_the_segment_limit_is_400_invalid_key(client):
    engine_error(put_actor(client, "counter", "x" * 129), 400, "actor", "invalid_key")
    assert put_actor(client, "counter", "x" * 128).status_code == 200


def test_creation_input_is_standard_base64_cbor(client):
    text = base64.b64encode(cbor2.dumps({"start": 7})).decode()
    response = post_actor(client, "counter", "with-input", input=text)
    assert response.status_code == 200
    actor_id = response.get_json()["actor"]["actor_id"]
    assert output(call(client, direct(actor_id, "/action/getCount"), [])) == 7


def test_delete_then_lookups_find_nothing(client):
    actor_id = actor_id_of(client, "counter", "doomed")
    assert output(call(client, direct(actor_id, "/action/increment"), [3])) == 3
    deleted = client.delete(f"/actors/{actor_id}?namespace=default")
    assert deleted.status_code == 200
    assert deleted.headers["content-type"].startswith("application/json")
    assert client.get(f"/actors?actor_ids={actor_id}&namespace=default").get_json()["actors"] == []
    assert client.get("/actors?name=counter&key=doomed&namespace=default").get_json()["actors"] == []
    assert_error(call(client, direct(actor_id, "/action/getCount"), []), 404, "actor", "not_found")
    assert_error(client.get(direct(actor_id, "/health")), 404, "actor", "not_found")
    engine_error(client.delete(f"/actors/{actor_id}?namespace=default"), 404, "actor", "not_found")
    engine_error(client.delete("/actors/never-existed?namespace=default"), 404, "actor", "not_found")
    # The key is free again: a new actor with fresh state.
    recreated = put_actor(client, "counter", "doomed").get_json()
    assert recreated["created"] is True and recreated["actor"]["actor_id"] != actor_id
    assert output(call(client, direct(recreated["actor"]["actor_id"], "/action/getCount"), [])) == 0


# Gateway: query form and direct form (§1.4) --------------------------------------------------------------------

GATEWAY_QUERY_ERRORS = {
    "unknown rvt param": "?rvt-namespace=default&rvt-method=getOrCreate&rvt-foo=1",
    "unknown rvt param alone": "?rvt-foo=1",
    "duplicate rvt param": "?rvt-namespace=default&rvt-method=getOrCreate&rvt-key=a&rvt-key=b",
    "duplicate percent-encoded": "?rvt-namespace=default&rvt-method=getOrCreate&rvt-key=a&rvt%2Dkey=b",
    "duplicate method": "?rvt-method=get&rvt-method=get",
    "get with input": "?rvt-namespace=default&rvt-method=get&rvt-key=a&rvt-input=oA",
    "get with runner": "?rvt-namespace=default&rvt-method=get&rvt-key=a&rvt-runner=default",
    "get with crash policy": "?rvt-namespace=default&rvt-method=get&rvt-key=a&rvt-crash-policy=sleep",
    "bad method": "?rvt-namespace=default&rvt-method=create&rvt-key=a",
    "missing method": "?rvt-namespace=default&rvt-key=a",
    "input not base64": "?rvt-namespace=default&rvt-method=getOrCreate&rvt-key=a&rvt-input=%21%21%21",
    "input not cbor": "?rvt-namespace=default&rvt-method=getOrCreate&rvt-key=a&rvt-input=_w",
}


@pytest.mark.parametrize("raw_query", GATEWAY_QUERY_ERRORS.values(), ids=GATEWAY_QUERY_ERRORS.keys())
def test_bad_gateway_queries_are_400(client, raw_query):
    response = client.post("/gateway/counter/action/increment" + raw_query, data=b'{"args":[1]}',
                           headers=action_headers("json"))
    assert_error(response, 400, "actor", "invalid_request")
    assert client.get("/actors?name=counter&key=a&namespace=default").get_json()["actors"] == []
    assert_serving(client)


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_get_of_a_missing_actor_is_404_not_found(client, encoding):
    response = call(client, query("counter", "/action/increment", ["missing"], method="get"), [1], encoding)
    assert_error(response, 404, "actor", "not_found", encoding)
    # A get never creates.
    assert client.get("/actors?name=counter&key=missing&namespace=default").get_json()["actors"] == []
    assert_serving(client)


def test_get_finds_an_existing_actor(client):
    actor_id = actor_id_of(client, "counter", "present")
    response = call(client, query("counter", "/action/increment", ["present"], method="get"), [2])
    assert output(response) == 2
    assert response.headers["x-rivet-actor"] == actor_id


@pytest.mark.parametrize(("rvt_key", "key"), [
    ("a%2Cb", ["a", "b"]),
    ("k1%2Ck%2C2%2Ck%2F3", ["k1", "k", "2", "k/3"]),
    ("hello+world", ["hello world"]),
    ("", []),
])
def test_rvt_key_is_split_on_commas(client, rvt_key, key):
    raw_query = "?rvt-namespace=default&rvt-method=getOrCreate&rvt-runner=default&rvt-crash-policy=sleep"
    if rvt_key:
        raw_query += f"&rvt-key={rvt_key}"
    response = call(client, "/gateway/counter/action/increment" + raw_query, [1])
    assert output(response) == 1
    expected = "/" if not key else "/".join(part.replace("\\", "\\\\").replace("/", "\\/") for part in key)
    assert unquote(response.headers["x-rivet-actor-key"]) == expected  # percent-encoded in the header
    listed = client.get(f"/actors?name=counter&key={quote(expected, safe='')}&namespace=default").get_json()
    assert [item["actor_id"] for item in listed["actors"]] == [response.headers["x-rivet-actor"]]


def test_rvt_key_with_non_ascii_parts_matches_the_api_key(client):
    key = ["ü", "日本", "a b"]
    response = call(client, query("counter", "/action/increment", key), [1])
    assert output(response) == 1
    assert response.headers["x-rivet-actor-key"] == "%C3%BC/%E6%97%A5%E6%9C%AC/a%20b"  # UTF-8, percent-encoded
    record = put_actor(client, "counter", "ü/日本/a b").get_json()
    assert record["created"] is False and record["actor"]["actor_id"] == response.headers["x-rivet-actor"]


def test_rvt_key_segments_over_the_limit_are_400_invalid_key(client):
    # The same limit as PUT /actors (128 bytes a segment, core.md §7.1): the query form must not create an actor
    # whose key the engine API refuses.
    response = call(client, query("counter", "/action/increment", ["x" * 129]), [1])
    assert_error(response, 400, "actor", "invalid_key")
    assert client.get("/actors?name=counter&namespace=default").get_json()["actors"] == []
    assert output(call(client, query("counter", "/action/increment", ["x" * 128]), [1])) == 1


def test_rvt_input_is_base64url_cbor_used_on_creation_only(client):
    first_input = base64.urlsafe_b64encode(cbor2.dumps({"start": 10, "n": 62})).rstrip(b"=").decode()
    assert "-" in first_input or "_" in first_input  # exercises the URL-safe alphabet
    url = query("counter", "/action/increment", ["seeded"], extra=f"&rvt-input={first_input}")
    assert output(call(client, url, [1])) == 11
    second_input = base64.urlsafe_b64encode(cbor2.dumps({"start": 100})).rstrip(b"=").decode()
    url = query("counter", "/action/increment", ["seeded"], extra=f"&rvt-input={second_input}")
    assert output(call(client, url, [1])) == 12
    # The JSON-compat wrappers of the CBOR-compat encoding are revived (§7.1).
    wrapped = base64.urlsafe_b64encode(cbor2.dumps({"start": ["$BigInt", "5"]})).rstrip(b"=").decode()
    url = query("counter", "/action/getCount", ["wrapped"], extra=f"&rvt-input={wrapped}")
    assert output(call(client, url, [])) == 5


def test_actor_query_string_is_forwarded_without_rvt_params(client):
    url = query("rawServer", "/request/hello/world?x=1&y=two", ["q"])
    response = client.post(url, data=b"hi", headers={"x-custom": "1", "content-type": "text/plain"})
    assert response.status_code == 200
    assert response.get_json() == {"method": "POST", "path": "/hello/world", "query": "x=1&y=two", "body": "hi",
                                   "custom": "1"}


def test_direct_form_with_token(client):
    actor_id = actor_id_of(client, "counter", "direct")
    assert output(call(client, direct(actor_id, "/action/increment", token="tok123"), [4],
                       headers={"x-rivet-token": "tok123"})) == 4
    assert output(call(client, direct(actor_id, "/action/getCount", token="a b@c"), [])) == 4
    assert output(call(client, direct(actor_id, "/action/getCount"), [], "bare"), "bare") == 4


@pytest.mark.parametrize("path", ["/action/increment", "/queue/jobs", "/request/x", "/health", "/metadata", "/"])
def test_unknown_actor_id_is_404_not_found(client, path):
    if path in ("/health", "/metadata", "/"):
        response = client.get(direct("no-such-actor", path))
    else:
        response = client.post(direct("no-such-actor", path), data=b'{"args":[]}', headers=action_headers("json"))
    assert_error(response, 404, "actor", "not_found")
    assert_serving(client)


# The action route (§3, core.md §7.3) ---------------------------------------------------------------------------

@pytest.mark.parametrize("encoding", ENCODINGS)
def test_unknown_action_is_404_action_not_found(client, encoding):
    response = call(client, query("counter", "/action/nope", ["a"]), [1], encoding)
    error = assert_error(response, 404, "actor", "action_not_found", encoding)
    assert "nope" in error["message"]
    assert output(call(client, query("counter", "/action/increment", ["a"]), [1], encoding), encoding) == 1


@pytest.mark.parametrize("name", ODD_ACTION_NAMES)
def test_action_names_are_percent_decoded_exactly_once(client, name):
    # The client sends /action/{encodeURIComponent(name)}; the actor must run exactly the action called `name`.
    url = query("oddNames", f"/action/{quote(name, safe='')}", ["odd"])
    assert output(call(client, url, [])) == name


def test_queue_names_are_percent_decoded_exactly_once(client):
    url = query("oddNames", f"/queue/{quote('q%41', safe='')}", ["odd-queue"])
    body = protocol.encode_queue_send_request("json", protocol.QueueSendRequest("q%41", {"n": 1}))
    response = client.post(url, data=body, headers=action_headers("json"))
    assert response.status_code == 200, response.data
    assert output(call(client, query("oddNames", "/action/queued", ["odd-queue"]), [])) == ["q%41"]


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
def test_other_methods_on_the_action_route_are_405(client, method):
    response = client.open(query("counter", "/action/increment", ["a"]), method=method,
                           headers=action_headers("json"))
    assert_error(response, 405, "actor", "method_not_allowed")
    assert output(call(client, query("counter", "/action/getCount", ["a"]), [])) == 0


MALFORMED_BODIES = {
    "json: not json": ("json", b"{not json"),
    "json: not a map": ("json", b"[1, 2]"),
    "json: unknown wrapper": ("json", b'{"args":[["$Nope", 1]]}'),
    "json: not utf-8": ("json", b'{"args":["\xff"]}'),
    "bare: empty": ("bare", b""),
    "bare: truncated": ("bare", bytes.fromhex("0400 05 81")),
    "bare: version only": ("bare", bytes.fromhex("0400")),
    "bare: wrong version": ("bare", bytes.fromhex("0900 02 8105")),
    "bare: version zero": ("bare", bytes.fromhex("0000 02 8105")),
    "bare: trailing bytes": ("bare", bytes.fromhex("0400 02 8105 00")),
    "bare: garbage cbor in data": ("bare", bytes.fromhex("0400 02 ffff")),
    "cbor: garbage": ("cbor", bytes.fromhex("ffffff")),
    "cbor: truncated": ("cbor", bytes.fromhex("a1 64 61726773 82 01")),
    "cbor: not a map": ("cbor", bytes.fromhex("8105")),
    "cbor: empty": ("cbor", b""),
}


@pytest.mark.parametrize(("encoding", "body"), MALFORMED_BODIES.values(), ids=MALFORMED_BODIES.keys())
def test_malformed_action_bodies_are_400_invalid_request(client, encoding, body):
    url = query("counter", "/action/increment", ["malformed"])
    response = client.post(url, data=body, headers=action_headers(encoding))
    assert_error(response, 400, "actor", "invalid_request", encoding)
    assert output(call(client, url, [1], encoding), encoding) == 1
    assert output(call(client, url, [1], encoding), encoding) == 2


@pytest.mark.parametrize(("encoding", "body"), [
    ("json", b"{nope"), ("bare", bytes.fromhex("0400 05")), ("bare", bytes.fromhex("0200 02 a0 00 00 00")),
    ("cbor", b"\xff"),
])
def test_malformed_queue_bodies_are_400_invalid_request(client, encoding, body):
    url = query("worker", "/queue/jobs", ["malformed"])
    assert_error(client.post(url, data=body, headers=action_headers(encoding)), 400, "actor", "invalid_request",
                 encoding)
    assert output(call(client, query("worker", "/action/processed", ["malformed"]), [])) == []


@pytest.mark.parametrize("encoding", ["xml", "", "JSON", "bare "])
def test_unknown_encoding_is_400(client, encoding):
    url = query("counter", "/action/increment", ["enc"])
    response = client.post(url, data=b'{"args":[1]}', headers={"x-rivet-encoding": encoding})
    error = assert_error(response, 400, "protocol", "unsupported_encoding")
    assert error["metadata"] == {"encoding": encoding}
    assert output(call(client, url, [1])) == 1


def test_default_encoding_is_json(client):
    response = client.post(query("counter", "/action/increment", ["default-enc"]), data=b'{"args":[5]}')
    assert response.headers["content-type"].startswith("application/json")
    assert response.get_json() == {"output": 5}


def padded_json_body(size: int) -> bytes:
    """``{"args":["xx…"]}`` of exactly ``size`` bytes."""
    body = b'{"args":["' + b"x" * (size - 13) + b'"]}'
    assert len(body) == size
    return body


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_body_over_64_kib_is_400_incoming_too_long(client, encoding):
    url = query("bulky", "/action/size_of", ["big-in"])
    body = protocol.encode_action_request(encoding, ["x" * (64 * KIB)])
    assert len(body) > 64 * KIB
    response = client.post(url, data=body, headers=action_headers(encoding))
    assert_error(response, 400, "message", "incoming_too_long", encoding)
    assert output(call(client, url, ["abc"], encoding), encoding) == 3


def test_the_incoming_limit_is_inclusive(client):
    url = query("bulky", "/action/size_of", ["limit-edge"])
    assert output(client.post(url, data=padded_json_body(64 * KIB), headers=action_headers("json"))) == 64 * KIB - 13
    response = client.post(url, data=padded_json_body(64 * KIB + 1), headers=action_headers("json"))
    assert_error(response, 400, "message", "incoming_too_long")


def test_max_incoming_message_size_option_is_honoured(client):
    url = query("limited", "/action/length", ["small"])
    assert output(client.post(url, data=padded_json_body(1 * KIB), headers=action_headers("json"))) == 1 * KIB - 13
    assert_error(client.post(url, data=padded_json_body(1 * KIB + 1), headers=action_headers("json")),
                 400, "message", "incoming_too_long")
    # The option is per actor: another actor still takes the default 64 KiB.
    assert output(call(client, query("bulky", "/action/size_of", ["other"]), ["x" * 2000])) == 2000


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_response_over_1_mib_is_400_outgoing_too_long(client, encoding):
    url = query("bulky", "/action/make", ["big-out"])
    assert_error(call(client, url, [MIB], encoding), 400, "message", "outgoing_too_long", encoding)
    assert output(call(client, url, [MIB - 100], encoding), encoding) == "x" * (MIB - 100)
    assert output(call(client, url, [3], encoding), encoding) == "xxx"


def test_max_outgoing_message_size_option_is_honoured(client):
    url = query("limited", "/action/produce", ["small-out"])
    assert_error(call(client, url, [2 * KIB]), 400, "message", "outgoing_too_long")
    assert output(call(client, url, [KIB])) == "y" * KIB


@pytest.mark.parametrize("params", ["{not json", "{'user': 'bob'}", "[1,"])
def test_invalid_conn_params_header_is_400(client, params):
    url = query("chatRoom", "/action/whoamiHttp", ["params"])
    assert_error(call(client, url, [], headers={"x-rivet-conn-params": params}), 400, "actor", "invalid_request")
    assert output(call(client, url, [], headers={"x-rivet-conn-params": '{"user":"bob"}'})) == {"user": "bob"}
    assert output(call(client, url, [])) is None


def test_on_before_connect_refusal_over_http(client):
    url = query("chatRoom", "/action/whoamiHttp", ["http-refuse"])
    error = assert_error(call(client, url, [], headers={"x-rivet-conn-params": '{"nobody":true}'}), 500, "user",
                         "missing_user")
    assert error["message"] == "A user name is required."
    assert output(call(client, url, [], headers={"x-rivet-conn-params": '{"user":"amy"}'})) == {"user": "amy"}


@pytest.mark.parametrize(("body", "expected"), [
    (b'{"args":[2]}', [2]), (b'{"args":2}', [2]), (b'{"args":null}', []), (b"{}", []),
    (b'{"args":["a","b"]}', ["a", "b"]), (b'{"args":[["$$x",1]]}', [["$x", 1]]),
])
def test_json_action_arguments(client, body, expected):
    response = client.post(query("counter", "/action/echo", ["args"]), data=body, headers=action_headers("json"))
    assert output(response) == expected


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_internal_errors_are_masked(client, encoding, monkeypatch):
    monkeypatch.delenv("RIVET_EXPOSE_ERRORS", raising=False)
    response = call(client, query("counter", "/action/crash", ["crash"]), [], encoding)
    error = assert_error(response, 500, "core", "internal_error", encoding)
    assert error["message"] == INTERNAL_MESSAGE
    assert "metadata" not in error
    assert b"secret internal detail" not in response.data
    assert b"RuntimeError" not in response.data
    assert output(call(client, query("counter", "/action/increment", ["crash"]), [1], encoding), encoding) == 1


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_user_errors_keep_message_and_metadata(client, encoding):
    metadata = {"field": "name", "limit": 3, "nested": [1, "two"]}
    response = call(client, query("counter", "/action/fail", ["fail"]), ["Name too long.", "too_long", metadata],
                    encoding)
    # Framework routes answer user/* with 500 (core.md §5.3); the client only looks at response.ok.
    error = assert_error(response, 500, "user", "too_long", encoding)
    assert error["message"] == "Name too long."
    assert error["metadata"] == metadata


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_action_responses_carry_actor_headers(client, encoding):
    record = put_actor(client, "counter", "hdr/a\\/b").get_json()["actor"]
    response = call(client, direct(record["actor_id"], "/action/increment"), [1], encoding)
    assert output(response, encoding) == 1
    assert response.headers["content-type"] == protocol.content_type(encoding)
    assert response.headers["x-rivet-actor"] == record["actor_id"]
    assert response.headers["x-rivet-actor-key"] == "hdr/a\\/b"
    generation = response.headers["x-rivet-actor-generation"]
    assert generation.isdigit()
    # Errors raised by the actor carry them too, and the generation is stable while the actor is awake.
    failed = call(client, direct(record["actor_id"], "/action/nope"), [], encoding)
    assert failed.status_code == 404
    assert failed.headers["x-rivet-actor"] == record["actor_id"]
    assert failed.headers["x-rivet-actor-generation"] == generation


def test_actor_headers_on_the_query_form(client):
    response = call(client, query("counter", "/action/increment", ["q", "r/s"]), [1])
    assert response.headers["x-rivet-actor-key"] == "q/r\\/s"
    assert client.get(f"/actors?actor_ids={response.headers['x-rivet-actor']}").get_json()["actors"][0]["key"] == \
        "q/r\\/s"


@pytest.mark.parametrize("path", ["/nope", "/actions/increment", "/metrics-nope", "/inspector-x", "/health/extra"])
def test_unknown_actor_route_is_404(client, path):
    actor_id = actor_id_of(client, "counter", "routes")
    error = assert_error(client.get(direct(actor_id, path)), 404, "actor", "not_found")
    assert error.get("metadata") == {"resource": "route"}
    assert_error(client.get(query("counter", path, ["routes"])), 404, "actor", "not_found")
    assert_serving(client)


def test_health_metadata_and_banner_per_actor(client):
    actor_id = actor_id_of(client, "counter", "info")
    health = client.get(direct(actor_id, "/health"))
    assert health.status_code == 200 and health.data == b"ok"
    assert health.headers["content-type"].startswith("text/plain")
    metadata = client.get(direct(actor_id, "/metadata"))
    assert metadata.status_code == 200
    assert metadata.headers["content-type"].startswith("application/json")
    body = metadata.get_json()
    assert body["runtime"] == "rivetkit" and isinstance(body["version"], str)
    assert body["type"] in ("local", "deployed")
    banner = client.get(direct(actor_id, "/"))
    assert banner.status_code == 200 and banner.data
    assert client.get(f"/gateway/{actor_id}").status_code == 200
    assert client.get(query("counter", "/health", ["info"])).data == b"ok"
    for path in ("/health", "/metadata", "/"):
        assert_error(client.post(direct(actor_id, path)), 405, "actor", "method_not_allowed")


def test_raw_request_is_exempt_from_the_message_limit(client):
    body = os.urandom(MIB)
    response = client.post(query("rawEcho", "/request/upload?size=big", ["raw"]), data=body,
                           headers={"content-type": "application/octet-stream"})
    assert response.status_code == 200
    assert response.headers["x-echo-path"] == "/upload"
    assert response.data == body
    # Also for an actor whose own limit is small, and for the bare /request path.
    assert client.put(query("rawEcho", "/request", ["raw"]), data=b"z" * (100 * KIB)).data == b"z" * (100 * KIB)


def test_raw_request_handler_errors_are_masked(client, monkeypatch):
    monkeypatch.delenv("RIVET_EXPOSE_ERRORS", raising=False)
    response = client.get(query("rawEcho", "/request/boom", ["raw-boom"]))
    error = assert_error(response, 500, "core", "internal_error")
    assert error["message"] == INTERNAL_MESSAGE and "metadata" not in error
    assert b"secret raw detail" not in response.data
    assert client.post(query("rawEcho", "/request/ok", ["raw-boom"]), data=b"fine").data == b"fine"


def test_raw_request_without_handler_is_404(client):
    response = client.get(query("counter", "/request/anything", ["no-raw"]))
    assert response.status_code == 404
    assert_serving(client)


# A live server: real sockets, chunked bodies, WebSocket ---------------------------------------------------------

class HttpReply:
    def __init__(self, status: int, headers: dict[str, str], data: bytes) -> None:
        self.status_code = status
        self.headers = headers
        self.data = data

    def get_json(self) -> Any:
        return json.loads(self.data)


def http(port: int, method: str, target: str, body: bytes = b"", headers: dict[str, str] | None = None,
         chunked: bool = False) -> HttpReply:
    """One HTTP/1.1 exchange over a gevent socket (``Connection: close``; the body optionally chunked, as the
    official client sends action bodies)."""
    lines = [f"{method} {target} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    if chunked:
        lines.append("Transfer-Encoding: chunked")
        payload = b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in _pieces(body, 16 * KIB)) + b"0\r\n\r\n"
    else:
        lines.append(f"Content-Length: {len(body)}")
        payload = body
    sock = gevent.socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    try:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + payload)
        received = bytearray()
        while chunk := sock.recv(256 * KIB):
            received += chunk
    finally:
        sock.close()
    head, _, data = bytes(received).partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    reply_headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        reply_headers[name.strip().lower()] = value.strip()
    if reply_headers.get("transfer-encoding", "").lower() == "chunked":
        data = _dechunk(data)
    return HttpReply(int(status_line.split()[1]), reply_headers, data)


def _pieces(data: bytes, size: int) -> list[bytes]:
    return [data[index:index + size] for index in range(0, len(data), size)] or []


def _dechunk(data: bytes) -> bytes:
    out = bytearray()
    while True:
        size_line, _, rest = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            return bytes(out)
        out += rest[:size]
        data = rest[size + 2:]


class WsClient:
    """A minimal WebSocket client: wsproto over a gevent socket, no extensions."""

    def __init__(self, port: int, target: str, subprotocols: list[str]) -> None:
        self.sock = gevent.socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
        self.ws = WSConnection(ConnectionType.CLIENT)
        self.events: deque[Any] = deque()
        self.close_event: CloseConnection | None = None
        self._send(self.ws.send(Request(host=f"127.0.0.1:{port}", target=target, subprotocols=subprotocols)))
        handshake = self._next_event()
        if isinstance(handshake, RejectConnection):
            body = b""
            while handshake.has_body:
                event = self._next_event()
                assert isinstance(event, RejectData)
                body += event.data
                if event.body_finished:
                    break
            raise AssertionError(f"upgrade refused: {handshake.status_code} {body[:300]!r}")
        assert isinstance(handshake, AcceptConnection), handshake
        self.subprotocol = handshake.subprotocol

    def _send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _next_event(self) -> Any:
        while not self.events:
            try:
                data = self.sock.recv(1 * MIB)
            except TimeoutError:
                raise AssertionError(f"nothing from the server for {TIMEOUT} s (a message cut short?)") from None
            if not data:
                raise ConnectionError("the server dropped the connection without a close frame")
            self.ws.receive_data(data)
            self.events.extend(self.ws.events())
        return self.events.popleft()

    def send(self, message: str | bytes) -> None:
        event = TextMessage(data=message) if isinstance(message, str) else BytesMessage(data=message)
        self._send(self.ws.send(event))

    def receive(self) -> str | bytes | CloseConnection:
        """The next whole message, or the server's CloseConnection (answered) once the socket closes."""
        parts: list[Any] = []
        while True:
            event = self._next_event()
            if isinstance(event, Ping):
                self._send(self.ws.send(event.response()))
            elif isinstance(event, CloseConnection):
                if self.ws.state is ConnectionState.REMOTE_CLOSING:
                    self._send(self.ws.send(event.response()))
                self.close_event = event
                return event
            elif isinstance(event, (TextMessage, BytesMessage)):
                parts.append(event.data)
                if event.message_finished:
                    return "".join(parts) if isinstance(event, TextMessage) else b"".join(parts)

    def receive_message(self) -> str | bytes:
        message = self.receive()
        assert not isinstance(message, CloseConnection), (message.code, message.reason)
        return message

    def expect_close(self, keep_socket: bool = False) -> tuple[int, str, list[str | bytes]]:
        """Read until the server closes (answering its close frame); returns (code, reason, the messages that came
        before). The TCP socket is dropped unless ``keep_socket``."""
        messages: list[str | bytes] = []
        for _ in range(100):
            message = self.receive()
            if isinstance(message, CloseConnection):
                if not keep_socket:
                    self.sock.close()
                return message.code, message.reason, messages
            messages.append(message)
        raise AssertionError(f"the server did not close; got {messages[:3]!r}…")

    def bytes_until_eof(self, timeout: float) -> bytes:
        """After the close handshake: whatever else the server sends before it closes the TCP connection."""
        self.sock.settimeout(timeout)
        rest = bytearray()
        try:
            while chunk := self.sock.recv(64 * KIB):
                rest += chunk
        except TimeoutError:
            raise AssertionError(f"the server kept the TCP connection open {timeout} s after the WebSocket close "
                                 f"handshake (received {bytes(rest[:80])!r})") from None
        finally:
            self.sock.close()
        return bytes(rest)

    def close(self) -> None:
        if self.ws.state is ConnectionState.OPEN:
            self._send(self.ws.send(CloseConnection(code=1000, reason="Disposed")))
            try:
                for _ in range(100):
                    if isinstance(self.receive(), CloseConnection):
                        break
            except (AssertionError, ConnectionError, OSError):
                pass  # the test has already failed or finished; do not wait twice
        self.sock.close()


def connect(port: int, path: str, encoding: str | None = "bare", extra: list[str] | None = None) -> WsClient:
    protocols = ["rivet"] + ([f"rivet_encoding.{encoding}"] if encoding is not None else []) + (extra or [])
    return WsClient(port, path, protocols)


def assert_live_serving(port: int) -> None:
    """The live host still answers HTTP (a chunked bare action, as the official client sends it) and /connect."""
    reply = http(port, "GET", "/metadata?namespace=default")
    assert reply.status_code == 200 and reply.get_json()["runtime"] == "rivetkit"
    url = query("counter", "/action/increment", ["live"])
    reply = http(port, "POST", url, bytes.fromhex("0400 02 8105"), action_headers("bare"), chunked=True)
    assert reply.status_code == 200, reply.data
    before = protocol.decode_action_response("bare", reply.data)
    ws = connect(port, query("counter", "/connect", ["live"]))
    try:
        assert isinstance(protocol.decode_to_client("bare", ws.receive_message()), protocol.Init)
        ws.send(protocol.encode_to_server("bare", protocol.ActionRequest(0, "increment", [1])))
        assert protocol.decode_to_client("bare", ws.receive_message()) == protocol.ActionResponse(0, before + 1)
    finally:
        ws.close()


def test_live_server_takes_chunked_bodies_and_survives_bad_http(port):
    url = query("counter", "/action/increment", ["chunky"])
    # The exact bytes of client-protocol.md §8 step 2, chunked.
    reply = http(port, "POST", url, bytes.fromhex("0400 02 8105"), action_headers("bare"), chunked=True)
    assert reply.status_code == 200
    assert reply.headers["content-type"] == "application/octet-stream"
    assert reply.data == bytes.fromhex("0400 01 05")
    bad = [
        ("POST", "/gateway/counter/action/increment?rvt-foo=1", b"{}", "json", 400),
        ("POST", url, b"{not json", "json", 400),
        ("POST", url, bytes.fromhex("0400 05 81"), "bare", 400),
        ("POST", url, padded_json_body(64 * KIB + 1), "json", 400),
        ("GET", url, b"", "json", 405),
        ("POST", query("counter", "/action/nope", ["chunky"]), b'{"args":[]}', "json", 404),
        ("POST", query("counter", "/action/crash", ["chunky"]), b'{"args":[]}', "json", 500),
    ]
    for method, target, body, encoding, status in bad:
        for chunked in (False, True):
            reply = http(port, method, target, body, action_headers(encoding), chunked=chunked)
            assert reply.status_code == status, (target, reply.data[:300])
            assert client_error(reply, encoding)["group"]
    # A big raw body, chunked, through the real server.
    body = os.urandom(2 * MIB)
    reply = http(port, "POST", query("rawEcho", "/request/big", ["live"]), body, chunked=True)
    assert reply.status_code == 200 and reply.data == body
    # A request the WSGI server cannot parse gets an error, not a dead server.
    sock = gevent.socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    try:
        sock.sendall(b"NONSENSE\r\n\r\n")
        assert sock.recv(1024).startswith(b"HTTP/1.1 4")
    finally:
        sock.close()
    assert_live_serving(port)


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_connect_echoes_the_rivet_subprotocol_and_speaks_the_protocol(port, encoding):
    ws = connect(port, query("counter", "/connect", ["ws"]), encoding)
    try:
        assert ws.subprotocol == "rivet"
        init = protocol.decode_to_client(encoding, ws.receive_message())
        assert isinstance(init, protocol.Init) and init.actor_id and init.connection_id
        ws.send(protocol.encode_to_server(encoding, protocol.ActionRequest(7, "increment", [2])))
        assert protocol.decode_to_client(encoding, ws.receive_message()) == protocol.ActionResponse(7, 2)
        ws.send(protocol.encode_to_server(encoding, protocol.ActionRequest(8, "nope", [])))
        error = protocol.decode_to_client(encoding, ws.receive_message())
        assert isinstance(error, protocol.ErrorMessage)
        assert (error.group, error.code, error.action_id) == ("actor", "action_not_found", 8)
    finally:
        ws.close()
    assert_live_serving(port)


def test_connect_without_an_encoding_defaults_to_json(port):
    ws = connect(port, query("counter", "/connect", ["ws-default"]), encoding=None)
    try:
        assert ws.subprotocol == "rivet"
        frame = ws.receive_message()
        assert isinstance(frame, str)
        assert isinstance(protocol.decode_to_client("json", frame), protocol.Init)
    finally:
        ws.close()


@pytest.mark.parametrize("encoding", ["xml", "BARE", "msgpack"])
def test_unknown_websocket_encoding_closes_1003(port, encoding):
    ws = connect(port, query("counter", "/connect", ["ws-enc"]), encoding)
    assert ws.subprotocol == "rivet"
    assert ws.expect_close() == (1003, "actor.unsupported_websocket_encoding", [])
    assert_live_serving(port)


UNDECODABLE_FRAMES = {
    "bare: garbage": ("bare", b"\xff\xff\xff"),
    "bare: unknown tag": ("bare", bytes.fromhex("0400 09")),
    "bare: wrong version": ("bare", bytes.fromhex("0900 01 01 61 01")),
    "bare: truncated": ("bare", bytes.fromhex("0400 00 00 09 696e63")),
    "bare: text frame": ("bare", "hello"),
    "json: not json": ("json", "{nope"),
    "json: no body": ("json", '{"tag":"ActionRequest"}'),
    "json: unknown tag": ("json", '{"body":{"tag":"Nope","val":{}}}'),
    "json: bad id": ("json", '{"body":{"tag":"ActionRequest","val":{"id":-1,"name":"x","args":[]}}}'),
    "cbor: garbage": ("cbor", b"\xff\xff"),
    "cbor: text frame": ("cbor", "hello"),
}


@pytest.mark.parametrize(("encoding", "frame"), UNDECODABLE_FRAMES.values(), ids=UNDECODABLE_FRAMES.keys())
def test_undecodable_frame_closes_1011_invalid_request(port, encoding, frame):
    ws = connect(port, query("counter", "/connect", ["ws-bad"]), encoding)
    assert isinstance(protocol.decode_to_client(encoding, ws.receive_message()), protocol.Init)
    ws.send(frame)
    assert ws.expect_close() == (1011, "actor.invalid_request", [])
    assert_live_serving(port)


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_oversize_frame_closes_1011_incoming_too_long(port, encoding):
    ws = connect(port, query("bulky", "/connect", ["ws-big"]), encoding)
    assert isinstance(protocol.decode_to_client(encoding, ws.receive_message()), protocol.Init)
    frame = protocol.encode_to_server(encoding, protocol.ActionRequest(0, "size_of", ["x" * (64 * KIB)]))
    assert len(frame) > 64 * KIB
    ws.send(frame)
    assert ws.expect_close() == (1011, "message.incoming_too_long", [])
    assert_live_serving(port)


def test_oversize_frame_honours_the_actor_option(port):
    ws = connect(port, query("limited", "/connect", ["ws-small"]))
    try:
        assert isinstance(protocol.decode_to_client("bare", ws.receive_message()), protocol.Init)
        ws.send(protocol.encode_to_server("bare", protocol.ActionRequest(0, "length", ["x" * 500])))
        assert protocol.decode_to_client("bare", ws.receive_message()) == protocol.ActionResponse(0, 500)
        ws.send(protocol.encode_to_server("bare", protocol.ActionRequest(1, "length", ["x" * (2 * KIB)])))
        assert ws.expect_close() == (1011, "message.incoming_too_long", [])
    finally:
        ws.close()
    assert_live_serving(port)


def test_oversize_websocket_response_is_an_error_for_that_action(port):
    ws = connect(port, query("limited", "/connect", ["ws-out"]))
    try:
        assert isinstance(protocol.decode_to_client("bare", ws.receive_message()), protocol.Init)
        ws.send(protocol.encode_to_server("bare", protocol.ActionRequest(3, "produce", [4 * KIB])))
        error = protocol.decode_to_client("bare", ws.receive_message())
        assert isinstance(error, protocol.ErrorMessage)
        assert (error.group, error.code, error.action_id) == ("message", "outgoing_too_long", 3)
        ws.send(protocol.encode_to_server("bare", protocol.ActionRequest(4, "produce", [3])))
        assert protocol.decode_to_client("bare", ws.receive_message()) == protocol.ActionResponse(4, "yyy")
    finally:
        ws.close()


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_on_before_connect_refusal_sends_an_error_then_closes(port, encoding):
    params = "rivet_conn_params." + quote(json.dumps({"nobody": True}), safe="")
    ws = connect(port, query("chatRoom", "/connect", ["refuse"]), encoding, [params])
    assert ws.subprotocol == "rivet"
    code, reason, messages = ws.expect_close()
    assert (code, reason) == (1011, "user.missing_user")
    assert len(messages) == 1
    error = protocol.decode_to_client(encoding, messages[0])
    assert isinstance(error, protocol.ErrorMessage)
    assert (error.group, error.code, error.message) == ("user", "missing_user", "A user name is required.")
    assert error.action_id is None
    # Good params still connect.
    good = "rivet_conn_params." + quote(json.dumps({"user": "bob"}), safe="")
    ws = connect(port, query("chatRoom", "/connect", ["refuse"]), encoding, [good])
    try:
        assert isinstance(protocol.decode_to_client(encoding, ws.receive_message()), protocol.Init)
        ws.send(protocol.encode_to_server(encoding, protocol.ActionRequest(0, "whoami", [])))
        assert protocol.decode_to_client(encoding, ws.receive_message()) == protocol.ActionResponse(0, "bob")
    finally:
        ws.close()
    assert_live_serving(port)


def test_invalid_subprotocol_conn_params_send_an_error_then_close(port):
    ws = connect(port, query("chatRoom", "/connect", ["bad-params"]), "json", ["rivet_conn_params.%7Bnope"])
    code, reason, messages = ws.expect_close()
    assert (code, reason) == (1011, "actor.invalid_request")
    assert [protocol.decode_to_client("json", message).code for message in messages] == ["invalid_request"]
    assert_live_serving(port)


def test_websocket_to_a_missing_actor_closes_with_a_reason(port):
    ws = connect(port, query("counter", "/connect", ["ws-missing"], method="get"))
    assert ws.subprotocol == "rivet"
    assert ws.expect_close() == (1011, "actor.not_found", [])
    ws = connect(port, direct("no-such-actor", "/connect"))
    assert ws.subprotocol == "rivet"
    code, reason, messages = ws.expect_close()
    assert (code, reason) == (1011, "actor.not_found")
    ws = connect(port, "/gateway/counter/connect?rvt-foo=1")
    assert ws.expect_close() == (1011, "actor.invalid_request", [])
    ws = connect(port, query("counter", "/websocket/x", ["no-raw-ws"]))  # no on_websocket handler
    assert ws.subprotocol == "rivet"
    code, reason, _ = ws.expect_close()
    assert (code, reason) == (1011, "actor.not_found")
    assert_live_serving(port)


def test_websocket_to_an_unknown_actor_route_closes(port):
    ws = connect(port, query("counter", "/nope", ["ws-route"]))
    assert ws.subprotocol == "rivet"
    code, reason, _ = ws.expect_close()
    assert (code, reason) == (1011, "actor.not_found")
    assert_live_serving(port)


def test_raw_websocket_echoes_rivet_and_carries_messages_over_8_mib_whole(port):
    ws = connect(port, query("rawServer", "/websocket/chat/room?y=2", ["big"]))
    try:
        assert ws.subprotocol == "rivet"
        ws.send("hi")
        assert ws.receive_message() == "echo:hi"
        payload = os.urandom(8 * MIB + 17)
        ws.send(payload)
        echoed = ws.receive_message()
        assert isinstance(echoed, bytes)
        assert len(echoed) == len(payload)
        assert echoed == payload
        text = "ü" * (4 * MIB + 3)  # 8 MiB + 6 bytes of UTF-8
        ws.send(text)
        assert ws.receive_message() == "echo:" + text
        ws.send("still there?")
        assert ws.receive_message() == "echo:still there?"
    finally:
        ws.close()
    assert_live_serving(port)


def masked_frame(opcode: int, payload: bytes) -> bytes:
    """A single client frame built by hand (wsproto will not send invalid UTF-8 in a text frame)."""
    mask = os.urandom(4)
    assert len(payload) < 126
    return bytes([0x80 | opcode, 0x80 | len(payload)]) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def test_raw_websocket_text_that_is_not_utf8_closes_1007(port):
    ws = connect(port, query("rawServer", "/websocket/", ["utf8"]))
    ws.send("fine")
    assert ws.receive_message() == "echo:fine"
    ws._send(masked_frame(0x1, b"\xff\xfe"))
    assert ws.expect_close()[:2] == (1007, "message.invalid_utf8")  # core.md §7.4
    assert_live_serving(port)


CLOSE_WAIT = 5.0  # seconds a correct server may take to drop the TCP connection after the close handshake


def _client_closes_connect(port: int) -> WsClient:
    ws = connect(port, query("counter", "/connect", ["tcp"]))
    assert isinstance(protocol.decode_to_client("bare", ws.receive_message()), protocol.Init)
    ws._send(ws.ws.send(CloseConnection(code=1000, reason="Disposed")))
    assert ws.expect_close(keep_socket=True)[0] == 1000
    return ws


def _server_refuses_encoding(port: int) -> WsClient:
    ws = connect(port, query("counter", "/connect", ["tcp"]), "xml")
    assert ws.expect_close(keep_socket=True)[0] == 1003
    return ws


def _server_closes_on_bad_frame(port: int) -> WsClient:
    ws = connect(port, query("counter", "/connect", ["tcp"]))
    assert isinstance(protocol.decode_to_client("bare", ws.receive_message()), protocol.Init)
    ws.send(b"\xff")
    assert ws.expect_close(keep_socket=True)[:2] == (1011, "actor.invalid_request")
    return ws


def _client_closes_raw(port: int) -> WsClient:
    ws = connect(port, query("rawServer", "/websocket/", ["tcp"]))
    ws._send(ws.ws.send(CloseConnection(code=1000, reason="bye")))
    assert ws.expect_close(keep_socket=True)[0] == 1000
    return ws


@pytest.mark.parametrize("scenario", [_client_closes_connect, _server_refuses_encoding, _server_closes_on_bad_frame,
                                      _client_closes_raw], ids=lambda scenario: scenario.__name__.strip("_"))
def test_server_drops_the_tcp_connection_after_the_close_handshake(port, scenario):
    # RFC 6455 §5.5.1 / §7.1.1: once both close frames have been exchanged the server MUST close the TCP
    # connection, and nothing else (say, an HTTP response) may follow on it.
    ws = scenario(port)
    assert ws.bytes_until_eof(CLOSE_WAIT) == b""
    assert_live_serving(port)
