"""Wire codecs of the RivetKit client protocol v4 (client-protocol.md): byte-exact observations of the npm client
``rivetkit@2.3.19`` (§3, §4, §7, §8, Appendix A.2), integer widths, malformed input and round trips."""

from __future__ import annotations

import json
import struct
from typing import Any

import pytest

from rivetgreen.encoding import client_protocol as protocol
from rivetgreen.encoding.bare import BareReader, BareWriter
from rivetgreen.encoding.cbor import Uint64, decode_wire, encode_uint64, encode_wire
from rivetgreen.encoding.client_protocol import (
    ENCODINGS,
    ActionRequest,
    ActionResponse,
    ErrorMessage,
    Event,
    Init,
    QueueSendRequest,
    SubscriptionRequest,
)
from rivetgreen.encoding.json_compat import escape_dollar_arrays, from_json_compat, to_json_compat
from rivetgreen.errors import RivetError

V4 = b"\x04\x00"
ACTOR_ID = "ebcb" + "a" * 22 + "3e"  # 28 characters, like the test server's ids in A.2
CONNECTION_ID = "004a" + "b" * 26 + "fb"  # 32 characters
NOPE_METADATA_CBOR = bytes.fromhex("a1646e616d65646e6f7065")  # {"name": "nope"}

# §7.1: echo(1n<<70n, Uint8Array[1,2,3], ["$x",1], undefined, null, 1.5); Python has no undefined, so None.
ODD_VALUES = [1 << 70, b"\x01\x02\x03", ["$x", 1], None, None, 1.5]
ODD_VALUES_JSON = '[["$BigInt","1180591620717411303424"],["$Uint8Array","AQID"],["$$x",1],null,null,1.5]'


def hexadecimal(text: str) -> bytes:
    return bytes.fromhex(text.replace(" ", ""))


def text_item(text: str) -> bytes:
    """A short CBOR text string (under 24 bytes)."""
    return bytes([0x60 + len(text)]) + text.encode()


def bare_text(text: str) -> bytes:
    """A short BARE str (under 128 bytes)."""
    return bytes([len(text)]) + text.encode()


def assert_invalid_request(function: Any, *arguments: Any) -> RivetError:
    with pytest.raises(RivetError) as caught:
        function(*arguments)
    assert (caught.value.group, caught.value.code) == ("actor", "invalid_request"), caught.value
    return caught.value


# §3: stateless actions over HTTP ------------------------------------------------------------------------------

def test_bare_action_request_and_response_are_byte_exact() -> None:
    assert protocol.decode_action_request("bare", hexadecimal("04 00 02 81 05")) == [5]
    assert protocol.encode_action_response("bare", 5) == hexadecimal("04 00 01 05")
    assert protocol.encode_action_request("bare", [5]) == hexadecimal("04 00 02 81 05")
    assert protocol.decode_action_response("bare", hexadecimal("04 00 01 05")) == 5


def test_bare_null_output_is_a_cbor_null_never_empty_data() -> None:
    assert protocol.encode_action_response("bare", None) == hexadecimal("04 00 01 f6")


def test_json_and_cbor_action_bodies() -> None:
    assert protocol.decode_action_request("json", b'{"args":[5]}') == [5]
    observed_cbor = hexadecimal("b9 0001") + text_item("args") + hexadecimal("81 05")
    assert protocol.decode_action_request("cbor", observed_cbor) == [5]
    assert protocol.encode_action_response("json", 11) == b'{"output":11}'
    assert protocol.decode_action_response("json", b'{"output": 11}') == 11
    assert protocol.encode_action_request("json", [5]) == b'{"args":[5]}'
    assert decode_wire(protocol.encode_action_response("cbor", 11)) == {"output": 11}


@pytest.mark.parametrize(
    ("body", "arguments"),
    [(b'{"args":5}', [5]), (b'{"args":null}', []), (b"{}", []), (b'{"args":{"a":1}}', [{"a": 1}])],
)
def test_json_action_arguments_are_normalized_to_a_list(body: bytes, arguments: list[Any]) -> None:
    assert protocol.decode_action_request("json", body) == arguments


def test_bare_action_arguments_are_normalized_to_a_list() -> None:
    assert protocol.decode_action_request("bare", hexadecimal("04 00 01 05")) == [5]
    assert protocol.decode_action_request("bare", hexadecimal("04 00 01 f6")) == []


