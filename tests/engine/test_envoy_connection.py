"""The envoy connection against a real Rivet Engine with short liveness timers: it connects and gets Init, keeps
the socket alive past the ping timeout, receives StartActor for an actor created on its pool and makes it ready with
a Running event, survives a dropped TCP connection without applying the replayed command twice or losing an event,
tells its handler when it has been cut off past the lost threshold, and drains on stop()."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import gevent
import gevent.event
import pytest

from rivetgreen.client.engine import EngineApi
from rivetgreen.client.http import HttpTransport
from rivetgreen.encoding.envoy import decode_to_envoy, decode_to_rivet
from rivetgreen.encoding.envoy.messages import (
    ActorCheckpoint,
    ActorStateRunning,
    ActorStateStopped,
    Command,
    CommandStartActor,
    CommandStopActor,
    EventActorStateUpdate,
    StopActorReason,
    StopCode,
    ToEnvoy,
    ToEnvoyCommands,
    ToEnvoyTunnelMessage,
    ToRivet,
    ToRivetEvents,
    ToRivetPong,
)
from rivetgreen.engine.envoy.connection import Backoff, EnvoyConnection, open_websocket
from rivetgreen.engine.envoy.pool import ensure_pool, is_transient
from rivetgreen.engine.envoy.settings import EngineSettings, engine_settings
from rivetgreen.errors import RivetError
from tests.engine.engine_process import RunningEngine, start_engine
from tests.engine.tcp_proxy import TcpProxy

# Short liveness timers (ms), so that pings, the ping timeout and the lost threshold fit in a test.
PING_INTERVAL = 250
PING_TIMEOUT = 3000
LOST_THRESHOLD = 4000
ENGINE_STALL_BOUND = 120.0  # seconds: creating an actor sometimes stalls 15-56 s (engine-envoy.md §10.5)
pools = itertools.count(1)


@pytest.fixture(scope="module")
def fast_engine(engine_binary: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningEngine]:
    engine = start_engine(engine_binary, tmp_path_factory.mktemp("fast-engine"), {"pegboard": {
        "envoy_update_ping_interval": PING_INTERVAL, "envoy_ping_timeout": PING_TIMEOUT,
        "envoy_lost_threshold": LOST_THRESHOLD,
    }})
    yield engine
    engine.stop()


def wait_for(condition: Callable[[], Any], timeout: float, what: str) -> Any:
    """Poll ``condition`` (an observable state) until it is truthy; fail naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        assert time.monotonic() < deadline, f"timed out after {timeout} s waiting for {what}"
        gevent.sleep(0.05)


class RecordingSocket:
    """The real envoy socket, recording every frame decoded, both ways."""

    def __init__(self, url: str, subprotocols: list[str]) -> None:
        self.socket = open_websocket(url, subprotocols)
        self.received: list[ToEnvoy] = []
        self.sent: list[ToRivet] = []

    @property
    def close_reason(self) -> str:
        return self.socket.close_reason

    def receive(self, timeout: float | None = None) -> Any:
        frame = self.socket.receive(timeout)
        if isinstance(frame, bytes):
            self.received.append(decode_to_envoy(frame))
        return frame

    def send(self, data: bytes) -> None:
        self.sent.append(decode_to_rivet(data))
        self.socket.send(data)

    def close(self, code: int = 1000, reason: str = "") -> None:
        self.socket.close(code, reason)

    def commands(self) -> list[tuple[ActorCheckpoint, Command]]:
        return [(each.checkpoint, each.inner) for message in self.received if isinstance(message, ToEnvoyCommands)
                for each in message.commands]

    def events(self) -> list[ActorCheckpoint]:
        return [each.checkpoint for message in self.sent if isinstance(message, ToRivetEvents)
                for each in message.events]


