"""The inspector's writes: replace the state, enqueue a message, empty the queue. Each runs in a work greenlet of
the actor (see :mod:`rivetgreen.inspector.dispatch`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rivetgreen import errors
from rivetgreen.encoding.json_compat import from_json_compat

if TYPE_CHECKING:
    from rivetgreen.actor.task import ActorTask


def patch_state(task: ActorTask, value: Any) -> None:
    """Replace the whole state (``$``-wrappers revived) through the tracked state, then save it at once, as the
    reference's ``save_state([ActorState])`` does."""
    if not task.state.enabled:
        raise errors.actor_error("state_not_enabled", "This actor has no state.")
    task.ctx.state = from_json_compat(value)
    task.ctx.save_state(immediate=True)


def enqueue(task: ActorTask, name: Any, body: Any) -> dict[str, Any]:
    """Send a message to the actor's queue as the actor itself would (no ``can_publish`` gate: the inspector is
    an administrator). Returns ``{id (string), name, createdAtMs}``."""
    if not isinstance(name, str) or not name:
        raise errors.invalid_request("Invalid inspector request name: must be a non-empty string")
    message = task.queue.send(name, from_json_compat(body))
    return {"id": str(message.id), "name": message.name, "createdAtMs": round(message.created_at * 1000)}


def reset_queue(task: ActorTask) -> None:
    task.queue.reset()


def action_args(body: Any) -> list[Any]:
    """The arguments of an inspector action call: ``{args: [...]}`` or ``{properties: {...}}`` (one object
    argument), not both; a non-list ``args`` is a single argument."""
    if not isinstance(body, dict):
        body = {}
    has_args, has_properties = body.get("args") is not None, body.get("properties") is not None
    if has_args and has_properties:
        raise errors.invalid_request("Invalid inspector request args: use either args or properties, not both")
    if has_properties:
        return [from_json_compat(body["properties"])]
    args = body.get("args")
    if args is None:
        return []
    return from_json_compat(args) if isinstance(args, list) else [from_json_compat(args)]