def test_bare_http_error_is_byte_exact() -> None:
    error = {"group": "actor", "code": "action_not_found", "message": "Action `nope` not found.",
             "metadata": {"name": "nope"}}
    expected = (V4 + bare_text("actor") + bare_text("action_not_found") + bare_text("Action `nope` not found.")
                + b"\x01\x0b" + NOPE_METADATA_CBOR + b"\x00")
    assert protocol.encode_http_error("bare", error) == expected
    assert protocol.decode_http_error("bare", expected, "application/octet-stream") == error


def test_json_http_error_and_json_content_type_override() -> None:
    error = {"group": "actor", "code": "not_found", "message": "gone"}
    body = protocol.encode_http_error("json", error)
    assert json.loads(body) == error
    for encoding in ENCODINGS:
        assert protocol.decode_http_error(encoding, body, "application/json; charset=utf-8") == error


def test_http_error_actor_specifier_key_is_the_serialized_key_string() -> None:
    error = {"group": "user", "code": "boom", "message": "no", "actor": {"actorId": "a1", "generation": 3,
                                                                          "key": ["k1", "k/2"]}}
    expected_actor = {"actorId": "a1", "generation": 3, "key": "k1/k\\/2"}
    bare = protocol.encode_http_error("bare", error)
    assert bare.endswith(b"\x01" + bare_text("a1") + b"\x03\x01" + bare_text("k1/k\\/2"))
    for encoding in ENCODINGS:
        decoded = protocol.decode_http_error(encoding, protocol.encode_http_error(encoding, error), None)
        assert decoded == {"group": "user", "code": "boom", "message": "no", "actor": expected_actor}


def test_error_from_rivet_error_to_client_encodes() -> None:
    error = RivetError("user", "bad", "Bad input.", {"field": "x"}).with_actor("id1", 0, [])
    decoded = protocol.decode_http_error("bare", protocol.encode_http_error("bare", error.to_client()), None)
    assert decoded == {"group": "user", "code": "bad", "message": "Bad input.", "metadata": {"field": "x"},
                       "actor": {"actorId": "id1", "generation": 0, "key": "/"}}


# §4: queue sends ------------------------------------------------------------------------------------------------

QUEUE_BODY_CBOR = hexadecimal("b9 0001 61 61 01")  # cbor-x's {a: 1}


def test_bare_queue_send_without_wait() -> None:
    body = V4 + b"\x06" + QUEUE_BODY_CBOR + b"\x01" + bare_text("jobs") + b"\x01\x00" + b"\x00"
    assert protocol.decode_queue_send_request("bare", body) == QueueSendRequest("jobs", {"a": 1}, False, None)


def test_bare_queue_send_with_wait_and_timeout() -> None:
    body = (V4 + b"\x06" + QUEUE_BODY_CBOR + b"\x01" + bare_text("jobs") + b"\x01\x01"
            + b"\x01" + hexadecimal("dc05000000000000"))
    assert protocol.decode_queue_send_request("bare", body) == QueueSendRequest("jobs", {"a": 1}, True, 1500)


def test_bare_queue_send_responses_are_byte_exact() -> None:
    assert protocol.encode_queue_send_response("bare", "completed", None, False) == V4 + bare_text("completed") + b"\0"
    with_response = V4 + bare_text("completed") + b"\x01\x05" + hexadecimal("a1626f6bf5")
    assert protocol.encode_queue_send_response("bare", "completed", {"ok": True}, True) == with_response
    assert protocol.decode_queue_send_response("bare", with_response) == ("completed", {"ok": True})


def test_client_queue_send_request_matches_the_js_client_layout() -> None:
    request = QueueSendRequest("jobs", {"a": 1}, wait=True, timeout_ms=1500)
    expected = (V4 + b"\x04" + hexadecimal("a1 61 61 01") + b"\x01" + bare_text("jobs") + b"\x01\x01"
                + b"\x01" + hexadecimal("dc05000000000000"))
    assert protocol.encode_queue_send_request("bare", request) == expected
    no_wait = protocol.encode_queue_send_request("json", QueueSendRequest("jobs", {"a": 1}))
    assert no_wait == b'{"body":{"a":1},"wait":false,"name":"jobs"}'


def test_json_and_cbor_queue_send_requests() -> None:
    body = b'{"body":{"a":1},"wait":true,"timeout":1500,"name":"jobs"}'
    assert protocol.decode_queue_send_request("json", body) == QueueSendRequest("jobs", {"a": 1}, True, 1500)
    assert protocol.decode_queue_send_request("json", b'{"body":null}') == QueueSendRequest(None, None, False, None)
    cbor_body = encode_wire({"body": [1], "wait": False, "name": "q"})
    assert protocol.decode_queue_send_request("cbor", cbor_body) == QueueSendRequest("q", [1], False, None)


