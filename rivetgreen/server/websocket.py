"""Server-side WebSockets on gevent, built on simple-websocket (the engine of flask-sock).

flask-sock's route helper constructs a plain ``simple_websocket.Server``, which under gevent (without monkey
patching) would run its reader on a real thread, and which writes with ``socket.send``: under gevent a large
message can be written only in part and the rest is lost (simple-websocket#45). :class:`GreenWebSocket` fixes
both: the reader is a greenlet, every write is a ``sendall``, and one writer greenlet per connection sends
frames in order, so concurrent senders (action replies, broadcasts) never interleave or block on a slow client.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import gevent
import gevent.event
import gevent.lock
import gevent.queue
import simple_websocket

log = logging.getLogger("rivetgreen.server")

# Frames waiting for a slow client before the connection is given up.
MAX_PENDING_FRAMES = 10_000
_CLOSE = object()


class _GreenletThread:
    """The small part of ``threading.Thread`` simple-websocket uses, on a greenlet."""

    def __init__(self, target: Callable[[], None]) -> None:
        self._target = target
        self.name = "(_thread)"

    def start(self) -> None:
        gevent.spawn(self._target)


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

    def receive(self, timeout: float | None = None) -> str | bytes | None:
        try:
            return super().receive(timeout)
        except simple_websocket.ConnectionClosed:
            return None

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Close after every frame queued so far has been written."""
        self._outbox.put((_CLOSE, code, reason[:123]))

    def wait_closed(self) -> None:
        """Block until the close frame was written (or the connection died)."""
        self._writer_done.wait()

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
