"""The envoy connection: one host's WebSocket to the Rivet Engine (engine-envoy.md §3.1–§3.5, §10.6), without
placement. It connects, answers pings, delivers the engine's commands to an :class:`EnvoyHandler` once each, keeps
the host's events until the engine acknowledges them, routes responses to :meth:`EnvoyConnection.request` callers,
reconnects with backoff under the same envoy key, tells the handler when the engine must consider it lost, and
drains on :meth:`EnvoyConnection.stop`.

Greenlets: ``run`` (connect, then read; pongs and the handshake frames are written from here, so they never wait
behind user work), one writer per socket (every other frame, in order), ``commands`` (the handler's commands, in
order), ``tunnel`` (tunnel messages, in order) and a lost timer while disconnected. Time (backoff, lost timer,
request timeouts) comes from :mod:`rivetgreen.clock`, so tests run it on the virtual clock.
"""

from __future__ import annotations

import itertools
import json
import logging
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlencode

import gevent
import gevent.event
import gevent.queue

from rivetgreen import clock
from rivetgreen.client.errors import parse_close_reason
from rivetgreen.client.urls import combine_url_path
from rivetgreen.client.websocket import WebSocket
from rivetgreen.encoding.envoy import PROTOCOL_VERSION, decode_to_envoy, encode_to_rivet
from rivetgreen.encoding.envoy.messages import (
    ActorCheckpoint,
    ActorName,
    ActorStateStopped,
    Command,
    CommandStartActor,
    CommandWrapper,
    Event,
    EventActorStateUpdate,
    EventWrapper,
    ProtocolMetadata,
    ToEnvoy,
    ToEnvoyAckEvents,
    ToEnvoyCommands,
    ToEnvoyInit,
    ToEnvoyPing,
    ToEnvoyTunnelMessage,
    ToRivet,
    ToRivetAckCommands,
    ToRivetEvents,
    ToRivetMetadata,
    ToRivetPong,
    ToRivetStopping,
)
from rivetgreen.engine.envoy.settings import EngineSettings
from rivetgreen.errors import RivetError

log = logging.getLogger("rivetgreen.engine.envoy")

CONNECT_TIMEOUT = 10.0  # seconds to open the socket and receive ToEnvoyInit
DEFAULT_LOST_THRESHOLD = 15.0  # seconds; the engine's default, used until its ToEnvoyInit says otherwise
REQUEST_TIMEOUT = 30.0
CLOSE_TIMEOUT = 5.0  # seconds to write what is queued and close, on stop
NORMAL_CLOSURE = 1000
REQUEST_ID_SPACE = 2**32  # request ids are u32, chosen by the envoy
SocketOpener = Callable[[str, list[str]], Any]


class EnvoyHandler(Protocol):
    """What the host does with the engine's messages (the placement, later)."""

    def on_command(self, checkpoint: ActorCheckpoint, command: Command) -> None:
        """Apply one command (StartActor, StopActor). Called in the engine's order, once per checkpoint, on one
        greenlet; it is acknowledged to the engine after this returns."""

    def on_tunnel_message(self, message: ToEnvoyTunnelMessage) -> None:
        """One gateway message (HTTP request parts, WebSocket frames), in the engine's order."""

    def on_lost(self) -> None:
        """Disconnected past the lost threshold (or evicted): the engine reschedules this host's actors elsewhere,
        so the host must stop its own copies (no split brain)."""


@dataclass(frozen=True)
class Backoff:
    """Reconnect delays: ``initial`` doubling up to ``maximum`` seconds, each shortened by up to ``jitter`` (a
    fraction) so that hosts cut off together do not reconnect in lockstep."""

    initial: float = 0.1
    maximum: float = 5.0
    jitter: float = 0.5

    def delay(self, failures: int, draw: Callable[[], float] = random.random) -> float:
        """The wait after ``failures`` consecutive failed attempts (0: reconnect at once)."""
        if failures <= 0:
            return 0.0
        base = min(self.initial * 2 ** (failures - 1), self.maximum)
        return base * (1.0 - self.jitter * draw())


def new_envoy_key() -> str:
    """A fresh key: the engine keys pending commands by envoy key, so a new process must never inherit an old
    process's key (it would receive that process's replayed commands, engine-envoy.md §10.2 item 9)."""
    return f"rivetgreen-{uuid.uuid4().hex}"


