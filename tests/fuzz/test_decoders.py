"""Every decoder of ``rivetgreen.encoding`` (and the gateway's parsers) under hostile input: it returns a value or
raises a ``RivetError``, nothing else; and whatever it returns can be stored and sent back in every encoding."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rivetgreen.encoding import client_protocol as protocol
from rivetgreen.encoding.actor_key import key_header, parse_key, serialize_key, validate_key
from rivetgreen.encoding.bare import BareReader
from rivetgreen.encoding.cbor import check_value, decode_wire, encode, encode_wire
from rivetgreen.encoding.json_compat import from_json_compat, to_json_compat
from rivetgreen.encoding.untrusted import parse_json
from rivetgreen.errors import RivetError
from rivetgreen.server.gateway import decode_input, parse_gateway
from tests.fuzz.strategies import (
    ENCODINGS,
    action_bodies,
    hostile,
    queue_bodies,
    texts,
    to_client_frames,
    to_server_frames,
    values,
)


def decoded_or_refused(decoder: Callable[..., Any], *arguments: Any, **options: Any) -> Any:
    """``decoder(*arguments)``, or None when it refused with a RivetError (any other exception fails the test)."""
    try:
        return decoder(*arguments, **options)
    except RivetError:
        return None


def assert_sendable(value: Any) -> None:
    """A decoded value can be stored and answered in every encoding (the limits are the same everywhere)."""
    assert check_value(value) is None, value
    encode(value)
    for encoding in ENCODINGS:
        protocol.encode_action_response(encoding, value)


# Plain values round trip --------------------------------------------------------------------------------------------

@given(values)
def test_plain_values_round_trip_through_every_encoding(value):
    assert_sendable(value)
    for encoding in ENCODINGS:
        body = protocol.encode_action_response(encoding, value)
        assert _same(protocol.decode_action_response(encoding, body), value)


def _same(received: Any, sent: Any) -> bool:
    """Equal, with tuples as lists and floats compared by value (cbor-x's float64 form of large integers)."""
    if isinstance(sent, (list, tuple)):
        return isinstance(received, list) and len(received) == len(sent) and all(map(_same, received, sent))
    if isinstance(sent, dict):
        return isinstance(received, dict) and received.keys() == sent.keys() and all(
            _same(received[key], item) for key, item in sent.items())
    return received == sent and (type(received) is type(sent) or isinstance(sent, float))


# Value codecs -------------------------------------------------------------------------------------------------------

@given(hostile(values.map(encode_wire)))
def test_decode_wire(data):
    value = decoded_or_refused(decode_wire, data)
    if value is not None:
        assert_sendable(value)
        assert_sendable(decoded_or_refused(from_json_compat, value))


@given(hostile(values.map(lambda value: json.dumps(to_json_compat(value)))))
def test_parse_json_and_json_compat(data):
    document = decoded_or_refused(parse_json, data)
    if document is not None:
        assert_sendable(document)
        revived = decoded_or_refused(from_json_compat, document)
        if revived is not None:
            assert_sendable(revived)


@given(st.binary(max_size=40))
def test_bare_reader(data):
    reader = BareReader(data)
    for read in (reader.uint, reader.u16, reader.str, reader.data, reader.bool, reader.u64, reader.finish):
        if decoded_or_refused(read) is None:
            return


# Client protocol messages, in all three encodings -------------------------------------------------------------------

DECODERS = {
    "action_request": (protocol.decode_action_request, action_bodies),
    "queue_send_request": (protocol.decode_queue_send_request, queue_bodies),
    "to_server": (protocol.decode_to_server, to_server_frames),
    "to_client": (protocol.decode_to_client, to_client_frames),
    "action_response": (protocol.decode_action_response, action_bodies),
    "queue_send_response": (protocol.decode_queue_send_response, action_bodies),
}


@pytest.mark.parametrize("encoding", ENCODINGS)
@pytest.mark.parametrize("name", DECODERS)
@given(data=st.data())
def test_client_protocol_decoders(name, encoding, data):
    decoder, messages = DECODERS[name]
    message = decoded_or_refused(decoder, encoding, data.draw(hostile(messages(encoding))))
    if isinstance(message, list):
        assert_sendable(message)
    elif isinstance(message, protocol.ActionRequest):
        assert_sendable(message.args)
    elif isinstance(message, protocol.QueueSendRequest):
        assert_sendable(message.body)


@pytest.mark.parametrize("encoding", ENCODINGS)
@given(data=st.binary(max_size=80), content_type=st.none() | st.sampled_from(["application/json", "text/html"]))
def test_decode_http_error(encoding, data, content_type):
    error = decoded_or_refused(protocol.decode_http_error, encoding, data, content_type)
    assert error is None or {"group", "code", "message"} <= error.keys()


# Keys and the gateway -----------------------------------------------------------------------------------------------

@given(st.text(max_size=40) | hostile(st.just("a/b\\/c/\\0")).map(lambda data: data.decode("utf-8", "replace")))
def test_actor_keys(text):
    key = decoded_or_refused(validate_key, parse_key(text))
    if key is not None:
        assert parse_key(serialize_key(key)) == key
        assert key_header(key).isascii()


@given(st.lists(texts, max_size=4))
def test_key_header_round_trips_any_valid_key(key):
    key = decoded_or_refused(validate_key, key)
    if key is not None:
        header = key_header(key)
        assert header.isascii() and header == header.strip() and unquote(header) == serialize_key(key)


@given(path=st.text(max_size=30), query=hostile(st.sampled_from([
    "rvt-namespace=default&rvt-method=getOrCreate&rvt-runner=default&rvt-key=a%2Cb&rvt-crash-policy=sleep",
    "rvt-method=get&rvt-key=x&own=1", "rvt-method=getOrCreate&rvt-input=oWFhAQ", "a=1&b=2",
])).map(lambda data: data.decode("latin-1")))
def test_parse_gateway(path, query):
    target = decoded_or_refused(parse_gateway, "/gateway/" + path, query)
    if target is not None and target.query is not None and target.query.has_input:
        assert_sendable(target.query.create_input)


@given(hostile(values.map(lambda value: base64.b64encode(encode_wire(value)))))
def test_decode_input(data):
    for urlsafe in (True, False):
        value = decoded_or_refused(decode_input, data.decode("latin-1"), urlsafe=urlsafe)
        if value is not None:
            assert_sendable(value)
