"""Regression tests for bad input found by fuzzing (issue 7, item 3): each was a 500, Flask's HTML error page or a
1011 close before. Now every one is a 4xx in the spec's error shape, in the request's encoding, and the limits of
``rivetgreen.encoding.untrusted`` (nesting depth, integer size, valid Unicode, map keys) hold at every decoder and at
storage. Unicode keys work through the live server, the Python client and (tests/compat) the official client.
"""

from __future__ import annotations

import base64
import importlib.metadata
import json
import math
from typing import Any
from urllib.parse import quote, unquote

import cbor2
import pytest
from flask import Flask

from rivetgreen import RivetError, UserError, actor, setup
from rivetgreen.client import Client
from rivetgreen.encoding import client_protocol as protocol
from rivetgreen.encoding.actor_key import key_header, serialize_key
from rivetgreen.encoding.bare import BareWriter
from rivetgreen.encoding.cbor import decode_wire, encode, encode_wire
from rivetgreen.encoding.untrusted import MAX_INTEGER_BITS, MAX_NESTING
from rivetgreen.errors import INTERNAL_MESSAGE
from rivetgreen.server.extension import init_app
from tests.compat.actors import ACTORS
from tests.test_server import (
    action_headers,
    assert_error,
    assert_live_serving,
    call,
    connect,
    engine_error,
    http,
    output,
    put_actor,
    query,
)

ENCODINGS = protocol.ENCODINGS
LARGEST = (1 << MAX_INTEGER_BITS) - 1  # the largest integer every encoding and storage carry
UNICODE_KEYS = [["日本"], ["😀"], ["ü", "a b", "100%", "x/y"]]

vault = actor("vault", state={"value": None})


@vault.action
def keep(c, value):
    c.state["value"] = value
    return True


@vault.action
def kept(c):
    return c.state["value"]


@vault.action("keepComputed")
def keep_computed(c, kind):
    """Under ``state["value"]``: a value one level deep already, so "deepest" makes the state MAX_NESTING deep."""
    values = {"huge": 1 << (MAX_INTEGER_BITS + 1), "deep": nested(MAX_NESTING), "deepest": nested(MAX_NESTING - 1)}
    c.state["value"] = values[kind]


@vault.action
def unsendable(c, kind):
    return {"huge": 1 << (MAX_INTEGER_BITS + 1), "deep": nested(1000), "surrogate": "\ud800"}[kind]


@vault.action("failUnsendable")
def fail_unsendable(c):
    raise UserError("metadata no encoding carries", metadata={"n": 1 << (MAX_INTEGER_BITS + 1)})


def nested(levels: int, leaf: Any = 1) -> Any:
    value = leaf
    for _ in range(levels):
        value = [value]
    return value


@pytest.fixture
def registry(tmp_path):
    registry = setup(*ACTORS, vault, data_dir=str(tmp_path / "data"))
    yield registry
    registry.shutdown()


def echo_url(key: str = "bad-input") -> str:
    return query("counter", "/action/echo", [key])


def post(client, body: bytes, encoding: str, url: str | None = None, headers: dict[str, str] | None = None):
    return client.post(url or echo_url(), data=body, headers={**action_headers(encoding), **(headers or {})})


def args_body(encoding: str, json_args: str, cbor_args: bytes) -> bytes:
    """The same arguments, hand-written per encoding (the encoders refuse to write what these tests send)."""
    if encoding == "json":
        return b'{"args":' + json_args.encode() + b"}"
    if encoding == "cbor":
        return b"\xa1\x64args" + cbor_args
    writer = BareWriter()  # HttpActionRequest, version 4: u16 version, then the args as a data field
    writer.u16(4)
    writer.data(cbor_args)
    return writer.to_bytes()