def test_queue_send_responses_in_json_omit_an_absent_response() -> None:
    assert protocol.encode_queue_send_response("json", "timedOut", None, False) == b'{"status":"timedOut"}'
    assert protocol.encode_queue_send_response("json", "completed", None, True) == (
        b'{"status":"completed","response":null}')


def test_queue_messages_need_protocol_version_3() -> None:
    body = b"\x02\x00" + b"\x01\xf6" + b"\x00\x00\x00"
    assert_invalid_request(protocol.decode_queue_send_request, "bare", body)
    assert protocol.decode_queue_send_request("bare", b"\x03\x00" + body[2:]) == QueueSendRequest(None, None)


# Appendix A.2: the WebSocket frames of the snippet, in bare -----------------------------------------------------

INIT_FRAME = V4 + b"\x00" + bare_text(ACTOR_ID) + bare_text(CONNECTION_ID)
SUBSCRIPTION_FRAME = hexadecimal("0400 01 08 6e6577436f756e74 01")
INCREMENT_FRAME = hexadecimal("0400 00 00 09 696e6372656d656e74 02 8101")
EVENT_FRAME = hexadecimal("0400 03 08 6e6577436f756e74 02 8106")
RESPONSE_FRAME = hexadecimal("0400 02 00 01 06")
NOPE_FRAME = hexadecimal("0400 00 01 04 6e6f7065 02 8101")
ERROR_FRAME = (V4 + b"\x01" + bare_text("actor") + bare_text("action_not_found")
               + bare_text("Action `nope` not found.") + b"\x01\x0b" + NOPE_METADATA_CBOR + b"\x01\x01\x00")
NOPE_ERROR = ErrorMessage("actor", "action_not_found", "Action `nope` not found.", {"name": "nope"}, 1, None)


def test_init_frame() -> None:
    assert INIT_FRAME[3] == 0x1C and INIT_FRAME[4 + 28] == 0x20
    assert protocol.encode_to_client("bare", Init(ACTOR_ID, CONNECTION_ID)) == INIT_FRAME
    assert protocol.decode_to_client("bare", INIT_FRAME) == Init(ACTOR_ID, CONNECTION_ID)


def test_subscription_request_frame() -> None:
    assert protocol.decode_to_server("bare", SUBSCRIPTION_FRAME) == SubscriptionRequest("newCount", True)
    assert protocol.encode_to_server("bare", SubscriptionRequest("newCount", True)) == SUBSCRIPTION_FRAME


def test_action_request_frames() -> None:
    assert protocol.decode_to_server("bare", INCREMENT_FRAME) == ActionRequest(0, "increment", [1])
    assert protocol.encode_to_server("bare", ActionRequest(0, "increment", [1])) == INCREMENT_FRAME
    assert protocol.decode_to_server("bare", NOPE_FRAME) == ActionRequest(1, "nope", [1])


def test_event_and_action_response_frames() -> None:
    assert protocol.encode_to_client("bare", Event("newCount", [6])) == EVENT_FRAME
    assert protocol.encode_to_client("bare", ActionResponse(0, 6)) == RESPONSE_FRAME
    assert protocol.decode_to_client("bare", EVENT_FRAME) == Event("newCount", [6])
    assert protocol.decode_to_client("bare", RESPONSE_FRAME) == ActionResponse(0, 6)


def test_error_frame() -> None:
    assert protocol.encode_to_client("bare", NOPE_ERROR) == ERROR_FRAME
    assert protocol.decode_to_client("bare", ERROR_FRAME) == NOPE_ERROR


def test_connection_level_error_frame_has_no_action_id() -> None:
    frame = protocol.encode_to_client("bare", ErrorMessage("actor", "invalid_request", "bad"))
    assert frame == V4 + b"\x01" + bare_text("actor") + bare_text("invalid_request") + bare_text("bad") + b"\0\0\0"


# §8: the same flow in json -------------------------------------------------------------------------------------

