"""What the inspector shows of a running actor, as JSON-safe values (core.md §8.2, §8.3).

Every function reads the live task directly and returns plain JSON values: bytes and integers beyond 2**53 use
the ``$``-wrappers of :mod:`rivetgreen.encoding.json_compat` (the page and the official tooling both revive
them), and non-finite floats, which JSON cannot carry, become ``null``. They must run while the actor's storage
is open (a work greenlet of the actor, or a push while the generation is started).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from rivetgreen.actor.state import unwrap
from rivetgreen.encoding.cbor import decode
from rivetgreen.encoding.json_compat import to_json_compat

if TYPE_CHECKING:
    from rivetgreen.actor.task import ActorTask

DEFAULT_QUEUE_LIMIT = 100
MAX_QUEUE_LIMIT = 10_000


def jsonable(value: Any) -> Any:
    """``value`` as something ``json.dumps`` writes as standard JSON."""
    return _finite(to_json_compat(value))


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, list):
        return [_finite(item) for item in value]
    if isinstance(value, dict):
        return {str(key): _finite(item) for key, item in value.items()}
    if value is None or isinstance(value, (bool, int, str)):
        return value
    return repr(value)  # not a plain value (an action may return anything): shown, never fatal


def state(task: ActorTask) -> Any:
    """The actor's state (None when it has none)."""
    if not task.state.enabled:
        return None
    return jsonable(unwrap(task.state.root))


def state_payload(task: ActorTask) -> dict[str, Any]:
    return {"state": state(task), "isStateEnabled": task.state.enabled}


def connections(task: ActorTask) -> list[dict[str, Any]]:
    """Open connections in the reference's shape (``details.subscriptions`` is a count)."""
    return [
        {
            "type": None,
            "id": conn.id,
            "details": {
                "type": None,
                "params": jsonable(conn.params),
                "stateEnabled": True,
                "state": jsonable(conn.state),
                "subscriptions": len(conn.subscriptions),
                "isHibernatable": bool(conn.is_hibernatable),
            },
        }
        for conn in list(task.conns.conns.values())
    ]


def rpcs(task: ActorTask) -> list[str]:
    """The actor's action names, in declaration order."""
    return list(task.definition.actions)


def queue_size(task: ActorTask) -> int:
    return task.store.queue_size()


def queue_status(task: ActorTask, limit: int = DEFAULT_QUEUE_LIMIT) -> dict[str, Any]:
    """``{size, maxSize, truncated, messages: [{id, name, createdAtMs, body}]}``, oldest first (``body`` is an
    addition to the reference's shape, for the page)."""
    limit = max(0, min(limit, MAX_QUEUE_LIMIT))
    size = task.store.queue_size()
    rows = task.store.queue_peek(None, limit) if limit else []
    return {
        "size": size,
        "maxSize": task.queue.max_size(),
        "truncated": size > limit,
        "messages": [
            {"id": row.id, "name": row.name, "createdAtMs": row.created_at, "body": _decoded(row.body)}
            for row in rows
        ],
    }


def schedules(task: ActorTask) -> list[dict[str, Any]]:
    """Pending schedules ``{id, action, args, runAt}`` (``runAt`` in epoch milliseconds), by time."""
    return [
        {
            "id": row.event_id,
            "action": row.action,
            "args": _decoded(row.args) if row.args else [],
            "runAt": row.trigger_at,
        }
        for row in task.store.list_schedules()
    ]


def summary(task: ActorTask) -> dict[str, Any]:
    return {
        **state_payload(task),
        "connections": connections(task),
        "rpcs": rpcs(task),
        "queueSize": queue_size(task),
        "isDatabaseEnabled": True,
        "isWorkflowEnabled": False,
        "workflowHistory": None,
    }


def init_message(task: ActorTask) -> dict[str, Any]:
    """The WebSocket's ``Init`` payload."""
    return {
        "connections": connections(task),
        **state_payload(task),
        "rpcs": rpcs(task),
        "queueSize": queue_size(task),
        "schedules": schedules(task),
        "isDatabaseEnabled": True,
        "isWorkflowEnabled": False,
        "workflowHistory": None,
    }


def _decoded(data: bytes | None) -> Any:
    if data is None:
        return None
    try:
        return jsonable(decode(data))
    except Exception:  # stored by an older or foreign writer: show the bytes
        return jsonable(bytes(data))