class ActorHost:
    """A handler that plays a host: Running for every StartActor, Stopped for every StopActor. With ``gate`` set,
    commands wait until it opens."""

    def __init__(self) -> None:
        self.connection: EnvoyConnection | None = None
        self.commands: list[tuple[ActorCheckpoint, Command]] = []
        self.gate: gevent.event.Event | None = None
        self.lost = 0

    def on_command(self, checkpoint: ActorCheckpoint, command: Command) -> None:
        if self.gate is not None:
            self.gate.wait()
        self.commands.append((checkpoint, command))
        assert self.connection is not None
        state = ActorStateRunning() if isinstance(command, CommandStartActor) else ActorStateStopped(code=StopCode.OK)
        self.connection.send_event(checkpoint.actor_id, checkpoint.generation, EventActorStateUpdate(state=state))

    def on_tunnel_message(self, message: ToEnvoyTunnelMessage) -> None:
        pass

    def on_lost(self) -> None:
        self.lost += 1

    def starts(self, actor_id: str) -> list[ActorCheckpoint]:
        return [checkpoint for checkpoint, command in self.commands
                if checkpoint.actor_id == actor_id and isinstance(command, CommandStartActor)]


class Envoy:
    """One test's host: its pool, handler, connection (through a proxy the test can cut) and recorded sockets."""

    def __init__(self, engine: RunningEngine) -> None:
        self.pool = f"envoy-test-{next(pools)}"
        self.settings = settings_for(engine.endpoint, self.pool)
        ensure_pool(self.settings)
        target = urlsplit(engine.endpoint)
        self.proxy = TcpProxy((target.hostname or "127.0.0.1", target.port or 80))
        self.host = ActorHost()
        self.sockets: list[RecordingSocket] = []
        self.connection_urls: list[str] = []
        self.connection = EnvoyConnection(
            settings_for(self.proxy.url, self.pool), self.host, actor_names={"counter": {}},
            backoff=Backoff(initial=0.05, maximum=0.5), open_socket=self.open_socket,
        )
        self.host.connection = self.connection
        # The engine's API over gevent sockets: a blocking call would stall the hub, and with it the pongs.
        self.api = EngineApi(HttpTransport())

    def open_socket(self, url: str, subprotocols: list[str]) -> RecordingSocket:
        self.connection_urls.append(url)
        socket = RecordingSocket(url, subprotocols)
        self.sockets.append(socket)
        return socket

    def create_actor(self) -> str:
        """An actor on this pool, created through the engine's API; create stalls are retried within a bound."""
        deadline = time.monotonic() + ENGINE_STALL_BOUND
        while True:
            try:
                actor = self.api.create_actor(self.settings.endpoint, "counter", [f"key-{time.monotonic_ns()}"],
                                              False, None, 35.0, pool=self.pool)
                return actor["actor_id"]
            except RivetError as error:
                if not is_transient(error) or time.monotonic() > deadline:
                    raise

    def actor(self, actor_id: str) -> dict[str, Any]:
        return self.api.call(self.settings.endpoint, "GET", "/actors", 30, {"actor_ids": actor_id})["actors"][0]

    def listed(self) -> list[dict[str, Any]]:
        """This host in the engine's ``GET /envoys``."""
        envoys = self.api.call(self.settings.endpoint, "GET", "/envoys", 30)["envoys"]
        return [each for each in envoys if each.get("envoy_key") == self.connection.envoy_key]

    def start_actor(self) -> str:
        actor_id = self.create_actor()
        wait_for(lambda: self.host.starts(actor_id), ENGINE_STALL_BOUND, "StartActor")
        wait_for(lambda: self.actor(actor_id).get("connectable_ts"), 30, "the actor to be ready")
        return actor_id


def settings_for(endpoint: str, pool: str) -> EngineSettings:
    settings = engine_settings(endpoint, pool, "default", None, environ={})
    assert settings is not None
    return settings


@pytest.fixture
def envoy(fast_engine: RunningEngine) -> Iterator[Envoy]:
    envoy = Envoy(fast_engine)
    envoy.connection.start()
    assert envoy.connection.wait_ready(30), "the envoy did not connect"
    yield envoy
    envoy.connection.stop(5.0)
    envoy.proxy.close()
    envoy.api.transport.close()


