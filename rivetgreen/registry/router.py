"""``ActorRouter``: the routes every actor serves behind the gateway (core.md §7.3-7.4), transport-neutral.

HTTP: ``POST /action/{name}``, ``POST /queue/{name}``, ``/request/...`` (raw, to ``on_request``), ``GET /health``,
``GET /metadata``, ``GET /metrics``, ``GET /``. WebSocket: ``/connect`` (the actor-connect protocol) and
``/websocket/...`` (raw, to ``on_websocket``). The Flask host (and later the Rivet Engine host) turns its requests
into :class:`Request` and its sockets into :class:`WebSocket` and calls in here.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import unquote

import gevent

from rivetgreen import __version__, errors, inspector
from rivetgreen.actor.actions import action_call, connection_action, open_connection, subscription_check
from rivetgreen.actor.lifecycle import Dispatch
from rivetgreen.actor.work import WorkKind, serve_connection
from rivetgreen.encoding import client_protocol as protocol
from rivetgreen.encoding.actor_key import key_header
from rivetgreen.encoding.untrusted import parse_json
from rivetgreen.errors import RivetError
from rivetgreen.http import Request, Response, as_response

if TYPE_CHECKING:
    from rivetgreen.actor.config import ActorOptions
    from rivetgreen.actor.definition import ActorDefinition
    from rivetgreen.actor.task import ActorTask
    from rivetgreen.engine.local import LocalEngine

log = logging.getLogger("rivetgreen.router")

# Framework route status codes (core.md §5.3); everything else is 500.
FRAMEWORK_STATUS = {
    ("auth", "forbidden"): 403,
    ("actor", "action_not_found"): 404,
    ("actor", "not_found"): 404,
    ("actor", "action_timed_out"): 408,
    ("actor", "invalid_request"): 400,
    ("actor", "invalid_key"): 400,
    ("actor", "method_not_allowed"): 405,
    ("message", "incoming_too_long"): 400,
    ("message", "outgoing_too_long"): 400,
    ("protocol", "unsupported_encoding"): 400,
}


def framework_status(error: RivetError) -> int:
    if error.status is not None:  # errors that carry their own status (storage faults: 503)
        return error.status
    if error.group == "queue":
        return 400
    return FRAMEWORK_STATUS.get((error.group, error.code), 500)


class WebSocket(Protocol):
    """What the router needs from a server-side WebSocket."""

    offered_subprotocols: list[str]

    def send(self, data: str | bytes) -> None: ...

    def receive(self) -> str | bytes | None:
        """The next message; None once the socket is closed."""

    def close(self, code: int = 1000, reason: str = "") -> None: ...

    def wait_message(self, *interrupts: Any) -> bool:
        """Block until a message is ready (True), or the socket closed or an interrupt event was set (False)."""

    def limit_messages(self, max_size: int, close_code: int, close_reason: str) -> None:
        """Cap incoming messages at ``max_size`` bytes; a longer one closes the socket with this code and reason."""


class ActorRouter:
    """Serves the per-actor routes of every actor placed by ``engine``."""

    def __init__(self, engine: LocalEngine) -> None:
        self.engine = engine

    # HTTP ----------------------------------------------------------------------------------------------------
    def handle_http(self, actor_id: str, request: Request) -> Response:
        """Answer one HTTP request addressed to actor ``actor_id`` (``request.path`` is actor-relative and already
        percent-decoded)."""
        path = request.path
        encoding = request.headers.get("x-rivet-encoding", "json")
        served: list[Dispatch] = []
        try:
            if path == "/request" or path.startswith("/request/"):
                response = self._raw_request(actor_id, request, served)
            elif path == "/inspector" or path.startswith("/inspector/"):
                response = inspector.handle_http(self, actor_id, request)
            elif path.startswith("/action/"):
                response = self._action(actor_id, path[len("/action/"):], request, encoding, served)
            elif path.startswith("/queue/"):
                response = self._queue_send(actor_id, path[len("/queue/"):], request, encoding, served)
            else:
                response = self._framework_route(actor_id, request)
        except RivetError as error:
            response = self._error_response(error, encoding if encoding in protocol.ENCODINGS else "json")
        except Exception as error:  # a bug here must still answer the client
            log.exception("actor %s: %s %s failed", actor_id, request.method, path)
            response = self._error_response(errors.from_exception(error), "json")
        if served and served[-1].task is not None:
            self._add_actor_headers(response, served[-1].task)
        return response

    def _action(self, actor_id: str, name: str, request: Request, encoding: str, served: list[Dispatch]) -> Response:
        self._require_method(request, "POST")
        options = self._options(actor_id)
        self._check_incoming_size(request.body, options.max_incoming_message_size)
        args = protocol.decode_action_request(encoding, request.body)
        params = conn_params_from_header(request.headers.get("x-rivet-conn-params"))
        output = self._perform(actor_id, lambda: action_call(name, args, params), served)
        body = protocol.encode_action_response(encoding, output)
        self._check_outgoing_size(body, options.max_outgoing_message_size)
        return Response(body, headers={"content-type": protocol.content_type(encoding)})

    def _queue_send(
        self, actor_id: str, name: str, request: Request, encoding: str, served: list[Dispatch]
    ) -> Response:
        self._require_method(request, "POST")
        options = self._options(actor_id)
        self._check_incoming_size(request.body, options.max_incoming_message_size)
        message = protocol.decode_queue_send_request(encoding, request.body)
        params = conn_params_from_header(request.headers.get("x-rivet-conn-params"))
        timeout = None if message.timeout_ms is None else message.timeout_ms / 1000

        def make_item() -> Dispatch:
            def handle(task: ActorTask) -> None:
                conn = task.conns.connect(params)
                serve_connection(conn)
                try:
                    item.reply.send(publish(task, name, message.body, message.wait, timeout))
                finally:
                    task.conns.disconnect(conn)

            item = Dispatch(WorkKind.ACTION, handle)
            return item

        status, response, has_response = self._perform(actor_id, make_item, served)
        body = protocol.encode_queue_send_response(encoding, status, response, has_response)
        return Response(body, headers={"content-type": protocol.content_type(encoding)})

    def _raw_request(self, actor_id: str, request: Request, served: list[Dispatch]) -> Response:
        inner = Request(
            request.method, request.path[len("/request"):] or "/", request.query, request.headers, request.body
        )
        params = conn_params_from_header(request.headers.get("x-rivet-conn-params"))

        def make_item() -> Dispatch:
            def handle(task: ActorTask) -> None:
                hook = task.definition.hooks.get("on_request")
                if hook is None:
                    item.reply.send(Response(b"", status=404))
                    return
                conn = task.conns.connect(params)
                serve_connection(conn)
                try:
                    item.reply.send(as_response(hook(task.ctx, inner)))
                finally:
                    task.conns.disconnect(conn)

            item = Dispatch(WorkKind.HTTP_REQUEST, handle)
            return item

        response: Response = self._perform(actor_id, make_item, served)
        return response

    def _framework_route(self, actor_id: str, request: Request) -> Response:
        routes: dict[str, Callable[[], Response]] = {
            "/health": lambda: Response("ok", headers={"content-type": "text/plain; charset=utf-8"}),
            "/metadata": lambda: _json_response({"runtime": "rivetkit", "version": __version__, "type": "local"}),
            # The registry's text, as the reference serves its process registry; unlike the reference, a
            # configured metrics token is required here too (rivetgreen.metrics).
            "/metrics": lambda: self.engine.metrics.http_response(request.headers.get("authorization")),
            "/": lambda: Response("This is a rivetgreen actor.", headers={"content-type": "text/plain"}),
        }
        route = routes.get(request.path)
        if route is None:
            raise errors.actor_error("not_found", f"Route '{request.path}' was not found.", {"resource": "route"})
        self.engine.lookup(actor_id)
        self._require_method(request, "GET")
        return route()

    # WebSocket -----------------------------------------------------------------------------------------------
    def handle_websocket(self, actor_id: str, path: str, query: str, headers: dict[str, str], ws: WebSocket) -> None:
        """Serve an accepted WebSocket addressed to actor ``actor_id`` until it closes."""
        if path == "/connect":
            ActorConnectSession(self, actor_id, ws).run()
        elif path == "/inspector/connect":
            inspector.serve_websocket(self, actor_id, query, ws)
        elif path == "/websocket" or path.startswith("/websocket/"):
            serve_raw_websocket(self, actor_id, Request("GET", path[len("/websocket"):] or "/", query, headers), ws)
        else:
            ws.close(1011, "actor.not_found")

    # helpers -------------------------------------------------------------------------------------------------
    def _perform(self, actor_id: str, make_item: Callable[[], Dispatch], served: list[Dispatch]) -> Any:
        def tracked() -> Dispatch:
            item = make_item()
            served.append(item)
            return item

        return self.engine.perform(actor_id, tracked)

    def definition_of(self, actor_id: str) -> ActorDefinition:
        """The definition of an actor (``actor/not_found`` for an unknown id)."""
        return self.engine.definitions[self.engine.lookup(actor_id).name]

    def incoming_limit(self, actor_id: str, path: str) -> int | None:
        """How much of a request body the host needs to read for ``path``: an action or queue body over the actor's
        ``max_incoming_message_size`` is refused from its first ``limit + 1`` bytes (None: the whole body)."""
        if not path.startswith(("/action/", "/queue/")):
            return None
        try:
            return self._options(actor_id).max_incoming_message_size
        except RivetError:
            return None  # handle_http answers for an unknown actor

    def _options(self, actor_id: str) -> ActorOptions:
        return self.definition_of(actor_id).options

    @staticmethod
    def _require_method(request: Request, method: str) -> None:
        if request.method != method:
            raise errors.actor_error(
                "method_not_allowed", f"Method {request.method} is not allowed here; use {method}."
            )

    @staticmethod
    def _check_incoming_size(body: bytes, limit: int) -> None:
        if len(body) > limit:
            raise RivetError("message", "incoming_too_long", f"Message is {len(body)} bytes; the limit is {limit}.")

    @staticmethod
    def _check_outgoing_size(body: bytes | str, limit: int) -> None:
        if len(body) > limit:
            raise RivetError("message", "outgoing_too_long", f"Response is {len(body)} bytes; the limit is {limit}.")

    @staticmethod
    def _error_response(error: RivetError, encoding: str) -> Response:
        try:
            body = protocol.encode_http_error(encoding, error.to_client())
        except RivetError as unsendable:  # e.g. metadata this encoding cannot carry; the masked error always can
            error = unsendable
            body = protocol.encode_http_error(encoding, error.to_client())
        return Response(body, status=framework_status(error), headers={"content-type": protocol.content_type(encoding)})

    @staticmethod
    def _add_actor_headers(response: Response, task: ActorTask) -> None:
        response.headers.setdefault("x-rivet-actor", task.actor_id)
        response.headers.setdefault("x-rivet-actor-generation", str(task.generation))
        response.headers.setdefault("x-rivet-actor-key", key_header(task.key))


def publish(task: ActorTask, name: str, body: Any, wait: bool, timeout: float | None) -> tuple[str, Any, bool]:
    """An HTTP queue send: the ``can_publish`` gate, then enqueue (and wait for completion if asked)."""
    gate = task.definition.hooks.get("can_publish")
    if gate is not None and gate(task.ctx, name) is not True:
        raise RivetError("auth", "forbidden", f"Publishing to queue '{name}' is not allowed.")
    if not wait:
        task.queue.send(name, body)
        return "completed", None, False
    try:
        return "completed", task.queue.enqueue_and_wait(name, body, timeout), True
    except RivetError as error:
        if error.matches("queue", "timed_out"):
            return "timedOut", None, False
        raise


def conn_params_from_header(value: str | None) -> Any:
    """Connection params travel as JSON text in ``x-rivet-conn-params``; absent means None."""
    if value is None or value == "":
        return None
    return parse_json(value, "x-rivet-conn-params")


def conn_params_from_subprotocols(subprotocols: list[str]) -> Any:
    for item in subprotocols:
        if item.startswith("rivet_conn_params."):
            return parse_json(unquote(item[len("rivet_conn_params."):]), "The connection params")
    return None


def encoding_from_subprotocols(subprotocols: list[str]) -> str:
    for item in subprotocols:
        if item.startswith("rivet_encoding."):
            return item[len("rivet_encoding."):]
    return "json"


def _json_response(value: Any) -> Response:
    return Response(json.dumps(value), headers={"content-type": "application/json"})


class ActorConnectSession:
    """One ``/connect`` WebSocket: Init, then action requests and subscriptions, with events pushed back.

    The session outlives actor generations: when the actor sleeps, its connection hibernates (the socket stays
    open, ``conn`` is None) and the next frame from the client wakes the actor, which reattaches it."""

    def __init__(self, router: ActorRouter, actor_id: str, ws: WebSocket) -> None:
        self.router = router
        self.engine = router.engine
        self.actor_id = actor_id
        self.ws = ws
        self.encoding = encoding_from_subprotocols(ws.offered_subprotocols)
        self.conn: Any = None
        self.conn_id = ""
        self.closed = False
        self.hibernating = False
        self.definition: Any = None
        self.options: Any = None

    def run(self) -> None:
        if self.encoding not in protocol.ENCODINGS:
            self.ws.close(1003, "actor.unsupported_websocket_encoding")
            return
        try:
            self.definition = self.router.definition_of(self.actor_id)
            self.options = self.definition.options
            self.ws.limit_messages(self.options.max_incoming_message_size, 1011, "message.incoming_too_long")
            params = conn_params_from_subprotocols(self.ws.offered_subprotocols)
            transport = _ConnectTransport(self)
            self.conn = self.engine.perform(self.actor_id, lambda: open_connection(params, transport, True))
        except RivetError as error:
            self._fail_setup(error)
            return
        self.conn_id = self.conn.id
        self.send(protocol.Init(self.actor_id, self.conn_id))
        try:
            self._read_loop()
        finally:
            self.closed = True
            if self.conn is not None:
                self.conn.disconnect(None)
            elif self.hibernating:
                self.engine.forget_connection(self.actor_id, self.conn_id)

    def live_conn(self) -> Any:
        """The connection in the actor's current generation; a hibernated one wakes the actor first."""
        if self.conn is None and self.hibernating:
            self.engine.running_task(self.actor_id)  # its startup reattaches this session's connection
        if self.conn is None:
            raise RivetError("connection", "not_found", "The connection was not restored after the actor woke.")
        return self.conn

    def _fail_setup(self, error: RivetError) -> None:
        self._send_error(error, None)
        self.ws.close(1011, f"{error.group}.{error.code}")

    def _read_loop(self) -> None:
        while not self.closed:
            frame = self.ws.receive()
            if frame is None:
                return
            if len(frame) > self.options.max_incoming_message_size:
                self.ws.close(1011, "message.incoming_too_long")
                return
            try:
                message = protocol.decode_to_server(self.encoding, frame)
            except RivetError:
                self.ws.close(1011, "actor.invalid_request")
                return
            if isinstance(message, protocol.ActionRequest):
                gevent.spawn(self._serve_action, message)
            else:
                self._subscribe(message)  # in order: a subscription precedes the calls sent after it

    def _subscribe(self, message: protocol.SubscriptionRequest) -> None:
        try:
            conn, name = self.live_conn(), message.event_name
        except RivetError as error:
            self._send_error(error, None)
            return
        if not message.subscribe:
            conn.subscriptions.discard(name)  # unsubscribing is local, as in the reference
            return
        if "can_subscribe" not in self.definition.hooks:
            conn.subscriptions.add(name)
            return
        try:
            allowed = self.engine.perform(self.actor_id, lambda: subscription_check(conn, name))
            if not allowed:
                raise RivetError("auth", "forbidden", f"Subscribing to '{name}' is not allowed.", {"event": name})
        except RivetError as error:
            # The reference closes the socket here, but the official client then reconnects and re-subscribes
            # at once, forever; a connection-level Error frame reports the refusal without that loop.
            self._send_error(error, None)
            return
        conn.subscriptions.add(name)

    def _serve_action(self, request: protocol.ActionRequest) -> None:
        try:
            # live_conn() is read once the actor is awake (perform wakes it first), so a hibernated connection is
            # served by the generation that restored it.
            output = self.engine.perform(
                self.actor_id, lambda: connection_action(self.live_conn(), request.name, request.args)
            )
            response = protocol.encode_to_client(self.encoding, protocol.ActionResponse(request.id, output))
            if len(response) > self.options.max_outgoing_message_size:
                raise RivetError("message", "outgoing_too_long", "The action's response is too large.")
        except RivetError as error:
            self._send_error(error, request.id)
            return
        except Exception as error:
            self._send_error(errors.from_exception(error), request.id)
            return
        self.send_frame(response)

    def _send_error(self, error: RivetError, action_id: int | None) -> None:
        try:
            self.send(_error_message(error, action_id))
        except RivetError as unsendable:  # e.g. metadata this encoding cannot carry; the masked error always can
            self.send(_error_message(unsendable, action_id))

    def send(self, message: Any) -> None:
        self.send_frame(protocol.encode_to_client(self.encoding, message))

    def send_frame(self, frame: str | bytes) -> None:
        if not self.closed:
            self.ws.send(frame)


