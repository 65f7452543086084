"""The envoy socket re-arms TCP_QUICKACK before every read (engine-envoy.md §10.5.3: the engine writes without
TCP_NODELAY, so its second back-to-back frame waited ~40 ms for our delayed ACK), and is opened with TCP_NODELAY."""

from __future__ import annotations

import socket as stdlib_socket
from collections.abc import Iterator
from typing import Any

import gevent
import gevent.server
import gevent.socket
import pytest
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, BytesMessage, Request

from rivetgreen.engine.envoy.connection import open_websocket

QUICKACK = (stdlib_socket.IPPROTO_TCP, stdlib_socket.TCP_QUICKACK, 1)
NODELAY = (stdlib_socket.IPPROTO_TCP, stdlib_socket.TCP_NODELAY, 1)
FRAMES = 3


def serve_frames(client: gevent.socket.socket, _address: object) -> None:
    """Accept the upgrade, then send FRAMES binary messages, each after the client's answer to the previous one."""
    server = WSConnection(ConnectionType.SERVER)
    while True:
        server.receive_data(client.recv(65536))
        if any(isinstance(event, Request) for event in server.events()):
            break
    client.sendall(server.send(AcceptConnection(subprotocol="rivet")))
    for index in range(FRAMES):
        client.sendall(server.send(BytesMessage(data=bytes([index]))))
        # The next frame only once the client answered this one: each frame is a read of its own.
        while not any(isinstance(event, BytesMessage) for event in server.events()):
            data = client.recv(65536)
            if not data:
                return
            server.receive_data(data)


class RecordingSocket:
    """A real socket that logs ``setsockopt`` and ``recv`` calls in order."""

    def __init__(self, sock: Any, calls: list[Any]) -> None:
        self._sock = sock
        self._calls = calls

    def setsockopt(self, *option: Any) -> None:
        self._calls.append(option)
        self._sock.setsockopt(*option)

    def recv(self, size: int) -> bytes:
        self._calls.append("recv")
        return self._sock.recv(size)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


@pytest.fixture
def server() -> Iterator[gevent.server.StreamServer]:
    stream_server = gevent.server.StreamServer(("127.0.0.1", 0), serve_frames)
    stream_server.start()
    yield stream_server
    stream_server.stop(timeout=1)


def test_the_envoy_socket_rearms_quickack_before_every_read(
    server: gevent.server.StreamServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[Any] = []
    real_create_connection = gevent.socket.create_connection
    monkeypatch.setattr(gevent.socket, "create_connection",
                        lambda *args, **kwargs: RecordingSocket(real_create_connection(*args, **kwargs), calls))
    websocket = open_websocket(f"http://127.0.0.1:{server.server_port}/envoys/connect", ["rivet"])
    try:
        for index in range(FRAMES):
            assert websocket.receive(5) == bytes([index])
            websocket.send(b"next")
    finally:
        websocket.close(timeout=0.5)
    assert calls[0] == NODELAY
    assert QUICKACK in calls, "TCP_QUICKACK was never set"
    # From the first read of the open socket on, every read is preceded by a fresh QUICKACK.
    first = calls.index(QUICKACK)
    reads = [index for index, call in enumerate(calls) if call == "recv" and index > first]
    assert len(reads) >= FRAMES and all(calls[index - 1] == QUICKACK for index in reads)
    assert calls.count(QUICKACK) == len(reads)
