"""Whole WebSocket messages from the partial data wsproto hands out (sans-I/O; shared by our client and server).

wsproto yields a message in pieces as its bytes arrive. :class:`MessageAssembler` joins them and, given a
``max_size``, refuses a message as soon as its byte count passes the cap, so an oversize message never sits in
memory whole.
"""

from __future__ import annotations

from wsproto.events import BytesMessage, TextMessage


class MessageTooLong(Exception):
    """The message being received passed the assembler's ``max_size``."""


class MessageAssembler:
    """Joins message pieces into whole messages; ``max_size`` (bytes, None for no cap) bounds each one."""

    def __init__(self, max_size: int | None = None) -> None:
        self.max_size = max_size
        self._parts: list[str | bytes | bytearray] = []
        self._size = 0

    def add(self, event: TextMessage | BytesMessage) -> str | bytes | None:
        """The whole message once ``event`` finishes it, else None. Raises :class:`MessageTooLong` (and drops
        what was gathered) once the message passes ``max_size``."""
        data = event.data
        if self.max_size is not None:
            # Text arrives decoded; the cap is on its UTF-8 bytes, as on the wire.
            self._size += len(data.encode()) if isinstance(data, str) else len(data)
            if self._size > self.max_size:
                self._parts, self._size = [], 0
                raise MessageTooLong(f"a WebSocket message passed {self.max_size} bytes")
        self._parts.append(data)
        if not event.message_finished:
            return None
        parts, self._parts, self._size = self._parts, [], 0
        if isinstance(event, TextMessage):
            return "".join(parts)  # type: ignore[arg-type]
        return b"".join(parts)  # type: ignore[arg-type]
