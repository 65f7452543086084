"""The host's HTTP/1.1 transport: gevent's pywsgi server with a ``WSGIHandler`` subclass.

gevent's handler parses requests well and fast but leaves the edge open: no timeouts, no connection limit, the
response head and body in two writes on a socket with Nagle's algorithm on (a 40 ms stall per keep-alive request),
bodies read whole whatever their size, plain-text or empty error answers, and after a WebSocket upgrade it goes on
reading the connection as HTTP. The subclass closes each of those while keeping gevent's parser:

- ``TCP_NODELAY`` on every accepted socket, and the response head sent with the body in one write;
- a deadline for the request head (``header_timeout``, from accept or from the first byte of a keep-alive
  request), an idle limit between requests (``keepalive_timeout``), a per-read limit on bodies (``body_timeout``);
- the connection limit with a reserve (:mod:`rivetgreen.server.connections`);
- heads over ``max_header_size``, ambiguous framing, and bodies over ``max_request_body_size`` refused before they
  are read (:mod:`rivetgreen.server.body` for chunked bodies), every refusal in the spec's JSON error shape;
- ``environ["rivetgreen.take_socket"]``: a WebSocket takes the connection's socket and the bytes already read past
  the request head; the handler then writes nothing more and closes the socket when the application returns. A
  request asking for an upgrade always ends its connection, whatever the application did, so bytes sent after a
  WebSocket closes are never read as a new HTTP request.
"""

from __future__ import annotations

import http.client
import logging
import socket
import time
from io import BytesIO
from typing import Any

import gevent
from gevent.pywsgi import MAX_REQUEST_LINE, WSGIHandler, WSGIServer

from rivetgreen.errors import RivetError
from rivetgreen.server.body import BoundedInput
from rivetgreen.server.connections import ConnectionSlots
from rivetgreen.server.http_errors import (
    RequestRefused,
    bad_request,
    body_too_large,
    headers_too_large,
    host_error,
    internal_error,
    json_body,
    overloaded,
    raw_response,
    request_line_too_long,
    status_line,
)
from rivetgreen.settings import HostSettings

log = logging.getLogger("rivetgreen.server")

TAKE_SOCKET = "rivetgreen.take_socket"
# A response head is sent together with a body up to this size (larger bodies are not copied to join them).
COALESCE_LIMIT = 64 * 1024
# Before closing a connection whose client may still be sending: how long, and how many bytes, to read and drop.
LINGER_SECONDS = 1.0
LINGER_BYTES = 8 * 1024 * 1024


class HeadNotReceived(OSError):
    """The request head did not come in time (or the connection ended first): close without an answer."""


