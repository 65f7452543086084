"""A loopback TCP proxy the tests can cut: :meth:`TcpProxy.partition` drops every open connection (no close frame,
as when a network fails) and refuses new ones until :meth:`TcpProxy.heal`."""

from __future__ import annotations

import gevent
import gevent.server
import gevent.socket


class TcpProxy:
    """Forwards 127.0.0.1:``port`` to ``target``; ``url`` is ``http://127.0.0.1:port``."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.accepted = 0
        self.partitioned = False
        self._open: set[gevent.socket.socket] = set()
        self._server = gevent.server.StreamServer(("127.0.0.1", 0), self._forward)
        self._server.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_port}"

    def partition(self) -> None:
        self.partitioned = True
        for sock in list(self._open):
            self._drop(sock)

    def heal(self) -> None:
        self.partitioned = False

    def close(self) -> None:
        self.partition()
        self._server.stop()

    def _forward(self, client: gevent.socket.socket, _address: object) -> None:
        if self.partitioned:
            client.close()
            return
        self.accepted += 1
        upstream = gevent.socket.create_connection(self.target)
        self._open.update((client, upstream))
        pumps = [gevent.spawn(self._pump, client, upstream), gevent.spawn(self._pump, upstream, client)]
        gevent.joinall(pumps, count=1)
        for sock in (client, upstream):
            self._drop(sock)
        gevent.killall(pumps)

    def _pump(self, source: gevent.socket.socket, sink: gevent.socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass

    def _drop(self, sock: gevent.socket.socket) -> None:
        self._open.discard(sock)
        try:
            sock.shutdown(gevent.socket.SHUT_RDWR)
        except OSError:
            pass
        sock.close()