# Numbers ---------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("encoding", ENCODINGS)
def test_integers_up_to_the_limit_round_trip_and_larger_ones_are_400(client, encoding):
    for value in (LARGEST, -LARGEST):
        assert output(call(client, echo_url(), [value], encoding), encoding) == [value]
    too_big = 1 << MAX_INTEGER_BITS
    body = args_body(encoding, f'[["$BigInt","{too_big}"]]', cbor2.dumps([too_big]) if encoding == "cbor"
                     else cbor2.dumps([["$BigInt", str(too_big)]]))
    error = assert_error(post(client, body, encoding), 400, "actor", "invalid_request", encoding)
    assert str(MAX_INTEGER_BITS) in error["message"]


@pytest.mark.parametrize("encoding", ["json", "bare"])
def test_bigint_text_longer_than_pythons_conversion_limit_is_400(client, encoding):
    digits = "9" * 5000  # int() of this raised ValueError (Python's 4300-digit limit): a 500 before
    body = args_body(encoding, f'[["$BigInt","{digits}"]]', cbor2.dumps([["$BigInt", digits]]))
    assert_error(post(client, body, encoding), 400, "actor", "invalid_request", encoding)
    plain = b'{"args":[' + digits.encode() + b"]}"  # a bare JSON number that long
    assert_error(post(client, plain, "json"), 400, "actor", "invalid_request")


def test_large_cbor_bignum_is_400_not_stored_where_json_cannot_answer(client):
    body = b"\xa1\x64args" + cbor2.dumps([1 << 70000])
    assert_error(post(client, body, "cbor"), 400, "actor", "invalid_request", "cbor")
    url = query("vault", "/action/keep", ["bignum"])
    assert_error(post(client, b"\xa1\x64args" + cbor2.dumps([1 << 9000]), "cbor", url), 400, "actor",
                 "invalid_request", "cbor")
    # The largest accepted one is stored and answered in every encoding, and the state stays readable.
    assert output(post(client, b"\xa1\x64args" + cbor2.dumps([LARGEST]), "cbor", url), "cbor") is True
    for encoding in ENCODINGS:
        assert output(call(client, query("vault", "/action/kept", ["bignum"]), [], encoding), encoding) == LARGEST


@pytest.mark.parametrize("date", [
    "c1 fb 7fefffffffffffff",  # 1.8e308 seconds: milliseconds overflow to infinity
    "c1 c2 59 0200" + "ff" * 512,  # a 4096-bit bignum of seconds: the milliseconds exceed the integer limit
    "c1 fb 7ff8000000000000",  # NaN
], ids=["float-overflow", "bignum-overflow", "nan"])
def test_cbor_dates_that_overflow_are_400(client, date):
    body = b"\xa1\x64args\x81" + bytes.fromhex(date.replace(" ", ""))
    assert_error(post(client, body, "cbor"), 400, "actor", "invalid_request", "cbor")


@pytest.mark.parametrize("key", ["f9 7e00", "fb 7ff8000000000000", "f5", "f6", "41 00"])
def test_map_keys_other_than_strings_and_integers_are_400(client, key):
    """NaN, other floats, booleans, null and bytes as map keys (NaN keys answered json callers with a 500)."""
    value = bytes.fromhex("a1" + key.replace(" ", "") + "01")
    for encoding in ("cbor", "bare"):
        body = args_body(encoding, "", b"\x81" + value)
        assert_error(post(client, body, encoding), 400, "actor", "invalid_request", encoding)
    assert output(call(client, echo_url(), [{"a": 1, 7: 2}], "cbor"), "cbor") == [{"a": 1, 7: 2}]


# Nesting and Unicode ---------------------------------------------------------------------------------------------

def deep_args_body(encoding: str, levels: int) -> bytes:
    """An action body whose ``args`` nest ``levels`` arrays (the innermost empty)."""
    return args_body(encoding, "[" * levels + "]" * levels, b"\x81" * (levels - 1) + b"\x80")


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_nesting_is_limited_at_every_decoder(client, encoding):
    # The envelope counts in json and cbor ({"args": ...} is one level); bare's args field is a CBOR value of its own.
    deepest = MAX_NESTING if encoding == "bare" else MAX_NESTING - 1
    accepted = output(post(client, deep_args_body(encoding, deepest), encoding), encoding)
    assert accepted == nested(deepest - 1, [])
    for levels in (deepest + 1, 30_000):  # the second raised RecursionError: a 500 before
        assert_error(post(client, deep_args_body(encoding, levels), encoding), 400, "actor", "invalid_request",
                     encoding)


