"""BARE primitives (https://baremessages.org), as used by the RivetKit client protocol (client-protocol.md §7.3).

``uint`` is unsigned LEB128 (at most 10 bytes, below 2**64); ``u8``/``u16``/``u32``/``u64``/``i64``/``f64`` are
little-endian fixed width; ``bool`` is one byte (0 or 1); ``str`` and ``data`` are a ``uint`` length followed by the
bytes (UTF-8 for ``str``); ``data[n]`` is exactly ``n`` bytes; ``optional<T>`` is ``00``, or ``01`` followed by ``T``;
``list<T>`` is a ``uint`` count followed by the elements; ``map<K><V>`` a ``uint`` count followed by key/value pairs.
Structs are their fields in order, unions a tag followed by the variant.

:class:`BareWriter` builds a message (a value it cannot write raises ``encoding/invalid``); :class:`BareReader`
reads one and raises ``actor/invalid_request`` on truncated or malformed input.
"""

from __future__ import annotations

import builtins
import struct
from collections.abc import Callable, Iterable, Mapping
from typing import TypeVar

from rivetgreen.errors import RivetError, invalid_request

Value = TypeVar("Value")
Key = TypeVar("Key")

UINT64_LIMIT = 1 << 64
INT64_LIMIT = 1 << 63
MAX_UINT_BYTES = 10


class BareWriter:
    """Appends BARE values to a growing buffer; :meth:`to_bytes` returns the message so far."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def to_bytes(self) -> bytes:
        return bytes(self._buffer)

    def uint(self, value: int) -> None:
        """Unsigned LEB128: seven bits a byte, least significant first, high bit set on all but the last byte."""
        _check_range(value, UINT64_LIMIT, "uint")
        while value >= 0x80:
            self._buffer.append((value & 0x7F) | 0x80)
            value >>= 7
        self._buffer.append(value)

    def u64(self, value: int) -> None:
        _check_range(value, UINT64_LIMIT, "u64")
        self._buffer += value.to_bytes(8, "little")

    def u16(self, value: int) -> None:
        _check_range(value, 1 << 16, "u16")
        self._buffer += value.to_bytes(2, "little")

    def u8(self, value: int) -> None:
        _check_range(value, 1 << 8, "u8")
        self._buffer.append(value)

    def u32(self, value: int) -> None:
        _check_range(value, 1 << 32, "u32")
        self._buffer += value.to_bytes(4, "little")

    def i64(self, value: int) -> None:
        """Two's complement, little-endian."""
        if not _is_int(value) or not -INT64_LIMIT <= value < INT64_LIMIT:
            raise RivetError("encoding", "invalid", f"{value!r} is not a valid BARE i64.")
        self._buffer += value.to_bytes(8, "little", signed=True)

    def f64(self, value: float) -> None:
        """IEEE 754 binary64, little-endian."""
        if isinstance(value, builtins.bool) or not isinstance(value, int | float):
            raise RivetError("encoding", "invalid", f"{value!r} is not a valid BARE f64.")
        self._buffer += struct.pack("<d", value)

    def fixed_data(self, value: bytes | bytearray | memoryview, length: int) -> None:
        """``data[length]``: exactly ``length`` bytes, no length prefix."""
        if len(value) != length:
            raise RivetError(
                "encoding", "invalid", f"BARE data[{length}] needs exactly {length} bytes, not {len(value)}."
            )
        self._buffer += value

    def bool(self, value: builtins.bool) -> None:
        self._buffer.append(1 if value else 0)

    def str(self, value: builtins.str) -> None:
        try:
            encoded = value.encode("utf-8")
        except UnicodeEncodeError as error:
            raise RivetError("encoding", "invalid", f"A string is not valid Unicode: {error}") from error
        self.data(encoded)

    def data(self, value: bytes | bytearray | memoryview) -> None:
        self.uint(len(value))
        self._buffer += value

    def optional(self, value: Value | None, write_function: Callable[[Value], None]) -> None:
        """``00`` for None, otherwise ``01`` followed by whatever ``write_function(value)`` writes."""
        if value is None:
            self._buffer.append(0)
        else:
            self._buffer.append(1)
            write_function(value)

    def list(self, values: Iterable[Value], write_function: Callable[[Value], None]) -> None:
        """The count, then ``write_function(value)`` for each value in order."""
        values = builtins.list(values)
        self.uint(len(values))
        for value in values:
            write_function(value)

    def map(
        self, mapping: Mapping[Key, Value], write_key: Callable[[Key], None], write_value: Callable[[Value], None]
    ) -> None:
        """The count, then each key and value, in the mapping's iteration order."""
        self.uint(len(mapping))
        for key, value in mapping.items():
            write_key(key)
            write_value(value)


