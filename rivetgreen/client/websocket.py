"""A small WebSocket client on ``wsproto`` over a gevent socket, without monkey patching.

One reader greenlet per socket feeds received bytes to wsproto, answers pings and the server's close, and queues
complete messages; writers share one lock, so frames never interleave. ``receive`` returns None once the socket
is closed (``close_code``/``close_reason`` then say why).
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlsplit

import gevent
import gevent.event
import gevent.lock
import gevent.queue
import gevent.socket
import gevent.ssl
from wsproto import ConnectionType, WSConnection
from wsproto.connection import ConnectionState
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Event,
    Ping,
    RejectConnection,
    RejectData,
    Request,
    TextMessage,
)
from wsproto.utilities import LocalProtocolError, RemoteProtocolError

from rivetgreen.client.errors import ClientTimeout, client_error
from rivetgreen.websocket_messages import MessageAssembler

log = logging.getLogger("rivetgreen.client")

RECEIVE_SIZE = 65536
ABNORMAL_CLOSURE = 1006
_CLOSED = object()


class WebSocket:
    """An open WebSocket. Use :meth:`connect` to open one.

    ``receive(timeout)`` waits at most ``timeout`` seconds (``None``: the socket's ``default_timeout``; a
    ``default_timeout`` of None waits until a message arrives or the socket closes) and raises
    ``client/timeout`` when nothing came."""

    def __init__(self, sock: Any, connection: WSConnection, subprotocol: str | None,
                 default_timeout: float | None, initial_events: list[Event], quickack: bool = False) -> None:
        self.subprotocol = subprotocol
        self.default_timeout = default_timeout
        self.close_code: int | None = None
        self.close_reason = ""
        self.clean_close = False
        self._sock = sock
        self._ws = connection
        self._write_lock = gevent.lock.Semaphore()
        self._messages: gevent.queue.Queue[Any] = gevent.queue.Queue()
        self._closed = gevent.event.Event()
        self._assembler = MessageAssembler()
        self._quickack = quickack
        self._reader = gevent.spawn(self._read_loop, initial_events)

    @classmethod
    def connect(
        cls,
        url: str,
        *,
        subprotocols: list[str] | None = None,
        headers: dict[str, str] | None = None,
        timeout: float = 60.0,
        default_timeout: float | None = None,
        quickack: bool = False,
    ) -> WebSocket:
        """Open ``url`` (``http(s)://`` or ``ws(s)://``), offering ``subprotocols``. A refused upgrade raises
        ``client/connection_open_failed`` with the HTTP status in its metadata. ``quickack`` re-arms TCP_QUICKACK
        before every read, for peers that write without TCP_NODELAY (the engine's envoy socket)."""
        parts = urlsplit(url)
        secure = parts.scheme in ("https", "wss")
        host = parts.hostname or ""
        port = parts.port or (443 if secure else 80)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        host_header = parts.netloc.rpartition("@")[2]
        deadline = gevent.Timeout(timeout, ClientTimeout(f"Opening the WebSocket {url} took longer than {timeout} s."))
        deadline.start()
        sock = None
        try:
            sock = gevent.socket.create_connection((host, port), timeout)
            sock.setsockopt(gevent.socket.IPPROTO_TCP, gevent.socket.TCP_NODELAY, 1)
            if secure:
                sock = gevent.ssl.create_default_context().wrap_socket(sock, server_hostname=host)
            connection = WSConnection(ConnectionType.CLIENT)
            extra = [(name.encode("latin-1"), value.encode("latin-1")) for name, value in (headers or {}).items()]
            request = Request(host=host_header, target=target, subprotocols=list(subprotocols or []),
                              extra_headers=extra)
            sock.sendall(connection.send(request))
            accepted, leftovers = _read_handshake(sock, connection, url)
            sock.settimeout(None)
        except BaseException as error:  # including a kill of the calling greenlet: never leak the socket
            if sock is not None:
                sock.close()
            if isinstance(error, (OSError, RemoteProtocolError, LocalProtocolError)) and \
                    not isinstance(error, ClientTimeout):
                raise client_error("connection_open_failed", f"Opening the WebSocket {url} failed: {error}",
                                   {"url": url}) from error
            raise
        finally:
            deadline.close()
        return cls(sock, connection, accepted.subprotocol, default_timeout, leftovers, quickack)

    # Public API -----------------------------------------------------------------------------------------------
    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    def send(self, data: str | bytes) -> None:
        """Send a text (``str``) or binary (``bytes``) message; ``client/connection_lost`` if the socket is closed."""
        event = TextMessage(data=data) if isinstance(data, str) else BytesMessage(data=bytes(data))
        with self._write_lock:
            if self._ws.state is not ConnectionState.OPEN or self._closed.is_set():
                raise client_error("connection_lost", "The WebSocket is closed.",
                                   {"closeCode": self.close_code, "reason": self.close_reason})
            try:
                self._sock.sendall(self._ws.send(event))
            except OSError as error:
                self._abort()
                raise client_error("connection_lost", f"Sending on the WebSocket failed: {error}") from error

    def receive(self, timeout: float | None = None) -> str | bytes | None:
        """The next message; None once the socket is closed and every received message was read."""
        limit = self.default_timeout if timeout is None else timeout
        try:
            item = self._messages.get(timeout=limit)
        except gevent.queue.Empty:
            raise ClientTimeout(f"No WebSocket message within {limit} s.") from None
        if item is _CLOSED:
            self._messages.put(_CLOSED)  # every later receive() returns None too
            return None
        message: str | bytes = item
        return message

    def close(self, code: int = 1000, reason: str = "", timeout: float = 5.0) -> None:
        """Start the closing handshake and wait (at most ``timeout`` s) for the server's answer."""
        with self._write_lock:
            if self._ws.state is ConnectionState.OPEN:
                try:
                    self._sock.sendall(self._ws.send(CloseConnection(code=code, reason=reason)))
                except (OSError, LocalProtocolError):
                    self._abort()
        if not self._closed.wait(timeout):
            self._abort()

    def wait_closed(self, timeout: float | None = None) -> bool:
        """Wait until the socket is closed; False if it is still open after ``timeout`` seconds."""
        return self._closed.wait(timeout)

    # Reader ---------------------------------------------------------------------------------------------------
    def _read_loop(self, initial_events: list[Event]) -> None:
        try:
            for event in initial_events:
                self._handle(event)
            while not self._closed.is_set():
                try:
                    if self._quickack:
                        # Linux clears QUICKACK after a while: a peer's second back-to-back frame would wait for
                        # our delayed ACK (about 40 ms) unless it is re-armed before each read.
                        self._sock.setsockopt(gevent.socket.IPPROTO_TCP, gevent.socket.TCP_QUICKACK, 1)
                    data = self._sock.recv(RECEIVE_SIZE)
                except OSError:
                    data = b""
                if not data:
                    self._finish(ABNORMAL_CLOSURE, "", clean=False)
                    return
                try:
                    self._ws.receive_data(data)
                    for event in self._ws.events():
                        self._handle(event)
                except RemoteProtocolError as error:
                    log.warning("websocket protocol error: %s", error)
                    self._finish(ABNORMAL_CLOSURE, str(error), clean=False)
                    return
        finally:
            if not self._closed.is_set():
                self._finish(ABNORMAL_CLOSURE, "", clean=False)

    def _handle(self, event: Event) -> None:
        if isinstance(event, (TextMessage, BytesMessage)):
            message = self._assembler.add(event)
            if message is not None:
                self._messages.put(message)
        elif isinstance(event, Ping):
            self._send_control(event.response())
        elif isinstance(event, CloseConnection):
            if self._ws.state is ConnectionState.REMOTE_CLOSING:
                self._send_control(event.response())
            self._finish(event.code, event.reason or "", clean=True)

    def _send_control(self, event: Event) -> None:
        with self._write_lock:
            try:
                self._sock.sendall(self._ws.send(event))
            except (OSError, LocalProtocolError):
                pass

    def _finish(self, code: int, reason: str, clean: bool) -> None:
        if self._closed.is_set():
            return
        self.close_code, self.close_reason, self.clean_close = code, reason, clean
        self._sock.close()
        self._closed.set()
        self._messages.put(_CLOSED)

    def _abort(self) -> None:
        """Drop the TCP connection (the reader then reports an abnormal closure)."""
        if not self._closed.is_set():
            self._finish(ABNORMAL_CLOSURE, "", clean=False)
            if self._reader is not gevent.getcurrent():
                self._reader.kill(block=False)

    def __repr__(self) -> str:
        state = f"closed {self.close_code} {self.close_reason!r}" if self.closed else "open"
        return f"<WebSocket {state}>"


def _read_handshake(sock: Any, connection: WSConnection, url: str) -> tuple[AcceptConnection, list[Event]]:
    """Read until the server accepts (returning the events that followed in the same bytes) or refuses."""
    rejection: RejectConnection | None = None
    body: list[bytes] = []
    while True:
        data = sock.recv(RECEIVE_SIZE)
        connection.receive_data(data or None)
        events = list(connection.events())
        for index, event in enumerate(events):
            if isinstance(event, AcceptConnection):
                return event, events[index + 1:]
            if isinstance(event, RejectConnection):
                rejection = event
                if not event.has_body:
                    raise _refused(url, rejection, b"")
            elif isinstance(event, RejectData):
                body.append(event.data)
                if event.body_finished and rejection is not None:
                    raise _refused(url, rejection, b"".join(body))
        if not data:
            raise client_error("connection_open_failed", f"The server closed {url} during the WebSocket handshake.")


def _refused(url: str, rejection: RejectConnection, body: bytes) -> Exception:
    text = body.decode("utf-8", "replace")
    return client_error(
        "connection_open_failed",
        f"The server refused the WebSocket {url} with HTTP {rejection.status_code}: {text[:200]}",
        {"status": rejection.status_code, "body": text},
    )
