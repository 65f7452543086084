"""Server-side WebSockets on gevent, on ``wsproto``'s frame protocol directly.

One :class:`GreenWebSocket` per accepted socket, using the WSGI server's own file descriptor (never a
duplicate). A reader greenlet feeds wsproto and gathers messages, refusing one as soon as it passes
``max_message_size`` bytes; it stops reading while a message waits unread, so a client cannot queue more.
Sending never blocks the caller: a frame goes straight to the kernel when it takes it, and what the kernel does not
take waits in a per-connection outbox, written in order with whole writes by one writer greenlet that exists only
while there is something to write. A client that lets the outbox grow past ``max_buffered_bytes`` is closed with
1008 ``ws.backpressure``.
"""

from __future__ import annotations

import base64
import binascii
import collections
import logging
import os
import socket
from typing import Any

import gevent
import gevent.event
import gevent.socket
from wsproto import ConnectionType
from wsproto.connection import Connection, ConnectionState
from wsproto.events import BytesMessage, CloseConnection, Message, Ping, TextMessage
from wsproto.utilities import generate_accept_token

from rivetgreen.websocket_messages import MessageAssembler, MessageTooLong

log = logging.getLogger("rivetgreen.server")

# Host-wide caps (bytes); the environment can change them. A /connect session lowers the message cap to its
# actor's max_incoming_message_size.
MAX_MESSAGE_SIZE = int(os.environ.get("RIVETGREEN_WS_MAX_MESSAGE_SIZE", 32 * 1024 * 1024))
MAX_BUFFERED_BYTES = int(os.environ.get("RIVETGREEN_WS_MAX_BUFFERED_BYTES", 4 * 1024 * 1024))
# How long a closing socket waits for its last frames to leave and for the client's close reply.
CLOSE_LINGER_SECONDS = float(os.environ.get("RIVETGREEN_WS_CLOSE_LINGER", 2.0))
RECEIVE_SIZE = 65536
TOO_BIG = (1009, "message.incoming_too_long")  # RFC 6455 §7.4.1: a message too big to process
BACKPRESSURE = (1008, "ws.backpressure")  # RFC 6455 §7.4.1: the endpoint's policy (here: its outgoing bound)
INVALID_UTF8 = (1007, "message.invalid_utf8")  # the reference's reason (core.md §7.4); wsproto finds the error


