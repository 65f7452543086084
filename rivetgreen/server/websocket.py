"""Server-side WebSockets on gevent, built on simple-websocket (the engine of flask-sock).

flask-sock's route helper constructs a plain ``simple_websocket.Server``, which under gevent (without monkey
patching) would run its reader on a real thread, and which writes with ``socket.send``: under gevent a large
message can be written only in part and the rest is lost (simple-websocket#45). :class:`GreenWebSocket` fixes
both: the reader is a greenlet, every write is a ``sendall``, and one writer greenlet per connection sends
frames in order, so concurrent senders (action replies, broadcasts) never interleave or block on a slow client.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable, Iterator
from typing import Any

import gevent
import gevent.event
import gevent.lock
import gevent.queue
import simple_websocket
from wsproto.events import CloseConnection, Event

log = logging.getLogger("rivetgreen.server")

# Frames waiting for a slow client before the connection is given up.
MAX_PENDING_FRAMES = 10_000
# How long a closing socket waits for the client's close reply before the connection is cut.
CLOSE_LINGER_SECONDS = 2.0
_CLOSE = object()


class _GreenletThread:
    """The small part of ``threading.Thread`` simple-websocket uses, on a greenlet."""

    def __init__(self, target: Callable[[], None]) -> None:
        self._target = target
        self.name = "(_thread)"
        self.greenlet: gevent.Greenlet | None = None

    def start(self) -> None:
        self.greenlet = gevent.spawn(self._target)


class _WholeWrites:
    """A socket whose ``send`` writes everything (``sendall``), one caller at a time."""

    def __init__(self, sock: Any) -> None:
        self._sock = sock
        self._lock = gevent.lock.Semaphore()

    def send(self, data: bytes) -> int:
        with self._lock:
            self._sock.sendall(data)
        return len(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


class GreenWebSocket(simple_websocket.Server):
    """An accepted WebSocket. ``send`` never blocks; ``receive`` returns None once the socket is closed."""

    def __init__(self, environ: dict[str, Any], subprotocols: list[str], max_message_size: int | None = None) -> None:
        header = environ.get("HTTP_SEC_WEBSOCKET_PROTOCOL", "")
        self.offered_subprotocols = [item.strip() for item in header.split(",") if item.strip()]
        self._outbox: gevent.queue.Queue[Any] = gevent.queue.Queue()
        self._writer_done = gevent.event.Event()
        super().__init__(
            environ,
            subprotocols=subprotocols,
            max_message_size=max_message_size,
            thread_class=_GreenletThread,
            event_class=gevent.event.Event,
        )
        gevent.spawn(self._write_frames)

    def handshake(self) -> None:
        self.sock = _WholeWrites(self.sock)
        self.ws.events = _named_utf8_errors(self.ws.events)
        super().handshake()

    def send(self, data: str | bytes) -> None:
        """Queue a frame (text for ``str``, binary for ``bytes``)."""
        if not self.connected:
            return
        if self._outbox.qsize() >= MAX_PENDING_FRAMES:
            log.warning("websocket client is not reading; closing")
            self.close(1011, "ws.backpressure")
            return
        self._outbox.put(data)

    def wait_message(self, *interrupts: gevent.event.Event) -> bool:
        """Block until a message is ready (True), or the socket closed or an interrupt was set (False)."""
        while self.connected and not self.input_buffer:
            gevent.wait([self.event, *interrupts], count=1)
            if any(event.is_set() for event in interrupts):
                break
            self.event.clear()
        return bool(self.input_buffer)

    def receive(self, timeout: float | None = None) -> str | bytes | None:
        try:
            return super().receive(timeout)
        except simple_websocket.ConnectionClosed:
            return None

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Close after every frame queued so far has been written."""
        self._outbox.put((_CLOSE, code, reason[:123]))

    def finish(self, environ: dict[str, Any]) -> None:
        """After the handler returned: write what is queued and the close frame, give the client a moment to
        answer the close, then end the TCP connection (RFC 6455 §5.5.1) so the WSGI server does not read
        WebSocket frames as a new HTTP request."""
        self.close(1000, "")
        self._writer_done.wait()
        reader = getattr(self.thread, "greenlet", None)
        if reader is not None:
            reader.join(timeout=CLOSE_LINGER_SECONDS)
        connection = _connection_socket(environ)
        if connection is not None:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # already gone

    def _write_frames(self) -> None:
        try:
            for item in self._outbox:
                if isinstance(item, tuple) and item and item[0] is _CLOSE:
                    if self.connected:
                        super().close(item[1], item[2])
                    return
                if not self.connected:
                    return
                simple_websocket.Server.send(self, item)
        except (OSError, simple_websocket.ConnectionClosed):
            self.connected = False
        finally:
            self._writer_done.set()


def _named_utf8_errors(events: Callable[[], Iterator[Event]]) -> Callable[[], Iterator[Event]]:
    """wsproto closes invalid UTF-8 text with 1007 and its own message; the reference's reason is
    ``message.invalid_utf8`` (core.md §7.4)."""

    def renamed() -> Iterator[Event]:
        for event in events():
            if isinstance(event, CloseConnection) and event.code == 1007:
                event = CloseConnection(1007, "message.invalid_utf8")
            yield event

    return renamed


def _connection_socket(environ: dict[str, Any]) -> Any:
    """The WSGI server's own socket for this connection (simple-websocket works on a duplicate of it)."""
    for key in ("gunicorn.socket", "werkzeug.socket"):
        if key in environ:
            return environ[key]
    stream = environ.get("wsgi.input")
    stream = getattr(stream, "rfile", stream)
    raw = getattr(stream, "raw", None)
    return getattr(raw, "_sock", None)