def _error_message(error: RivetError, action_id: int | None) -> protocol.ErrorMessage:
    client_error = error.to_client()
    return protocol.ErrorMessage(
        client_error["group"], client_error["code"], client_error["message"],
        client_error.get("metadata"), action_id, client_error.get("actor"),
    )


class _ConnectTransport:
    """The actor's side of a ``/connect`` connection: events out, close, hibernation."""

    def __init__(self, session: ActorConnectSession) -> None:
        self._session = session

    @property
    def closed(self) -> bool:
        return self._session.closed

    def hibernate(self) -> None:
        self._session.conn = None
        self._session.hibernating = True

    def reattach(self, conn: Any) -> None:
        self._session.conn = conn
        self._session.hibernating = False

    def send_event(self, name: str, args: list[Any]) -> None:
        self._session.send(protocol.Event(name, args))

    def close(self, reason: str | None) -> None:
        session = self._session
        if not session.closed:
            session.closed = True
            session.conn = None  # the actor already removed it
            session.ws.close(1000, reason or "")


def serve_raw_websocket(router: ActorRouter, actor_id: str, request: Request, ws: WebSocket) -> None:
    """Hand a raw WebSocket to the actor's ``on_websocket(c, ws, request)``; it owns the socket until it returns.

    The socket is a connection of the actor: it keeps the actor awake and is closed when the actor stops. With
    ``can_hibernate_websocket`` it survives the actor's sleep instead: the handler's ``receive()`` returns None so
    it unwinds, the socket stays open, and the client's next message wakes the actor and calls the handler again.
    """
    try:
        params = conn_params_from_subprotocols(ws.offered_subprotocols)
    except RivetError as error:
        ws.close(1011, f"{error.group}.{error.code}")
        return
    socket = RawSocket(ws)

    def make_item() -> Dispatch:
        def handle(task: ActorTask) -> None:
            hook = task.definition.hooks.get("on_websocket")
            if hook is None:
                raise errors.actor_error("not_found", "This actor has no on_websocket handler.")
            conn = socket.attach(task, params)
            serve_connection(conn)
            try:
                hook(task.ctx, socket, request)
            finally:
                if not socket.hibernating:
                    task.conns.disconnect(conn)
            item.reply.send(None)

        item = Dispatch(WorkKind.WEBSOCKET_CALLBACK, handle)
        return item

    while True:
        try:
            router.engine.perform(actor_id, make_item, timeout=None)
        except RivetError as error:
            ws.close(1011, f"{error.group}.{error.code}")
            return
        if not socket.hibernating:
            return
        if not ws.wait_message():  # asleep: the client's next message wakes the actor
            assert socket.conn_id is not None  # attach() named the connection before the socket could hibernate
            router.engine.forget_connection(actor_id, socket.conn_id)
            return