def test_lone_surrogates_in_json_are_400_and_pairs_are_characters(client):
    assert_error(post(client, b'{"args":["\\ud800"]}', "json"), 400, "actor", "invalid_request")
    assert_error(post(client, b'{"args":[{"\\udfff":1}]}', "json"), 400, "actor", "invalid_request")
    assert output(post(client, b'{"args":["\\ud83d\\ude00"]}', "json")) == ["😀"]


@pytest.mark.parametrize("params", ["[" * 30_000 + "]" * 30_000, '"\\ud800"', "1" * 5000, "{"],
                         ids=["deep", "surrogate", "long-number", "syntax"])
@pytest.mark.parametrize("encoding", ENCODINGS)
def test_bad_conn_params_header_is_400_in_the_request_encoding(client, encoding, params):
    response = call(client, echo_url(), [1], encoding, {"x-rivet-conn-params": params})
    assert_error(response, 400, "actor", "invalid_request", encoding)


@pytest.mark.parametrize("params", ["[" * 1000 + "]" * 1000, '"\\ud800"'], ids=["deep", "surrogate"])
def test_bad_conn_params_subprotocol_sends_an_error_then_closes(port, params):
    """Deep params raised RecursionError in the connection's greenlet: a 1011 ``core.internal_error`` before."""
    ws = connect(port, query("chatRoom", "/connect", ["deep-params"]), "json",
                 ["rivet_conn_params." + quote(params, safe="")])
    code, reason, messages = ws.expect_close()
    assert (code, reason) == (1011, "actor.invalid_request")
    assert [protocol.decode_to_client("json", message).code for message in messages] == ["invalid_request"]
    assert_live_serving(port)


# The engine API and the inspector ---------------------------------------------------------------------------------

@pytest.mark.parametrize("body", [
    b'{"name":"counter","key":"\\ud800"}',  # a lone surrogate in the key: UnicodeEncodeError before
    b'{"name":"counter","key":"a","input":5}',  # input of the wrong type: TypeError before
    b'{"name":"counter","key":"a","input":["x"]}',
    b'{"name":"counter","key":7}',
    b'{"name":7,"key":"a"}',
    b'["counter","a"]',
    b'{"name":"counter","key":"a","x":' + b"[" * 30_000 + b"]" * 30_000 + b"}",  # RecursionError before
    b'{"name":"counter","key":"a","n":' + b"9" * 5000 + b"}",
    b'{"name":"counter","key":"\xff\xfe"}',  # not UTF-8
    b"",
    b"{",
], ids=["surrogate-key", "int-input", "list-input", "int-key", "int-name", "array", "deep", "long-number",
        "not-utf8", "empty", "syntax"])
@pytest.mark.parametrize("method", ["PUT", "POST"])
def test_invalid_actor_bodies_are_400_json(client, method, body):
    response = client.open("/actors?namespace=default", method=method, data=body,
                           headers={"content-type": "application/json"})
    error = engine_error(response, 400, response.get_json()["group"], response.get_json()["code"])
    assert error["code"] in ("invalid_request", "invalid_key")
    assert put_actor(client, "counter", "still-fine").status_code == 200


def test_creation_input_over_the_limits_is_400(client):
    for value in (nested(MAX_NESTING + 1), 1 << (MAX_INTEGER_BITS + 8)):
        data = base64.b64encode(cbor2.dumps(value)).decode()
        engine_error(put_actor(client, "counter", "deep-input", input=data), 400, "actor", "invalid_request")