def envoy_url(settings: EngineSettings, envoy_key: str, version: int) -> str:
    """The engine's envoy endpoint with the query that names this host (engine-envoy.md §3.1)."""
    query = urlencode({
        "protocol_version": PROTOCOL_VERSION, "namespace": settings.endpoint.namespace, "envoy_key": envoy_key,
        "version": version, "pool_name": settings.pool,
    })
    return combine_url_path(settings.endpoint, f"/envoys/connect?{query}")


def envoy_subprotocols(settings: EngineSettings) -> list[str]:
    """``rivet``, plus the admin token as ``rivet_token.<token>`` when the engine checks one."""
    token = settings.endpoint.token
    return ["rivet"] + ([f"rivet_token.{token}"] if token is not None else [])


def open_websocket(url: str, subprotocols: list[str]) -> WebSocket:
    """The production socket: rivetgreen's WebSocket client with TCP_NODELAY and re-armed TCP_QUICKACK."""
    return WebSocket.connect(url, subprotocols=subprotocols, timeout=CONNECT_TIMEOUT, quickack=True)


class CommandLog:
    """The last command index applied per (actor, generation): a replayed command is recognised and skipped.

    The engine sends an actor's commands in generation order (it stops one generation before it starts the next),
    so once a generation has started, the earlier ones are finished: their entries are dropped and any command of
    theirs is stale. A long-running host then keeps one small entry per actor, not one per generation."""

    def __init__(self) -> None:
        self._applied: dict[str, dict[int, int]] = {}  # actor -> generation -> last index applied
        self._first_live_generation: dict[str, int] = {}

    def is_new(self, checkpoint: ActorCheckpoint) -> bool:
        if checkpoint.generation < self._first_live_generation.get(checkpoint.actor_id, 0):
            return False
        return checkpoint.index > self._applied.get(checkpoint.actor_id, {}).get(checkpoint.generation, 0)

    def record(self, checkpoint: ActorCheckpoint, command: Command) -> None:
        generations = self._applied.setdefault(checkpoint.actor_id, {})
        generations[checkpoint.generation] = checkpoint.index
        if isinstance(command, CommandStartActor):
            self._first_live_generation[checkpoint.actor_id] = checkpoint.generation
            for finished in [generation for generation in generations if generation < checkpoint.generation]:
                del generations[finished]


class EventLog:
    """Events numbered per (actor, generation) from 0, kept until an ``AckEvents`` covers them.

    The engine acknowledges only every 250 events of a generation (pegboard's ``EVENT_ACK_BATCH_SIZE``), so a short
    generation's events are dropped instead once the actor's next generation starts: the engine starts it only when
    it is done with the previous one."""

    def __init__(self) -> None:
        self._next_index: dict[tuple[str, int], int] = {}
        self._unacknowledged: dict[tuple[str, int], list[EventWrapper]] = {}
        self._generations: dict[str, set[int]] = {}  # actor -> generations with events

    def append(self, actor_id: str, generation: int, event: Event) -> EventWrapper:
        index = self._next_index.get((actor_id, generation), 0)
        self._next_index[(actor_id, generation)] = index + 1
        self._generations.setdefault(actor_id, set()).add(generation)
        wrapper = EventWrapper(checkpoint=ActorCheckpoint(actor_id=actor_id, generation=generation, index=index),
                               inner=event)
        self._unacknowledged.setdefault((actor_id, generation), []).append(wrapper)
        return wrapper

    def acknowledge(self, checkpoint: ActorCheckpoint) -> None:
        """Drop every event of that generation up to and including its index."""
        key = (checkpoint.actor_id, checkpoint.generation)
        if key in self._unacknowledged:
            self._unacknowledged[key] = [each for each in self._unacknowledged[key]
                                         if each.checkpoint.index > checkpoint.index]

    def forget_before(self, actor_id: str, generation: int) -> None:
        """Drop the actor's events of the generations before ``generation``."""
        generations = self._generations.get(actor_id, set())
        for finished in [each for each in generations if each < generation]:
            generations.discard(finished)
            self._unacknowledged.pop((actor_id, finished), None)
            self._next_index.pop((actor_id, finished), None)

    def unacknowledged(self) -> list[EventWrapper]:
        """Each generation's in the order they were sent."""
        return [wrapper for wrappers in self._unacknowledged.values() for wrapper in wrappers]


