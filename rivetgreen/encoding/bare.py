"""BARE primitives (https://baremessages.org), as used by the RivetKit client protocol (client-protocol.md §7.3).

``uint`` is unsigned LEB128 (at most 10 bytes, below 2**64); ``u64``/``u16`` are little-endian fixed width; ``bool``
is one byte (0 or 1); ``str`` and ``data`` are a ``uint`` length followed by the bytes (UTF-8 for ``str``);
``optional<T>`` is ``00``, or ``01`` followed by ``T``. Structs are their fields in order, unions a ``uint`` tag
followed by the variant.

:class:`BareWriter` builds a message (a value it cannot write raises ``encoding/invalid``); :class:`BareReader`
reads one and raises ``actor/invalid_request`` on truncated or malformed input.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable
from typing import TypeVar

from rivetgreen.errors import RivetError, invalid_request

Value = TypeVar("Value")

UINT64_LIMIT = 1 << 64
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


def _check_range(value: int, limit: int, type_name: builtins.str) -> None:
    if isinstance(value, builtins.bool) or not isinstance(value, int) or not 0 <= value < limit:
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

    def _take(self, count: int) -> bytes:
        if count > self.remaining:
            raise invalid_request(
                f"The BARE message is truncated: {count} byte(s) needed at offset {self._position}, "
                f"{self.remaining} left."
            )
        start = self._position
        self._position += count
        return self._buffer[start:self._position]
