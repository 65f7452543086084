"""CBOR for user values: state, input, action arguments and outputs, schedule arguments, event arguments.

:func:`encode`/:func:`decode` (cbor2) serve storage; :func:`encode_wire`/:func:`decode_wire` serve values that
cross to and from JavaScript clients, with cbor-x's integer widths and tags (client-protocol.md §7.2).
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from typing import Any

import cbor2

from rivetgreen.encoding.untrusted import (
    MAX_INTEGER_BITS,
    MAX_NESTING,
    check_encodable_integer,
    check_encoded_depth,
    integer_fits,
    valid_text,
)
from rivetgreen.errors import RivetError, invalid_request

# The value types that survive a round trip through every client encoding (json, cbor, bare).
SCALARS = (type(None), bool, int, float, str, bytes)


def encode(value: Any) -> bytes:
    """Encode a user value; anything but plain CBOR values (see :func:`check_value`) raises ``encoding/invalid``."""
    bad = check_value(value)
    if bad is not None:
        raise RivetError("encoding", "invalid", f"Value at {bad} is not a plain CBOR value (None, bool, int, float, "
                         "str, bytes, list, dict).", {"path": bad})
    try:
        return cbor2.dumps(value)
    except (cbor2.CBOREncodeError, TypeError, ValueError) as error:
        raise RivetError("encoding", "invalid", f"Value cannot be encoded as CBOR: {error}") from error


def decode(data: bytes) -> Any:
    try:
        return cbor2.loads(data)
    except (cbor2.CBORDecodeError, ValueError, TypeError, EOFError) as error:
        raise RivetError("encoding", "invalid", f"Bytes are not valid CBOR: {error}") from error


def check_value(value: Any, path: str = "", depth: int = 0) -> str | None:
    """The path of the first part of ``value`` that is not a plain CBOR value (None when all is fine). Plain values
    obey the limits of :mod:`rivetgreen.encoding.untrusted`, so every client encoding can carry them."""
    if isinstance(value, str):
        return None if valid_text(value) else path or "."
    if isinstance(value, int) and not isinstance(value, bool):
        return None if integer_fits(value) else path or "."
    if isinstance(value, SCALARS):
        return None
    if not isinstance(value, (list, tuple, dict)) or depth >= MAX_NESTING:
        return path or "."
    if isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            bad = check_value(item, f"{path}[{index}]", depth + 1)
            if bad is not None:
                return bad
        return None
    for key, item in value.items():
        if not plain_key(key):
            return f"{path}[{key!r}]"
        bad = check_value(item, f"{path}.{key}" if isinstance(key, str) else f"{path}[{key}]", depth + 1)
        if bad is not None:
            return bad
    return None


def plain_key(key: Any) -> bool:
    """Map keys are strings or integers: what JSON objects and JS Maps from the clients carry."""
    if isinstance(key, str):
        return valid_text(key)
    return isinstance(key, int) and not isinstance(key, bool) and integer_fits(key)


# Wire CBOR: values crossing to and from JavaScript clients (client-protocol.md §7.2). --------------------------
#
# cbor-x (the npm client's codec) decodes every integer written with an 8-byte argument (``1b``/``3b``) as a
# BigInt, and writes every JS integer of magnitude 2**32 or more as a float64. encode_wire mirrors that, so a
# Python int reaches JS as a Number exactly when a JS actor's number would, and decode_wire maps the float64
# form back to an int. It is a small hand-written codec (rather than cbor2) so the integer widths are exact.

JS_NUMBER_INTEGER_LIMIT = 1 << 53  # integers up to this magnitude are exact as float64 / JS Numbers
MINIMAL_INTEGER_LIMIT = 1 << 32
UINT64_LIMIT = 1 << 64

MAJOR_UNSIGNED, MAJOR_NEGATIVE, MAJOR_BYTES, MAJOR_TEXT, MAJOR_ARRAY, MAJOR_MAP, MAJOR_TAG, MAJOR_SIMPLE = range(8)
TAG_DATE_TEXT = 0
TAG_DATE_EPOCH = 1
TAG_POSITIVE_BIGNUM = 2
TAG_NEGATIVE_BIGNUM = 3
TAG_UINT8_ARRAY = 64
TAG_SET = 258
TAG_MAP = 259
TAG_SELF_DESCRIBED = 55799
BREAK = 0xFF


@dataclass(frozen=True)
class Uint64:
    """An unsigned integer that :func:`encode_wire` writes with the 8-byte argument (``1b`` + 8 bytes), which
    cbor-x decodes as a BigInt. Protocol ids in ``cbor`` mode must look like this (client-protocol.md §5.2)."""

    value: int


def encode_uint64(value: int) -> bytes:
    """A protocol id as a CBOR unsigned integer forced to the 8-byte form: ``1b`` followed by 8 big-endian bytes."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < UINT64_LIMIT:
        raise RivetError("encoding", "invalid", f"{value!r} is not an unsigned 64-bit integer.")
    return bytes([MAJOR_UNSIGNED << 5 | 27]) + value.to_bytes(8, "big")


