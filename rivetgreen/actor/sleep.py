"""The sleep predicates (core.md §1.5 and §1.8): may the actor fall asleep, may its grace end."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rivetgreen.actor.lifecycle import StopReason
from rivetgreen.actor.work import WorkKind

if TYPE_CHECKING:
    from rivetgreen.actor.task import ActorTask


def idle_sleep_blocker(task: ActorTask) -> str | None:
    """The first reason the actor must stay awake, in the reference's order; None when it may sleep."""
    if not task.lifecycle.started:
        return "not_ready"
    if task.options.no_sleep:
        return "no_sleep"
    if task.store.save_retry.failures:
        return "failing_state_save"  # sleeping now would drop the changes the retries are trying to save
    counts = task.work.counts
    if task.work.idle_blocking == 0:
        pass  # none of the work counters below can say no
    elif counts[WorkKind.HTTP_REQUEST]:
        return "active_http_requests"
    if counts[WorkKind.KEEP_AWAKE] or counts[WorkKind.STATE_CHANGE]:
        return "active_keep_awake"
    if counts[WorkKind.ACTION] or counts[WorkKind.SCHEDULED_ACTION]:
        return "active_internal_keep_awake"
    if task.run_handler_active and task.queue_waits == 0:
        return "active_run_handler"
    if counts[WorkKind.DISCONNECT_CALLBACK]:
        return "active_disconnect_callbacks"
    if task.conns.conns:
        return "active_connections"
    if counts[WorkKind.WEBSOCKET_CALLBACK]:
        return "active_websocket_callbacks"
    return None


def finalize_blocker(task: ActorTask, reason: StopReason | None) -> str | None:
    """What the grace still waits for; None when shutdown may finalize."""
    if task.work.grace_draining:
        return "tracked_work"
    if reason is StopReason.SLEEP and task.run_handler_active:
        return "run_handler"
    return None


def describe_counters(task: ActorTask) -> str:
    """Every non-zero counter, for the grace-deadline warning."""
    parts = [f"{kind.name.lower()}={count}" for kind, count in task.work.counts.items() if count]
    if task.run_handler_active:
        parts.append("run_handler=1")
    return ", ".join(parts) or "nothing"