JSON_FRAMES_TO_CLIENT = [
    (Init("a1", "c1"), '{"body":{"tag":"Init","val":{"actorId":"a1","connectionId":"c1"}}}'),
    (Event("newCount", [12]), '{"body":{"tag":"Event","val":{"name":"newCount","args":[12]}}}'),
    (ActionResponse(0, 12), '{"body":{"tag":"ActionResponse","val":{"id":["$BigInt","0"],"output":12}}}'),
    (ErrorMessage("actor", "action_not_found", "…", {"name": "nope"}, 1),
     '{"body":{"tag":"Error","val":{"group":"actor","code":"action_not_found","message":"…",'
     '"actionId":["$BigInt","1"],"metadata":{"name":"nope"}}}}'),
]
JSON_FRAMES_TO_SERVER = [
    (SubscriptionRequest("newCount", True),
     '{"body":{"tag":"SubscriptionRequest","val":{"eventName":"newCount","subscribe":true}}}'),
    (ActionRequest(0, "increment", [1]),
     '{"body":{"tag":"ActionRequest","val":{"id":["$BigInt","0"],"name":"increment","args":[1]}}}'),
]


@pytest.mark.parametrize(("message", "frame"), JSON_FRAMES_TO_CLIENT)
def test_json_frames_to_client(message: Any, frame: str) -> None:
    encoded = protocol.encode_to_client("json", message)
    assert isinstance(encoded, str)
    assert json.loads(encoded) == json.loads(frame)
    assert protocol.decode_to_client("json", frame) == message


@pytest.mark.parametrize(("message", "frame"), JSON_FRAMES_TO_SERVER)
def test_json_frames_to_server(message: Any, frame: str) -> None:
    assert protocol.encode_to_server("json", message) == frame
    assert protocol.decode_to_server("json", frame) == message
    assert protocol.decode_to_server("json", frame.encode()) == message  # json may also arrive as a binary frame


def test_json_frames_to_client_are_byte_exact() -> None:
    init, event, response, _ = JSON_FRAMES_TO_CLIENT
    for message, frame in (init, event, response):
        assert protocol.encode_to_client("json", message) == frame


def test_json_error_always_carries_action_id() -> None:
    frame = json.loads(protocol.encode_to_client("json", ErrorMessage("actor", "invalid_request", "bad")))
    assert frame["body"]["val"] == {"group": "actor", "code": "invalid_request", "message": "bad", "actionId": None}
    cbor_frame = decode_wire(protocol.encode_to_client("cbor", ErrorMessage("actor", "invalid_request", "bad")))
    assert "actionId" in cbor_frame["body"]["val"] and cbor_frame["body"]["val"]["actionId"] is None


def test_json_ids_may_be_plain_numbers() -> None:
    frame = '{"body":{"tag":"ActionRequest","val":{"id":7,"name":"a","args":[]}}}'
    assert protocol.decode_to_server("json", frame) == ActionRequest(7, "a", [])
    assert protocol.decode_to_client("json", '{"body":{"tag":"ActionResponse","val":{"id":3,"output":1}}}') == (
        ActionResponse(3, 1))


def test_event_args_are_always_an_array() -> None:
    assert json.loads(protocol.encode_to_client("json", Event("e", ())))["body"]["val"]["args"] == []
    assert decode_wire(protocol.encode_to_client("cbor", Event("e", None)))["body"]["val"]["args"] == []
    assert protocol.encode_to_client("bare", Event("e", [])) == V4 + b"\x03" + bare_text("e") + b"\x01\x80"


# §7: values ------------------------------------------------------------------------------------------------------

def test_json_compat_matches_the_observed_json_arguments() -> None:
    assert json.dumps(to_json_compat(ODD_VALUES), separators=(",", ":")) == ODD_VALUES_JSON
    assert from_json_compat(json.loads(ODD_VALUES_JSON)) == ODD_VALUES


def test_bare_payload_matches_the_observed_cbor_of_the_wrappers() -> None:
    observed = (hexadecimal("86") + hexadecimal("82") + text_item("$BigInt") + hexadecimal("76")
                + b"1180591620717411303424" + hexadecimal("82") + text_item("$Uint8Array") + text_item("AQID")
                + hexadecimal("82") + text_item("$$x") + hexadecimal("01") + hexadecimal("82")
                + text_item("$Undefined") + hexadecimal("00") + hexadecimal("f6 fb 3ff8000000000000"))
    body = V4 + bytes([len(observed)]) + observed
    assert protocol.decode_action_request("bare", body) == ODD_VALUES
    # Python has no undefined: the fourth value goes out as null.
    ours = observed.replace(hexadecimal("82") + text_item("$Undefined") + b"\x00", b"\xf6")
    assert protocol.encode_action_request("bare", ODD_VALUES) == V4 + bytes([len(ours)]) + ours