def encode_wire(value: Any) -> bytes:
    """CBOR for a JS client: small ints minimal, ints in [2**32, 2**53] as float64, larger ones ``1b``/``3b`` or
    bignums, floats as float64, bytes native, lists/tuples as arrays, dicts as maps, :class:`Uint64` forced wide.
    Any other type, an integer over the size limit or nesting deeper than ``MAX_ENCODED_NESTING`` raises
    ``encoding/invalid``."""
    output = bytearray()
    _write_wire(output, value, 0)
    return bytes(output)


def _write_wire(output: bytearray, value: Any, depth: int) -> None:
    if value is None:
        output.append(0xF6)
    elif isinstance(value, bool):
        output.append(0xF5 if value else 0xF4)
    elif isinstance(value, int):
        _write_integer(output, value)
    elif isinstance(value, float):
        output.append(0xFB)
        output += struct.pack(">d", value)
    elif isinstance(value, str):
        _write_text(output, value)
    elif isinstance(value, (bytes, bytearray, memoryview)):
        _write_head(output, MAJOR_BYTES, len(value))
        output += value
    else:
        _write_container(output, value, depth)


def _write_container(output: bytearray, value: Any, depth: int) -> None:
    if isinstance(value, (list, tuple, dict)):
        check_encoded_depth(depth)
    if isinstance(value, (list, tuple)):
        _write_head(output, MAJOR_ARRAY, len(value))
        for item in value:
            _write_wire(output, item, depth + 1)
    elif isinstance(value, dict):
        _write_head(output, MAJOR_MAP, len(value))
        for key, item in value.items():
            if not plain_key(key):  # what the decoders refuse is never written either
                raise RivetError("encoding", "invalid", f"A map key must be a string or an integer, not {key!r}.")
            _write_wire(output, key, depth + 1)
            _write_wire(output, item, depth + 1)
    elif isinstance(value, Uint64):
        output += encode_uint64(value.value)
    else:
        raise RivetError("encoding", "invalid", f"A {type(value).__name__} cannot be sent to a client as CBOR.")


def _write_text(output: bytearray, value: str) -> None:
    try:
        encoded = value.encode("utf-8")
    except UnicodeEncodeError as error:
        raise RivetError("encoding", "invalid", f"A string is not valid Unicode: {error}") from error
    _write_head(output, MAJOR_TEXT, len(encoded))
    output += encoded