class _Session:
    """One open socket: its writer greenlet and the frames it has not written yet."""

    def __init__(self, socket: Any) -> None:
        self.socket = socket
        self.outbox: gevent.queue.Queue[bytes | tuple[int, str]] = gevent.queue.Queue()
        self.writer = gevent.spawn(self._write_loop)

    def send(self, frame: bytes) -> None:
        self.outbox.put(frame)

    def finish(self, code: int, reason: str, timeout: float) -> None:
        """Close after every frame queued so far is written (at most ``timeout`` seconds)."""
        self.outbox.put((code, reason))
        self.writer.join(timeout)
        self.writer.kill(block=False)  # still writing after the timeout: the peer does not read
        self.socket.close(code, reason)

    def _write_loop(self) -> None:
        for item in self.outbox:
            if isinstance(item, tuple):
                return
            try:
                self.socket.send(item)
            except RivetError as error:  # the socket closed: the reader sees it and ends the session
                log.debug("envoy socket write failed: %s", error)
                return


class EnvoyConnection:
    """This host's envoy connection to the engine in ``settings``. :meth:`start` it, then :meth:`wait_ready`."""

    def __init__(
        self,
        settings: EngineSettings,
        handler: EnvoyHandler,
        *,
        version: int = 1,
        actor_names: dict[str, dict[str, Any]] | None = None,
        envoy_key: str | None = None,
        backoff: Backoff = Backoff(),
        lost_threshold: float | None = None,
        open_socket: SocketOpener = open_websocket,
    ) -> None:
        """``version`` is the deployment version (the engine prefers the newest); ``actor_names`` maps each actor
        name to its JSON metadata; ``lost_threshold`` (seconds) overrides the one the engine announces."""
        self.settings = settings
        self.handler = handler
        self.version = version
        self.envoy_key = envoy_key or new_envoy_key()
        self.actor_names = actor_names or {}
        self.backoff = backoff
        self.lost_threshold_override = lost_threshold
        self.protocol: ProtocolMetadata | None = None
        self.connections = 0  # sockets that got as far as ToEnvoyInit
        self.close_reason = ""  # of the last socket
        self.evicted = False
        self._open_socket = open_socket
        self._session: _Session | None = None
        self._connected = gevent.event.Event()
        self._stopping = False
        self._commands = CommandLog()
        self._events = EventLog()
        self._active: dict[str, set[int]] = {}  # actor -> generations started and not yet reported stopped
        self._drained = gevent.event.Event()
        self._drained.set()
        self._command_queue: gevent.queue.Queue[CommandWrapper] = gevent.queue.Queue()
        self._tunnel_queue: gevent.queue.Queue[ToEnvoyTunnelMessage] = gevent.queue.Queue()
        self._waiters: dict[int, gevent.event.AsyncResult] = {}
        self._request_ids = itertools.count(1)
        self._greenlets: list[gevent.Greenlet] = []
        self._lost_timer: gevent.Greenlet | None = None

    # Lifecycle ----------------------------------------------------------------------------------------------
    def start(self) -> None:
        self._greenlets = [gevent.spawn(self._run), gevent.spawn(self._apply_commands),
                           gevent.spawn(self._deliver_tunnel_messages)]

    def wait_ready(self, timeout: float | None = None) -> bool:
        """Wait until connected (ToEnvoyInit received, metadata sent); False after ``timeout`` seconds."""
        return clock.wait_timeout(self._connected, timeout)

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    @property
    def lost_threshold(self) -> float:
        if self.lost_threshold_override is not None:
            return self.lost_threshold_override
        return self.protocol.envoy_lost_threshold / 1000 if self.protocol else DEFAULT_LOST_THRESHOLD

    def stop(self, timeout: float = 30.0) -> bool:
        """Drain: tell the engine this host is stopping (it then stops every actor here with ``GoingAway``), wait
        at most ``timeout`` seconds until every started actor was reported stopped, then close. Whether it drained.
        Disconnected, it closes at once (the engine then reschedules the actors once this host is lost)."""
        self._stopping = True
        session = self._session if self.connected else None
        drained = True
        if session is not None:
            session.send(encode_to_rivet(ToRivetStopping()))
            drained = clock.wait_timeout(self._drained, timeout)
            session.finish(NORMAL_CLOSURE, "envoy stopping", CLOSE_TIMEOUT)
        gevent.killall(self._greenlets, timeout=CLOSE_TIMEOUT)
        if self._lost_timer is not None:
            self._lost_timer.kill(block=False)
        self._connected.clear()
        self._fail_waiters("The envoy connection was stopped.")
        return drained

    # Sending ------------------------------------------------------------------------------------------------
    def send_event(self, actor_id: str, generation: int, event: Event) -> ActorCheckpoint:
        """Report an actor's state, intent or alarm. The event is kept until the engine acknowledges it and sent
        again after a reconnect; its checkpoint is returned."""
        wrapper = self._events.append(actor_id, generation, event)
        if isinstance(event, EventActorStateUpdate) and isinstance(event.state, ActorStateStopped):
            generations = self._active.get(actor_id, set())
            generations.discard(generation)
            if not generations:
                self._active.pop(actor_id, None)
            if not self._active:
                self._drained.set()
        self._send(ToRivetEvents(events=[wrapper]))
        return wrapper.checkpoint

    def send(self, message: ToRivet) -> bool:
        """Send ``message`` (a tunnel message...) in order after everything sent before; False when disconnected
        (the message is dropped: the gateway gives up on that request)."""
        return self._send(message)

    def request(self, build: Callable[[int], ToRivet], timeout: float = REQUEST_TIMEOUT) -> Any:
        """Send ``build(request_id)`` (a KV or SQLite request) and return the ``data`` of the engine's response.
        Waits for a connection first; ``envoy/request_timed_out`` after ``timeout`` seconds in all,
        ``envoy/connection_lost`` if the socket closes before the response."""
        deadline = clock.monotonic() + timeout
        if not clock.wait(self._connected, deadline):
            raise RivetError("envoy", "request_timed_out",
                             f"The envoy connection was not open within {timeout} s.", {"timeout": timeout})
        request_id = self._new_request_id()
        waiter = gevent.event.AsyncResult()
        self._waiters[request_id] = waiter
        try:
            if not self._send(build(request_id)):
                raise RivetError("envoy", "connection_lost", "The envoy connection closed before the request.")
            if not clock.wait(waiter, deadline):
                raise RivetError("envoy", "request_timed_out", f"The engine did not answer within {timeout} s.",
                                 {"timeout": timeout, "requestId": request_id})
            return waiter.get()
        finally:
            self._waiters.pop(request_id, None)

    def unacknowledged_events(self) -> list[EventWrapper]:
        return self._events.unacknowledged()

    # Connection loop ----------------------------------------------------------------------------------------
    def _run(self) -> None:
        failures = 0
        url = envoy_url(self.settings, self.envoy_key, self.version)
        while not self._stopping and not self.evicted:
            clock.sleep(self.backoff.delay(failures))
            try:
                socket = self._open_socket(url, envoy_subprotocols(self.settings))
            except RivetError as error:
                failures += 1
                log.warning("connecting to the Rivet Engine at %s failed: %s", self.settings.endpoint.url, error)
                continue
            if self._serve(socket):
                failures = 0
            else:
                failures += 1

    def _serve(self, socket: Any) -> bool:
        """Read one socket until it closes; whether it got as far as ToEnvoyInit."""
        session = _Session(socket)
        initialised = False
        try:
            while True:
                frame = socket.receive(None if initialised else CONNECT_TIMEOUT)
                if frame is None:
                    break
                message = self._decode(frame)
                if message is None:
                    continue
                if isinstance(message, ToEnvoyInit):
                    self._on_init(session, message)
                    initialised = True
                elif isinstance(message, ToEnvoyPing):
                    socket.send(encode_to_rivet(ToRivetPong(ts=message.ts)))  # straight from the reader
                elif initialised:
                    self._dispatch(message)
        except RivetError as error:  # no ToEnvoyInit in time, or the socket failed under us
            log.warning("envoy socket to %s failed: %s", self.settings.endpoint.url, error)
        finally:
            self._on_closed(session)
        return initialised

    def _on_init(self, session: _Session, init: ToEnvoyInit) -> None:
        self.protocol = init.metadata
        names = {name: ActorName(metadata=json.dumps(metadata)) for name, metadata in self.actor_names.items()}
        # Written directly, so the metadata is the first frame the engine reads from us.
        session.socket.send(encode_to_rivet(ToRivetMetadata(prepopulate_actor_names=names)))
        unacknowledged = self._events.unacknowledged()
        if unacknowledged:  # the engine ignores indexes it has already seen
            session.send(encode_to_rivet(ToRivetEvents(events=unacknowledged)))
        self._session = session
        self.connections += 1
        if self._lost_timer is not None:
            self._lost_timer.kill(block=False)
            self._lost_timer = None
        self._connected.set()
        log.info("envoy %s connected to the Rivet Engine at %s", self.envoy_key, self.settings.endpoint.url)

    def _on_closed(self, session: _Session) -> None:
        was_connected = self._session is session
        session.writer.kill(block=False)
        session.socket.close()
        self.close_reason = getattr(session.socket, "close_reason", "") or ""
        if not was_connected:  # refused after the upgrade: no pool, unknown namespace, bad token (§3.1)
            log.warning("the Rivet Engine at %s closed the envoy socket before its Init: %s",
                        self.settings.endpoint.url, self.close_reason or "no reason")
            return
        self._session = None
        self._connected.clear()
        self._fail_waiters("The envoy connection closed before the engine answered.")
        if self._stopping:
            return
        log.warning("envoy %s disconnected from the Rivet Engine: %s", self.envoy_key, self.close_reason or "closed")
        if (parse_close_reason(self.close_reason) or ())[:2] == ("ws", "eviction"):
            # Another connection took our key: the engine no longer sends us anything for these actors.
            self.evicted = True
            self._call_on_lost()
        else:
            self._lost_timer = gevent.spawn(self._lost_after_threshold)

    def _lost_after_threshold(self) -> None:
        if not clock.wait_timeout(self._connected, self.lost_threshold):
            log.error("envoy %s disconnected for %.1f s: stopping its actors", self.envoy_key, self.lost_threshold)
            self._call_on_lost()

    def _call_on_lost(self) -> None:
        try:
            self.handler.on_lost()
        except Exception:
            log.exception("the envoy handler failed on_lost")

    # Incoming -----------------------------------------------------------------------------------------------
    def _decode(self, frame: Any) -> ToEnvoy | None:
        if not isinstance(frame, bytes):
            log.warning("ignored a text frame on the envoy socket")
            return None
        try:
            return decode_to_envoy(frame)
        except RivetError as error:
            log.warning("ignored an envoy frame: %s", error.message)
            return None

    def _dispatch(self, message: ToEnvoy) -> None:
        if isinstance(message, ToEnvoyCommands):
            for wrapper in message.commands:
                self._command_queue.put(wrapper)
        elif isinstance(message, ToEnvoyAckEvents):
            for checkpoint in message.last_event_checkpoints:
                self._events.acknowledge(checkpoint)
        elif isinstance(message, ToEnvoyTunnelMessage):
            self._tunnel_queue.put(message)
        else:  # a KV or SQLite response (the reader handled Init and Ping)
            waiter = self._waiters.get(message.request_id)
            if waiter is None:
                log.debug("ignored a response to unknown request %s", message.request_id)
            else:
                waiter.set(message.data)

    def _apply_commands(self) -> None:
        """Apply commands one at a time; acknowledge the newest checkpoint of each generation once the queue is
        empty, so the engine forgets them (and does not replay them after a reconnect)."""
        processed: dict[tuple[str, int], ActorCheckpoint] = {}
        while True:
            wrapper = self._command_queue.get()
            checkpoint = wrapper.checkpoint
            if self._commands.is_new(checkpoint):
                self._apply(checkpoint, wrapper.inner)
                self._commands.record(checkpoint, wrapper.inner)
            key = (checkpoint.actor_id, checkpoint.generation)
            if key not in processed or processed[key].index < checkpoint.index:
                processed[key] = checkpoint
            if self._command_queue.empty():
                self._send(ToRivetAckCommands(last_command_checkpoints=list(processed.values())))
                processed = {}

    def _apply(self, checkpoint: ActorCheckpoint, command: Command) -> None:
        if isinstance(command, CommandStartActor):
            actor_id, generation = checkpoint.actor_id, checkpoint.generation
            self._events.forget_before(actor_id, generation)
            # Earlier generations are finished for the engine: a drain does not wait for them.
            self._active[actor_id] = {each for each in self._active.get(actor_id, set()) if each > generation}
            self._active[actor_id].add(generation)
            self._drained.clear()
        try:
            self.handler.on_command(checkpoint, command)
        except Exception:  # applied all the same: running it again after a replay would not make it succeed
            log.exception("the envoy handler failed on %s for %s", type(command).__name__, checkpoint)

    def _deliver_tunnel_messages(self) -> None:
        for message in self._tunnel_queue:
            try:
                self.handler.on_tunnel_message(message)
            except Exception:
                log.exception("the envoy handler failed on a tunnel message")

    # Helpers ------------------------------------------------------------------------------------------------
    def _send(self, message: ToRivet) -> bool:
        session = self._session
        if session is None:
            return False
        session.send(encode_to_rivet(message))
        return True

    def _new_request_id(self) -> int:
        while True:
            request_id = next(self._request_ids) % REQUEST_ID_SPACE
            if request_id not in self._waiters:
                return request_id

    def _fail_waiters(self, message: str) -> None:
        for waiter in self._waiters.values():
            if not waiter.ready():
                waiter.set_exception(RivetError("envoy", "connection_lost", message))