def test_client_cbor_body_with_bignum_typed_array_and_undefined() -> None:
    arguments = (hexadecimal("86 c2 49 40 0000000000000000 d8 40 43 010203 82") + text_item("$x")
                 + hexadecimal("01 f7 f6 fb 3ff8000000000000"))
    body = hexadecimal("b9 0001") + text_item("args") + arguments
    assert protocol.decode_action_request("cbor", body) == ODD_VALUES  # "$x" arrays are not revived from clients


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_odd_values_round_trip_client_to_server(encoding: str) -> None:
    assert protocol.decode_action_request(encoding, protocol.encode_action_request(encoding, ODD_VALUES)) == ODD_VALUES
    frame = protocol.encode_to_server(encoding, ActionRequest(2, "echo", ODD_VALUES))
    assert protocol.decode_to_server(encoding, frame) == ActionRequest(2, "echo", ODD_VALUES)


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_odd_values_round_trip_server_to_client(encoding: str) -> None:
    assert protocol.decode_action_response(encoding, protocol.encode_action_response(encoding, ODD_VALUES)) == (
        ODD_VALUES)
    frame = protocol.encode_to_client(encoding, Event("echo", ODD_VALUES))
    assert protocol.decode_to_client(encoding, frame) == Event("echo", ODD_VALUES)


def test_cbor_mode_escapes_dollar_arrays_going_to_the_client_only() -> None:
    assert decode_wire(protocol.encode_action_response("cbor", ["$x", 1])) == {"output": ["$$x", 1]}
    assert decode_wire(protocol.encode_action_request("cbor", [["$x", 1]])) == {"args": [["$x", 1]]}
    assert escape_dollar_arrays({"a": ("$y", b"\x00")}) == {"a": ["$$y", b"\x00"]}


def test_cbor_ids_use_the_eight_byte_form() -> None:
    assert encode_uint64(0) == hexadecimal("1b 0000000000000000")
    assert encode_wire({"id": Uint64(5)}) == hexadecimal("a1 62 6964 1b 0000000000000005")
    request = protocol.encode_to_server("cbor", ActionRequest(0, "increment", [1]))
    assert hexadecimal("62 6964 1b 0000000000000000") in request  # observed from the JS client
    response = protocol.encode_to_client("cbor", ActionResponse(0, 6))
    assert hexadecimal("62 6964 1b 0000000000000000") in response
    error = protocol.encode_to_client("cbor", NOPE_ERROR)
    assert text_item("actionId") + hexadecimal("1b 0000000000000001") in error


@pytest.mark.parametrize(
    ("value", "encoded"),
    [
        (2**31, "1a 80000000"),
        (2**32 - 1, "1a ffffffff"),
        (-(2**32) + 1, "3a fffffffe"),
        (2**32, "fb" + struct.pack(">d", 2.0**32).hex()),
        (2**40, "fb" + struct.pack(">d", 2.0**40).hex()),
        (-(2**40), "fb" + struct.pack(">d", -(2.0**40)).hex()),
        (2**53, "fb" + struct.pack(">d", 2.0**53).hex()),
        (2**53 + 1, "1b 0020000000000001"),
        (2**60, "1b 1000000000000000"),
        (-(2**60), "3b 0fffffffffffffff"),
        (1 << 70, "c2 49 40 0000000000000000"),
        (-(1 << 70), "c3 49 3fffffffffffffffff"),
        (1.5, "fb 3ff8000000000000"),
        (1.0, "fb 3ff0000000000000"),
    ],
)
def test_integer_and_float_widths(value: int | float, encoded: str) -> None:
    assert encode_wire(value) == hexadecimal(encoded)
    decoded = decode_wire(hexadecimal(encoded))
    assert decoded == value and type(decoded) is type(value)


def test_decode_wire_tags() -> None:
    assert decode_wire(hexadecimal("d9 0102 82 01 02")) == [1, 2]  # Set
    assert decode_wire(hexadecimal("d9 0103 a1 01 02")) == {1: 2}  # Map
    assert decode_wire(b"\xc1\xfb" + struct.pack(">d", 1522713312.75)) == 1522713312750  # Date
    assert decode_wire(hexadecimal("c1 1a 5ac3a3e0")) == 1522770912000
    assert decode_wire(hexadecimal("f9 3c00")) == 1.0 and decode_wire(hexadecimal("fa 3fc00000")) == 1.5
    assert decode_wire(hexadecimal("5f 41 01 42 0203 ff")) == b"\x01\x02\x03"  # indefinite-length bytes
    assert decode_wire(hexadecimal("bf 61 61 9f 01 ff ff")) == {"a": [1]}