class RawSocket:
    """The WebSocket an ``on_websocket`` handler gets: ``send``, ``receive`` (None once closed, or when a
    hibernatable socket's actor goes to sleep), ``close``."""

    def __init__(self, ws: WebSocket) -> None:
        self._ws = ws
        self._abort: Any = None
        self.conn_id: str | None = None
        self.conn: Any = None
        self.hibernating = False

    def attach(self, task: ActorTask, params: Any) -> Any:
        """The socket's connection in ``task``: restored after a hibernation, else a new one."""
        hibernatable = task.options.can_hibernate_websocket
        self._abort = task.abort_event if hibernatable else None
        self.hibernating = False
        if self.conn_id is not None and self.conn_id in task.conns.conns:
            return task.conns.conns[self.conn_id]
        self.conn = task.conns.connect(params, _RawTransport(self), hibernatable=hibernatable)
        self.conn_id = self.conn.id
        return self.conn

    @property
    def offered_subprotocols(self) -> list[str]:
        return self._ws.offered_subprotocols

    def send(self, data: str | bytes) -> None:
        self._ws.send(data)

    def receive(self) -> str | bytes | None:
        if self._abort is not None and not self._ws.wait_message(self._abort):
            if self._abort.is_set() and not self.closed:
                self.hibernating = True  # the actor is going to sleep; the socket stays open
            return None
        return self._ws.receive()

    def close(self, code: int = 1000, reason: str = "") -> None:
        self._ws.close(code, reason)

    @property
    def closed(self) -> bool:
        return not getattr(self._ws, "connected", True)


class _RawTransport:
    """A raw WebSocket as a connection transport: no protocol events; closing closes the socket."""

    def __init__(self, socket: RawSocket) -> None:
        self._socket = socket

    @property
    def closed(self) -> bool:
        return self._socket.closed

    def send_event(self, name: str, args: list[Any]) -> None:
        log.debug("raw websocket connections do not receive events (%s)", name)

    def close(self, reason: str | None) -> None:
        self._socket.close(1000, reason or "")

    def hibernate(self) -> None:
        self._socket.hibernating = True

    def reattach(self, conn: Any) -> None:
        self._socket.conn = conn