def test_inspector_bodies_over_the_limits_are_400(client, registry):
    actor_id = put_actor(client, "counter", "inspected").get_json()["actor"]["actor_id"]
    token = registry.engine.running_task(actor_id).inspector_token
    headers = {"Authorization": f"Bearer {token}", "content-type": "application/json"}
    for body in (b'{"state":' + b"[" * 30_000 + b"]" * 30_000 + b"}", b'{"state":"\\ud800"}'):
        response = client.patch(f"/gateway/{actor_id}/inspector/state", data=body, headers=headers)
        assert response.status_code == 400, response.data
        assert response.get_json()["code"] == "invalid_request"


# Storage refuses what the encodings cannot carry; the state view never breaks --------------------------------------

def state_view(client, registry, actor_id: str) -> Any:
    token = registry.engine.running_task(actor_id).inspector_token
    view = client.get(f"/gateway/{actor_id}/inspector/state", headers={"Authorization": f"Bearer {token}"})
    assert view.status_code == 200, view.data
    return view.get_json()["state"]


@pytest.mark.parametrize("kind", ["huge", "deep"])
def test_state_refuses_values_over_the_limits_and_the_state_view_still_reads(client, registry, kind):
    response = call(client, query("vault", "/action/keepComputed", [kind]), [kind])
    assert response.status_code == 500  # the actor's own write failed: core.md's status for invalid_state_type
    assert (response.get_json()["group"], response.get_json()["code"]) == ("actor", "invalid_state_type")
    assert state_view(client, registry, response.headers["x-rivet-actor"]) == {"value": None}


def test_state_as_deep_as_the_limit_is_stored_viewed_and_sent_in_every_encoding(client, registry):
    response = call(client, query("vault", "/action/keepComputed", ["deepest"]), ["deepest"])
    assert response.status_code == 200, response.data
    assert state_view(client, registry, response.headers["x-rivet-actor"]) == {"value": nested(MAX_NESTING - 1)}
    for encoding in ENCODINGS:
        kept_value = output(call(client, query("vault", "/action/kept", ["deepest"]), [], encoding), encoding)
        assert kept_value == nested(MAX_NESTING - 1)


def test_storage_encoder_refuses_what_no_client_encoding_carries():
    for value in (1 << (MAX_INTEGER_BITS + 1), nested(MAX_NESTING + 1), {1.5: 1}, {"\ud800": 1}, "\udfff"):
        with pytest.raises(RivetError) as caught:
            encode(value)
        assert (caught.value.group, caught.value.code) == ("encoding", "invalid")


# Encoders fail with a RivetError, so a per-subscriber catch can skip one subscriber ---------------------------------

@pytest.mark.parametrize("encoding", ENCODINGS)
@pytest.mark.parametrize("value", [1 << (MAX_INTEGER_BITS + 1), nested(10_000), "\ud800", {math.nan: 1}],
                         ids=["huge", "deep", "surrogate", "nan-key"])
def test_encoding_failures_are_rivet_errors(encoding, value):
    message = protocol.Event("update", [value])
    try:
        protocol.encode_to_client(encoding, message)
    except RivetError as error:
        assert (error.group, error.code) == ("encoding", "invalid")
    else:  # json escapes lone surrogates ("\ud800" is valid JSON text, which JS reads as it is)
        assert (encoding, value) == ("json", "\ud800")


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_names_and_messages_that_are_not_unicode_are_rivet_errors(encoding):
    for message in (protocol.Event("\ud800", []), protocol.ErrorMessage("user", "x", "\udfff")):
        try:
            protocol.encode_to_client(encoding, message)
        except RivetError as error:
            assert (error.group, error.code) == ("encoding", "invalid")
        else:  # JSON text escapes lone surrogates
            assert encoding == "json"