@pytest.mark.parametrize(
    "data",
    ["", "1b 00", "82 01", "c2 01", "d8 41 43 010203", "f0", "1c", "ff", "a1 81 01 02", "62 c3 28", "01 02"],
)
def test_decode_wire_rejects_malformed_cbor(data: str) -> None:
    assert_invalid_request(decode_wire, hexadecimal(data))


def test_decode_wire_rejects_deep_nesting() -> None:
    assert decode_wire(b"\x81" * 128 + b"\x01") is not None  # MAX_NESTING (rivetgreen.encoding.untrusted)
    assert_invalid_request(decode_wire, b"\x81" * 129 + b"\x01")
    assert_invalid_request(decode_wire, b"\x81" * 5000 + b"\x01")


def test_json_compat_wrappers() -> None:
    assert to_json_compat({"b": bytearray(b"\xff"), "n": -(2**53), "t": (1, 2)}) == {
        "b": ["$Uint8Array", "/w=="], "n": ["$BigInt", "-9007199254740992"], "t": [1, 2]}
    assert to_json_compat(2**53 - 1) == 2**53 - 1 and to_json_compat(True) is True
    assert to_json_compat(["$BigInt", "5"]) == ["$$BigInt", "5"]
    assert from_json_compat([["$ArrayBuffer", "AQI"], ["$Set", [1, ["$BigInt", "2"]]], ["$Undefined", 0]]) == [
        b"\x01\x02", [1, 2], None]
    assert from_json_compat(["$$$x", ["$$y", 1]]) == ["$$x", ["$y", 1]]
    assert from_json_compat({"k": ["not", "tagged"], "l": ["$a", 1, 2]}) == {"k": ["not", "tagged"], "l": ["$a", 1, 2]}


@pytest.mark.parametrize("value", [["$Foo", 1], ["$", 1], ["$BigInt", "1.5"], ["$BigInt", None],
                                   ["$Uint8Array", 5], ["$Set", 1]])
def test_json_compat_rejects_unknown_or_malformed_wrappers(value: list[Any]) -> None:
    assert_invalid_request(from_json_compat, value)


def test_json_non_finite_floats_become_null_like_json_stringify() -> None:
    assert protocol.encode_action_response("json", [float("nan"), float("inf"), 1.5]) == b'{"output":[null,null,1.5]}'


# Malformed input -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("function", "encoding", "body"),
    [
        (protocol.decode_action_request, "bare", hexadecimal("04 00 02 81")),  # truncated
        (protocol.decode_action_request, "bare", hexadecimal("04 00")),  # no struct
        (protocol.decode_action_request, "bare", hexadecimal("04")),  # no version
        (protocol.decode_action_request, "bare", hexadecimal("04 00 02 81 05 00")),  # trailing byte
        (protocol.decode_action_request, "bare", hexadecimal("04 00 03 81 05 00")),  # trailing CBOR
        (protocol.decode_action_request, "bare", hexadecimal("05 00 02 81 05")),  # version 5
        (protocol.decode_action_request, "bare", hexadecimal("00 00 02 81 05")),  # version 0
        (protocol.decode_action_request, "json", b'{"args":[1'),  # bad JSON
        (protocol.decode_action_request, "json", b"\xff\xfe\x00"),  # not text
        (protocol.decode_action_request, "json", b"[1]"),  # not a map
        (protocol.decode_action_request, "json", b'{"args":[["$Foo",1]]}'),  # unknown $tag
        (protocol.decode_action_request, "cbor", hexadecimal("a1 64") + b"args"),  # truncated CBOR
        (protocol.decode_to_server, "bare", hexadecimal("04 00 07")),  # unknown union tag
        (protocol.decode_to_server, "bare", hexadecimal("04 00 01 01 61 02")),  # bool 2
        (protocol.decode_to_server, "bare", hexadecimal("04 00 00 ffffffffffffffffffff01")),  # uint too long
        (protocol.decode_to_server, "bare", hexadecimal("04 00 01 02 c328 01")),  # invalid UTF-8
        (protocol.decode_to_server, "bare", "text frame"),  # a text frame in a binary encoding
        (protocol.decode_to_server, "cbor", "text frame"),
        (protocol.decode_to_server, "json", '{"body":{"tag":"Nope","val":{}}}'),  # unknown tag
        (protocol.decode_to_server, "json", '{"body":{"tag":"ActionRequest","val":{"id":-1,"name":"a"}}}'),
        (protocol.decode_to_server, "json", '{"body":{"tag":"ActionRequest","val":{"id":0}}}'),  # no name
        (protocol.decode_to_server, "json", '{"body":{"tag":"SubscriptionRequest","val":{"eventName":"e",'
                                            '"subscribe":1}}}'),
        (protocol.decode_to_server, "json", '{"body":[]}'),
        (protocol.decode_to_server, "json", "[" * 5000 + "]" * 5000),  # too deep
        (protocol.decode_to_client, "bare", hexadecimal("04 00 01 00 00 00 02")),  # bad optional marker
        (protocol.decode_queue_send_request, "json", b'{"body":1,"timeout":"soon"}'),
        (protocol.decode_queue_send_request, "json", b'{"body":1,"wait":"yes"}'),
        (protocol.decode_queue_send_request, "bare", hexadecimal("05 00 01 f6 00 00 00")),
    ],
)
def test_malformed_input_is_an_invalid_request(function: Any, encoding: str, body: Any) -> None:
    assert_invalid_request(function, encoding, body)