class GreenWebSocket:
    """An accepted WebSocket. ``send`` never blocks; ``receive`` returns None once the socket is closed."""

    def __init__(self, environ: dict[str, Any], subprotocols: list[str], max_message_size: int | None = None,
                 max_buffered_bytes: int | None = None) -> None:
        header = environ.get("HTTP_SEC_WEBSOCKET_PROTOCOL", "")
        self.offered_subprotocols = [item.strip() for item in header.split(",") if item.strip()]
        self.max_buffered_bytes = max_buffered_bytes or MAX_BUFFERED_BYTES
        self.connected = False
        self._assembler = MessageAssembler(max_message_size or MAX_MESSAGE_SIZE)
        self._too_long = TOO_BIG
        self._protocol = Connection(ConnectionType.SERVER)
        self._messages: collections.deque[str | bytes] = collections.deque()
        self._arrival = gevent.event.Event()  # set while a message waits or once the socket closed
        self._taken = gevent.event.Event()  # set when the application takes a message (the reader may go on)
        self._outbox: collections.deque[bytes | memoryview] = collections.deque()
        self._outbox_bytes = 0
        self._head_started = False  # the outbox's first frame is partly written: it must be finished
        self._writer: gevent.Greenlet | None = None
        self._sock, buffered = _take_connection(environ)
        _prepare(self._sock)
        response = _handshake_response(environ, subprotocols, self.offered_subprotocols)
        try:
            self._sock.sendall(response)
        except OSError:
            response = b""
        self._reader: gevent.Greenlet | None = None
        self._accepted = response.startswith(b"HTTP/1.1 101")
        if self._accepted:
            self.connected = True
            self._reader = gevent.spawn(self._read_frames, buffered)
        else:
            self._arrival.set()

    @property
    def accepted(self) -> bool:
        """Whether the handshake succeeded (a refused upgrade was answered 400 or 426 and has no socket to use)."""
        return self._accepted

    # The application's side -----------------------------------------------------------------------------------
    def limit_messages(self, max_size: int, close_code: int, close_reason: str) -> None:
        """Cap incoming messages at ``max_size`` bytes; a longer one closes the socket with this code and reason."""
        self._assembler.max_size = max_size
        self._too_long = (close_code, close_reason)

    def send(self, data: str | bytes) -> None:
        """Queue a message (text for ``str``, binary for ``bytes``); ignored once the socket is closing."""
        if not self.connected:
            return
        message = TextMessage(data=data) if isinstance(data, str) else BytesMessage(data=bytes(data))
        self._write(self._protocol.send(message))

    def wait_message(self, *interrupts: gevent.event.Event) -> bool:
        """Block until a message is ready (True), or the socket closed or an interrupt was set (False)."""
        while not self._messages and self.connected:
            self._arrival.clear()
            gevent.wait([self._arrival, *interrupts], count=1)
            if any(event.is_set() for event in interrupts):
                break
        return bool(self._messages)

    def receive(self, timeout: float | None = None) -> str | bytes | None:
        """The next message; None once the socket is closed (or after ``timeout`` seconds without one)."""
        if not self._messages and self.connected:
            self._arrival.wait(timeout)
        if not self._messages:
            return None
        message = self._messages.popleft()
        if not self._messages and self.connected:
            self._arrival.clear()
        self._taken.set()
        return message

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Close after every message queued so far has been written."""
        if self._accepted and self._protocol.state is ConnectionState.OPEN:
            self._write(self._protocol.send(CloseConnection(code, reason[:123])), closing=True)
        self._closed()

    def finish(self, environ: dict[str, Any] | None = None) -> None:
        """After the handler returned: write what is queued and the close frame, give the client a moment to answer
        the close, then end the TCP connection (RFC 6455 §5.5.1) so nothing reads WebSocket bytes as HTTP."""
        self.close(1000, "")
        deadline = gevent.Timeout(CLOSE_LINGER_SECONDS)
        deadline.start()
        try:
            if self._writer is not None:
                self._writer.join()
            if self._reader is not None:
                self._reader.join()
        except gevent.Timeout as timeout:
            if timeout is not deadline:
                raise
        finally:
            deadline.close()
        self._shut_down()
        for greenlet in (self._writer, self._reader):
            if greenlet is not None:
                greenlet.kill(block=True, timeout=1)

    # Reading ----------------------------------------------------------------------------------------------------
    def _read_frames(self, buffered: bytes) -> None:
        try:
            if buffered and not self._feed(buffered):
                return
            del buffered
            while True:
                while self._messages and self.connected:  # a message waits unread: let TCP push back
                    self._taken.clear()
                    self._taken.wait()
                # (no name keeps the last chunk alive while this waits: idle sockets hold no receive buffer)
                if not self._feed(self._receive_chunk()):
                    return
        finally:
            self._closed()

    def _receive_chunk(self) -> bytes:
        try:
            return self._sock.recv(RECEIVE_SIZE)
        except OSError:
            return b""

    def _feed(self, data: bytes) -> bool:
        """Hand received bytes to wsproto; False at the end of the stream or of the closing handshake."""
        if not data:
            return False
        self._protocol.receive_data(data)
        return self._handle_events()

    def _handle_events(self) -> bool:
        """Act on what wsproto parsed; False once the closing handshake is over (or the frames are broken)."""
        for event in self._protocol.events():
            if isinstance(event, Message):
                if not self.connected:
                    continue  # closing: what the client still sends is dropped, not gathered
                try:
                    message = self._assembler.add(event)
                except MessageTooLong:
                    self.close(*self._too_long)
                    continue
                if message is not None:
                    self._messages.append(message)
                    self._arrival.set()
            elif isinstance(event, Ping):
                if self._protocol.state is ConnectionState.OPEN:
                    self._write(self._protocol.send(event.response()))
            elif isinstance(event, CloseConnection):
                if self._protocol.state is ConnectionState.REMOTE_CLOSING:
                    self._write(self._protocol.send(event.response()), closing=True)
                elif self._protocol.state is ConnectionState.OPEN:  # wsproto found invalid frames
                    self.close(*(INVALID_UTF8 if event.code == INVALID_UTF8[0] else (event.code, event.reason)))
                self._closed()
                return False
        return True

    def _closed(self) -> None:
        """No more messages go either way (the closing handshake may still be under way)."""
        self.connected = False
        self._arrival.set()
        self._taken.set()

    # Writing ----------------------------------------------------------------------------------------------------
    def _write(self, frame: bytes, closing: bool = False) -> None:
        """Hand ``frame`` to the kernel now if it takes it, else to the outbox; past the bound, give the client up."""
        if not self._outbox:
            try:
                sent = _send_without_waiting(self._sock, frame)
            except OSError:
                self._abort()
                return
            if sent == len(frame):
                return
            frame = memoryview(frame)[sent:]
            self._head_started = sent > 0
        elif not closing and self._outbox_bytes + len(frame) > self.max_buffered_bytes:
            self._give_up_on_slow_client()
            return
        self._outbox.append(frame)
        self._outbox_bytes += len(frame)
        if self._writer is None:
            self._writer = gevent.spawn(self._write_outbox)

    def _write_outbox(self) -> None:
        try:
            while self._outbox:
                frame = self._outbox[0]
                self._head_started = True
                self._sock.sendall(frame)
                if self._outbox and self._outbox[0] is frame:  # (an abort may have emptied the outbox meanwhile)
                    self._outbox.popleft()
                    self._outbox_bytes -= len(frame)
                self._head_started = False
        except OSError:
            self._abort()
        finally:
            self._writer = None

    def _give_up_on_slow_client(self) -> None:
        """Drop what the client has not started to receive and close; ``finish`` cuts the TCP connection if the
        client does not take the close frame within the linger time."""
        log.warning("websocket client is not reading (over %d bytes waiting); closing", self.max_buffered_bytes)
        started = self._outbox[0] if self._outbox and self._head_started else None
        self._outbox.clear()
        self._outbox_bytes = 0
        if started is not None:  # part of it is on the wire: the client must get the rest before the close frame
            self._outbox.append(started)
            self._outbox_bytes = len(started)
        code, reason = BACKPRESSURE
        self._outbox.append(self._protocol.send(CloseConnection(code, reason)))
        self._outbox_bytes += len(self._outbox[-1])
        self._closed()
        if self._writer is None:
            self._writer = gevent.spawn(self._write_outbox)

    def _abort(self) -> None:
        self._closed()
        self._outbox.clear()
        self._outbox_bytes = 0
        self._shut_down()

    def _shut_down(self) -> None:
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # already gone


def _prepare(sock: Any) -> None:
    """Frames leave at once (no Nagle delay) and an idle WebSocket never times out on its own."""
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except OSError:
        pass  # not TCP (a Unix socket)
    sock.settimeout(None)


def _send_without_waiting(sock: Any, data: bytes) -> int:
    """Write what the kernel takes at once (0 when its buffer is full)."""
    try:
        if isinstance(sock, gevent.socket.socket):
            return sock.send(data, 0, timeout=0.0)
        return sock.send(data, socket.MSG_DONTWAIT)
    except BlockingIOError:
        return 0
    except OSError as error:
        if error.errno in (gevent.socket.EWOULDBLOCK, gevent.socket.EAGAIN):
            return 0
        raise


def _handshake_response(environ: dict[str, Any], subprotocols: list[str], offered: list[str]) -> bytes:
    """The 101 answer to a valid upgrade request (RFC 6455 §4.2.2), else a 400 (or 426 for another version)."""
    if environ.get("HTTP_SEC_WEBSOCKET_VERSION", "").strip() != "13":
        return b"HTTP/1.1 426 Upgrade Required\r\nSec-WebSocket-Version: 13\r\nContent-Length: 0\r\n\r\n"
    key = environ.get("HTTP_SEC_WEBSOCKET_KEY", "").strip()
    try:
        valid_key = len(base64.b64decode(key, validate=True)) == 16
    except (binascii.Error, ValueError):
        valid_key = False
    if not valid_key:
        return b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n"
    lines = [
        b"HTTP/1.1 101 Switching Protocols", b"Upgrade: websocket", b"Connection: Upgrade",
        b"Sec-WebSocket-Accept: " + generate_accept_token(key.encode("ascii")),
    ]
    chosen = next((name for name in offered if name in subprotocols), None)
    if chosen is not None:
        lines.append(b"Sec-WebSocket-Protocol: " + chosen.encode("latin-1"))
    return b"\r\n".join(lines) + b"\r\n\r\n"


def _take_connection(environ: dict[str, Any]) -> tuple[Any, bytes]:
    """The WSGI server's own socket for this connection (no duplicate: one file descriptor per WebSocket) and the
    bytes it already read past the request head."""
    take = environ.get("rivetgreen.take_socket")
    if take is not None:
        return take()  # rivetgreen's own handler: it never parses HTTP on this socket again
    stream = environ.get("wsgi.input")
    for key in ("gunicorn.socket", "werkzeug.socket"):
        if key in environ:
            return environ[key], _gunicorn_read_ahead(stream)
    rfile = getattr(stream, "rfile", stream)
    sock = getattr(getattr(rfile, "raw", None), "_sock", None)
    if sock is None:
        raise RuntimeError("this WSGI server does not expose the connection's socket")
    return sock, _buffered_reader_bytes(rfile, sock)


def _gunicorn_read_ahead(stream: Any) -> bytes:
    unreader = getattr(getattr(stream, "reader", None), "unreader", None)
    take_buffered = getattr(unreader, "take_buffered", None)
    return take_buffered() if take_buffered is not None else b""


def _buffered_reader_bytes(rfile: Any, sock: Any) -> bytes:
    """What gevent.pywsgi's buffered reader holds past the request head, read without waiting for more."""
    sock.settimeout(0.0)
    try:
        waiting = rfile.peek(RECEIVE_SIZE)
        return rfile.read(len(waiting)) if waiting else b""
    except (OSError, ValueError):
        return b""
    finally:
        sock.settimeout(None)
