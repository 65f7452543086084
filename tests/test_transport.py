"""The host's HTTP transport (rivetgreen.server.handler): what a client sees on the wire.

Servers run in this process on loopback and are spoken to over ``gevent.socket`` (the server shares the hub with
the test, so nothing here may block it), except the memory test, which measures a server in its own process.
Timeouts are set to fractions of a second in each test's settings; every wait is bounded.
"""

from __future__ import annotations

import json
import os
import select
import socket
import subprocess
import sys
import time
from typing import Any

import gevent
import gevent.event
import gevent.socket
import pytest
from flask import Flask, Response, request
from gevent import pywsgi
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, CloseConnection, Ping, Request, TextMessage

from rivetgreen import actor, setup
from rivetgreen.encoding import client_protocol as protocol
from rivetgreen.server.serve import make_server
from rivetgreen.settings import HostSettings

TIMEOUT = 10.0  # seconds, for any one socket operation
KIB = 1024
MIB = 1024 * KIB
SHORT = 0.3  # the timeouts under test, in seconds
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# A small Flask app: what the transport serves does not matter, only how. ---------------------------------------

class Probe:
    """A Flask app that counts calls, echoes bodies, holds requests on demand and can take its socket."""

    def __init__(self) -> None:
        self.calls = 0
        self.holding = 0
        self.release = gevent.event.Event()
        self.app = Flask("transport-test")
        self.app.add_url_rule("/count", "count", self.count, methods=["GET", "POST"])
        self.app.add_url_rule("/echo", "echo", self.echo, methods=["POST"])
        self.app.add_url_rule("/hold", "hold", self.hold)
        self.app.add_url_rule("/take", "take", self.take, websocket=True)
        # Werkzeug routes a request that asks for a WebSocket upgrade only to rules marked websocket=True.
        self.app.add_url_rule("/count", "count_upgrade", self.count, websocket=True)

    def count(self) -> Response:
        self.calls += 1
        return Response(str(self.calls))

    def echo(self) -> Response:
        return Response(request.get_data(), content_type="application/octet-stream")

    def hold(self) -> Response:
        self.holding += 1
        self.release.wait(TIMEOUT)
        return Response("held")

    def take(self) -> Response:
        """Take the socket and speak on it directly: echo the bytes read past the head and the next bytes sent."""
        sock, buffered = request.environ["rivetgreen.take_socket"]()
        nodelay = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        sock.sendall(b"taken nodelay=%d buffered=%r\n" % (nodelay, buffered))
        sock.sendall(b"next=%r\n" % sock.recv(64))
        return Response("never sent")


@pytest.fixture
def probe() -> Probe:
    return Probe()


@pytest.fixture
def serve():
    """``serve(app, **settings)``: a live server on a free loopback port; returns the port."""
    servers = []

    def start(app: Any, **settings: Any) -> int:
        server = make_server(app, "127.0.0.1", 0, HostSettings(**settings))
        servers.append(server)
        return server.server_port

    yield start
    for server in servers:
        server.stop(timeout=2)


# A raw HTTP/1.1 client ---------------------------------------------------------------------------------------

class Reply:
    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    def error(self) -> dict[str, Any]:
        """The spec's error shape, checked."""
        assert self.headers.get("content-type") == "application/json", (self.status, self.headers, self.body[:200])
        error = json.loads(self.body)
        assert {"group", "code", "message"} <= set(error), error
        return error