def test_invalid_request_is_public_with_status_400() -> None:
    error = assert_invalid_request(protocol.decode_action_request, "bare", b"\x05\x00")
    assert error.public and error.to_client()["message"] == error.message


@pytest.mark.parametrize(
    ("function", "arguments"),
    [
        (protocol.decode_action_request, (b"",)),
        (protocol.encode_action_response, (1,)),
        (protocol.encode_to_client, (Init("a", "c"),)),
        (protocol.decode_to_server, (b"",)),
        (protocol.encode_http_error, ({"group": "a", "code": "b", "message": "c"},)),
        (protocol.content_type, ()),
    ],
)
def test_unknown_encoding_is_unsupported(function: Any, arguments: tuple[Any, ...]) -> None:
    with pytest.raises(RivetError) as caught:
        function("msgpack", *arguments)
    assert (caught.value.group, caught.value.code) == ("protocol", "unsupported_encoding")


def test_content_types() -> None:
    assert protocol.content_type("json") == "application/json"
    assert protocol.content_type("cbor") == protocol.content_type("bare") == "application/octet-stream"


# Older protocol versions ------------------------------------------------------------------------------------------

def test_versions_1_and_3_are_accepted_from_clients() -> None:
    for version in (b"\x01\x00", b"\x02\x00", b"\x03\x00"):
        assert protocol.decode_action_request("bare", version + hexadecimal("02 81 05")) == [5]
        assert protocol.decode_to_server("bare", version + INCREMENT_FRAME[2:]) == ActionRequest(0, "increment", [1])
    queue = b"\x03\x00" + b"\x01\x05" + b"\x00" + b"\x01\x01" + b"\x00"
    assert protocol.decode_queue_send_request("bare", queue) == QueueSendRequest(None, 5, True, None)


def test_older_server_messages_are_accepted_by_the_client() -> None:
    v1_init = b"\x01\x00\x00" + bare_text("a") + bare_text("c") + bare_text("token")
    assert protocol.decode_to_client("bare", v1_init) == Init("a", "c")
    v3_error = b"\x03\x00" + ERROR_FRAME[2:-1]  # no actor field before v4
    assert protocol.decode_to_client("bare", v3_error) == NOPE_ERROR
    v2_http_error = b"\x02\x00" + bare_text("g") + bare_text("c") + bare_text("m") + b"\x00"
    assert protocol.decode_http_error("bare", v2_http_error, "") == {"group": "g", "code": "c", "message": "m"}
    assert_invalid_request(protocol.decode_to_client, "bare", v1_init[:-6])  # v1 Init without its token


# Round trips: every message in every encoding -------------------------------------------------------------------

