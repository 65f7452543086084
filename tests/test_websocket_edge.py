"""The server WebSocket at the edge: one descriptor per socket, memory bounded by the byte caps in and out,
broadcasts that yield and survive one subscriber's failure, and quiet closes under gunicorn."""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gevent
import gevent.socket
import pytest
from wsproto.events import BytesMessage, CloseConnection
from wsproto.utilities import LocalProtocolError

from rivetgreen import actor, setup
from rivetgreen.actor.connection import Conn, ConnectionManager
from rivetgreen.client import Client
from rivetgreen.encoding import client_protocol as protocol
from tests.compat.actors import ACTORS
from tests.test_server import MIB, WsClient, connect, masked_frame, query

WORKTREE = Path(__file__).resolve().parent.parent

# Actors (also served by the subprocess host) -----------------------------------------------------------------------
blaster = actor("blaster")


@blaster.action
def blast(c, size, count):
    """Broadcast ``count`` events of ``size`` bytes each."""
    for _ in range(count):
        c.broadcast("blob", b"x" * size)
    return count


@blaster.action
def announce(c, value):
    c.broadcast("news", value)


@blaster.action
def announce_lone_surrogate(c):
    c.broadcast("news", "half a pair: \ud800")  # JSON escapes it (JS strings may hold one); CBOR has no way


@blaster.action
def ping(c):
    return "pong"


sink = actor("sink")


@sink.on_websocket
def swallow(c, ws, request):
    while (message := ws.receive()) is not None:
        ws.send(f"got {len(message)}")


flooder = actor("flooder", state={"floods": 0}, options={"can_hibernate_websocket": True})


@flooder.on_websocket
def flood(c, ws, request):
    while (message := ws.receive()) is not None:
        for _ in range(int(message)):
            ws.send(b"f" * MIB)
        c.state["floods"] += 1


@flooder.action
def floods(c):
    return c.state["floods"]


numbered = actor("numbered")


@numbered.on_websocket
def send_numbered(c, ws, request):
    while (message := ws.receive()) is not None:
        for index in range(int(message)):
            ws.send(index.to_bytes(4, "big") * (128 * 1024))  # 512 KiB each


EDGE_ACTORS = [blaster, sink, flooder, numbered]

SERVER_SCRIPT = """
import sys
from rivetgreen import setup
from rivetgreen.server.serve import make_server
from tests.test_websocket_edge import EDGE_ACTORS
server = make_server(setup(*EDGE_ACTORS, data_dir=sys.argv[1]).flask_app(), "127.0.0.1", 0)
print(server.server_port, flush=True)
server.serve_forever()
"""


