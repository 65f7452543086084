"""The registry admission gate (core.md §1.3): may client work reach this actor instance now?

The ActorTask applies its own, second gate per dispatch item (``ActorTask.dispatch_rejection``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rivetgreen import errors
from rivetgreen.actor.lifecycle import StopReason

if TYPE_CHECKING:
    from rivetgreen.actor.task import ActorTask


def registry_admission(
    actor_id: str, task: ActorTask | None, stopping: StopReason | None
) -> errors.RivetError | None:
    """The error for work sent to an instance, or None when it is accepted.

    ``task`` is None when no instance is registered; ``stopping`` is the stop in progress, if any.
    """
    if task is None:
        return errors.not_found(actor_id)
    if stopping is StopReason.DESTROY:
        return errors.destroying()
    started = task.lifecycle.started
    if stopping is StopReason.SLEEP:
        return None if started else errors.stopping()
    if task.destroy_requested:
        return errors.destroying()
    if started:
        return None
    if task.sleep_requested:
        return errors.stopping()
    return errors.starting()
