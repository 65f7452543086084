"""The registry admission table (core.md §1.3) and the task's own gate."""

from __future__ import annotations

import pytest

from rivetgreen import actor
from rivetgreen.actor.lifecycle import LifecycleState, StopReason
from rivetgreen.engine.admission import registry_admission


class FakeTask:
    def __init__(self, lifecycle, destroy_requested=False, sleep_requested=False):
        self.lifecycle = lifecycle
        self.destroy_requested = destroy_requested
        self.sleep_requested = sleep_requested


S = LifecycleState


@pytest.mark.parametrize(
    ("task", "stopping", "expected"),
    [
        (None, None, "not_found"),
        (FakeTask(S.STARTED, destroy_requested=True), None, "destroying"),
        (FakeTask(S.STARTED), None, None),
        (FakeTask(S.LOADING, destroy_requested=True), None, "destroying"),
        (FakeTask(S.LOADING, sleep_requested=True), None, "stopping"),
        (FakeTask(S.LOADING), None, "starting"),
        (FakeTask(S.SLEEP_GRACE), StopReason.SLEEP, None),
        (FakeTask(S.SLEEP_FINALIZE), StopReason.SLEEP, "stopping"),
        (FakeTask(S.DESTROY_GRACE), StopReason.DESTROY, "destroying"),
        (FakeTask(S.STARTED), StopReason.DESTROY, "destroying"),
    ],
)
def test_registry_gate_rows(task, stopping, expected):
    error = registry_admission("id-1", task, stopping)
    assert (error.code if error else None) == expected
    if expected == "not_found":
        assert error.message == "Actor instance 'id-1' was not found."


@pytest.mark.parametrize(
    ("lifecycle", "destroy_requested", "expected"),
    [
        (S.LOADING, False, "not_ready"),
        (S.STARTED, False, None),
        (S.SLEEP_GRACE, False, None),
        (S.SLEEP_FINALIZE, False, "stopping"),
        (S.DESTROY_GRACE, False, "stopping"),
        (S.DESTROYING, False, "destroying"),
        (S.TERMINATED, False, "destroying"),
        (S.STARTED, True, "destroying"),
        (S.SLEEP_GRACE, True, "destroying"),
    ],
)
def test_task_gate_rows(make_task, lifecycle, destroy_requested, expected):
    task = make_task(actor("gated"))
    task.lifecycle = lifecycle
    task.destroy_requested = destroy_requested
    error = task.dispatch_rejection()
    assert (error.code if error else None) == expected