class HostProcess:
    """A rivetgreen host in its own process, so its memory and descriptors can be read from /proc."""

    def __init__(self, data_dir: Path, environment: dict[str, str]) -> None:
        env = {**os.environ, "PYTHONPATH": str(WORKTREE), **environment}
        self.process = subprocess.Popen([sys.executable, "-c", SERVER_SCRIPT, str(data_dir)], cwd=WORKTREE, env=env,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert self.process.stdout is not None
        self.port = int(self.process.stdout.readline())

    def status_kib(self, field: str) -> int:
        """A ``/proc/<pid>/status`` figure in KiB (VmRSS, VmHWM)."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
        raise AssertionError(f"no {field} in /proc/{self.process.pid}/status")

    def descriptors(self) -> int:
        return len(os.listdir(f"/proc/{self.process.pid}/fd"))

    def stop(self) -> str:
        self.process.terminate()
        _, errors = self.process.communicate(timeout=10)
        return errors


@pytest.fixture
def host(tmp_path) -> Iterator[HostProcess]:
    process = HostProcess(tmp_path / "data", {"RIVETGREEN_WS_CLOSE_LINGER": "10"})
    yield process
    process.stop()


@pytest.fixture
def registry(tmp_path):
    registry = setup(*ACTORS, *EDGE_ACTORS, data_dir=str(tmp_path / "data"))
    yield registry
    registry.shutdown()


def wait_for(condition: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        gevent.sleep(0.01)


def open_connect(port: int, key: str, encoding: str = "bare") -> WsClient:
    ws = connect(port, query("blaster", "/connect", [key]), encoding)
    assert isinstance(protocol.decode_to_client(encoding, ws.receive_message()), protocol.Init)
    return ws


def subscribe(ws: WsClient, event: str, encoding: str = "bare") -> None:
    """Subscribe, then wait for an action answer: the session handles frames in order, so it is subscribed."""
    ws.send(protocol.encode_to_server(encoding, protocol.SubscriptionRequest(event, True)))
    ws.send(protocol.encode_to_server(encoding, protocol.ActionRequest(99, "ping", [])))
    assert protocol.decode_to_client(encoding, ws.receive_message()) == protocol.ActionResponse(99, "pong")


def stream_one_huge_message(ws: WsClient, total: int, chunk: int) -> tuple[int, str]:
    """Send one binary message of ``total`` bytes in frames of ``chunk`` until the server closes; returns the close
    code and reason."""
    closing = gevent.spawn(_next_close, ws)
    sent = 0
    payload = b"z" * chunk
    try:
        while sent < total and not closing.dead:
            ws._send(ws.ws.send(BytesMessage(data=payload, message_finished=sent + chunk >= total)))
            sent += chunk
    except (OSError, LocalProtocolError):
        pass  # the server closed while a frame was on its way
    close = closing.get(timeout=30)
    return close.code, close.reason


def _next_close(ws: WsClient) -> CloseConnection:
    """Read until the server's close frame, answering nothing (the sender owns the socket's writes)."""
    while not isinstance(event := ws._next_event(), CloseConnection):
        pass
    return event


# One descriptor per WebSocket ---------------------------------------------------------------------------------------
def test_each_websocket_costs_the_host_one_file_descriptor(host):
    first = open_connect(host.port, "fd")
    before = host.descriptors()
    sockets = [open_connect(host.port, "fd") for _ in range(40)]
    assert 40 <= host.descriptors() - before <= 42  # (a duplicated socket would make it 80)
    for ws in [first, *sockets]:
        ws.sock.close()
    wait_for(lambda: host.descriptors() < before)


# Incoming caps before buffering -------------------------------------------------------------------------------------
def test_a_256_mib_raw_message_is_refused_at_the_host_cap_without_buffering_it(host):
    ws = connect(host.port, query("sink", "/websocket/", ["huge"]))
    ws.send(b"warm-up")
    assert ws.receive_message() == "got 7"
    peak_before = host.status_kib("VmHWM")
    code, reason = stream_one_huge_message(ws, 256 * MIB, 4 * MIB)
    assert (code, reason) == (1009, "message.incoming_too_long")
    growth_mib = (host.status_kib("VmHWM") - peak_before) / 1024
    assert growth_mib < 80, f"the host grew by {growth_mib:.0f} MiB for a message refused at 32 MiB"


def test_a_256_mib_connect_message_is_refused_at_the_actor_limit_with_1011(host):
    ws = open_connect(host.port, "huge")
    peak_before = host.status_kib("VmHWM")
    code, reason = stream_one_huge_message(ws, 256 * MIB, 2 * MIB)
    assert (code, reason) == (1011, "message.incoming_too_long")
    growth_mib = (host.status_kib("VmHWM") - peak_before) / 1024
    assert growth_mib < 24, f"the host grew by {growth_mib:.0f} MiB for a message refused at 64 KiB"


def test_the_host_cap_counts_bytes_and_lets_a_message_at_the_cap_through(port, monkeypatch):
    monkeypatch.setattr("rivetgreen.server.websocket.MAX_MESSAGE_SIZE", 3 * MIB)
    ws = connect(port, query("sink", "/websocket/", ["cap"]))
    ws.send(b"y" * (3 * MIB))
    assert ws.receive_message() == f"got {3 * MIB}"
    ws.send("ü" * (3 * MIB // 2 + 1))  # 3 MiB + 2 bytes of UTF-8: the cap counts bytes, not characters
    assert ws.expect_close()[:2] == (1009, "message.incoming_too_long")


# Outgoing bound -----------------------------------------------------------------------------------------------------
def test_a_client_that_stops_reading_is_dropped_with_1008_and_the_host_stays_bounded(host):
    slow = open_connect(host.port, "slow")
    subscribe(slow, "blob")
    peak_before = host.status_kib("VmHWM")
    started = time.monotonic()
    handle = Client(f"http://127.0.0.1:{host.port}").blaster.get_or_create(["slow"])
    assert handle.blast(MIB, 150) == 150  # 150 MiB of events for a client that reads none of them
    assert time.monotonic() - started < 10, "the broadcasting action waited for the slow client"
    growth_mib = (host.status_kib("VmHWM") - peak_before) / 1024
    assert growth_mib < 48, f"the host grew by {growth_mib:.0f} MiB for a client that does not read"
    code, reason, delivered = slow.expect_close()
    assert (code, reason) == (1008, "ws.backpressure")
    assert len(delivered) < 150
    assert handle.ping() == "pong"  # the actor and host serve on


def test_a_hibernatable_raw_socket_that_stops_reading_is_closed_the_same_way(host):
    ws = connect(host.port, query("flooder", "/websocket/", ["slow"]))
    peak_before = host.status_kib("VmHWM")
    ws.send("100")  # 100 MiB back at once, to a client that reads nothing meanwhile
    handle = Client(f"http://127.0.0.1:{host.port}").flooder.get_or_create(["slow"])
    wait_for(lambda: handle.floods() == 1)
    code, reason, delivered = ws.expect_close()
    assert (code, reason) == (1008, "ws.backpressure")
    assert len(delivered) < 100
    growth_mib = (host.status_kib("VmHWM") - peak_before) / 1024
    assert growth_mib < 48, f"the host grew by {growth_mib:.0f} MiB for a client that does not read"


def test_messages_queued_behind_a_full_socket_arrive_whole_and_in_order(port, monkeypatch):
    monkeypatch.setattr("rivetgreen.server.websocket.MAX_BUFFERED_BYTES", 64 * MIB)
    ws = connect(port, query("numbered", "/websocket/", ["order"]))
    ws.send("40")  # 20 MiB at once: far more than the kernel's socket buffers take, so most waits in the outbox
    for index in range(40):
        assert ws.receive_message() == index.to_bytes(4, "big") * (128 * 1024)
    ws.close()


# Broadcasts ---------------------------------------------------------------------------------------------------------
class RecordingTransport:
    def __init__(self, observed: list[bool], waiting: gevent.Greenlet) -> None:
        self._observed, self._waiting = observed, waiting

    def send_event(self, name: str, args: list[Any]) -> None:
        self._observed.append(self._waiting.dead)

    def close(self, reason: str | None) -> None:
        pass


def test_a_broadcast_to_many_connections_lets_waiting_io_be_served():
    reader, writer = socket.socketpair()
    reader, writer = gevent.socket.socket(fileno=reader.detach()), gevent.socket.socket(fileno=writer.detach())
    waiting = gevent.spawn(reader.recv, 1)  # a request waiting for its bytes
    gevent.sleep(0)
    writer.sendall(b"x")  # they have arrived: only an I/O poll of the event loop lets the reader see them
    observed: list[bool] = []
    manager = ConnectionManager(task=None)  # type: ignore[arg-type]
    for _ in range(250):
        conn = Conn(manager, None, RecordingTransport(observed, waiting))
        conn.subscriptions.add("tick")
        manager.conns[conn.id] = conn
    manager.broadcast("tick", [])
    assert len(observed) == 250
    assert observed[0] is False and observed[-1] is True  # the reader was served during the fan-out
    assert waiting.value == b"x"
    reader.close()
    writer.close()


def test_an_event_one_encoding_cannot_carry_still_reaches_the_others(port, caplog):
    json_client = open_connect(port, "mixed", "json")
    subscribe(json_client, "news", "json")
    cbor_client = open_connect(port, "mixed", "cbor")
    subscribe(cbor_client, "news", "cbor")
    handle = Client(f"http://127.0.0.1:{port}").blaster.get_or_create(["mixed"])
    with caplog.at_level(logging.WARNING, logger="rivetgreen.actor"):
        handle.announce_lone_surrogate()
    failures = [record.getMessage() for record in caplog.records if "could not be sent" in record.getMessage()]
    assert len(failures) == 1 and "to 1 of 2 connections" in failures[0]  # logged once
    frame = json_client.receive_message()  # (our decoder refuses lone surrogates, so look at the text)
    assert '"news"' in frame and "half a pair: \\ud800" in frame
    handle.announce("next")  # the CBOR connection missed only the event it could not carry
    assert protocol.decode_to_client("cbor", cbor_client.receive_message()) == protocol.Event("news", ["next"])
    assert protocol.decode_to_client("json", json_client.receive_message()) == protocol.Event("news", ["next"])


# Handshake ----------------------------------------------------------------------------------------------------------
def test_frames_sent_with_the_upgrade_request_are_not_lost(port):
    sock = gevent.socket.create_connection(("127.0.0.1", port), timeout=5)
    head = (f"GET {query('rawServer', '/websocket/', ['eager'])} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n")
    sock.sendall(head.encode() + masked_frame(0x1, b"early"))
    received = b""
    while b"echo:early" not in received:
        data = sock.recv(65536)
        assert data, f"closed before the echo: {received!r}"
        received += data
    assert received.startswith(b"HTTP/1.1 101 ")
    sock.close()


def test_an_upgrade_without_a_valid_key_is_a_400_and_creates_no_actor(port, registry):
    sock = gevent.socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.sendall(f"GET {query('rawServer', '/websocket/', ['nokey'])} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                 "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n".encode())
    assert sock.recv(65536).startswith(b"HTTP/1.1 400 ")
    assert sock.recv(65536) == b""  # the connection ends once the refusal is written
    sock.close()
    assert registry.engine.get("rawServer", ["nokey"]) is None  # the refused upgrade resolved nothing


# gunicorn -----------------------------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_websocket_closes_log_no_errors_under_gunicorns_gevent_worker(tmp_path):
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(WORKTREE), "RIVETGREEN_DATA_DIR": str(tmp_path / "data")}
    gunicorn = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-k", "gevent", "-w", "1", "-b", f"127.0.0.1:{port}",
         "--log-level", "info", "app:create_app()"],
        cwd=WORKTREE, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        wait_for(lambda: _listening(port), timeout=30)
        for closer in ("client", "server"):
            ws = connect(port, query("counter", "/connect", ["gunicorn"]))
            assert isinstance(protocol.decode_to_client("bare", ws.receive_message()), protocol.Init)
            if closer == "client":
                ws.close()
            else:
                ws.send(b"\xff")  # undecodable: the server closes
                assert ws.expect_close()[:2] == (1011, "actor.invalid_request")
            ws = connect(port, query("echo", "/websocket/", ["gunicorn"]))
            ws.send("hi")
            assert ws.receive_message() == "echo:hi"
            ws.close()
        assert Client(f"http://127.0.0.1:{port}").counter.get_or_create(["gunicorn"]).getCount() == 0
    finally:
        gunicorn.send_signal(signal.SIGTERM)
        _, errors = gunicorn.communicate(timeout=30)
    assert "Booting worker" in errors
    assert "Traceback" not in errors, errors
    assert "Error" not in errors, errors


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False
