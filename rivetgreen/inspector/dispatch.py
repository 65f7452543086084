"""Running inspector work on an actor through its dispatch path, so a sleeping actor is woken and the admission
rules (core.md §1.3) apply exactly as for a client's request."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import gevent

from rivetgreen.actor.actions import run_action
from rivetgreen.actor.lifecycle import Dispatch
from rivetgreen.actor.work import WorkKind

if TYPE_CHECKING:
    from rivetgreen.actor.task import ActorTask
    from rivetgreen.engine.local import LocalEngine


def perform(engine: LocalEngine, actor_id: str, function: Callable[[ActorTask], Any],
            kind: WorkKind = WorkKind.HTTP_REQUEST) -> Any:
    """Run ``function(task)`` in a counted work greenlet of the actor and return its result (its error is
    raised); bounded by the actor's ``action_timeout``."""

    def make_item() -> Dispatch:
        def handle(task: ActorTask) -> None:
            item.reply.send(function(task))

        item = Dispatch(kind, handle, label=f"inspector {getattr(function, '__name__', 'request')}")
        return item

    return engine.perform(actor_id, make_item)


def call_action(task: ActorTask, name: str, args: list[Any]) -> Any:
    """An inspector action call: a transient connection without params, like an HTTP action call (core.md
    §7.5), disconnected after the reply. Must run in a work greenlet (see :func:`perform`)."""
    conn = task.conns.connect(None)
    gevent.getcurrent().conn = conn
    try:
        return run_action(task, name, args)
    finally:
        task.conns.disconnect(conn)
