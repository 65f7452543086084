"""Hypothesis strategies for the fuzz suite: plain values, valid client messages in each encoding, and seeded
mutators that damage valid messages (which reach deeper into the decoders than random bytes do)."""

from __future__ import annotations

import base64
import json
from typing import Any

from hypothesis import strategies as st

from rivetgreen.encoding import client_protocol as protocol
from rivetgreen.encoding.cbor import encode_wire
from rivetgreen.encoding.untrusted import MAX_INTEGER_BITS

ENCODINGS = protocol.ENCODINGS

# Values -----------------------------------------------------------------------------------------------------------

integers = st.one_of(
    st.integers(-(2**70), 2**70),
    st.integers(-(2**MAX_INTEGER_BITS) + 1, 2**MAX_INTEGER_BITS - 1),
    st.sampled_from([2**32, 2**53, 2**53 + 1, 2**64 - 1, 2**64, -(2**64), 2**MAX_INTEGER_BITS - 1]),
)
texts = st.text(max_size=20) | st.sampled_from(["$BigInt", "$x", "$$y", ""])  # st.text() has no lone surrogates
scalars = st.one_of(
    st.none(), st.booleans(), integers, st.floats(allow_nan=False, allow_infinity=False), texts,
    st.binary(max_size=20),
)
values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(texts, children, max_size=4),
    max_leaves=20,
)
deep_values = st.integers(1, 134).map(lambda levels: _nested(levels))  # encoders stop at 136 with the envelope


def _nested(levels: int) -> Any:
    value: Any = 0
    for _ in range(levels):
        value = [value]
    return value


# Valid messages ---------------------------------------------------------------------------------------------------

def action_bodies(encoding: str) -> st.SearchStrategy[bytes]:
    """``POST /action/...`` bodies as the clients write them."""
    return st.lists(values | deep_values, max_size=3).map(
        lambda args: protocol.encode_action_request(encoding, args))


def queue_bodies(encoding: str) -> st.SearchStrategy[bytes]:
    requests = st.builds(
        protocol.QueueSendRequest, name=st.none() | texts, body=values,
        wait=st.booleans(), timeout_ms=st.none() | st.integers(0, 50))
    return requests.map(lambda request: protocol.encode_queue_send_request(encoding, request))


def to_server_frames(encoding: str) -> st.SearchStrategy[bytes | str]:
    """``/connect`` frames: action requests and subscriptions."""
    actions = st.builds(protocol.ActionRequest, id=st.integers(0, 2**64 - 1),
                        name=st.sampled_from(["echo", "describe", "getCount", "nope"]) | texts,
                        args=st.lists(values, max_size=3))
    subscriptions = st.builds(protocol.SubscriptionRequest, event_name=texts, subscribe=st.booleans())
    return (actions | subscriptions).map(lambda message: protocol.encode_to_server(encoding, message))


def to_client_frames(encoding: str) -> st.SearchStrategy[bytes | str]:
    messages = st.one_of(
        st.builds(protocol.Init, actor_id=texts, connection_id=texts),
        st.builds(protocol.ActionResponse, id=st.integers(0, 2**64 - 1), output=values),
        st.builds(protocol.Event, name=texts, args=st.lists(values, max_size=3)),
        st.builds(protocol.ErrorMessage, group=texts, code=texts, message=texts, metadata=values,
                  action_id=st.none() | st.integers(0, 2**64 - 1)),
    )
    return messages.map(lambda message: protocol.encode_to_client(encoding, message))


def actor_bodies() -> st.SearchStrategy[bytes]:
    """``PUT``/``POST /actors`` bodies: valid shapes with odd names, keys and inputs."""
    creation_input = values.map(lambda value: base64.b64encode(encode_wire(value)).decode())
    body = st.fixed_dictionaries(
        {"name": st.sampled_from(["counter", "chatRoom", "nope"]) | texts},
        optional={"key": texts | st.sampled_from(["a/b", "\\0", "/", "a\\/b", "日本", "😀"]),
                  "input": creation_input | texts | st.integers() | st.none(), "runner_name_selector": texts,
                  "crash_policy": texts},
    )
    return body.map(lambda document: json.dumps(document).encode())


# Mutators -------------------------------------------------------------------------------------------------------

INTERESTING = [0x00, 0x01, 0x17, 0x18, 0x1B, 0x1F, 0x3B, 0x5F, 0x7F, 0x80, 0x9F, 0xBF, 0xC1, 0xC2, 0xD8, 0xF7,
               0xF9, 0xFB, 0xFF, ord("["), ord("{"), ord('"'), ord("\\"), ord("$")]
SPLICES = [
    b'["$BigInt","' + b"9" * 1300 + b'"]', b"\\ud800", b"\xc2\x59\x02\x01" + b"\xff" * 513, b"[" * 200, b"[" * 5000,
    b"\x81" * 200, b"\xa1\xfb\x7f\xf8\x00\x00\x00\x00\x00\x00\x01", b"\xc1\xfb\x7f\xef\xff\xff\xff\xff\xff\xff",
    b"\xff\xfe", b"\xed\xa0\x80", b"1e999", b"NaN", b'"\\u0000"',
]


@st.composite
def mutated(draw: Any, valid: st.SearchStrategy[bytes | str]) -> bytes:
    """A valid message, then 1–4 seeded edits: flip, set an interesting byte, insert, delete, truncate, duplicate
    a slice, or splice in a known-bad fragment (long $BigInt, lone surrogate, huge bignum, deep nesting...)."""
    message = draw(valid)
    data = bytearray(message.encode() if isinstance(message, str) else message)
    for _ in range(draw(st.integers(1, 4))):
        position = draw(st.integers(0, len(data)))
        edit = draw(st.sampled_from(["flip", "set", "insert", "delete", "truncate", "duplicate", "splice"]))
        if edit == "flip" and position < len(data):
            data[position] ^= 1 << draw(st.integers(0, 7))
        elif edit == "set" and position < len(data):
            data[position] = draw(st.sampled_from(INTERESTING) | st.integers(0, 255))
        elif edit == "insert":
            data[position:position] = bytes([draw(st.sampled_from(INTERESTING))])
        elif edit == "delete":
            del data[position:position + draw(st.integers(1, 8))]
        elif edit == "truncate":
            del data[position:]
        elif edit == "duplicate":
            end = min(len(data), position + draw(st.integers(1, 32)))
            data[position:position] = data[position:end] * draw(st.integers(1, 50))
        else:
            data[position:position] = draw(st.sampled_from(SPLICES))
    return bytes(data)


def hostile(valid: st.SearchStrategy[bytes | str]) -> st.SearchStrategy[bytes]:
    """What the fuzz tests send: mostly mutated valid messages, some valid ones, some random bytes."""
    as_bytes = valid.map(lambda message: message.encode() if isinstance(message, str) else message)
    return st.one_of(mutated(valid), mutated(valid), mutated(valid), as_bytes, st.binary(max_size=64))
