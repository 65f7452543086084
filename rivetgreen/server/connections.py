"""The connection limit with a reserve: who may hold one of the host's ``max_connections`` slots.

A connection *waits* while no complete request head has come on it (just accepted, or idle between keep-alive
requests); otherwise it is *busy* (a request in progress, or a WebSocket). Waiting connections look the same whether
they are slow, idle or hostile (slowloris), so they are the ones that give way: they may hold at most
``max_connections - connection_reserve`` slots, and when a new connection arrives while that share is full, or
while every slot is held, the connection that has waited longest is closed to make room. A new connection is turned
away (503) only when every slot is held by a busy connection.
"""

from __future__ import annotations

import socket
from typing import Any


class ConnectionSlots:
    """Counts open connections (sockets) and orders the waiting ones by how long they have waited."""

    def __init__(self, max_connections: int, max_waiting: int) -> None:
        self.max_connections = max_connections
        self.max_waiting = max_waiting
        self.open: set[Any] = set()
        self._waiting: dict[Any, None] = {}  # insertion order: the longest-waiting connection first
        self.turned_away = 0  # connections refused (503) because every slot was held by a busy one

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    def admit(self, sock: Any) -> bool:
        """Take a slot for a newly accepted connection (waiting); False if every slot is held by a busy one."""
        while self._waiting and (len(self._waiting) >= self.max_waiting or len(self.open) >= self.max_connections):
            self._evict_longest_waiting()
        if len(self.open) >= self.max_connections:
            self.turned_away += 1
            return False
        self.open.add(sock)
        self._waiting[sock] = None
        return True

    def busy(self, sock: Any) -> None:
        """A complete request head came on ``sock``."""
        self._waiting.pop(sock, None)

    def idle(self, sock: Any) -> None:
        """``sock`` finished a request and waits for the next one (keep-alive)."""
        if sock not in self.open:
            return
        self._waiting.pop(sock, None)
        self._waiting[sock] = None
        while len(self._waiting) > self.max_waiting:
            self._evict_longest_waiting()

    def release(self, sock: Any) -> None:
        """``sock`` is closed."""
        self.open.discard(sock)
        self._waiting.pop(sock, None)

    def close_waiting(self) -> None:
        """Close every waiting connection (the server is stopping: idle keep-alive connections end at once)."""
        while self._waiting:
            self._evict_longest_waiting()

    def _evict_longest_waiting(self) -> None:
        sock = next(iter(self._waiting))
        self.release(sock)
        # Shut down rather than close: the connection's greenlet, blocked reading, sees the end of the stream and
        # closes the socket itself (closing it here would leave the descriptor open while its reader holds it).
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # already gone