def test_connects_gets_init_and_is_listed(envoy: Envoy) -> None:
    assert envoy.connection.protocol is not None
    assert envoy.connection.protocol.envoy_lost_threshold == LOST_THRESHOLD  # the engine's Init, as configured
    assert envoy.connection.lost_threshold == LOST_THRESHOLD / 1000
    [listed] = wait_for(envoy.listed, 10, "the envoy in GET /envoys")
    assert listed["pool_name"] == envoy.pool


def pong_count(socket: RecordingSocket) -> int:
    return sum(isinstance(message, ToRivetPong) for message in socket.sent)


def test_stays_connected_past_the_ping_timeout(envoy: Envoy) -> None:
    socket = envoy.sockets[0]
    started = time.monotonic()
    # Every ping is answered with its own timestamp, well past the time the engine would wait for a pong.
    wait_for(lambda: time.monotonic() - started > 2 * PING_TIMEOUT / 1000, 2 * PING_TIMEOUT / 1000 + 5,
             "twice the ping timeout")
    assert pong_count(socket) >= PING_TIMEOUT / PING_INTERVAL
    assert envoy.connection.connected and envoy.connection.connections == 1 and len(envoy.sockets) == 1
    assert envoy.listed()


def test_pings_are_answered_while_the_handler_is_stuck_on_a_command(envoy: Envoy) -> None:
    envoy.host.gate = gevent.event.Event()
    actor_id = envoy.create_actor()
    wait_for(lambda: any(checkpoint.actor_id == actor_id for checkpoint, _ in envoy.sockets[0].commands()),
             ENGINE_STALL_BOUND, "StartActor")
    stuck_at, pongs_before = time.monotonic(), pong_count(envoy.sockets[0])
    wait_for(lambda: time.monotonic() - stuck_at > 1.5 * PING_TIMEOUT / 1000, PING_TIMEOUT / 1000 + 5,
             "one and a half ping timeouts")
    assert envoy.host.commands == []  # still stuck
    # The engine kept getting pongs on the same socket, and saw one recently.
    assert pong_count(envoy.sockets[0]) - pongs_before >= PING_TIMEOUT / PING_INTERVAL
    [listed] = envoy.listed()
    assert time.time() * 1000 - listed["last_ping_ts"] < PING_TIMEOUT
    assert envoy.connection.connections == 1 and len(envoy.sockets) == 1
    envoy.host.gate.set()
    wait_for(lambda: envoy.actor(actor_id).get("connectable_ts"), 30, "the actor to be ready")


def test_an_actor_created_on_the_pool_starts_here_and_becomes_ready(envoy: Envoy) -> None:
    actor_id = envoy.create_actor()
    [checkpoint] = wait_for(lambda: envoy.host.starts(actor_id), ENGINE_STALL_BOUND, "StartActor")
    assert (checkpoint.generation, checkpoint.index) == (1, 1)
    actor = wait_for(lambda: envoy.actor(actor_id), 5, "the actor")
    ready = wait_for(lambda: envoy.actor(actor_id).get("connectable_ts"), 30, "the actor to be ready")
    assert ready and actor["runner_name_selector"] == envoy.pool