def test_keys_with_lone_surrogates_are_invalid_keys(registry):
    for key in (["\ud800"], ["ok", "a\udfffb"]):
        with pytest.raises(RivetError) as caught:
            registry.get_or_create("counter", key)
        assert (caught.value.group, caught.value.code) == ("actor", "invalid_key")


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_an_error_whose_metadata_cannot_be_sent_is_still_an_error_in_the_spec_shape(client, encoding):
    error = assert_error(call(client, query("vault", "/action/failUnsendable", ["out"]), [], encoding), 500,
                         "encoding", "invalid", encoding)
    assert error["message"] == INTERNAL_MESSAGE


@pytest.mark.parametrize("encoding", ENCODINGS)
@pytest.mark.parametrize("kind", ["huge", "deep"])
def test_an_unsendable_action_result_is_a_masked_error_in_the_request_encoding(client, encoding, kind):
    response = call(client, query("vault", "/action/unsendable", ["out"]), [kind], encoding)
    error = assert_error(response, 500, "encoding", "invalid", encoding)
    assert error["message"] == INTERNAL_MESSAGE


# Unicode keys ------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("key", UNICODE_KEYS)
def test_unicode_keys_over_a_live_server_with_percent_encoded_key_header(port, key):
    """Each of these answered a plain-text 500: the key header could not be encoded as Latin-1."""
    for encoding in ENCODINGS:
        url = query("counter", "/action/increment", key)
        reply = http(port, "POST", url, protocol.encode_action_request(encoding, [1]), action_headers(encoding))
        assert reply.status_code == 200, reply.data
        assert reply.headers["x-rivet-actor-key"] == key_header(key)
        assert reply.headers["x-rivet-actor-key"].isascii()
        assert unquote(reply.headers["x-rivet-actor-key"]) == serialize_key(key)
    assert protocol.decode_action_response(encoding, reply.data) == 3
    listed = http(port, "GET", f"/actors?name=counter&key={quote(serialize_key(key), safe='')}&namespace=default")
    assert [item["key"] for item in listed.get_json()["actors"]] == [serialize_key(key)]


def test_key_header_leaves_ascii_keys_as_they_were():
    assert key_header(["k1", "k,2", "k/3"]) == "k1/k,2/k\\/3"
    assert key_header(["a", "", "b"]) == "a/\\0/b"
    assert key_header(["50%", "a b", "é"]) == "50%25/a%20b/%C3%A9"


@pytest.mark.parametrize("encoding", ENCODINGS)
@pytest.mark.parametrize("key", UNICODE_KEYS[:2])
def test_unicode_keys_through_the_python_client(port, encoding, key):
    with Client(f"http://127.0.0.1:{port}", encoding=encoding, timeout=10) as client:
        handle = client.counter.get_or_create(key)
        assert handle.increment(2) == 2
        with handle.connect() as conn:
            assert conn.increment(3) == 5
        assert client.counter.get(key).getCount() == 5
        assert handle.resolve() == client.counter.get_or_create(key).resolve()


def test_decoded_values_are_storable():
    """Every value a decoder returns can be stored and sent back: the decoders' limits are storage's limits."""
    value = {"n": LARGEST, "deep": nested(MAX_NESTING - 2), "s": "😀", 5: b"\x00"}
    decoded = decode_wire(encode_wire({"v": value}))["v"]
    assert decoded == value and encode(decoded)
    assert json.loads(protocol.encode_action_response("json", decoded))["output"]["s"] == "😀"


# Found by the fuzz suite -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("encoding", ENCODINGS)
def test_arguments_an_action_cannot_take_are_400_not_a_crash(client, encoding):
    """``getCount(c)`` called with one argument raised TypeError: a masked 500 before."""
    response = call(client, query("counter", "/action/getCount", ["arity"]), [None], encoding)
    error = assert_error(response, 400, "actor", "invalid_request", encoding)
    assert "getCount" in error["message"]
    assert output(call(client, query("counter", "/action/getCount", ["arity"]), [], encoding), encoding) == 0


