"""The live inspector WebSocket, ``/inspector/connect`` (core.md §8.3).

On open the socket is authenticated (sub-protocol ``rivet_inspector_token.<token>``, or ``?token=`` for
browsers) and an ``Init`` message is sent; afterwards the server pushes ``StateUpdated``, ``ConnectionsUpdated``,
``QueueUpdated`` and ``SchedulesUpdated`` whenever the actor's change feed reports those topics, coalesced over
a 50 ms window (as the reference debounces its inspector state sync), and answers requests.

**Deviation from the reference (documented):** the reference frames messages with a versioned BARE protocol
(``protocol_version`` 1..6, state as CBOR bytes). Here every message is a JSON text frame
``{"tag": "<Variant>", "val": {...}}`` with JSON values (``$``-wrappers for bytes and big integers).
``protocol_version`` is still validated (not an integer in 1..6 → close 1002
``inspector.invalid_protocol_version``) but does not change the framing.

Client → server: ``StateRequest{id}``, ``PatchStateRequest{state}``, ``ActionRequest{id, name, args}``,
``ConnectionsRequest{id}``, ``QueueRequest{id, limit}``, ``SchedulesRequest{id}``, ``RpcsListRequest{id}``,
``DatabaseSchemaRequest{id}``, ``DatabaseTableRowsRequest{id, table, limit, offset}``,
``WorkflowHistoryRequest{id}``. Server → client: ``Init``, the matching ``...Response{rid, ...}``, the pushes
above, and ``Error{message, rid?, group?, code?}`` (the reference's ``Error`` carries only ``message``).

The session holds no connection and no work of the actor, so it never keeps it awake. When the actor begins to
sleep or is destroyed the socket is closed with 1001 ``actor.stopped`` (the page reconnects once the actor is
awake again); the change-feed listener is removed whenever the session ends.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

import gevent
import gevent.event

from rivetgreen import clock, errors
from rivetgreen.actor.work import WorkKind
from rivetgreen.encoding.untrusted import parse_json
from rivetgreen.errors import RivetError
from rivetgreen.inspector import auth, database, dispatch, operations, snapshot

if TYPE_CHECKING:
    from rivetgreen.actor.task import ActorTask
    from rivetgreen.engine.local import LocalEngine
    from rivetgreen.registry.router import WebSocket

log = logging.getLogger("rivetgreen.inspector")

DEBOUNCE_SECONDS = 0.05
PROTOCOL_VERSIONS = range(1, 7)
STOPPED_CLOSE = (1001, "actor.stopped")
QUEUE_LIMIT_MAX = 200


def encode(tag: str, val: dict[str, Any]) -> str:
    return json.dumps({"tag": tag, "val": val})


class InspectorSession:
    """One ``/inspector/connect`` socket of one actor."""

    def __init__(self, engine: LocalEngine, actor_id: str, query: str, ws: WebSocket) -> None:
        self.engine = engine
        self.actor_id = actor_id
        self.query = query
        self.ws = ws
        self.task: ActorTask | None = None
        self.closed = False
        self._unsubscribe: Callable[[], None] | None = None
        self._pending: set[str] = set()
        self._changed = gevent.event.Event()
        self._ended = gevent.event.Event()
        self._helpers: list[gevent.Greenlet] = []

    # lifecycle ---------------------------------------------------------------------------------------------------
    def run(self) -> None:
        version = parse_qs(self.query).get("protocol_version")
        if version and not (version[0].isdigit() and int(version[0]) in PROTOCOL_VERSIONS):
            self.ws.close(1002, "inspector.invalid_protocol_version")
            return
        token = auth.websocket_token(self.ws.offered_subprotocols, self.query)
        try:
            try:
                init = dispatch.perform(self.engine, self.actor_id, lambda task: self._attach(task, token))
            except RivetError as error:
                if error.matches("inspector", "unauthorized"):
                    self.ws.close(*auth.UNAUTHORIZED_CLOSE)
                else:
                    self.ws.close(1011, f"{error.group}.{error.code}")
                return
            self._send("Init", init)
            self._helpers = [gevent.spawn(self._push_loop), gevent.spawn(self._watch_stop)]
            self._read_loop()
        finally:
            self._end()

    def _attach(self, task: ActorTask, token: str | None) -> dict[str, Any]:
        """In a work greenlet: check the token, subscribe to changes, then snapshot (nothing is missed between)."""
        auth.verify(task, token)
        self.task = task
        self._unsubscribe = task.changes.subscribe(self._on_changes)
        try:
            return snapshot.init_message(task)
        except BaseException:
            self._detach()
            raise

    def _detach(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None

    def _end(self) -> None:
        self.closed = True
        self._detach()
        self._ended.set()
        self._changed.set()
        current = gevent.getcurrent()
        gevent.killall([helper for helper in self._helpers if helper is not current], block=False)

    def _watch_stop(self) -> None:
        """Close the socket once this generation starts shutting down (the abort event is set at grace start)."""
        task = self.task
        assert task is not None
        waitables: list[Any] = [self._ended, task.abort_event]
        if task.greenlet is not None:
            waitables.append(task.greenlet)
        gevent.wait(waitables, count=1)
        if not self.closed:
            self._detach()
            self.ws.close(*STOPPED_CLOSE)

    # pushes --------------------------------------------------------------------------------------------------------
    def _on_changes(self, topics: set[str]) -> None:
        """Change-feed listener (a hub callback): remember the topics and wake the pusher."""
        if self.closed:
            self._detach()
            return
        self._pending |= topics
        self._changed.set()

    def _push_loop(self) -> None:
        while True:
            self._changed.wait()
            if self.closed:
                return
            clock.wait(self._ended, clock.monotonic() + DEBOUNCE_SECONDS)  # collect the burst
            if self.closed:
                return
            self._changed.clear()
            topics, self._pending = self._pending, set()
            self._push(topics)

    def _push(self, topics: set[str]) -> None:
        task = self.task
        if task is None or not task.lifecycle.started:
            return
        try:
            if "state" in topics and task.state.enabled:
                self._send("StateUpdated", {"state": snapshot.state(task)})
            if "connections" in topics:
                self._send("ConnectionsUpdated", {"connections": snapshot.connections(task)})
            if "queue" in topics:
                self._send("QueueUpdated", {"queueSize": snapshot.queue_size(task)})
            if "schedules" in topics:
                self._send("SchedulesUpdated", {"schedules": snapshot.schedules(task)})
        except RivetError as error:  # e.g. the database closed under a stopping actor
            log.debug("actor %s: inspector push skipped: %s", self.actor_id, error)

    # requests ------------------------------------------------------------------------------------------------------
    def _read_loop(self) -> None:
        while not self.closed:
            frame = self.ws.receive()
            if frame is None:
                return
            try:
                message = parse_json(frame, "The inspector message")  # depth-limited: RecursionError ended the socket
                tag, val = message["tag"], message.get("val") or {}
                if not isinstance(tag, str) or not isinstance(val, dict):
                    raise TypeError("tag must be a string and val an object")
            except (RivetError, TypeError, KeyError) as error:
                self._send("Error", {"message": f"Invalid inspector message: {error}"})
                continue
            gevent.spawn(self._serve, tag, val)

    def _serve(self, tag: str, val: dict[str, Any]) -> None:
        handler = REQUESTS.get(tag)
        rid = val.get("id")
        if handler is None:
            self._send("Error", {"message": f"Unknown inspector request {tag!r}", "rid": rid})
            return
        response_tag, work, kind = handler
        try:
            result = dispatch.perform(self.engine, self.actor_id, lambda task: work(task, val), kind)
        except Exception as error:
            rivet_error = errors.from_exception(error)
            client = rivet_error.to_client()
            self._send("Error", {"message": client["message"], "rid": rid, "group": client["group"],
                                 "code": client["code"]})
            return
        if response_tag is not None:
            self._send(response_tag, {"rid": rid, **result})

    def _send(self, tag: str, val: dict[str, Any]) -> None:
        if not self.closed:
            self.ws.send(encode(tag, val))


# Request table: tag -> (response tag or None, work(task, val) -> response fields, work kind) ------------------
def _state(task: ActorTask, val: dict[str, Any]) -> dict[str, Any]:
    return snapshot.state_payload(task)


def _patch_state(task: ActorTask, val: dict[str, Any]) -> dict[str, Any]:
    operations.patch_state(task, val.get("state"))
    return {}


def _action(task: ActorTask, val: dict[str, Any]) -> dict[str, Any]:
    name = val.get("name")
    if not isinstance(name, str) or not name:
        raise errors.invalid_request("Invalid inspector request name: must be a non-empty string")
    output = dispatch.call_action(task, name, operations.action_args(val))
    return {"output": snapshot.jsonable(output)}


def _queue(task: ActorTask, val: dict[str, Any]) -> dict[str, Any]:
    limit = val.get("limit")
    if not isinstance(limit, int) or isinstance(limit, bool):
        limit = snapshot.DEFAULT_QUEUE_LIMIT
    return {"status": snapshot.queue_status(task, min(max(limit, 0), QUEUE_LIMIT_MAX))}


def _table_rows(task: ActorTask, val: dict[str, Any]) -> dict[str, Any]:
    table = val.get("table")
    if not isinstance(table, str):
        raise errors.invalid_request("Invalid inspector request table: must be a string")
    limit, offset = val.get("limit", database.DEFAULT_ROWS), val.get("offset", 0)
    if not all(isinstance(n, int) and not isinstance(n, bool) for n in (limit, offset)):
        raise errors.invalid_request("Invalid inspector request: limit and offset must be integers")
    return {"result": database.rows(task, table, limit, offset)}


Work = Callable[["ActorTask", dict[str, Any]], dict[str, Any]]
REQUESTS: dict[str, tuple[str | None, Work, WorkKind]] = {
    "StateRequest": ("StateResponse", _state, WorkKind.HTTP_REQUEST),
    "PatchStateRequest": (None, _patch_state, WorkKind.HTTP_REQUEST),
    "ActionRequest": ("ActionResponse", _action, WorkKind.ACTION),
    "ConnectionsRequest": (
        "ConnectionsResponse", lambda task, val: {"connections": snapshot.connections(task)}, WorkKind.HTTP_REQUEST,
    ),
    "QueueRequest": ("QueueResponse", _queue, WorkKind.HTTP_REQUEST),
    "SchedulesRequest": (
        "SchedulesResponse", lambda task, val: {"schedules": snapshot.schedules(task)}, WorkKind.HTTP_REQUEST,
    ),
    "RpcsListRequest": ("RpcsListResponse", lambda task, val: {"rpcs": snapshot.rpcs(task)}, WorkKind.HTTP_REQUEST),
    "DatabaseSchemaRequest": (
        "DatabaseSchemaResponse", lambda task, val: {"schema": database.schema(task)}, WorkKind.HTTP_REQUEST,
    ),
    "DatabaseTableRowsRequest": ("DatabaseTableRowsResponse", _table_rows, WorkKind.HTTP_REQUEST),
    "WorkflowHistoryRequest": (
        "WorkflowHistoryResponse", lambda task, val: {"history": None, "isWorkflowEnabled": False},
        WorkKind.HTTP_REQUEST,
    ),
}


def serve(engine: LocalEngine, actor_id: str, query: str, ws: WebSocket) -> None:
    """Serve one inspector socket until it closes."""
    InspectorSession(engine, actor_id, query, ws).run()