def _write_integer(output: bytearray, value: int) -> None:
    check_encodable_integer(value)
    magnitude = abs(value)
    if MINIMAL_INTEGER_LIMIT <= magnitude <= JS_NUMBER_INTEGER_LIMIT:
        output.append(0xFB)
        output += struct.pack(">d", float(value))
        return
    major, argument = (MAJOR_UNSIGNED, value) if value >= 0 else (MAJOR_NEGATIVE, -1 - value)
    if argument < UINT64_LIMIT:
        _write_head(output, major, argument)
        return
    payload = argument.to_bytes((argument.bit_length() + 7) // 8, "big")
    _write_head(output, MAJOR_TAG, TAG_POSITIVE_BIGNUM if major == MAJOR_UNSIGNED else TAG_NEGATIVE_BIGNUM)
    _write_head(output, MAJOR_BYTES, len(payload))
    output += payload


def _write_head(output: bytearray, major: int, argument: int) -> None:
    """The initial byte and argument of a data item, in the shortest form."""
    prefix = major << 5
    if argument < 24:
        output.append(prefix | argument)
    elif argument < 1 << 8:
        output += bytes([prefix | 24, argument])
    elif argument < 1 << 16:
        output.append(prefix | 25)
        output += argument.to_bytes(2, "big")
    elif argument < 1 << 32:
        output.append(prefix | 26)
        output += argument.to_bytes(4, "big")
    else:
        output.append(prefix | 27)
        output += argument.to_bytes(8, "big")


def decode_wire(data: bytes | bytearray | memoryview) -> Any:
    """Decode CBOR from a JS client into plain values. Tags 2/3 (bignums) → int; tag 64 (Uint8Array) → bytes;
    ``undefined`` → None; tag 258 (Set) → list; tag 259 (Map) → dict; tag 1 (Date) → int milliseconds since the
    epoch (what ``Date.getTime()`` returns); tag 0 (date text) → the text; a float64 holding an integer of
    magnitude 2**32 to 2**53 → int (that is how cbor-x writes such JS numbers). Anything else, truncated input
    or trailing bytes raise ``actor/invalid_request``."""
    decoder = _WireDecoder(bytes(data))
    value = decoder.item(0)
    if decoder.remaining:
        raise invalid_request(f"{decoder.remaining} unexpected trailing byte(s) after the CBOR value.")
    return value


class _WireDecoder:
    """A recursive-descent reader over one CBOR buffer."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.position = 0

    @property
    def remaining(self) -> int:
        return len(self.data) - self.position

    def take(self, count: int) -> bytes:
        if count > self.remaining:
            raise invalid_request(f"The CBOR value is truncated at offset {self.position}.")
        start = self.position
        self.position += count
        return self.data[start:self.position]

    def head(self) -> tuple[int, int, int | None]:
        """(major type, additional info, argument); the argument is None for indefinite lengths (info 31)."""
        initial = self.take(1)[0]
        major, info = initial >> 5, initial & 0x1F
        if info < 24:
            return major, info, info
        if info <= 27:
            return major, info, int.from_bytes(self.take(1 << (info - 24)), "big")
        if info == 31 and major in (MAJOR_BYTES, MAJOR_TEXT, MAJOR_ARRAY, MAJOR_MAP):
            return major, info, None
        raise invalid_request(f"Malformed CBOR item header 0x{initial:02x} at offset {self.position - 1}.")

    def item(self, depth: int) -> Any:
        major, info, argument = self.head()
        # A tag counts as a level (tags can nest), but may wrap a scalar inside the deepest container (a bignum).
        if (major in (MAJOR_ARRAY, MAJOR_MAP) and depth >= MAX_NESTING) or (major == MAJOR_TAG and depth > MAX_NESTING):
            raise invalid_request(f"The CBOR value is nested deeper than {MAX_NESTING} levels.")
        if major == MAJOR_UNSIGNED:
            return argument
        if major == MAJOR_NEGATIVE:
            return -1 - argument
        if major in (MAJOR_BYTES, MAJOR_TEXT):
            return self.string(major, argument)
        if major == MAJOR_ARRAY:
            return self.array(argument, depth)
        if major == MAJOR_MAP:
            return self.map(argument, depth)
        if major == MAJOR_TAG:
            return self.tagged(argument, depth)
        return self.simple(info, argument)

    def string(self, major: int, length: int | None) -> bytes | str:
        raw = self.take(length) if length is not None else self.chunks(major)
        if major == MAJOR_BYTES:
            return raw
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as error:
            raise invalid_request(f"A CBOR text string is not valid UTF-8: {error}") from error

    def chunks(self, major: int) -> bytes:
        """The concatenated chunks of an indefinite-length byte or text string."""
        parts = []
        while not self.at_break():
            chunk_major, _, length = self.head()
            if chunk_major != major or length is None:
                raise invalid_request("Malformed chunk in an indefinite-length CBOR string.")
            parts.append(self.take(length))
        return b"".join(parts)

    def at_break(self) -> bool:
        """True (and the break byte consumed) if the next byte ends an indefinite-length item."""
        if self.remaining and self.data[self.position] == BREAK:
            self.position += 1
            return True
        return False

    def array(self, length: int | None, depth: int) -> list[Any]:
        if length is None:
            items = []
            while not self.at_break():
                items.append(self.item(depth + 1))
            return items
        if length > self.remaining:
            raise invalid_request(f"A CBOR array claims {length} items but only {self.remaining} bytes remain.")
        return [self.item(depth + 1) for _ in range(length)]

    def map(self, length: int | None, depth: int) -> dict[Any, Any]:
        if length is not None and 2 * length > self.remaining:
            raise invalid_request(f"A CBOR map claims {length} entries but only {self.remaining} bytes remain.")
        result: dict[Any, Any] = {}
        if length is None:
            while not self.at_break():
                self.entry(result, depth)
        else:
            for _ in range(length):
                self.entry(result, depth)
        return result

    def entry(self, result: dict[Any, Any], depth: int) -> None:
        key = self.item(depth + 1)
        if not plain_key(key):
            raise invalid_request(f"A CBOR map key must be a string or an integer, not {type(key).__name__}.")
        result[key] = self.item(depth + 1)

    def tagged(self, tag: int, depth: int) -> Any:
        content = self.item(depth + 1)
        if tag in (TAG_POSITIVE_BIGNUM, TAG_NEGATIVE_BIGNUM):
            magnitude = int.from_bytes(_expect(content, bytes, tag), "big")
            value = magnitude if tag == TAG_POSITIVE_BIGNUM else -1 - magnitude
            if not integer_fits(value):
                raise invalid_request(f"A CBOR bignum has more than {MAX_INTEGER_BITS} bits.")
            return value
        if tag == TAG_UINT8_ARRAY:
            return _expect(content, bytes, tag)
        if tag == TAG_SET:
            return _expect(content, list, tag)
        if tag == TAG_MAP:
            return _expect(content, dict, tag)
        if tag == TAG_DATE_EPOCH:
            return _epoch_milliseconds(content)
        if tag in (TAG_DATE_TEXT, TAG_SELF_DESCRIBED):
            return content
        raise invalid_request(f"CBOR tag {tag} is not supported.")

    def simple(self, info: int, argument: int) -> Any:
        if info == 25:
            return struct.unpack(">e", argument.to_bytes(2, "big"))[0]
        if info == 26:
            return struct.unpack(">f", argument.to_bytes(4, "big"))[0]
        if info == 27:
            return _normalize_float64(struct.unpack(">d", argument.to_bytes(8, "big"))[0])
        simple_values = {20: False, 21: True, 22: None, 23: None}
        if info < 24 and argument in simple_values:
            return simple_values[argument]
        raise invalid_request(f"CBOR simple value {argument} is not supported.")


def _expect(content: Any, expected: type, tag: int) -> Any:
    if not isinstance(content, expected):
        raise invalid_request(f"CBOR tag {tag} must wrap a {expected.__name__}, not {type(content).__name__}.")
    return content


def _normalize_float64(value: float) -> float | int:
    """cbor-x writes JS integers of magnitude 2**32 and more as float64; read those back as ints."""
    if value.is_integer() and MINIMAL_INTEGER_LIMIT <= abs(value) <= JS_NUMBER_INTEGER_LIMIT:
        return int(value)
    return value


def _epoch_milliseconds(content: Any) -> int:
    """Seconds since the epoch (tag 1's content) as whole milliseconds, like ``Date.getTime()``."""
    if isinstance(content, bool) or not isinstance(content, (int, float)):
        raise invalid_request(f"CBOR tag 1 (date) must wrap a number, not {type(content).__name__}.")
    if isinstance(content, float) and not math.isfinite(content * 1000):
        raise invalid_request(f"CBOR tag 1 (date) must wrap a finite number, not {content!r}.")
    milliseconds = round(content * 1000)
    if not integer_fits(milliseconds):
        raise invalid_request(f"A CBOR date has more than {MAX_INTEGER_BITS} bits of milliseconds.")
    return milliseconds
