"""The inspector's HTTP routes (core.md §8.2), reached through the gateway at ``/gateway/{id}/inspector/...``.

Every route needs ``Authorization: Bearer <token>``; the check, the route and its work run in one work greenlet
of the actor (through ``engine.perform``), so a sleeping actor is woken first and a stopping one refuses as it
would any client. Bodies and answers are JSON; errors are ``{group, code, message, metadata}`` with the
reference's statuses (401 unauthorized, 400 invalid request, 404 unknown route or action, 408 timeout, else 500).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from rivetgreen import errors
from rivetgreen.actor.work import WorkKind
from rivetgreen.encoding.untrusted import parse_json
from rivetgreen.errors import RivetError
from rivetgreen.http import Request, Response
from rivetgreen.inspector import auth, database, dispatch, operations, snapshot
from rivetgreen.tokens import bearer_token

if TYPE_CHECKING:
    from rivetgreen.actor.task import ActorTask
    from rivetgreen.engine.local import LocalEngine

log = logging.getLogger("rivetgreen.inspector")

PREFIX = "/inspector"
ACTION_PREFIX = "/inspector/action/"
MAX_U32 = 2**32 - 1

Handler = Callable[["ActorTask", "RouteRequest"], Any]


@dataclass
class RouteRequest:
    """A parsed inspector request: method, path, query values and (lazily) the JSON body."""

    method: str
    path: str
    query: dict[str, list[str]]
    body: bytes

    def json(self) -> Any:
        if not self.body:
            return {}
        return parse_json(self.body, "The inspector request body")

    def u32(self, name: str, default: int) -> int:
        values = self.query.get(name)
        if not values:
            return default
        text = values[0]
        if not text.isdigit() or int(text) > MAX_U32:
            raise errors.invalid_request(f"Invalid query parameter `{name}`: {text!r} is not a u32")
        return int(text)

    def required(self, name: str) -> str:
        values = self.query.get(name)
        if not values:
            raise errors.invalid_request(f"Missing required query parameter `{name}`")
        return values[0]


# Routes ---------------------------------------------------------------------------------------------------------
def _get_state(task: ActorTask, request: RouteRequest) -> Any:
    return snapshot.state_payload(task)


def _patch_state(task: ActorTask, request: RouteRequest) -> Any:
    body = request.json()
    if not isinstance(body, dict) or "state" not in body:
        raise errors.invalid_request("Invalid inspector request state: the body must be {\"state\": ...}")
    operations.patch_state(task, body["state"])
    return {"ok": True}


def _action(task: ActorTask, request: RouteRequest) -> Any:
    name = request.path[len(ACTION_PREFIX):]
    args = operations.action_args(request.json())
    return {"output": snapshot.jsonable(dispatch.call_action(task, name, args))}


def _get_queue(task: ActorTask, request: RouteRequest) -> Any:
    return snapshot.queue_status(task, request.u32("limit", snapshot.DEFAULT_QUEUE_LIMIT))


def _post_queue(task: ActorTask, request: RouteRequest) -> Any:
    body = request.json()
    if not isinstance(body, dict):
        raise errors.invalid_request("Invalid inspector request: the body must be {\"name\": ..., \"body\": ...}")
    return operations.enqueue(task, body.get("name"), body.get("body"))


def _delete_queue(task: ActorTask, request: RouteRequest) -> Any:
    operations.reset_queue(task)
    return {}


def _database_rows(task: ActorTask, request: RouteRequest) -> Any:
    table = request.required("table")
    limit = request.u32("limit", database.DEFAULT_ROWS)
    offset = request.u32("offset", 0)
    return {"rows": database.rows(task, table, limit, offset)}


def _database_execute(task: ActorTask, request: RouteRequest) -> Any:
    body = request.json()
    if not isinstance(body, dict):
        raise errors.invalid_request("Invalid inspector request: the body must be {\"sql\": ...}")
    return {"rows": database.execute(task, body.get("sql"), body.get("args"), body.get("properties"))}


def _workflow(task: ActorTask, request: RouteRequest) -> Any:
    return {"history": None, "isWorkflowEnabled": False}


ROUTES: dict[tuple[str, str], Handler] = {
    ("GET", "/inspector/state"): _get_state,
    ("PATCH", "/inspector/state"): _patch_state,
    ("GET", "/inspector/connections"): lambda task, request: {"connections": snapshot.connections(task)},
    ("GET", "/inspector/rpcs"): lambda task, request: {"rpcs": snapshot.rpcs(task)},
    ("GET", "/inspector/queue"): _get_queue,
    ("POST", "/inspector/queue"): _post_queue,
    ("DELETE", "/inspector/queue"): _delete_queue,
    ("GET", "/inspector/schedules"): lambda task, request: {"schedules": snapshot.schedules(task)},
    ("GET", "/inspector/workflow-history"): _workflow,
    ("POST", "/inspector/workflow/replay"): _workflow,
    ("GET", "/inspector/traces"): lambda task, request: {"otlp": [], "clamped": False},
    ("GET", "/inspector/database/schema"): lambda task, request: {"schema": database.schema(task)},
    ("GET", "/inspector/database/rows"): _database_rows,
    ("POST", "/inspector/database/execute"): _database_execute,
    ("GET", "/inspector/summary"): lambda task, request: snapshot.summary(task),
}


def route_for(method: str, path: str) -> Handler | None:
    if method == "POST" and path.startswith(ACTION_PREFIX) and len(path) > len(ACTION_PREFIX):
        return _action
    return ROUTES.get((method, path))


def _route_not_found(task: ActorTask, request: RouteRequest) -> Any:
    raise errors.actor_error("not_found", "Inspector route was not found", {"resource": "route"})


# Entry point ----------------------------------------------------------------------------------------------------
def handle(engine: LocalEngine, actor_id: str, request: Request) -> Response:
    """Answer one ``/inspector/...`` request for actor ``actor_id``; never raises."""
    routed = RouteRequest(request.method, request.path, parse_qs(request.query, keep_blank_values=True), request.body)
    handler = route_for(routed.method, routed.path) or _route_not_found
    token = bearer_token(request.headers.get("authorization"))

    def serve(task: ActorTask) -> Any:
        auth.verify(task, token)  # before the route, as the reference does: no route is visible without it
        return handler(task, routed)

    kind = WorkKind.ACTION if handler is _action else WorkKind.HTTP_REQUEST
    try:
        return json_response(dispatch.perform(engine, actor_id, serve, kind))
    except RivetError as error:
        return error_response(error)
    except Exception as error:  # a bug here must still answer
        log.exception("actor %s: inspector %s %s failed", actor_id, request.method, request.path)
        return error_response(errors.from_exception(error))


def error_status(error: RivetError) -> int:
    """The reference's ``inspector_error_status``, plus 404 for an unknown actor or route and 400 for the
    queue's own refusals."""
    if error.code == "unauthorized":
        return 401
    if error.matches("actor", "action_timed_out"):
        return 408
    if error.code in ("action_not_found", "not_found"):
        return 404
    if error.code in ("invalid_request", "state_not_enabled", "reserved_table") or error.group == "queue":
        return 400
    return 500


def error_response(error: RivetError) -> Response:
    body = error.to_client()
    body.setdefault("metadata", None)
    return json_response(body, error_status(error))


def json_response(value: Any, status: int = 200) -> Response:
    return Response(json.dumps(value), status=status, headers={"content-type": "application/json"})
