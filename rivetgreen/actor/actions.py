"""Actions: running one by name, and the dispatch item for a client's action call (core.md §7.3)."""

from __future__ import annotations

import functools
import inspect
import logging
from typing import TYPE_CHECKING, Any

from rivetgreen import clock, errors
from rivetgreen.actor.calls import call_with_timeout
from rivetgreen.actor.lifecycle import Dispatch
from rivetgreen.actor.work import WorkKind, serve_connection

if TYPE_CHECKING:
    from rivetgreen.actor.task import ActorTask

log = logging.getLogger("rivetgreen.actor")


def run_action(task: ActorTask, name: str, args: list[Any], scheduled: bool = False) -> Any:
    """Call action ``name`` in the current greenlet, then ``on_before_action_response``; counted and timed as an
    action (or a scheduled action) of the actor's name, failures (and kills, e.g. a timeout) as errors."""
    meter = task.metrics.scheduled_action if scheduled else task.metrics.action
    started = clock.monotonic()
    try:
        function = task.definition.actions.get(name)
        if function is None:
            raise errors.action_not_found(name)
        _check_arguments(name, function, task.ctx, args)
        output = function(task.ctx, *args)
        hook = task.definition.hooks.get("on_before_action_response")
        if hook is not None:
            output = hook(task.ctx, name, args, output)
    except BaseException:
        meter.duration.observe(clock.monotonic() - started)
        meter.error.inc()
        raise
    meter.duration.observe(clock.monotonic() - started)
    meter.ok.inc()
    return output


def _check_arguments(name: str, function: Any, ctx: Any, args: list[Any]) -> None:
    """Arguments the action cannot take are the client's error (``actor/invalid_request``, 400), not a crash of
    the action: JS actions ignore extra arguments, a Python function raises TypeError before its first line."""
    try:
        signature = _signature(function)
    except (TypeError, ValueError):  # a callable without an introspectable signature: let the call decide
        return
    try:
        signature.bind(ctx, *args)
    except TypeError as error:
        raise errors.invalid_request(f"Action `{name}` cannot take {len(args)} argument(s): {error}.") from error


@functools.lru_cache(maxsize=1024)
def _signature(function: Any) -> inspect.Signature:
    return inspect.signature(function)


def action_call(name: str, args: list[Any], params: Any = None) -> Dispatch:
    """Client work for one action call over a transient connection (as HTTP ``/action`` does)."""

    def handle(task: ActorTask) -> None:
        conn = task.conns.connect(params)
        serve_connection(conn)
        try:
            item.reply.send(run_action(task, name, args))
        finally:
            task.conns.disconnect(conn)

    item = Dispatch(WorkKind.ACTION, handle, label=f"action {name!r}")
    return item


def perform(task: ActorTask, item: Dispatch, timeout: float | None) -> Any:
    """Dispatch ``item`` and wait at most ``timeout`` seconds (None: no limit) for its reply; on timeout its
    greenlet is killed and the caller gets ``actor/action_timed_out``."""
    task.dispatch(item)
    if not clock.wait_timeout(item.reply.waitable, timeout):
        if item.greenlet is not None:
            item.greenlet.kill(block=False)
        log.warning(
            "actor %s %r (%s): %s timed out after %s s", task.name, task.key, task.actor_id, item.label, timeout
        )
        raise task.annotate(errors.action_timed_out())
    return item.reply.get()


def connection_action(conn: Any, name: str, args: list[Any]) -> Dispatch:
    """Client work for one action sent over an open connection."""

    def handle(task: ActorTask) -> None:
        item.reply.send(run_action(task, name, args))

    item = Dispatch(WorkKind.ACTION, handle, conn=conn, label=f"action {name!r}")
    return item


def open_connection(params: Any, transport: Any, hibernatable: bool = False) -> Dispatch:
    """Client work that opens a long-lived connection; replies with the new ``Conn``."""

    def handle(task: ActorTask) -> None:
        item.reply.send(task.conns.connect(params, transport, hibernatable=hibernatable))

    item = Dispatch(WorkKind.ACTION, handle, label="connection hooks")
    return item


def subscription_check(conn: Any, event_name: str) -> Dispatch:
    """Client work that runs the ``can_subscribe(c, conn, event_name)`` gate; replies True or False."""

    def handle(task: ActorTask) -> None:
        hook = task.definition.hooks.get("can_subscribe")
        if hook is None:
            item.reply.send(True)
            return
        allowed = call_with_timeout(
            hook, (task.ctx, conn, event_name), task.options.on_before_connect_timeout,
            lambda: errors.callback_timed_out("can_subscribe"),
        )
        item.reply.send(allowed is True)

    item = Dispatch(WorkKind.ACTION, handle, conn=conn, label="can_subscribe")
    return item