class RivetHandler(WSGIHandler):
    """One connection: gevent's request loop with the host's timeouts, limits and socket hand-over."""

    _taken = False
    _upgrade = False  # the current request asks for a protocol upgrade (a WebSocket)
    _requests_read = 0
    _header_deadline: gevent.Timeout | None = None
    _holding_head = False
    _held_head: bytearray | None = None

    def __init__(self, sock: Any, address: Any, server: RivetServer, rfile: Any = None) -> None:
        super().__init__(sock, address, server, rfile)
        self.settings: HostSettings = server.settings
        self.slots: ConnectionSlots = server.connection_slots

    def handle(self) -> None:
        if self.socket.family in (socket.AF_INET, socket.AF_INET6):
            self.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().handle()

    # reading a request head ------------------------------------------------------------------------------------
    def handle_one_request(self) -> Any:
        try:
            result = super().handle_one_request()
        finally:
            self._cancel_header_deadline()
        if not isinstance(result, tuple):
            return result
        # A refused request head: answer, then end the connection.
        if result[0] == "414":  # gevent's own plain answer to a long request line
            result = self._refusal(request_line_too_long(MAX_REQUEST_LINE))
        self.status, answer = result
        try:
            self.socket.sendall(answer)
        except OSError:
            return None
        self.response_length = len(answer)
        self.time_finish = time.time()
        self.log_request()
        linger(self.socket)
        return None

    def read_requestline(self) -> str:
        sock = self.socket
        self.environ = None  # the previous request's, until this one's head is parsed
        if self._requests_read:
            if self.server.closed:
                return ""  # the server is stopping: no request after this one (close_waiting ran before it ended)
            # Keep-alive: wait for the next request's first byte; the end of the stream or the idle timeout
            # (an OSError, which gevent's caller takes as "close") ends the connection.
            self.slots.idle(sock)
            sock.settimeout(self.settings.keepalive_timeout)
            if not self.rfile.peek(1):
                return ""
        sock.settimeout(self.settings.header_timeout)
        self._header_deadline = gevent.Timeout.start_new(
            self.settings.header_timeout, HeadNotReceived("request head timed out"))
        return super().read_requestline()

    def MessageClass(self, fp: Any, *args: Any) -> Any:  # noqa: N802 (gevent's name)
        """The request's headers, read within ``max_header_size`` (with the request line) and checked for
        framing a proxy could read differently."""
        limit = self.settings.max_header_size
        head = read_header_block(fp, limit - len(self.requestline), limit)
        # A folded line (obs-fold) would join a header a proxy may read as its own.
        if any(line[:1] in (b" ", b"\t") for line in head.splitlines()):
            raise RequestRefused(bad_request("Folded header lines are not accepted."))
        headers = super().MessageClass(BytesIO(head), *args)
        # After a malformed line http.client keeps the rest of the head as a "payload": the headers past it
        # (Content-Length, Transfer-Encoding) would go unseen and the body be read as the next request.
        if headers.defects or headers.get_payload():
            raise RequestRefused(bad_request("The request headers are malformed."))
        self._check_framing(headers)
        return headers

    def read_request(self, raw_requestline: str) -> bool:
        try:
            super().read_request(raw_requestline)
        finally:
            self._cancel_header_deadline()
        self._requests_read += 1
        self.slots.busy(self.socket)
        self._upgrade = self._connection_upgrade_requested()
        # Per read of the body, and per response write; an upgrade request keeps it too until a WebSocket really
        # takes the socket (take_socket clears it), else any request naming an upgrade could hold a slot forever.
        self.socket.settimeout(self.settings.body_timeout)
        return True

    def _check_framing(self, headers: Any) -> None:
        transfer_encodings = headers.get_all("Transfer-Encoding") or []
        content_lengths = [value.strip() for value in headers.get_all("Content-Length") or []]
        if transfer_encodings:
            if content_lengths:
                raise RequestRefused(bad_request("A request may not have both Transfer-Encoding and Content-Length."))
            # Exactly gevent's test for a chunked body: any other value would leave the body unread and parsed as
            # the next request.
            if len(transfer_encodings) != 1 or transfer_encodings[0].lower() != "chunked":
                raise RequestRefused(host_error("unsupported_transfer_encoding",
                                                "The only transfer encoding accepted is 'chunked'.", 501))
        elif content_lengths:
            value = content_lengths[0]
            if len(set(content_lengths)) != 1 or not (value.isascii() and value.isdigit()) or len(value) > 18:
                raise RequestRefused(bad_request("The Content-Length header is invalid."))
            if int(value) > self.settings.max_request_body_size:
                raise RequestRefused(body_too_large(self.settings.max_request_body_size))

    def _handle_client_error(self, ex: BaseException) -> Any:
        """A request head that cannot be served: gevent's hook, answered in the spec's error shape."""
        if isinstance(ex, RequestRefused):
            error = ex.error
        elif isinstance(ex, OSError):  # the head did not come in time, or the connection ended or was reset
            return None
        elif isinstance(ex, http.client.HTTPException):  # more header lines than http.client accepts
            error = headers_too_large(self.settings.max_header_size)
        else:
            error = bad_request("The request line or headers are malformed.")
        log.debug("refused a request from %s: %s", self.client_address, ex)
        return self._refusal(error)

    def _refusal(self, error: RivetError) -> tuple[str, bytes]:
        self.close_connection = True
        return str(error.status), raw_response(error)

    def _cancel_header_deadline(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.close()
            self._header_deadline = None

    # the application -------------------------------------------------------------------------------------------
    def get_environ(self) -> dict[str, Any]:
        environ = super().get_environ()
        plain = self.wsgi_input
        self.wsgi_input = BoundedInput(plain.rfile, plain.content_length, plain.socket, plain.chunked_input,
                                       self.settings.max_request_body_size, self.settings.body_timeout)
        # An upgrade request gets it too (gevent would give the raw stream, whose stalls are no 408 but a 500); a
        # WebSocket reads through take_socket, not wsgi.input.
        environ["wsgi.input"] = self.wsgi_input
        self.wsgi_input.connection_ends = self._upgrade
        environ[TAKE_SOCKET] = self.take_socket
        return environ

    def take_socket(self) -> tuple[Any, bytes]:
        """Hand the connection's socket over (a WebSocket): returns it, blocking and without timeout, with the bytes
        already read past the request head. The handler writes nothing more and closes it after the application."""
        if self._taken:
            raise RuntimeError("the connection's socket was already taken")
        self._taken = True
        self.close_connection = True
        sock = self.socket
        sock.settimeout(0.0)  # peek returns what is buffered without waiting for more
        try:
            buffered = self.rfile.peek()
        except OSError:
            buffered = b""
        finally:
            sock.settimeout(None)
        self.rfile.read(len(buffered))
        return sock, buffered

    def handle_one_response(self) -> None:
        super().handle_one_response()
        # A taken socket or an upgrade request ends the connection whatever the application did (bytes after a
        # WebSocket are not HTTP), and so does a body left unread (where the next request starts is unknown).
        if self._taken or self._upgrade:
            self.close_connection = True
        elif not self.wsgi_input.complete:
            self.close_connection = True
            linger(self.socket)

    def write(self, data: bytes) -> None:
        if self._taken:
            return  # the socket belongs to whoever took it
        super().write(data)

    def handle_error(self, t: Any, v: Any, tb: Any) -> None:
        if isinstance(v, RequestRefused):  # a WSGI application (not Flask) let the body refusal through
            self._send_error(v.error)
        elif isinstance(v, TimeoutError) and self.headers_sent:  # a response write outlasted body_timeout: the
            self.close_connection = True  # client stopped reading
        else:
            super().handle_error(t, v, tb)

    def _send_error_response_if_possible(self, error_code: int) -> None:
        self._send_error(internal_error() if error_code >= 500 else bad_request("The request is malformed."))

    def _send_error(self, error: RivetError) -> None:
        self.close_connection = True
        if self.headers_sent or self._taken:
            return
        body = json_body(error)
        try:
            self.start_response(status_line(error),
                                [("Content-Type", "application/json"), ("Content-Length", str(len(body))),
                                 ("Connection", "close")])
            self.write(body)
        except OSError:
            pass

    # writing a response ----------------------------------------------------------------------------------------
    def _write_with_headers(self, data: bytes) -> None:
        # gevent sends the head and then the body; hold the head back and send it with the body's first write.
        self._holding_head = len(data) <= COALESCE_LIMIT
        try:
            super()._write_with_headers(data)
        finally:
            self._holding_head = False
            head, self._held_head = self._held_head, None
        if head is not None:  # no body bytes followed
            self._sendall(head)

    def _sendall(self, data: bytes) -> None:
        if self._holding_head:
            if self._held_head is None:
                self._held_head = bytearray(data)
                return
            self._holding_head = False
            data, self._held_head = self._held_head + data, None
        super()._sendall(data)


def read_header_block(rfile: Any, budget: int, limit: int) -> bytes:
    """The header lines up to and including the empty line, at most ``budget`` bytes."""
    lines = []
    while True:
        if budget <= 0:
            raise RequestRefused(headers_too_large(limit))
        line = rfile.readline(budget)
        if not line.endswith(b"\n"):
            if len(line) < budget:
                raise HeadNotReceived("the connection ended inside the request head")
            raise RequestRefused(headers_too_large(limit))
        lines.append(line)
        budget -= len(line)
        if line in (b"\r\n", b"\n"):
            return b"".join(lines)


class RivetServer(WSGIServer):
    """gevent's WSGI server with :class:`RivetHandler` and the connection limit."""

    handler_class = RivetHandler

    def __init__(self, listener: Any, application: Any = None, *args: Any, settings: HostSettings | None = None,
                 **kwargs: Any) -> None:
        self.settings = settings or HostSettings.from_environment()
        self.connection_slots = ConnectionSlots(self.settings.max_connections, self.settings.max_waiting_connections)
        super().__init__(listener, application, *args, **kwargs)

    def handle(self, sock: Any, address: Any) -> None:
        if not self.connection_slots.admit(sock):
            turn_away(sock)
            return
        try:
            super().handle(sock, address)
        finally:
            self.connection_slots.release(sock)

    def close(self) -> None:
        """Stop accepting, and end the connections that are only waiting for a request (idle keep-alive); one with a
        request in progress ends when that request is answered (see read_requestline)."""
        super().close()
        self.connection_slots.close_waiting()


def turn_away(sock: Any) -> None:
    """Answer a connection over the limit with 503 ``host/overloaded`` and close it, without reading a request."""
    try:
        sock.sendall(raw_response(overloaded(), (("Retry-After", "1"),)))
        # No linger: under overload every turned-away connection would hold a descriptor for LINGER_SECONDS.
        sock.shutdown(socket.SHUT_WR)
    except OSError:
        pass
    finally:
        sock.close()


def linger(sock: Any) -> None:
    """Before closing a connection that may still be sending (an unread body): stop writing, and read and drop what
    comes for a moment. Closing with unread bytes resets the connection, which can destroy the answer just sent
    before the client reads it."""
    try:
        sock.shutdown(socket.SHUT_WR)
        budget = LINGER_BYTES
        with gevent.Timeout(LINGER_SECONDS, False):
            while budget > 0:
                data = sock.recv(64 * 1024)
                if not data:
                    return
                budget -= len(data)
    except OSError:
        pass  # reset or timed out: nothing more to wait for