TO_SERVER_MESSAGES = [
    ActionRequest(0, "increment", [1]),
    ActionRequest(2**40, "a.b", [{"nested": [b"\x00", None, 2**60]}, "text", -3]),
    ActionRequest(2**64 - 1, "noArguments", []),
    SubscriptionRequest("newCount", True),
    SubscriptionRequest("newCount", False),
]
TO_CLIENT_MESSAGES = [
    Init(ACTOR_ID, CONNECTION_ID),
    ActionResponse(0, 6),
    ActionResponse(9, {"big": 2**70, "bytes": b"\x01", "list": ["$x", 1], "float": 0.25, "none": None}),
    Event("newCount", [6]),
    Event("many", [1, "two", [3], {"four": 4}]),
    NOPE_ERROR,
    ErrorMessage("actor", "invalid_request", "Bad frame."),
    ErrorMessage("user", "boom", "Boom.", {"detail": b"\x02"}, 4, {"actorId": "a1", "generation": 2, "key": "k"}),
    ErrorMessage("user", "boom", "Boom.", None, None, {"actorId": "a1", "generation": 0}),
]
QUEUE_REQUESTS = [
    QueueSendRequest("jobs", {"a": 1}),
    QueueSendRequest("jobs", [b"\x00", 2**60], wait=True, timeout_ms=1500),
    QueueSendRequest(None, None, wait=True),
]
QUEUE_RESPONSES = [("completed", {"ok": True}, True), ("completed", None, False), ("timedOut", None, False)]
HTTP_ERRORS = [
    {"group": "actor", "code": "not_found", "message": "Gone."},
    {"group": "user", "code": "x", "message": "X.", "metadata": [1, b"\x02"],
     "actor": {"actorId": "a", "generation": 1, "key": "k1/k2"}},
]


@pytest.mark.parametrize("encoding", ENCODINGS)
@pytest.mark.parametrize("message", TO_SERVER_MESSAGES, ids=repr)
def test_to_server_round_trip(encoding: str, message: Any) -> None:
    frame = protocol.encode_to_server(encoding, message)
    assert isinstance(frame, str if encoding == "json" else bytes)
    assert protocol.decode_to_server(encoding, frame) == message


@pytest.mark.parametrize("encoding", ENCODINGS)
@pytest.mark.parametrize("message", TO_CLIENT_MESSAGES, ids=repr)
def test_to_client_round_trip(encoding: str, message: Any) -> None:
    frame = protocol.encode_to_client(encoding, message)
    assert isinstance(frame, str if encoding == "json" else bytes)
    assert protocol.decode_to_client(encoding, frame) == message


@pytest.mark.parametrize("encoding", ENCODINGS)
@pytest.mark.parametrize("arguments", [[], [1, "a"], [None], [[1, 2], {"k": b"v"}], [2**53 - 1, -(2**53) + 1]])
def test_http_action_round_trip(encoding: str, arguments: list[Any]) -> None:
    assert protocol.decode_action_request(encoding, protocol.encode_action_request(encoding, arguments)) == arguments
    output = {"echo": arguments}
    assert protocol.decode_action_response(encoding, protocol.encode_action_response(encoding, output)) == output


@pytest.mark.parametrize("encoding", ENCODINGS)
@pytest.mark.parametrize("request_message", QUEUE_REQUESTS, ids=repr)
def test_queue_send_request_round_trip(encoding: str, request_message: QueueSendRequest) -> None:
    body = protocol.encode_queue_send_request(encoding, request_message)
    assert protocol.decode_queue_send_request(encoding, body) == request_message


@pytest.mark.parametrize("encoding", ENCODINGS)
@pytest.mark.parametrize(("status", "response", "has_response"), QUEUE_RESPONSES)
def test_queue_send_response_round_trip(encoding: str, status: str, response: Any, has_response: bool) -> None:
    body = protocol.encode_queue_send_response(encoding, status, response, has_response)
    assert protocol.decode_queue_send_response(encoding, body) == (status, response)


@pytest.mark.parametrize("encoding", ENCODINGS)
@pytest.mark.parametrize("error", HTTP_ERRORS, ids=repr)
def test_http_error_round_trip(encoding: str, error: dict[str, Any]) -> None:
    body = protocol.encode_http_error(encoding, error)
    assert protocol.decode_http_error(encoding, body, protocol.content_type(encoding)) == error


# BARE primitives -------------------------------------------------------------------------------------------------

def test_bare_primitives() -> None:
    writer = BareWriter()
    writer.uint(300)
    writer.u64(1500)
    writer.u16(4)
    writer.bool(True)
    writer.str("hé")
    writer.data(b"\x00\x01")
    writer.optional(None, writer.uint)
    writer.optional(2**64 - 1, writer.uint)
    data = writer.to_bytes()
    assert data[:2] == hexadecimal("ac 02")
    reader = BareReader(data)
    assert [reader.uint(), reader.u64(), reader.u16(), reader.bool(), reader.str(), reader.data()] == [
        300, 1500, 4, True, "hé", b"\x00\x01"]
    assert reader.optional(reader.uint) is None and reader.optional(reader.uint) == 2**64 - 1
    reader.finish()
    with pytest.raises(RivetError):
        BareWriter().uint(-1)
    assert_invalid_request(BareReader(b"\x00").finish)