def test_error_bodies_carry_the_actor_key_as_the_serialized_string(client):
    """Errors carried the key as a list; the spec's ActorSpecifier has a string key."""
    actor_id = put_actor(client, "counter", "日本/x").get_json()["actor"]["actor_id"]
    error = assert_error(call(client, f"/gateway/{actor_id}/action/nope", [], "json"), 404, "actor",
                         "action_not_found", "json")
    assert error["actor"] == {"actorId": actor_id, "generation": 1, "key": "日本/x"}
    error = assert_error(call(client, query("counter", "/action/nope", ["日本"]), [], "cbor"), 404, "actor",
                         "action_not_found", "cbor")
    assert error["actor"]["key"] == "日本"


@pytest.mark.parametrize("frame", ["[" * 30_000 + "]" * 30_000, '{"tag":"StateRequest","val":{"id":"\\ud800"}}'],
                         ids=["deep", "surrogate"])
def test_inspector_websocket_answers_bad_frames_with_an_error_and_stays_open(port, registry, frame):
    """A deeply nested frame raised RecursionError in the socket's greenlet: a 1011 ``core.internal_error``."""
    actor_id = registry.get_or_create("counter", ["inspected-ws"]).resolve()
    token = registry.engine.running_task(actor_id).inspector_token
    ws = connect(port, f"/gateway/{actor_id}/inspector/connect", None, [f"rivet_inspector_token.{token}"])
    try:
        assert json.loads(ws.receive_message())["tag"] == "Init"
        ws.send(frame)
        ws.send(json.dumps({"tag": "StateRequest", "val": {"id": 7}}))
        replies = [json.loads(ws.receive_message()) for _ in range(2)]
        assert replies[0]["tag"] == "Error" and "Invalid inspector message" in replies[0]["val"]["message"]
        assert replies[1] == {"tag": "StateResponse", "val": {"rid": 7, "state": {"count": 0}, "isStateEnabled": True}}
    finally:
        ws.close()


@pytest.mark.parametrize("params", ["[" * 1000 + "]" * 1000, "{"], ids=["deep", "syntax"])
def test_bad_conn_params_on_a_raw_websocket_close_it_with_invalid_request(port, params):
    """They escaped the raw socket's setup: 1011 ``core.internal_error`` and an error log before."""
    ws = connect(port, query("rawServer", "/websocket/echo", ["raw-params"]), None,
                 ["rivet_conn_params." + quote(params, safe="")])
    assert ws.expect_close() == (1011, "actor.invalid_request", [])
    assert_live_serving(port)


# URLs under rivetgreen's routes that match none of them -------------------------------------------------------------

UNROUTED = [
    ("POST", "/gateway/a%0Ab/action/x", 404, "api", "not_found"),  # a newline in a path segment matches no rule
    ("GET", "/gateway/", 404, "api", "not_found"),
    ("DELETE", "/actors/%2F", 404, "api", "not_found"),
    ("PATCH", "/actors/x", 405, "api", "method_not_allowed"),
    ("POST", "/metadata", 405, "api", "method_not_allowed"),
]
if int(importlib.metadata.version("werkzeug").split(".")[0]) >= 3:
    # werkzeug 2.3 answers an empty path segment with its own redirect to the merged URL (README: Bad input)
    UNROUTED.append(("GET", "/gateway//x", 404, "api", "not_found"))


@pytest.mark.parametrize("prefix", ["", "/rivet"])
@pytest.mark.parametrize(("method", "path", "status", "group", "code"), UNROUTED)
def test_urls_under_rivetgreens_routes_that_match_none_are_json_errors(
    registry, prefix, method, path, status, group, code
):
    app = Flask("user")

    @app.errorhandler(404)
    def users_own_page(error):
        return "the user's own 404 page", 404

    init_app(app, registry, url_prefix=prefix or None)
    response = app.test_client().open(prefix + path, method=method)
    assert engine_error(response, status, group, code)["metadata"] is None
    user_page = app.test_client().get(prefix + "/elsewhere")  # the app's other URLs keep the app's handler
    assert (user_page.status_code, user_page.data) == (404, b"the user's own 404 page")
