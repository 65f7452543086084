"""``ActorConnection``: the ``/connect`` WebSocket protocol with events and automatic reconnects, behaving like
the JS client's ``ActorConn`` (client-protocol.md §5).

- Nothing is sent before ``Init`` arrives: calls made earlier wait in a queue, subscriptions are (re)sent on Init.
- Action requests carry increasing ids (counting on across reconnects); replies are matched by id, in any order.
- After Init, a close by the server fails the calls in flight (with ``group.code`` from the close reason when it
  has that shape) and a new WebSocket is opened at once; it re-subscribes and flushes the queue.
- Before Init, a failure is final (every pending and later call fails with it) unless it is a transient actor
  lifecycle state (``actor.not_found``/``starting``/``stopping``/``dropped_reply``...), which is retried a bounded
  number of times with backoff.
- Event listeners and the ``on_open``/``on_close``/``on_error`` callbacks run on one delivery greenlet, in order.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import gevent
import gevent.event
import gevent.lock
import gevent.queue

from rivetgreen.client.errors import ClientTimeout, client_error, error_from_close, error_from_dict, is_retryable
from rivetgreen.client.urls import ActorTarget, gateway_url, websocket_protocols
from rivetgreen.client.websocket import WebSocket
from rivetgreen.encoding import client_protocol as protocol
from rivetgreen.errors import RivetError

if TYPE_CHECKING:
    from rivetgreen.client.client import Client

log = logging.getLogger("rivetgreen.client")

MAX_OPEN_RETRIES = 8
FIRST_OPEN_BACKOFF = 0.25
MAX_OPEN_BACKOFF = 2.0
DISPOSED_REASON = "Disposed"
_STOP = object()


@dataclass
class _Call:
    """One action call: its encoded request, whether it went out on the current socket, and its result."""

    name: str
    frame: bytes | str
    result: gevent.event.AsyncResult[Any] = field(default_factory=gevent.event.AsyncResult)
    sent: bool = False


@dataclass
class _Listener:
    callback: Callable[..., Any]
    once: bool


class ActorConnection:
    """A live connection to one actor. ``conn.increment(1)`` is ``conn.action("increment", 1)``.

    ``status`` is ``connecting``, ``connected``, ``disconnected`` (reconnecting) or ``idle`` (closed by
    :meth:`close`, or failed for good: see ``error``)."""

    def __init__(self, client: Client, target: ActorTarget, params: Any = None) -> None:
        self._client = client
        self._target = target
        self._params = params
        self._encoding = client.encoding
        self._lock = gevent.lock.RLock()
        self._status = "connecting"
        self._ws: WebSocket | None = None
        self._next_id = 0
        self._calls: dict[int, _Call] = {}
        self._queue: list[int] = []  # ids of calls not sent yet, in call order
        self._listeners: dict[str, list[_Listener]] = {}
        self._handlers: dict[str, list[Callable[..., Any]]] = {"open": [], "close": [], "error": []}
        self._deliveries: gevent.queue.Queue[Any] = gevent.queue.Queue()
        self._state_changed = gevent.event.Event()  # set while connected or finished
        self._disposed = False
        self.error: RivetError | None = None
        self.actor_id: str | None = target.actor_id
        self.connection_id: str | None = None
        client._track(self)
        self._delivery = gevent.spawn(self._deliver)
        self._runner = gevent.spawn(self._run)

    def __repr__(self) -> str:
        return f"<ActorConnection {self._target.name} {self._status} conn={self.connection_id}>"

    def __getattr__(self, name: str) -> Callable[..., Any]:
        if name.startswith("_"):
            raise AttributeError(name)
        return functools.partial(self.action, name)

    def __enter__(self) -> ActorConnection:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    @property
    def status(self) -> str:
        return self._status

    @property
    def is_connected(self) -> bool:
        return self._status == "connected"

    # Calls --------------------------------------------------------------------------------------------------
    def action(self, name: str, *args: Any, timeout: float | None = None) -> Any:
        """Call action ``name`` over the WebSocket (queued until the connection is open) and wait for its
        output, at most ``timeout`` seconds (default: the client's timeout)."""
        self._check_usable()
        with self._lock:
            identifier = self._next_id
            self._next_id += 1
            frame = protocol.encode_to_server(self._encoding, protocol.ActionRequest(identifier, name, list(args)))
            call = _Call(name, frame)
            self._calls[identifier] = call
            self._queue.append(identifier)
            self._flush()
        limit = self._client.timeout if timeout is None else timeout
        try:
            return call.result.get(timeout=limit)
        except gevent.Timeout:
            with self._lock:
                self._calls.pop(identifier, None)
                if identifier in self._queue:
                    self._queue.remove(identifier)
            raise ClientTimeout(f"Action '{name}' got no response within {limit} s.",
                                {"action": name, "status": self._status}) from None

    def send(self, name: str, body: Any, wait: bool = False, timeout: float | None = None) -> dict[str, Any] | None:
        """A queue send, over HTTP like the JS client does (see :meth:`ActorHandle.send`)."""
        from rivetgreen.client.handle import ActorHandle

        return ActorHandle(self._client, self._target, self._params).send(name, body, wait=wait, timeout=timeout)

    def wait_connected(self, timeout: float | None = None) -> None:
        """Block until the connection is open (Init received); raise its error if it failed for good."""
        limit = self._client.timeout if timeout is None else timeout
        deadline = time.monotonic() + limit
        while True:
            self._check_usable()
            if self._status == "connected":
                return
            left = deadline - time.monotonic()
            if left <= 0:
                raise ClientTimeout(f"The connection did not open within {limit} s.", {"status": self._status})
            self._state_changed.wait(left)

    # Events and callbacks ------------------------------------------------------------------------------------
    def on(self, event: str, callback: Callable[..., Any]) -> Callable[[], None]:
        """Call ``callback(*args)`` for every ``event``; returns a function that unsubscribes it."""
        return self._subscribe(event, _Listener(callback, once=False))

    def once(self, event: str, callback: Callable[..., Any]) -> Callable[[], None]:
        """Like :meth:`on`, for the next ``event`` only."""
        return self._subscribe(event, _Listener(callback, once=True))

    def on_open(self, callback: Callable[[], Any]) -> Callable[[], None]:
        """``callback()`` each time the connection opens (Init received)."""
        return self._add_handler("open", callback)

    def on_close(self, callback: Callable[[], Any]) -> Callable[[], None]:
        """``callback()`` each time an open connection closes."""
        return self._add_handler("close", callback)

    def on_error(self, callback: Callable[[RivetError], Any]) -> Callable[[], None]:
        """``callback(error)`` for connection-level errors (Error frames without an action id, close reasons
        of the form ``group.code``, and the final failure)."""
        return self._add_handler("error", callback)

    def _subscribe(self, event: str, listener: _Listener) -> Callable[[], None]:
        with self._lock:
            listeners = self._listeners.setdefault(event, [])
            listeners.append(listener)
            if len(listeners) == 1:
                self._send_subscription(event, True)

        def unsubscribe() -> None:
            with self._lock:
                current = self._listeners.get(event, [])
                if listener in current:
                    current.remove(listener)
                    if not current:
                        del self._listeners[event]
                        self._send_subscription(event, False)

        return unsubscribe

    def _add_handler(self, kind: str, callback: Callable[..., Any]) -> Callable[[], None]:
        self._handlers[kind].append(callback)

        def remove() -> None:
            if callback in self._handlers[kind]:
                self._handlers[kind].remove(callback)

        return remove

    # Closing ------------------------------------------------------------------------------------------------
    def close(self, timeout: float = 5.0) -> None:
        """Close the connection (``1000 "Disposed"``); pending calls fail with ``client/connection_disposed``."""
        if self._disposed:
            return
        self._disposed = True
        self._set_status("idle")
        ws = self._ws
        if ws is not None:
            ws.close(1000, DISPOSED_REASON, timeout=timeout)
        if self._runner is not gevent.getcurrent():
            self._runner.kill(block=False)
        self._fail_calls(lambda: client_error("connection_disposed", "The connection was closed by the client."),
                         sent_only=False)
        self._deliveries.put(_STOP)
        self._state_changed.set()
        self._client._untrack(self)

    # The connection loop -------------------------------------------------------------------------------------
    def _run(self) -> None:
        failures = 0
        backoff = FIRST_OPEN_BACKOFF
        try:
            while not self._disposed:
                was_connected, error = self._connect_and_serve()
                if self._disposed:
                    return
                if was_connected:
                    failures, backoff = 0, FIRST_OPEN_BACKOFF
                    self._fail_calls(functools.partial(_copy, error), sent_only=True)
                    if error.group != "client":
                        self._emit("error", _copy(error))
                    self._emit("close")
                    continue  # reconnect at once with a new WebSocket
                if failures < MAX_OPEN_RETRIES and is_retryable(error, self._target.is_query, can_create=True):
                    failures += 1
                    log.info("connection to %s failed before Init (%s); retrying in %.2f s",
                             self._target.name, error, backoff)
                    gevent.sleep(backoff)
                    backoff = min(backoff * 2, MAX_OPEN_BACKOFF)
                    continue
                self._fail_for_good(error)
                return
        except Exception as error:  # a bug here must not leave calls hanging
            log.exception("connection loop failed")
            self._fail_for_good(client_error("connection_lost", f"The connection loop failed: {error!r}"))

    def _connect_and_serve(self) -> tuple[bool, RivetError]:
        """Open one WebSocket and serve it until it closes: ``(was it ever open, why it ended)``."""
        self._set_status("connecting")
        try:
            ws = self._open_socket()
        except RivetError as error:
            return False, error
        self._ws = ws
        try:
            init_error = self._wait_for_init(ws)
            if init_error is not None:
                ws.close(1000, "", timeout=1.0)
                return False, init_error
            while True:
                frame = ws.receive()
                if frame is None:
                    return True, error_from_close(ws.close_code, ws.close_reason, ws.clean_close)
                self._handle_frame(frame)
        finally:
            with self._lock:
                self._ws = None
                if self._status == "connected":
                    self._set_status("disconnected")

    def _open_socket(self) -> WebSocket:
        client = self._client
        url = gateway_url(client.endpoint(), self._target, "/connect", client.pool)
        return WebSocket.connect(
            url,
            subprotocols=websocket_protocols(self._encoding, self._params),
            headers=client.websocket_headers(),
            timeout=client.timeout,
            default_timeout=None,
        )

    def _wait_for_init(self, ws: WebSocket) -> RivetError | None:
        """Read until Init (None) or the failure to open: an Error frame, a close, or no Init in time."""
        limit = self._client.timeout
        while True:
            try:
                frame = ws.receive(timeout=limit)
            except ClientTimeout:
                return client_error("connection_open_failed", f"The server sent no Init within {limit} s.")
            if frame is None:
                return error_from_close(ws.close_code, ws.close_reason, ws.clean_close)
            message = self._decode(frame)
            if isinstance(message, protocol.Init):
                self._opened(message)
                return None
            if isinstance(message, protocol.ErrorMessage) and message.action_id is None:
                return _error_from_message(message)
            if message is not None:
                log.warning("ignoring %s received before Init", type(message).__name__)

    def _opened(self, init: protocol.Init) -> None:
        with self._lock:
            self.actor_id = init.actor_id
            self.connection_id = init.connection_id
            self._set_status("connected")
            for event in list(self._listeners):
                self._send_subscription(event, True)
            self._flush()
        self._emit("open")

    def _handle_frame(self, frame: bytes | str) -> None:
        message = self._decode(frame)
        if isinstance(message, protocol.ActionResponse):
            call = self._take_call(message.id)
            if call is not None:
                call.result.set(message.output)
        elif isinstance(message, protocol.Event):
            self._deliveries.put(functools.partial(self._dispatch_event, message.name, message.args))
        elif isinstance(message, protocol.ErrorMessage):
            error = _error_from_message(message)
            if message.action_id is not None:
                call = self._take_call(message.action_id)
                if call is not None:
                    call.result.set_exception(error)
            else:
                self._fail_calls(lambda: _copy(error), sent_only=True)
                self._emit("error", error)
        elif isinstance(message, protocol.Init):
            log.warning("ignoring a second Init on one connection")

    def _decode(self, frame: bytes | str) -> protocol.ToClientMessage | None:
        try:
            return protocol.decode_to_client(self._encoding, frame)
        except RivetError as error:
            log.warning("ignoring an undecodable message from the server: %s", error)
            return None

    # Sending ------------------------------------------------------------------------------------------------
    def _flush(self) -> None:
        """Send the queued calls, in order, while the connection is open (caller holds the lock)."""
        while self._queue and self._status == "connected" and self._ws is not None:
            call = self._calls.get(self._queue[0])
            if call is not None:
                try:
                    self._ws.send(call.frame)
                except RivetError:
                    return  # the socket is closing; the loop notices and reconnects
                call.sent = True
            self._queue.pop(0)

    def _send_subscription(self, event: str, subscribe: bool) -> None:
        """Sent only while open, like the JS client (subscriptions are re-sent on every Init)."""
        if self._status != "connected" or self._ws is None:
            return
        frame = protocol.encode_to_server(self._encoding, protocol.SubscriptionRequest(event, subscribe))
        try:
            self._ws.send(frame)
        except RivetError:
            pass

    # Failing calls ------------------------------------------------------------------------------------------
    def _take_call(self, identifier: int) -> _Call | None:
        with self._lock:
            return self._calls.pop(identifier, None)

    def _fail_calls(self, make_error: Callable[[], RivetError], sent_only: bool) -> None:
        with self._lock:
            failed = [i for i, call in self._calls.items() if call.sent or not sent_only]
            calls = [self._calls.pop(i) for i in failed]
            if not sent_only:
                self._queue.clear()
        for call in calls:
            call.result.set_exception(make_error())

    def _fail_for_good(self, error: RivetError) -> None:
        with self._lock:
            self.error = error
            self._set_status("idle")
        self._fail_calls(lambda: _copy(error), sent_only=False)
        self._emit("error", _copy(error))

    def _check_usable(self) -> None:
        if self._disposed:
            raise client_error("connection_disposed", "The connection was closed by the client.")
        if self.error is not None:
            raise _copy(self.error)

    def _set_status(self, status: str) -> None:
        self._status = status
        if status == "connected" or self._disposed or self.error is not None:
            self._state_changed.set()
        else:
            self._state_changed.clear()

    # Delivery -----------------------------------------------------------------------------------------------
    def _emit(self, kind: str, *args: Any) -> None:
        callbacks = list(self._handlers[kind])
        if callbacks:
            self._deliveries.put(functools.partial(_run_callbacks, callbacks, args, kind))

    def _deliver(self) -> None:
        for item in self._deliveries:
            if item is _STOP:
                return
            item()

    def _dispatch_event(self, name: str, args: list[Any]) -> None:
        with self._lock:
            listeners = self._listeners.get(name, [])
            callbacks = [listener.callback for listener in listeners]
            remaining = [listener for listener in listeners if not listener.once]
            if len(remaining) != len(listeners):
                if remaining:
                    self._listeners[name] = remaining
                else:
                    del self._listeners[name]
                    self._send_subscription(name, False)
        _run_callbacks(callbacks, args, name)


def _run_callbacks(callbacks: list[Callable[..., Any]], args: Any, what: str) -> None:
    for callback in callbacks:
        try:
            callback(*args)
        except Exception:
            log.exception("connection callback for %s failed", what)


def _error_from_message(message: protocol.ErrorMessage) -> RivetError:
    return error_from_dict(protocol.error_to_dict(message))


def _copy(error: RivetError) -> RivetError:
    """A fresh exception with the same fields (one exception object is not raised in several greenlets)."""
    if isinstance(error, ClientTimeout):
        return ClientTimeout(error.message, error.metadata)
    copy = RivetError(error.group, error.code, error.message, error.metadata, public=True)
    copy.actor = error.actor
    return copy