def test_a_dropped_socket_replays_nothing_twice_and_loses_no_event(envoy: Envoy) -> None:
    host = envoy.host
    host.gate = gevent.event.Event()  # StartActor is received but not yet applied (so not acknowledged)
    actor_id = envoy.create_actor()
    first = envoy.sockets[0]
    wait_for(lambda: any(checkpoint.actor_id == actor_id for checkpoint, _ in first.commands()), ENGINE_STALL_BOUND,
             "StartActor on the first socket")
    envoy.proxy.partition()
    wait_for(lambda: not envoy.connection.connected, 10, "the disconnection")
    host.gate.set()  # applied while cut off: its Running event and its ack cannot reach the engine
    wait_for(lambda: host.starts(actor_id), 10, "the handler to apply StartActor")
    assert not any(checkpoint.actor_id == actor_id for checkpoint in first.events())
    envoy.proxy.heal()

    wait_for(lambda: envoy.connection.connections == 2, 30, "the reconnection")
    second = envoy.sockets[-1]
    assert f"envoy_key={envoy.connection.envoy_key}&" in envoy.connection_urls[-1]  # the same key again
    # The engine replayed the unacknowledged StartActor; the handler applied it once only.
    replayed = wait_for(lambda: [checkpoint for checkpoint, _ in second.commands() if checkpoint.actor_id == actor_id],
                        30, "the replayed StartActor")
    assert (replayed[0].generation, replayed[0].index) == (1, 1)
    assert len(host.starts(actor_id)) == 1
    # The Running event made while cut off was sent on the new socket, and the actor became ready.
    assert [(checkpoint.generation, checkpoint.index) for checkpoint in second.events()
            if checkpoint.actor_id == actor_id] == [(1, 0)]
    wait_for(lambda: envoy.actor(actor_id).get("connectable_ts"), 30, "the actor to be ready")


def test_a_host_cut_off_past_the_lost_threshold_is_told_it_is_lost(envoy: Envoy) -> None:
    envoy.start_actor()
    envoy.proxy.partition()
    cut_at = time.monotonic()
    wait_for(lambda: envoy.host.lost, LOST_THRESHOLD / 1000 + 10, "on_lost")
    assert time.monotonic() - cut_at >= LOST_THRESHOLD / 1000 - 0.1
    assert envoy.host.lost == 1
    envoy.proxy.heal()
    wait_for(lambda: envoy.connection.connections == 2, 30, "the reconnection")


def test_stop_drains_the_actors_then_leaves(envoy: Envoy) -> None:
    actor_id = envoy.start_actor()
    assert envoy.connection.stop(30.0) is True
    stops = [command for checkpoint, command in envoy.host.commands
             if checkpoint.actor_id == actor_id and isinstance(command, CommandStopActor)]
    assert stops == [CommandStopActor(reason=StopActorReason.GOING_AWAY)]
    assert not envoy.connection.connected
    wait_for(lambda: not envoy.listed(), 10, "the envoy to leave GET /envoys")
    wait_for(lambda: envoy.actor(actor_id).get("connectable_ts") is None, 10, "the actor to stop")


def test_a_second_connection_with_the_same_key_evicts_the_first(envoy: Envoy, fast_engine: RunningEngine) -> None:
    intruder = EnvoyConnection(settings_for(fast_engine.endpoint, envoy.pool), ActorHost(),
                               envoy_key=envoy.connection.envoy_key)
    intruder.start()
    try:
        assert intruder.wait_ready(30)
        # The first is told at once that its actors are no longer its own, and stays away.
        wait_for(lambda: envoy.host.lost, 10, "on_lost after the eviction")
        assert envoy.connection.evicted and envoy.connection.close_reason.startswith("ws.eviction")
        assert envoy.host.lost == 1 and len(envoy.sockets) == 1
        assert intruder.connected and intruder.connections == 1
    finally:
        intruder.stop(5.0)


def test_a_host_started_before_its_pool_exists_connects_once_it_does(fast_engine: RunningEngine) -> None:
    pool = f"envoy-test-{next(pools)}"
    attempts: list[str] = []

    def open_socket(url: str, subprotocols: list[str]) -> Any:
        attempts.append(url)
        return open_websocket(url, subprotocols)

    connection = EnvoyConnection(settings_for(fast_engine.endpoint, pool), ActorHost(),
                                 backoff=Backoff(initial=0.05, maximum=0.2), open_socket=open_socket)
    connection.start()
    try:
        wait_for(lambda: len(attempts) >= 3, 20, "retries")
        assert not connection.connected
        assert connection.close_reason.startswith("ws.no_runner_config")
        ensure_pool(settings_for(fast_engine.endpoint, pool))
        assert connection.wait_ready(30)
    finally:
        connection.stop(5.0)
