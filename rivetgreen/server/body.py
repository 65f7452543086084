"""The request body stream the handler gives the application (``wsgi.input``): gevent's ``Input`` with the host's
body limit enforced while reading, so an oversized chunked body is refused after ``limit`` bytes instead of being
read whole, and with malformed, cut-short or stalled bodies turned into :class:`RequestRefused` (a 4xx in the
spec's error shape) instead of an ``OSError`` that Flask would answer with a 500."""

from __future__ import annotations

from typing import Any

from gevent.pywsgi import Input

from rivetgreen.server.http_errors import RequestRefused, body_timeout, body_too_large, invalid_body

# After the application answered, an unread body up to this size is read and dropped so the connection can carry the
# next request; a larger one ends the connection instead (reading it would only feed a client nobody listens to).
DISCARD_LIMIT = 64 * 1024
_DISCARD_READ = 16 * 1024


class BoundedInput(Input):
    """A request body of at most ``limit`` bytes (``Content-Length`` was already checked against it)."""

    __slots__ = ("limit", "received", "timeout", "refusal", "connection_ends")

    def __init__(self, rfile: Any, content_length: int | None, socket: Any, chunked_input: bool, limit: int,
                 timeout: float) -> None:
        super().__init__(rfile, content_length, socket=socket, chunked_input=chunked_input)
        self.limit = limit
        self.timeout = timeout
        self.received = 0
        self.refusal: RequestRefused | None = None
        self.connection_ends = False  # the connection closes after this request (an upgrade request)

    def read(self, length: int | None = None) -> bytes:
        return self._bounded(super().read, length)

    def readline(self, size: int | None = None) -> bytes:
        return self._bounded(super().readline, size)

    @property
    def complete(self) -> bool:
        """The whole body was read: the next request on the connection starts right after it."""
        if self.refusal is not None:
            return False
        if self.chunked_input:
            return self.chunk_length == 0
        return self.position >= (self.content_length or 0)

    def _bounded(self, read: Any, length: int | None) -> bytes:
        if self.refusal is not None:
            raise self.refusal
        if self.chunked_input:
            # One byte past the limit is enough to know the body is too large; never ask for more than that.
            allowed = self.limit - self.received + 1
            if length is None or length < 0 or length > allowed:
                length = allowed
        try:
            data = read(length)
        except TimeoutError:
            raise self._refuse(RequestRefused(body_timeout(self.timeout))) from None
        except OSError:  # malformed chunked framing, or the client closed before the end of the body
            raise self._refuse(RequestRefused(invalid_body())) from None
        self.received += len(data)
        if self.received > self.limit:
            raise self._refuse(RequestRefused(body_too_large(self.limit)))
        return data

    def _refuse(self, refusal: RequestRefused) -> RequestRefused:
        self.refusal = refusal
        return refusal

    def _discard(self) -> None:
        """Called by the handler after the application: drop a small unread rest of the body (see DISCARD_LIMIT)."""
        if self.socket is not None:
            return  # the client waits for "100 Continue" before it sends the body: it will never come
        if self.connection_ends:
            return  # no next request to reach: reading the rest would only hold the connection open
        if not self.chunked_input and (self.content_length or 0) - self.position > DISCARD_LIMIT:
            return
        budget = DISCARD_LIMIT
        try:
            while budget > 0 and not self.complete:
                data = self.read(min(_DISCARD_READ, budget))
                if not data:
                    return
                budget -= len(data)
        except RequestRefused:
            return  # the connection ends (complete stays False)


def read_at_most(stream: Any, limit: int | None) -> bytes:
    """The body from ``stream``, but no more than ``limit + 1`` bytes: enough for a limit check to refuse a body
    over ``limit`` without reading it whole (``None``: all of it)."""
    if limit is None:
        return stream.read()
    parts: list[bytes] = []
    size = 0
    while size <= limit:
        data = stream.read(limit + 1 - size)
        if not data:
            break
        parts.append(data)
        size += len(data)
    return b"".join(parts)
