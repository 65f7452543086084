"""The envoy connection's logic against a scripted fake engine socket, on the virtual clock: the handshake, pongs
while the handler is busy, command dedup and acks across a reconnect, the event log, backoff, the lost timer,
eviction, request/response routing and the drain. The real engine is in tests/engine/test_envoy_connection.py."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import gevent
import gevent.event
import gevent.queue
import pytest

from rivetgreen.clock import VirtualClock
from rivetgreen.encoding.envoy import decode_to_rivet, encode_to_envoy
from rivetgreen.encoding.envoy.messages import (
    ActorCheckpoint,
    ActorConfig,
    ActorStateRunning,
    ActorStateStopped,
    Command,
    CommandStartActor,
    CommandStopActor,
    CommandWrapper,
    EventActorSetAlarm,
    EventActorStateUpdate,
    KvGetRequest,
    KvGetResponse,
    MessageId,
    ProtocolMetadata,
    StopActorReason,
    StopCode,
    ToEnvoy,
    ToEnvoyAckEvents,
    ToEnvoyCommands,
    ToEnvoyInit,
    ToEnvoyKvResponse,
    ToEnvoyPing,
    ToEnvoyTunnelMessage,
    ToEnvoyWebSocketMessage,
    ToRivet,
    ToRivetAckCommands,
    ToRivetEvents,
    ToRivetKvRequest,
    ToRivetMetadata,
    ToRivetPong,
    ToRivetStopping,
)
from rivetgreen.engine.envoy.connection import Backoff, EnvoyConnection
from rivetgreen.engine.envoy.settings import engine_settings
from rivetgreen.errors import RivetError

ACTOR = "actor-1"
START = CommandStartActor(config=ActorConfig(name="counter", create_ts=1), hibernating_requests=[])
STOP = CommandStopActor(reason=StopActorReason.SLEEP_INTENT)
RUNNING = EventActorStateUpdate(state=ActorStateRunning())
STOPPED = EventActorStateUpdate(state=ActorStateStopped(code=StopCode.OK))


def init(lost_threshold_ms: int = 15000) -> ToEnvoyInit:
    return ToEnvoyInit(metadata=ProtocolMetadata(envoy_lost_threshold=lost_threshold_ms, actor_stop_threshold=1,
                                                 max_response_payload_size=1))


def commands(*items: tuple[int, int, Command]) -> ToEnvoyCommands:
    return ToEnvoyCommands(commands=[
        CommandWrapper(checkpoint=ActorCheckpoint(actor_id=ACTOR, generation=generation, index=index), inner=command)
        for generation, index, command in items
    ])


class FakeSocket:
    """The engine's end of one envoy socket: the test delivers ``ToEnvoy`` messages, the connection's frames are
    decoded into ``sent``."""

    def __init__(self) -> None:
        self.inbox: gevent.queue.Queue[bytes | None] = gevent.queue.Queue()
        self.sent: list[ToRivet] = []
        self.closed = False
        self.close_reason = ""

    def receive(self, timeout: float | None = None) -> bytes | None:
        if self.closed:
            return None
        item = self.inbox.get()
        if item is None:
            self.closed = True
        return item

    def send(self, data: bytes) -> None:
        if self.closed:
            raise RivetError("client", "connection_lost", "closed")
        self.sent.append(decode_to_rivet(data))

    def close(self, code: int = 1000, reason: str = "") -> None:
        self.inbox.put(None)

    def deliver(self, *messages: ToEnvoy) -> None:
        for message in messages:
            self.inbox.put(encode_to_envoy(message))

    def drop(self, reason: str = "") -> None:
        self.close_reason = reason
        self.inbox.put(None)

    def of_type(self, kind: type) -> list[Any]:
        return [message for message in self.sent if isinstance(message, kind)]


class FakeEngine:
    """Opens fake sockets; ``refusing`` makes connection attempts fail (a partition)."""

    def __init__(self, clock: VirtualClock) -> None:
        self.clock = clock
        self.sockets: list[FakeSocket] = []
        self.attempts: list[tuple[float, str, list[str]]] = []
        self.refusing = False

    def open(self, url: str, subprotocols: list[str]) -> FakeSocket:
        self.attempts.append((self.clock.monotonic(), url, subprotocols))
        if self.refusing:
            raise RivetError("client", "connection_open_failed", "refused")
        socket = FakeSocket()
        self.sockets.append(socket)
        return socket

    @property
    def socket(self) -> FakeSocket:
        return self.sockets[-1]


class RecordingHandler:
    def __init__(self) -> None:
        self.commands: list[tuple[ActorCheckpoint, Command]] = []
        self.tunnel: list[ToEnvoyTunnelMessage] = []
        self.lost = 0
        self.gate: gevent.event.Event | None = None  # when set, on_command blocks until it opens

    def on_command(self, checkpoint: ActorCheckpoint, command: Command) -> None:
        if self.gate is not None:
            self.gate.wait()
        self.commands.append((checkpoint, command))

    def on_tunnel_message(self, message: ToEnvoyTunnelMessage) -> None:
        self.tunnel.append(message)

    def on_lost(self) -> None:
        self.lost += 1


@pytest.fixture
def engine(virtual_clock: VirtualClock) -> FakeEngine:
    return FakeEngine(virtual_clock)


@pytest.fixture
def handler() -> RecordingHandler:
    return RecordingHandler()


@pytest.fixture
def connection(engine: FakeEngine, handler: RecordingHandler, virtual_clock: VirtualClock) -> Iterator[EnvoyConnection]:
    settings = engine_settings("http://127.0.0.1:6420/prefix", "backend", "ns", "secret", environ={})
    assert settings is not None
    envoy = EnvoyConnection(settings, handler, version=3, actor_names={"counter": {"icon": "x"}},
                            backoff=Backoff(initial=1.0, maximum=8.0, jitter=0.0), open_socket=engine.open)
    envoy.start()
    virtual_clock.settle()
    yield envoy
    gevent.killall(envoy._greenlets)


def connect(engine: FakeEngine, clock: VirtualClock, lost_threshold_ms: int = 15000) -> FakeSocket:
    engine.socket.deliver(init(lost_threshold_ms))
    clock.settle()
    return engine.socket


def reconnect(engine: FakeEngine, clock: VirtualClock, reason: str = "") -> FakeSocket:
    """Drop the current socket; the connection opens a new one at once (no failure yet), which gets Init."""
    count = len(engine.sockets)
    engine.socket.drop(reason)
    clock.settle()
    assert len(engine.sockets) == count + 1
    return connect(engine, clock)


def test_handshake_url_subprotocols_and_metadata_first(
    connection: EnvoyConnection, engine: FakeEngine, virtual_clock: VirtualClock
) -> None:
    _, url, subprotocols = engine.attempts[0]
    assert url == (f"http://127.0.0.1:6420/prefix/envoys/connect?protocol_version=8&namespace=ns"
                   f"&envoy_key={connection.envoy_key}&version=3&pool_name=backend")
    assert subprotocols == ["rivet", "rivet_token.secret"]
    assert not connection.connected  # not before the engine's Init
    socket = connect(engine, virtual_clock, lost_threshold_ms=4000)
    assert connection.wait_ready(0)
    assert connection.lost_threshold == 4.0
    first = socket.sent[0]
    assert isinstance(first, ToRivetMetadata)
    assert first.prepopulate_actor_names is not None
    assert first.prepopulate_actor_names["counter"].metadata == '{"icon": "x"}'


def test_pings_are_answered_while_the_handler_is_busy(
    connection: EnvoyConnection, engine: FakeEngine, handler: RecordingHandler, virtual_clock: VirtualClock
) -> None:
    socket = connect(engine, virtual_clock)
    handler.gate = gevent.event.Event()
    socket.deliver(commands((1, 1, START)), ToEnvoyPing(ts=42))
    virtual_clock.settle()
    assert socket.of_type(ToRivetPong) == [ToRivetPong(ts=42)]
    assert handler.commands == []  # still busy with StartActor
    handler.gate.set()
    virtual_clock.settle()
    assert len(handler.commands) == 1


def test_commands_are_acknowledged_only_after_the_handler_returns(
    connection: EnvoyConnection, engine: FakeEngine, handler: RecordingHandler, virtual_clock: VirtualClock
) -> None:
    socket = connect(engine, virtual_clock)
    handler.gate = gevent.event.Event()
    socket.deliver(commands((1, 1, START), (1, 2, STOP)))
    virtual_clock.settle()
    assert socket.of_type(ToRivetAckCommands) == []
    handler.gate.set()
    virtual_clock.settle()
    assert [command for _, command in handler.commands] == [START, STOP]
    # One ack for the batch, naming the newest checkpoint of the generation.
    assert socket.of_type(ToRivetAckCommands) == [ToRivetAckCommands(last_command_checkpoints=[
        ActorCheckpoint(actor_id=ACTOR, generation=1, index=2)])]


def test_a_replayed_command_is_not_applied_twice_but_acknowledged_again(
    connection: EnvoyConnection, engine: FakeEngine, handler: RecordingHandler, virtual_clock: VirtualClock
) -> None:
    socket = connect(engine, virtual_clock)
    socket.deliver(commands((1, 1, START)))
    virtual_clock.settle()
    key = connection.envoy_key
    second = reconnect(engine, virtual_clock)
    assert connection.envoy_key == key and key in engine.attempts[-1][1]
    # The engine replays what it had not seen acknowledged, plus what came meanwhile.
    second.deliver(commands((1, 1, START), (1, 2, STOP), (2, 1, START)))
    virtual_clock.settle()
    applied = [(checkpoint.generation, checkpoint.index, command) for checkpoint, command in handler.commands]
    assert applied == [(1, 1, START), (1, 2, STOP), (2, 1, START)]
    assert second.of_type(ToRivetAckCommands) == [ToRivetAckCommands(last_command_checkpoints=[
        ActorCheckpoint(actor_id=ACTOR, generation=1, index=2),
        ActorCheckpoint(actor_id=ACTOR, generation=2, index=1)])]


def test_events_are_kept_until_acknowledged_and_resent_after_a_reconnect(
    connection: EnvoyConnection, engine: FakeEngine, virtual_clock: VirtualClock
) -> None:
    socket = connect(engine, virtual_clock)
    assert connection.send_event(ACTOR, 1, RUNNING).index == 0
    assert connection.send_event(ACTOR, 1, EventActorSetAlarm(alarm_ts=5)).index == 1
    assert connection.send_event("actor-2", 1, RUNNING).index == 0
    virtual_clock.settle()
    assert [len(message.events) for message in socket.of_type(ToRivetEvents)] == [1, 1, 1]
    socket.deliver(ToEnvoyAckEvents(last_event_checkpoints=[ActorCheckpoint(actor_id=ACTOR, generation=1, index=0)]))
    virtual_clock.settle()
    socket.drop()
    virtual_clock.settle()
    assert connection.send_event(ACTOR, 1, STOPPED).index == 2  # while disconnected: kept, sent later
    second = connect(engine, virtual_clock)
    assert isinstance(second.sent[0], ToRivetMetadata)
    resent = second.sent[1]
    assert isinstance(resent, ToRivetEvents)
    assert [(each.checkpoint.actor_id, each.checkpoint.index) for each in resent.events] == [
        (ACTOR, 1), (ACTOR, 2), ("actor-2", 0)]
    assert [each.checkpoint for each in connection.unacknowledged_events()] == [
        each.checkpoint for each in resent.events]


def test_reconnects_back_off_exponentially_up_to_the_cap(
    connection: EnvoyConnection, engine: FakeEngine, virtual_clock: VirtualClock
) -> None:
    connect(engine, virtual_clock)
    engine.refusing = True
    engine.socket.drop()
    virtual_clock.advance(40)
    times = [moment for moment, _, _ in engine.attempts[1:]]
    gaps = [round(later - earlier, 6) for earlier, later in zip(times, times[1:], strict=False)]
    assert times[0] == 0  # the first reconnect is immediate
    assert gaps[:6] == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    engine.refusing = False
    virtual_clock.advance(8)
    connect(engine, virtual_clock)
    assert connection.connected and connection.connections == 2


def test_backoff_jitter_only_shortens_the_delay() -> None:
    backoff = Backoff(initial=1.0, maximum=4.0, jitter=0.5)
    assert backoff.delay(0, lambda: 0.9) == 0
    assert backoff.delay(3, lambda: 0.0) == 4.0
    assert backoff.delay(3, lambda: 1.0) == 2.0
    assert backoff.delay(10, lambda: 0.0) == 4.0


def test_the_handler_is_told_it_is_lost_after_the_threshold(
    connection: EnvoyConnection, engine: FakeEngine, handler: RecordingHandler, virtual_clock: VirtualClock
) -> None:
    connect(engine, virtual_clock, lost_threshold_ms=4000)
    engine.refusing = True
    engine.socket.drop()
    virtual_clock.advance(3.9)
    assert handler.lost == 0
    virtual_clock.advance(0.2)
    assert handler.lost == 1
    virtual_clock.advance(60)
    assert handler.lost == 1  # once per disconnection


def test_a_reconnect_within_the_threshold_is_not_lost(
    connection: EnvoyConnection, engine: FakeEngine, handler: RecordingHandler, virtual_clock: VirtualClock
) -> None:
    connect(engine, virtual_clock, lost_threshold_ms=4000)
    engine.refusing = True
    engine.socket.drop()
    virtual_clock.advance(2.5)
    engine.refusing = False
    virtual_clock.advance(1.0)  # the next attempt, at 3 s, succeeds
    connect(engine, virtual_clock, lost_threshold_ms=4000)
    virtual_clock.advance(60)
    assert handler.lost == 0 and connection.connected


def test_an_evicted_envoy_is_lost_at_once_and_does_not_reconnect(
    connection: EnvoyConnection, engine: FakeEngine, handler: RecordingHandler, virtual_clock: VirtualClock
) -> None:
    connect(engine, virtual_clock)
    engine.socket.drop("ws.eviction#ray")
    virtual_clock.settle()
    assert handler.lost == 1 and connection.evicted
    virtual_clock.advance(60)
    assert len(engine.attempts) == 1


def kv_get(request_id: int) -> ToRivetKvRequest:
    return ToRivetKvRequest(actor_id=ACTOR, request_id=request_id, data=KvGetRequest(keys=[b"k"]))


def kv_found(request_id: int, value: bytes) -> ToEnvoyKvResponse:
    return ToEnvoyKvResponse(request_id=request_id, data=KvGetResponse(keys=[b"k"], values=[value], metadata=[]))


def test_responses_reach_their_own_request(
    connection: EnvoyConnection, engine: FakeEngine, virtual_clock: VirtualClock
) -> None:
    socket = connect(engine, virtual_clock)
    first = gevent.spawn(connection.request, kv_get, 5)
    second = gevent.spawn(connection.request, kv_get, 5)
    virtual_clock.settle()
    ids = [message.request_id for message in socket.of_type(ToRivetKvRequest)]
    assert len(set(ids)) == 2
    socket.deliver(kv_found(ids[1], b"two"), kv_found(ids[0], b"one"))
    virtual_clock.settle()
    assert first.get(timeout=0).values == [b"one"]
    assert second.get(timeout=0).values == [b"two"]


def test_a_request_times_out_or_fails_when_the_socket_closes(
    connection: EnvoyConnection, engine: FakeEngine, virtual_clock: VirtualClock
) -> None:
    connect(engine, virtual_clock)
    waiting = gevent.spawn(connection.request, kv_get, 5)
    virtual_clock.advance(5.1)
    with pytest.raises(RivetError) as timed_out:
        waiting.get(timeout=0)
    assert timed_out.value.code == "request_timed_out"
    waiting = gevent.spawn(connection.request, kv_get, 5)
    virtual_clock.settle()
    engine.refusing = True
    engine.socket.drop()
    virtual_clock.settle()
    with pytest.raises(RivetError) as lost:
        waiting.get(timeout=0)
    assert lost.value.code == "connection_lost"


def test_stop_drains_then_closes(
    connection: EnvoyConnection, engine: FakeEngine, virtual_clock: VirtualClock
) -> None:
    socket = connect(engine, virtual_clock)
    socket.deliver(commands((1, 1, START)))
    virtual_clock.settle()
    stopping = gevent.spawn(connection.stop, 30.0)
    virtual_clock.settle()
    assert socket.of_type(ToRivetStopping) == [ToRivetStopping()]
    assert not stopping.ready()  # the started actor has not been reported stopped
    # The engine answers a drain with StopActor{GoingAway}; the host reports the actor stopped.
    connection.send_event(ACTOR, 1, STOPPED)
    virtual_clock.settle()
    assert stopping.get(timeout=1) is True
    assert isinstance(socket.sent[-1], ToRivetEvents) and socket.closed
    virtual_clock.advance(60)
    assert len(engine.attempts) == 1  # no reconnect after a stop


def test_stop_gives_up_waiting_after_its_timeout(
    connection: EnvoyConnection, engine: FakeEngine, virtual_clock: VirtualClock
) -> None:
    socket = connect(engine, virtual_clock)
    socket.deliver(commands((1, 1, START)))
    virtual_clock.settle()
    stopping = gevent.spawn(connection.stop, 10.0)
    virtual_clock.advance(10.1)
    assert stopping.get(timeout=1) is False and socket.closed


def test_tunnel_messages_reach_the_handler_in_order_while_commands_wait(
    connection: EnvoyConnection, engine: FakeEngine, handler: RecordingHandler, virtual_clock: VirtualClock
) -> None:
    socket = connect(engine, virtual_clock)
    handler.gate = gevent.event.Event()
    socket.deliver(commands((1, 1, START)))
    messages = [ToEnvoyTunnelMessage(
        message_id=MessageId(gateway_id=b"gate", request_id=b"req1", message_index=index),
        message_kind=ToEnvoyWebSocketMessage(data=bytes([index]), binary=True)) for index in range(3)]
    socket.deliver(*messages)
    virtual_clock.settle()
    assert handler.tunnel == messages


def test_a_new_generation_retires_the_events_of_the_previous_ones(
    connection: EnvoyConnection, engine: FakeEngine, virtual_clock: VirtualClock
) -> None:
    # The engine acknowledges events only in batches of 250 per generation, so short generations never are.
    socket = connect(engine, virtual_clock)
    socket.deliver(commands((1, 1, START)))
    virtual_clock.settle()
    connection.send_event(ACTOR, 1, RUNNING)
    connection.send_event(ACTOR, 1, STOPPED)
    connection.send_event("actor-2", 1, RUNNING)
    socket.deliver(commands((2, 1, START)))
    virtual_clock.settle()
    assert [(each.checkpoint.actor_id, each.checkpoint.generation) for each in connection.unacknowledged_events()] \
        == [("actor-2", 1)]
    assert connection.send_event(ACTOR, 2, RUNNING).index == 0


def test_a_command_of_a_generation_before_a_started_one_is_stale(
    connection: EnvoyConnection, engine: FakeEngine, handler: RecordingHandler, virtual_clock: VirtualClock
) -> None:
    socket = connect(engine, virtual_clock)
    socket.deliver(commands((1, 1, START), (1, 2, STOP), (2, 1, START)))
    virtual_clock.settle()
    # Generation 1 is finished once generation 2 started: a late replay of its commands changes nothing.
    socket.deliver(commands((1, 1, START), (1, 2, STOP), (2, 1, START), (2, 2, STOP)))
    virtual_clock.settle()
    applied = [(checkpoint.generation, checkpoint.index) for checkpoint, _ in handler.commands]
    assert applied == [(1, 1), (1, 2), (2, 1), (2, 2)]
