"""RivetKit's JSON-compat ``$``-wrappers (client-protocol.md §7.1).

Values JSON cannot carry travel as two-element arrays tagged with a ``$`` string: ``["$BigInt", "<digits>"]``,
``["$Uint8Array", "<base64>"]``, ``["$ArrayBuffer", "<base64>"]``, ``["$Undefined", 0]`` and ``["$Set", [...]]``.
A user array that merely looks like a wrapper (``[s, x]`` with ``s`` a string starting with ``$``) is escaped by
doubling the ``$``. The wrappers are used in ``json`` mode and inside the CBOR payloads of ``bare`` mode; in
``cbor`` mode values are native, but the receiving client still revives wrappers, so the server escapes
``$``-arrays there too (:func:`escape_dollar_arrays`).

Python has no ``undefined`` or ``Set`` in the plain value model, so they decode to ``None`` and a list.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

from rivetgreen.encoding.untrusted import (
    MAX_INTEGER_BITS,
    MAX_INTEGER_DIGITS,
    check_encodable_integer,
    check_encoded_depth,
    integer_fits,
)
from rivetgreen.errors import invalid_request

MAX_SAFE_INTEGER = (1 << 53) - 1  # JavaScript's Number.MAX_SAFE_INTEGER

BIGINT_TAG = "$BigInt"
UINT8_ARRAY_TAG = "$Uint8Array"
ARRAY_BUFFER_TAG = "$ArrayBuffer"
UNDEFINED_TAG = "$Undefined"
SET_TAG = "$Set"

BINARY_TYPES = (bytes, bytearray, memoryview)
DECIMAL_INTEGER = re.compile(r"-?[0-9]+")


def to_json_compat(value: Any, depth: int = 0) -> Any:
    """``value`` with bytes and unsafe integers wrapped and ``$``-arrays escaped; tuples become lists. An integer
    over the size limit or nesting deeper than ``MAX_ENCODED_NESTING`` raises ``encoding/invalid``."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        if -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
            return value
        check_encodable_integer(value)
        return [BIGINT_TAG, str(value)]
    if isinstance(value, BINARY_TYPES):
        return [UINT8_ARRAY_TAG, base64.b64encode(bytes(value)).decode("ascii")]
    if isinstance(value, (list, tuple, dict)):
        check_encoded_depth(depth)
    if isinstance(value, (list, tuple)):
        return _escape_if_tagged([to_json_compat(item, depth + 1) for item in value])
    if isinstance(value, dict):
        return {key: to_json_compat(item, depth + 1) for key, item in value.items()}
    return value


def escape_dollar_arrays(value: Any, depth: int = 0) -> Any:
    """Only the ``$``-array escaping of :func:`to_json_compat` (for native ``cbor`` mode); tuples become lists."""
    if isinstance(value, (list, tuple, dict)):
        check_encoded_depth(depth)
    if isinstance(value, (list, tuple)):
        return _escape_if_tagged([escape_dollar_arrays(item, depth + 1) for item in value])
    if isinstance(value, dict):
        return {key: escape_dollar_arrays(item, depth + 1) for key, item in value.items()}
    return value


def _escape_if_tagged(items: list[Any]) -> list[Any]:
    if is_tagged(items):
        return ["$" + items[0], items[1]]
    return items


def is_tagged(value: Any) -> bool:
    """Whether ``value`` has the shape of a wrapper: a two-element list whose first element starts with ``$``."""
    return isinstance(value, list) and len(value) == 2 and isinstance(value[0], str) and value[0].startswith("$")


def from_json_compat(value: Any) -> Any:
    """Revive wrappers (``$BigInt`` → int, ``$Uint8Array``/``$ArrayBuffer`` → bytes, ``$Undefined`` → None,
    ``$Set`` → list) and unescape ``$$`` arrays. An unknown ``$`` tag raises ``actor/invalid_request``."""
    if isinstance(value, list):
        if is_tagged(value):
            return _revive_tagged(value[0], value[1])
        return [from_json_compat(item) for item in value]
    if isinstance(value, dict):
        return {key: from_json_compat(item) for key, item in value.items()}
    return value


def _revive_tagged(tag: str, payload: Any) -> Any:
    if tag == BIGINT_TAG:
        return _revive_bigint(payload)
    if tag in (UINT8_ARRAY_TAG, ARRAY_BUFFER_TAG):
        return _revive_base64(tag, payload)
    if tag == UNDEFINED_TAG:
        return None
    if tag == SET_TAG:
        if not isinstance(payload, list):
            raise invalid_request(f"A {SET_TAG} wrapper must hold an array, not {type(payload).__name__}.")
        return [from_json_compat(item) for item in payload]
    if tag.startswith("$$"):
        return [tag[1:], from_json_compat(payload)]
    raise invalid_request(f"Unknown JSON encoding type: {tag}.")


def _revive_bigint(payload: Any) -> int:
    if isinstance(payload, int) and not isinstance(payload, bool):
        value = payload
    elif isinstance(payload, str) and DECIMAL_INTEGER.fullmatch(payload.strip()):
        if len(payload.strip().lstrip("-")) > MAX_INTEGER_DIGITS:  # checked before int(): long texts are slow
            raise invalid_request(f"A {BIGINT_TAG} has more than {MAX_INTEGER_DIGITS} digits.")
        value = int(payload)
    else:
        raise invalid_request(f"A {BIGINT_TAG} wrapper must hold a decimal integer string, not {payload!r:.100}.")
    if not integer_fits(value):
        raise invalid_request(f"A {BIGINT_TAG} has more than {MAX_INTEGER_BITS} bits.")
    return value


def _revive_base64(tag: str, payload: Any) -> bytes:
    """Lenient like Node's ``Buffer.from(text, "base64")``: padding optional, URL-safe letters accepted."""
    if not isinstance(payload, str):
        raise invalid_request(f"A {tag} wrapper must hold a base64 string, not {type(payload).__name__}.")
    text = payload.strip().rstrip("=")
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_")
    except (binascii.Error, ValueError) as error:
        raise invalid_request(f"A {tag} wrapper does not hold valid base64: {error}") from error