def _is_int(value: object) -> builtins.bool:
    return isinstance(value, int) and not isinstance(value, builtins.bool)


def _check_range(value: int, limit: int, type_name: builtins.str) -> None:
    if not _is_int(value) or not 0 <= value < limit:
        raise RivetError("encoding", "invalid", f"{value!r} is not a valid BARE {type_name}.")


class BareReader:
    """Reads BARE values from the start of ``buffer``; every read checks that enough bytes remain."""

    def __init__(self, buffer: bytes | bytearray | memoryview) -> None:
        self._buffer = bytes(buffer)
        self._position = 0

    @property
    def remaining(self) -> int:
        return len(self._buffer) - self._position

    def finish(self) -> None:
        """Raise unless every byte has been read."""
        if self.remaining:
            raise invalid_request(f"{self.remaining} unexpected trailing byte(s) after the BARE message.")

    def uint(self) -> int:
        value = 0
        for index in range(MAX_UINT_BYTES):
            byte = self._take(1)[0]
            value |= (byte & 0x7F) << (7 * index)
            if byte < 0x80:
                if value >= UINT64_LIMIT:
                    break
                return value
        raise invalid_request("A BARE uint is longer than 64 bits.")

    def u64(self) -> int:
        return int.from_bytes(self._take(8), "little")

    def u16(self) -> int:
        return int.from_bytes(self._take(2), "little")

    def u8(self) -> int:
        return self._take(1)[0]

    def u32(self) -> int:
        return int.from_bytes(self._take(4), "little")

    def i64(self) -> int:
        return int.from_bytes(self._take(8), "little", signed=True)

    def f64(self) -> float:
        return struct.unpack("<d", self._take(8))[0]

    def fixed_data(self, length: int) -> bytes:
        return self._take(length)

    def bool(self) -> builtins.bool:
        byte = self._take(1)[0]
        if byte > 1:
            raise invalid_request(f"A BARE bool must be 0 or 1, not {byte}.")
        return byte == 1

    def str(self) -> builtins.str:
        raw = self.data()
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as error:
            raise invalid_request(f"A BARE str is not valid UTF-8: {error}") from error

    def data(self) -> bytes:
        length = self.uint()
        return self._take(length)

    def optional(self, read_function: Callable[[], Value]) -> Value | None:
        """None for ``00``; for ``01`` the value ``read_function()`` reads next."""
        marker = self._take(1)[0]
        if marker == 0:
            return None
        if marker == 1:
            return read_function()
        raise invalid_request(f"A BARE optional marker must be 0 or 1, not {marker}.")

    def list(self, read_function: Callable[[], Value]) -> builtins.list[Value]:
        """A count, then that many ``read_function()`` values."""
        return [read_function() for _ in range(self._count("list"))]

    def map(self, read_key: Callable[[], Key], read_value: Callable[[], Value]) -> dict[Key, Value]:
        """A count, then that many key/value pairs; a repeated key is malformed."""
        result: dict[Key, Value] = {}
        for _ in range(self._count("map")):
            key = read_key()
            if key in result:
                raise invalid_request(f"A BARE map repeats the key {key!r}.")
            result[key] = read_value()
        return result

    def _count(self, type_name: builtins.str) -> int:
        # Every element of the lists and maps read here takes at least one byte, so a count above the bytes left is
        # malformed: say so up front, before reading any element of a frame that cannot hold them.
        count = self.uint()
        if count > self.remaining:
            raise invalid_request(
                f"A BARE {type_name} declares {count} element(s) but only {self.remaining} byte(s) are left."
            )
        return count

    def _take(self, count: int) -> bytes:
        if count > self.remaining:
            raise invalid_request(
                f"The BARE message is truncated: {count} byte(s) needed at offset {self._position}, "
                f"{self.remaining} left."
            )
        start = self._position
        self._position += count
        return self._buffer[start:self._position]