class Connection:
    """One TCP connection to the server; requests and responses as raw bytes."""

    def __init__(self, port: int) -> None:
        self.sock = gevent.socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
        self.received = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def request(self, method: str, target: str, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        lines = [f"{method} {target} HTTP/1.1", "Host: 127.0.0.1"]
        lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
        if body or method == "POST":
            lines.append(f"Content-Length: {len(body)}")
        self.send(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)

    def _fill(self) -> None:
        data = self.sock.recv(256 * KIB)
        if not data:
            raise ConnectionError("the server closed the connection")
        self.received += data

    def until(self, marker: bytes, count: int = 1) -> bytes:
        """What has come once ``marker`` has come ``count`` times."""
        while self.received.count(marker) < count:
            self._fill()
        return self.received

    def response(self) -> Reply:
        self.until(b"\r\n\r\n")
        head, _, self.received = self.received.partition(b"\r\n\r\n")
        status_line, *lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        while len(self.received) < length:
            self._fill()
        body, self.received = self.received[:length], self.received[length:]
        return Reply(int(status_line.split()[1]), headers, body)

    def closed_within(self, seconds: float) -> bool:
        """Whether the server ends the connection within ``seconds`` (anything it sends first is kept)."""
        self.sock.settimeout(seconds)
        try:
            while data := self.sock.recv(64 * KIB):
                self.received += data
        except TimeoutError:
            return False
        except ConnectionResetError:
            pass
        finally:
            self.sock.settimeout(TIMEOUT)
        return True

    def close(self) -> None:
        self.sock.close()


def exchange(port: int, method: str, target: str, body: bytes = b"", headers: dict[str, str] | None = None) -> Reply:
    connection = Connection(port)
    try:
        connection.request(method, target, body, headers)
        return connection.response()
    finally:
        connection.close()


def wait_until(condition: Any, seconds: float = TIMEOUT) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "the condition did not become true in time"
        gevent.sleep(0.01)


# Settings ------------------------------------------------------------------------------------------------------

def test_settings_defaults_environment_and_validation():
    defaults = HostSettings()
    assert (defaults.header_timeout, defaults.keepalive_timeout, defaults.body_timeout) == (10.0, 60.0, 30.0)
    assert defaults.max_request_body_size == 16 * MIB and defaults.max_header_size == 64 * KIB
    assert defaults.connection_reserve == defaults.max_connections // 10
    settings = HostSettings.from_environment(
        {"RIVETGREEN_MAX_CONNECTIONS": "200", "RIVETGREEN_HEADER_TIMEOUT": "2.5", "RIVETGREEN_OTHER": "x"},
        body_timeout=4.0,
    )
    assert (settings.max_connections, settings.connection_reserve, settings.header_timeout) == (200, 20, 2.5)
    assert settings.body_timeout == 4.0 and settings.max_waiting_connections == 180
    with pytest.raises(ValueError, match="RIVETGREEN_MAX_REQUEST_BODY_SIZE"):
        HostSettings.from_environment({"RIVETGREEN_MAX_REQUEST_BODY_SIZE": "16MiB"})
    with pytest.raises(ValueError, match="connection_reserve"):
        HostSettings(max_connections=10, connection_reserve=10)
    assert HostSettings(max_connections=5).connection_reserve == 0
    with pytest.raises(ValueError, match="header_timeout"):
        HostSettings(header_timeout=0)


# Writes: TCP_NODELAY and one write per response -----------------------------------------------------------------

def test_accepted_sockets_have_tcp_nodelay(serve, probe):
    port = serve(probe.app)
    connection = Connection(port)
    connection.request("GET", "/take", headers={"Upgrade": "websocket", "Connection": "Upgrade"})
    assert connection.until(b"\n").startswith(b"taken nodelay=1 ")
    connection.close()


def test_a_small_response_leaves_in_one_write(serve, probe, monkeypatch):
    writes: list[bytes] = []
    send = pywsgi.WSGIHandler._sendall

    def recording(handler: Any, data: bytes) -> None:
        writes.append(bytes(data))
        send(handler, data)

    monkeypatch.setattr(pywsgi.WSGIHandler, "_sendall", recording)
    port = serve(probe.app)
    reply = exchange(port, "POST", "/echo", b"x" * 1000)
    assert reply.status == 200 and reply.body == b"x" * 1000
    assert len(writes) == 1 and writes[0].startswith(b"HTTP/1.1 200") and writes[0].endswith(b"x" * 1000)


def test_sequential_keep_alive_requests_are_not_nagle_bound(serve, probe):
    port = serve(probe.app)
    connection = Connection(port)
    started = time.monotonic()
    for number in range(1, 61):
        connection.request("POST", "/count")
        assert connection.response().body == str(number).encode()
    # With Nagle's algorithm and the head and body in two writes each request waits for a delayed ACK (~40 ms).
    assert time.monotonic() - started < 1.5
    connection.close()


# The connection after a WebSocket upgrade ----------------------------------------------------------------------

def test_a_taken_socket_gets_the_bytes_read_past_the_head_and_nothing_more(serve, probe):
    port = serve(probe.app, header_timeout=SHORT, keepalive_timeout=SHORT, body_timeout=SHORT)
    connection = Connection(port)
    pipelined = b"POST /count HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"
    connection.send(b"GET /take HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n" + pipelined)
    assert connection.until(b"\n") == b"taken nodelay=1 buffered=%r\n" % pipelined
    gevent.sleep(3 * SHORT)  # longer than every timeout: none applies to a taken socket
    connection.send(b"hello")
    assert connection.closed_within(TIMEOUT)
    # The app's own bytes only: no "never sent" body, and the pipelined request was not run.
    assert connection.received == b"taken nodelay=1 buffered=%r\nnext=b'hello'\n" % pipelined
    assert probe.calls == 0


def test_an_upgrade_request_ends_its_connection_whatever_the_app_answered(serve, probe):
    port = serve(probe.app)
    connection = Connection(port)
    connection.send(b"GET /count HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
                    b"POST /count HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
    assert connection.response().body == b"1"
    assert connection.closed_within(TIMEOUT)
    assert connection.received == b"" and probe.calls == 1


counter = actor("counter", state={"count": 0})


@counter.action
def increment(c, amount=1):
    c.state["count"] += amount
    return c.state["count"]


@pytest.fixture
def registry(tmp_path):
    registry = setup(counter, data_dir=str(tmp_path / "data"))
    yield registry
    registry.shutdown()


GATEWAY = ("/gateway/counter{path}?rvt-namespace=default&rvt-method=getOrCreate&rvt-runner=default&rvt-key=smuggle"
           "&rvt-crash-policy=sleep")


def action_request(amount: int) -> bytes:
    body = protocol.encode_action_request("json", [amount])
    return (f"POST {GATEWAY.format(path='/action/increment')} HTTP/1.1\r\nHost: x\r\nx-rivet-encoding: json\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body


def count_of(port: int) -> int:
    reply = exchange(port, "POST", GATEWAY.format(path="/action/increment"),
                     protocol.encode_action_request("json", [0]), {"x-rivet-encoding": "json"})
    assert reply.status == 200, reply.body
    return protocol.decode_action_response("json", reply.body)


class RawWebSocket:
    """A /connect WebSocket (json encoding) over a raw socket, its frames built by wsproto."""

    def __init__(self, port: int) -> None:
        self.sock = gevent.socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
        self.ws = WSConnection(ConnectionType.CLIENT)
        self.events: list[Any] = []
        self.sock.sendall(self.ws.send(Request(host="127.0.0.1", target=GATEWAY.format(path="/connect"),
                                               subprotocols=["rivet", "rivet_encoding.json"])))
        assert isinstance(self.next_event(), AcceptConnection)
        assert isinstance(self.next_event(), TextMessage)  # Init

    def next_event(self) -> Any:
        while not self.events:
            data = self.sock.recv(64 * KIB)
            assert data, "the server closed the connection"
            self.ws.receive_data(data)
            self.events.extend(self.ws.events())
        return self.events.pop(0)


@pytest.mark.parametrize("together", [True, False], ids=["with-the-close-frame", "after-the-close-handshake"])
def test_bytes_after_a_websocket_close_are_never_run_as_http(port, together):
    before = count_of(port)
    client = RawWebSocket(port)
    smuggled = action_request(1000)
    # Pings as padding, then the close frame, then a whole HTTP request; the frames fill exactly 4096 bytes, what
    # simple-websocket reads at a time, so the request stays unread in the socket when the WebSocket ends.
    frames = b""
    while len(frames) < 4096 - 8:  # a masked ping is 6 bytes and its payload; the close frame 8 bytes
        frames += client.ws.send(Ping(b"p" * min(125, 4096 - 8 - len(frames) - 6)))
    frames += client.ws.send(CloseConnection(1000))
    assert len(frames) == 4096
    client.sock.sendall(frames + smuggled if together else frames)
    while not isinstance(client.next_event(), CloseConnection):
        pass
    after = b""
    try:
        if not together:
            client.sock.sendall(smuggled)
        while data := client.sock.recv(64 * KIB):
            after += data
    except (ConnectionResetError, BrokenPipeError):
        pass  # the server closed first: as good as an end of stream
    finally:
        client.sock.close()
    assert b"HTTP/1.1" not in after
    assert count_of(port) == before


def test_an_idle_websocket_outlives_every_timeout(registry, serve):
    port = serve(registry.flask_app(), header_timeout=SHORT, keepalive_timeout=SHORT, body_timeout=SHORT)
    client = RawWebSocket(port)
    gevent.sleep(3 * SHORT)  # idle for longer than every timeout
    request = protocol.encode_to_server("json", protocol.ActionRequest(1, "increment", [2]))
    client.sock.sendall(client.ws.send(TextMessage(request)))
    reply = client.next_event()
    assert isinstance(reply, TextMessage)
    assert protocol.decode_to_client("json", reply.data) == protocol.ActionResponse(1, 2)
    client.sock.close()


# Timeouts --------------------------------------------------------------------------------------------------------

def test_a_slow_header_sender_is_closed_on_time(serve, probe):
    port = serve(probe.app, header_timeout=SHORT)
    connection = Connection(port)
    started = time.monotonic()

    def trickle() -> None:  # one byte every 50 ms: each read is quick, the head never completes
        for byte in b"GET /count HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 1000:
            connection.send(bytes([byte]))
            gevent.sleep(0.05)

    sender = gevent.spawn(trickle)
    try:
        assert connection.closed_within(TIMEOUT)
    finally:
        sender.kill()
    assert SHORT * 0.9 <= time.monotonic() - started < SHORT + 1.0
    assert probe.calls == 0


def test_a_connection_that_sends_nothing_is_closed_after_the_header_timeout(serve, probe):
    port = serve(probe.app, header_timeout=SHORT)
    started = time.monotonic()
    assert Connection(port).closed_within(TIMEOUT)
    assert SHORT * 0.9 <= time.monotonic() - started < SHORT + 1.0


def test_an_idle_keep_alive_connection_is_closed_after_the_keepalive_timeout(serve, probe):
    port = serve(probe.app, keepalive_timeout=SHORT, header_timeout=5.0)
    connection = Connection(port)
    for number in (1, 2):  # served one after the other on the same connection
        connection.request("POST", "/count")
        assert connection.response().body == str(number).encode()
    started = time.monotonic()
    assert connection.closed_within(TIMEOUT)
    assert SHORT * 0.9 <= time.monotonic() - started < SHORT + 1.0


def test_stopping_the_server_closes_idle_keep_alive_connections_at_once(probe):
    server = make_server(probe.app, "127.0.0.1", 0, HostSettings(keepalive_timeout=60.0))
    connection = Connection(server.server_port)
    connection.request("POST", "/count")
    assert connection.response().status == 200
    started = time.monotonic()
    server.stop(timeout=5)
    assert time.monotonic() - started < 2.0 and connection.closed_within(TIMEOUT)


def test_stopping_the_server_closes_a_keep_alive_connection_when_its_request_in_flight_ends(probe):
    server = make_server(probe.app, "127.0.0.1", 0, HostSettings(keepalive_timeout=60.0))
    try:
        connection = Connection(server.server_port)
        connection.request("GET", "/hold")
        wait_until(lambda: probe.holding == 1)
        server.close()  # while the request is in flight
        probe.release.set()
        assert connection.response().body == b"held"
        assert connection.closed_within(2.0)  # not after the 60 s keep-alive timeout
    finally:
        server.stop(timeout=2)


def test_a_stalled_body_gets_408_and_a_slow_steady_one_is_served(serve, probe):
    port = serve(probe.app, body_timeout=SHORT)
    connection = Connection(port)
    connection.send(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n" + b"x" * 10)
    started = time.monotonic()
    reply = connection.response()
    assert SHORT * 0.9 <= time.monotonic() - started < SHORT + 1.0
    assert reply.status == 408 and reply.error()["code"] == "body_timeout"
    assert reply.headers["connection"] == "close" and connection.closed_within(TIMEOUT)
    # Ten pieces 100 ms apart: three times the timeout in all, but no single wait is longer than it.
    connection = Connection(port)
    connection.send(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n")
    for _ in range(10):
        gevent.sleep(0.1)
        connection.send(b"y" * 10)
    reply = connection.response()
    assert reply.status == 200 and reply.body == b"y" * 100
    connection.close()


# The connection limit --------------------------------------------------------------------------------------------

def test_half_open_connections_leave_room_for_a_normal_request(serve, probe):
    port = serve(probe.app, max_connections=20, connection_reserve=5)
    half_open = [Connection(port) for _ in range(200)]
    try:
        for connection in half_open:
            connection.send(b"GET /count HTTP/1.1\r\nHost: x\r\n")  # never finished
        reply = exchange(port, "GET", "/count")
        assert reply.status == 200 and reply.body == b"1"
        # The server made room by closing the connections that had waited longest: at most 15 stay open.
        wait_until(lambda: sum(not is_open(connection) for connection in half_open) >= 200 - 15)
    finally:
        for connection in half_open:
            connection.close()


def is_open(connection: Connection) -> bool:
    connection.sock.settimeout(0.0)
    try:
        return connection.sock.recv(1) != b""
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        connection.sock.settimeout(TIMEOUT)


def test_a_request_naming_an_upgrade_keeps_its_timeouts_and_frees_its_slot(serve, probe):
    port = serve(probe.app, max_connections=4, body_timeout=SHORT)
    # An upgrade request no WebSocket takes, with a body the application never reads.
    connections = [Connection(port) for _ in range(4)]
    for connection in connections:
        connection.send(b"GET /count HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nContent-Length: 100\r\n\r\n")
    for connection in connections:
        assert connection.response().status == 200
        assert connection.closed_within(SHORT + 1.0)  # not held open reading a body that never comes
    wait_until(lambda: exchange(port, "GET", "/count").status == 200, seconds=2.0)
    assert probe.calls == 5


def test_a_stalled_body_on_a_request_naming_an_upgrade_gets_408(serve, probe):
    port = serve(probe.app, body_timeout=SHORT)
    connection = Connection(port)
    connection.send(b"POST /echo HTTP/1.1\r\nHost: x\r\nConnection: upgrade\r\nContent-Length: 100\r\n\r\n" + b"x" * 10)
    started = time.monotonic()
    reply = connection.response()
    assert time.monotonic() - started < SHORT + 1.0
    assert (reply.status, reply.error()["code"]) == (408, "body_timeout") and connection.closed_within(TIMEOUT)


def test_past_the_limit_a_new_connection_gets_a_quick_503(serve, probe):
    port = serve(probe.app, max_connections=4, connection_reserve=1)
    held = [gevent.spawn(exchange, port, "GET", "/hold") for _ in range(4)]
    wait_until(lambda: probe.holding == 4)
    started = time.monotonic()
    reply = exchange(port, "GET", "/count")
    assert time.monotonic() - started < 1.0
    assert reply.status == 503 and reply.headers["connection"] == "close"
    assert (reply.error()["group"], reply.error()["code"]) == ("host", "overloaded")
    # A client that sends a body before it reads gets the 503 too (nothing is read: the server may reset the
    # connection after answering, but the answer is already in the client's receive buffer).
    connection = Connection(port)
    connection.send(HEAD + b"Content-Length: 65536\r\n\r\n" + b"x" * 64 * KIB)
    assert connection.response().status == 503
    assert probe.calls == 0
    probe.release.set()
    assert [greenlet.get(timeout=TIMEOUT).status for greenlet in held] == [200] * 4
    assert exchange(port, "GET", "/count").status == 200


def open_descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_turned_away_connections_are_counted_and_closed_at_once(probe, monkeypatch):
    # A linger would hold each turned-away descriptor this long: the bounded wait below is far shorter.
    monkeypatch.setattr("rivetgreen.server.handler.LINGER_SECONDS", TIMEOUT)
    server = make_server(probe.app, "127.0.0.1", 0, HostSettings(max_connections=4))
    try:
        port = server.server_port
        held = [gevent.spawn(exchange, port, "GET", "/hold") for _ in range(4)]
        wait_until(lambda: probe.holding == 4)
        baseline = open_descriptors()
        turned_away = [Connection(port) for _ in range(100)]  # kept open: only the server's side may close
        for connection in turned_away:
            assert connection.response().status == 503 and connection.closed_within(TIMEOUT)
        assert server.connection_slots.turned_away == 100
        wait_until(lambda: open_descriptors() <= baseline + 100, seconds=2.0)
        for connection in turned_away:
            connection.close()
        probe.release.set()
        assert [greenlet.get(timeout=TIMEOUT).status for greenlet in held] == [200] * 4
    finally:
        server.stop(timeout=2)


# Bad and oversized requests: 4xx in the spec's error shape ----------------------------------------------------------

HEAD = b"POST /echo HTTP/1.1\r\nHost: x\r\n"
CHUNKED = HEAD + b"Transfer-Encoding: chunked\r\n\r\n"
BAD_REQUESTS = {
    "bad chunk size": (CHUNKED + b"zz\r\nhello\r\n0\r\n\r\n", 400, "invalid_body"),
    "chunk without its CRLF": (CHUNKED + b"5\r\nhelloXX0\r\n\r\n", 400, "invalid_body"),
    "endless chunk size": (CHUNKED + b"1" * 40 + b"\r\n", 400, "invalid_body"),
    "letters in Content-Length": (HEAD + b"Content-Length: abc\r\n\r\n", 400, "bad_request"),
    "negative Content-Length": (HEAD + b"Content-Length: -1\r\n\r\n", 400, "bad_request"),
    "Python-only digits in Content-Length": (HEAD + b"Content-Length: 1_0\r\n\r\n0123456789", 400, "bad_request"),
    "two Content-Lengths": (HEAD + b"Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!", 400, "bad_request"),
    "Transfer-Encoding and Content-Length": (HEAD + b"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n"
                                             b"5\r\nhello\r\n0\r\n\r\n", 400, "bad_request"),
    "unknown Transfer-Encoding": (HEAD + b"Transfer-Encoding: gzip, chunked\r\n\r\n", 501,
                                  "unsupported_transfer_encoding"),
    "declared body over the limit": (HEAD + b"Content-Length: 268435456\r\n\r\n", 413, "body_too_large"),
    "request line too long": (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\n\r\n", 414, "request_line_too_long"),
    "headers too large": (HEAD + b"X-Big: " + b"b" * (64 * KIB) + b"\r\n\r\n", 431, "headers_too_large"),
    "too many header lines": (HEAD + b"".join(b"X-%d: 1\r\n" % n for n in range(150)) + b"\r\n", 431,
                              "headers_too_large"),
    "garbage request line": (b"NONSENSE\r\n\r\n", 400, "bad_request"),
    "unknown HTTP version": (b"GET / HTTP/9.9\r\n\r\n", 400, "bad_request"),
    "HEAD with a body": (b"HEAD /count HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello", 400, "bad_request"),
}


@pytest.mark.parametrize("raw, status, code", BAD_REQUESTS.values(), ids=BAD_REQUESTS.keys())
def test_bad_requests_are_4xx_in_the_error_shape_and_end_the_connection(serve, probe, raw, status, code):
    port = serve(probe.app)
    connection = Connection(port)
    connection.send(raw)
    reply = connection.response()
    assert (reply.status, reply.error()["group"], reply.error()["code"]) == (status, "host", code)
    assert reply.headers["connection"] == "close" and connection.closed_within(TIMEOUT)
    assert exchange(port, "POST", "/echo", b"still serving").body == b"still serving"


SMUGGLING_LINES = {"line without a colon": b"Bad Line", "space before the colon": b"Content-Length : 5",
                   "folded line": b" folded"}


@pytest.mark.parametrize("bad_line", SMUGGLING_LINES.values(), ids=SMUGGLING_LINES.keys())
def test_a_malformed_header_line_is_refused_not_skipped_with_the_headers_after_it(serve, probe, bad_line):
    port = serve(probe.app)
    connection = Connection(port)
    connection.send(b"POST /count HTTP/1.1\r\nHost: x\r\n" + bad_line
                    + b"\r\nContent-Length: 23\r\nConnection: close\r\n\r\nGET /count HTTP/1.1\r\n\r\n")
    reply = connection.response()
    assert (reply.status, reply.error()["group"], reply.error()["code"]) == (400, "host", "bad_request")
    assert connection.closed_within(TIMEOUT) and connection.received == b""
    assert probe.calls == 0  # neither the request nor its body, read as a second request, was run


def test_a_client_still_sending_a_refused_body_can_read_the_answer(serve, probe):
    port = serve(probe.app)
    connection = Connection(port)
    connection.send(HEAD + b"Content-Length: 268435456\r\n\r\n")
    assert connection.sock.recv(12, socket.MSG_PEEK) == b"HTTP/1.1 413"  # answered before any body byte
    for _ in range(4):  # the server reads and drops the rest for a moment instead of resetting the connection
        connection.send(b"x" * 64 * KIB)
    assert connection.response().status == 413


def test_a_body_cut_short_is_400(serve, probe):
    port = serve(probe.app)
    connection = Connection(port)
    connection.send(CHUNKED + b"10\r\nonly some")
    connection.sock.shutdown(socket.SHUT_WR)
    reply = connection.response()
    assert reply.status == 400 and reply.error()["code"] == "invalid_body"


def test_a_chunked_body_over_the_limit_is_refused_while_streaming(serve, probe):
    port = serve(probe.app, max_request_body_size=64 * KIB)
    assert exchange(port, "POST", "/echo", b"z" * 64 * KIB).status == 200  # the limit is inclusive
    connection = Connection(port)
    connection.send(CHUNKED)
    sent = 0

    def stream() -> None:
        nonlocal sent
        while sent < 16 * MIB:
            connection.send(b"4000\r\n" + b"c" * 16 * KIB + b"\r\n")
            sent += 16 * KIB

    sender = gevent.spawn(stream)
    reply = connection.response()
    sender.kill()
    assert reply.status == 413 and reply.error()["code"] == "body_too_large"
    assert reply.error()["metadata"] == {"limit": 64 * KIB}
    assert sent < 16 * MIB  # refused while the client was still sending
    # A client that sends a little more after the limit before it reads gets the answer too (its writes are read
    # and dropped for a moment instead of resetting the connection).
    connection = Connection(port)
    chunk = b"4000\r\n" + b"c" * 16 * KIB + b"\r\n"
    connection.send(CHUNKED + chunk * 5)
    assert connection.sock.recv(12, socket.MSG_PEEK) == b"HTTP/1.1 413"
    for _ in range(4):
        connection.send(chunk)
    assert connection.response().status == 413


def test_a_plain_wsgi_app_gets_the_same_refusals_and_json_500s(serve):
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        if environ["PATH_INFO"] == "/crash":
            raise RuntimeError("secret detail")
        body = environ["wsgi.input"].read()
        start_response("200 OK", [("Content-Length", str(len(body)))])
        return [body]

    port = serve(app, max_request_body_size=10)
    connection = Connection(port)
    connection.send(CHUNKED + b"b\r\nhello world\r\n0\r\n\r\n")
    reply = connection.response()
    assert reply.status == 413 and reply.error()["code"] == "body_too_large"
    reply = exchange(port, "GET", "/crash")
    assert reply.status == 500 and reply.error()["code"] == "internal_error"
    assert b"secret" not in reply.body


# Memory: an oversized body costs the host far less than its size (measured in a server process) -------------------

SERVER_SCRIPT = """
import sys
import rivetgreen
from rivetgreen.server.serve import make_server

counter = rivetgreen.actor("counter", state={"count": 0})

@counter.action
def increment(c, amount=1):
    c.state["count"] += amount
    return c.state["count"]

server = make_server(rivetgreen.setup(counter, data_dir=sys.argv[1]).flask_app(), "127.0.0.1", 0)
print(server.server_port, flush=True)
server.serve_forever()
"""


def peak_rss(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * KIB
    raise AssertionError("no VmHWM")


def send_until_answered(sock: socket.socket, head: bytes, piece: bytes, most: int) -> int:
    """Send ``head`` then ``piece`` repeatedly (at most ``most`` bytes) until the server answers or stops reading;
    returns the body bytes sent."""
    sock.sendall(head)
    sent = 0
    while sent < most:
        readable, _, _ = select.select([sock], [], [], 0)
        if readable:
            break
        try:
            sock.sendall(piece)
        except OSError:
            break
        sent += len(piece)
    return sent


def plain_response(sock: socket.socket) -> tuple[int, Any]:
    """The status and JSON body of the response on a plain (blocking) socket."""
    received = b""
    while b"\r\n\r\n" not in received:
        received += sock.recv(64 * KIB) or b"\r\n\r\n"
    head, _, body = received.partition(b"\r\n\r\n")
    lengths = [line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")]
    length = int(lengths[0])
    while len(body) < length:
        body += sock.recv(64 * KIB) or b" " * length
    return int(head.split()[1]), json.loads(body[:length])


def test_an_oversized_body_is_refused_quickly_with_bounded_memory(tmp_path):
    server = subprocess.Popen([sys.executable, "-c", SERVER_SCRIPT, str(tmp_path / "data")], stdout=subprocess.PIPE,
                              env={**os.environ, "PYTHONPATH": ROOT}, text=True)
    try:
        ready, _, _ = select.select([server.stdout], [], [], 30)
        assert ready, "the server did not start"
        port = int(server.stdout.readline())
        gateway = GATEWAY.format(path="/action/increment").encode()
        action_head = b"POST " + gateway + b" HTTP/1.1\r\nHost: x\r\nx-rivet-encoding: json\r\n"
        with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as sock:  # warm up: create the actor
            sock.sendall(action_head + b"Content-Length: 11\r\n\r\n" + b'{"args":[]')
            sock.sendall(b"}")
            assert plain_response(sock)[0] == 200
        before = peak_rss(server.pid)

        started = time.monotonic()
        with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as sock:  # 256 MiB declared
            send_until_answered(sock, action_head + b"Content-Length: 268435456\r\n\r\n", b"d" * MIB, 4 * MIB)
            status, error = plain_response(sock)
        assert (status, error["code"]) == (413, "body_too_large")
        assert time.monotonic() - started < 5.0
        assert peak_rss(server.pid) - before < 8 * MIB

        started = time.monotonic()
        piece = b"100000\r\n" + b"e" * MIB + b"\r\n"  # chunked, 1 MiB chunks, up to 256 MiB
        with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as sock:
            sent = send_until_answered(sock, action_head + b"Transfer-Encoding: chunked\r\n\r\n", piece, 256 * MIB)
            status, error = plain_response(sock)
        # The actor's limit (64 KiB) refuses it from its first 64 KiB + 1 bytes, in the request's encoding.
        assert (status, error["group"], error["code"]) == (400, "message", "incoming_too_long")
        assert time.monotonic() - started < 10.0
        assert sent < 64 * MIB
        assert peak_rss(server.pid) - before < 8 * MIB

        started = time.monotonic()
        raw_head = b"POST " + GATEWAY.format(path="/request/upload").encode() + b" HTTP/1.1\r\nHost: x\r\n"
        with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as sock:  # raw traffic: the host's cap
            sent = send_until_answered(sock, raw_head + b"Transfer-Encoding: chunked\r\n\r\n", piece, 256 * MIB)
            status, error = plain_response(sock)
        assert (status, error["code"]) == (413, "body_too_large")
        assert time.monotonic() - started < 10.0
        assert sent < 64 * MIB
        assert peak_rss(server.pid) - before < 64 * MIB  # the host's limit is 16 MiB; without it: +256 MiB
    finally:
        server.kill()
        server.wait(10)
