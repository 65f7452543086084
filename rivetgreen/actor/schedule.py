"""``c.schedule``: durable one-shot schedules that call an action later (core.md §3.7).

Rows live in ``_rivet_schedule_events``. A due row is deleted before its action runs (at-most-once). The actor's
alarm is re-synced after every change, so a sleeping actor is woken by placement when its earliest row is due.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Any

from rivetgreen import clock
from rivetgreen.encoding.cbor import decode, encode
from rivetgreen.errors import RivetError
from rivetgreen.storage import ScheduleRow

if TYPE_CHECKING:
    from rivetgreen.actor.task import ActorTask


class Schedule:
    """Schedule actions of this actor to run at a later time, surviving sleep and restarts."""

    def __init__(self, task: ActorTask) -> None:
        self._task = task

    def after(self, seconds: float, action: str, *args: Any) -> str:
        """Run ``action(*args)`` in ``seconds``; returns the schedule id."""
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or seconds < 0:
            raise RivetError("schedule", "invalid_delay", f"Delay must be a number of seconds >= 0, not {seconds!r}.")
        return self._insert(clock.now_ms() + int(seconds * 1000), action, args)

    def at(self, when: float | datetime, action: str, *args: Any) -> str:
        """Run ``action(*args)`` at ``when`` (a datetime or seconds since the epoch); returns the schedule id."""
        if isinstance(when, datetime):
            when = when.timestamp()
        if isinstance(when, bool) or not isinstance(when, (int, float)):
            raise RivetError("schedule", "invalid_timestamp", f"Expected a datetime or epoch seconds, not {when!r}.")
        return self._insert(int(when * 1000), action, args)

    def cancel(self, schedule_id: str) -> bool:
        """Cancel a pending schedule; False when it does not exist (or already ran)."""
        removed = self._task.store.delete_schedule(schedule_id)
        if removed:
            self._task.sync_alarm()
        return removed

    def get(self, schedule_id: str) -> dict[str, Any] | None:
        row = self._task.store.get_schedule(schedule_id)
        return None if row is None else _describe(row)

    def list(self) -> list[dict[str, Any]]:
        """Pending schedules ``{id, action, args, run_at}`` by time (``run_at`` in epoch seconds)."""
        return [_describe(row) for row in self._task.store.list_schedules()]

    def _insert(self, trigger_at: int, action: str, args: tuple[Any, ...]) -> str:
        if not isinstance(action, str) or not action:
            raise RivetError("schedule", "invalid_action", f"Action name must be a non-empty string, not {action!r}.")
        store = self._task.store
        limit = self._task.definition.options.max_schedules
        if store.count_schedules() >= limit:
            raise RivetError(
                "schedule", "max_schedules_exceeded",
                f"The actor already has {limit} pending schedules.", {"max": limit},
            )
        row = ScheduleRow(str(uuid.uuid4()), trigger_at, action, encode(list(args)))
        store.insert_schedule(row)
        self._task.sync_alarm()
        return row.event_id


def _describe(row: ScheduleRow) -> dict[str, Any]:
    return {
        "id": row.event_id,
        "action": row.action,
        "args": decode(row.args) if row.args else [],
        "run_at": row.trigger_at / 1000,
    }
