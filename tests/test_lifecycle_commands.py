"""Every row of the lifecycle command table (core.md §1.2), driven directly on an ActorTask."""

from __future__ import annotations

import gevent.event
import pytest

from rivetgreen import actor, clock
from rivetgreen.actor.lifecycle import FireAlarm, LifecycleState, Start, Stop, StopReason
from rivetgreen.errors import RivetError
from rivetgreen.storage import ScheduleRow


def blocking_sleeper(release: gevent.event.Event, fired: list[str]):
    definition = actor("sleeper", state={"n": 0})

    @definition.action
    def ping(c):
        fired.append("ping")
        return "pong"

    @definition.action
    def schedule_ping(c):
        c.schedule.after(0, "ping")

    @definition.on_sleep
    def hold_grace_open(c):
        release.wait()

    @definition.on_destroy
    def hold_destroy_grace_open(c):
        release.wait()

    return definition


def error_of(reply) -> RivetError:
    with pytest.raises(RivetError) as caught:
        reply.get()
    return caught.value


@pytest.fixture
def release():
    return gevent.event.Event()


@pytest.fixture
def fired():
    return []


@pytest.fixture
def task(make_task, release, fired, virtual_clock):
    return make_task(blocking_sleeper(release, fired))


def started(task):
    task.send_command(Start()).get()
    assert task.lifecycle is LifecycleState.STARTED
    return task


# Loading ---------------------------------------------------------------------------------------------------------
def test_loading_start_runs_startup_and_replies_ok(task):
    task.send_command(Start()).get()
    assert task.lifecycle is LifecycleState.STARTED


def test_loading_stop_is_refused_with_not_ready(task):
    assert error_of(task.send_command(Stop(StopReason.SLEEP))).code == "not_ready"
    assert task.lifecycle is LifecycleState.LOADING


def test_loading_fire_alarm_is_a_no_op(task):
    task.send_command(FireAlarm()).get()
    assert task.lifecycle is LifecycleState.LOADING


# Started -----------------------------------------------------------------------------------------------------------
def test_started_start_again_is_refused_and_the_actor_keeps_running(task):
    started(task)
    assert error_of(task.send_command(Start())).code == "stopping"
    assert task.lifecycle is LifecycleState.STARTED


def test_started_stop_replies_only_after_finalize(task, release, virtual_clock):
    started(task)
    reply = task.send_command(Stop(StopReason.SLEEP))
    virtual_clock.settle()
    assert task.lifecycle is LifecycleState.SLEEP_GRACE
    assert not reply.answered
    release.set()
    reply.get()
    assert task.lifecycle is LifecycleState.TERMINATED


def test_started_fire_alarm_drains_due_schedules(task, fired, virtual_clock):
    started(task)
    task.ctx.schedule.after(5, "ping")
    virtual_clock.advance(10)  # the local alarm timer has already fired it
    assert fired == ["ping"]
    # A row written behind the task's back (as another host would) is only found by the next FireAlarm.
    task.store.insert_schedule(ScheduleRow("direct", clock.now_ms() - 1, "ping", None))
    virtual_clock.settle()
    assert fired == ["ping"]
    task.send_command(FireAlarm()).get()
    virtual_clock.settle()
    assert fired == ["ping", "ping"]


# Grace ---------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("reason", [StopReason.SLEEP, StopReason.DESTROY])
def test_grace_start_is_refused_with_stopping(task, reason, virtual_clock):
    started(task)
    task.send_command(Stop(reason))
    virtual_clock.settle()
    assert task.lifecycle.in_grace
    assert error_of(task.send_command(Start())).code == "stopping"


def test_grace_second_stop_with_same_reason_replies_at_once_while_first_waits(task, release, virtual_clock):
    started(task)
    first = task.send_command(Stop(StopReason.SLEEP))
    virtual_clock.settle()
    second = task.send_command(Stop(StopReason.SLEEP))
    second.get()
    assert not first.answered
    release.set()
    first.get()


def test_grace_conflicting_stop_is_ignored_and_replied(task, release, virtual_clock):
    started(task)
    first = task.send_command(Stop(StopReason.SLEEP))
    virtual_clock.settle()
    task.send_command(Stop(StopReason.DESTROY)).get()
    assert task.lifecycle is LifecycleState.SLEEP_GRACE
    release.set()
    first.get()
    assert task.lifecycle is LifecycleState.TERMINATED


def test_grace_fire_alarm_is_accepted_but_nothing_fires(task, fired, virtual_clock):
    started(task)
    task.ctx.schedule.after(1, "ping")
    task.send_command(Stop(StopReason.SLEEP))
    virtual_clock.settle()
    virtual_clock.advance(2)
    task.send_command(FireAlarm()).get()
    virtual_clock.settle()
    assert fired == []
    assert [row["action"] for row in task.ctx.schedule.list()] == ["ping"]  # kept for the next generation


# Finalizing and terminated ------------------------------------------------------------------------------------------
def test_terminated_stop_replies_ok_and_other_commands_are_refused(task, release):
    started(task)
    release.set()
    task.send_command(Stop(StopReason.SLEEP)).get()
    assert task.lifecycle is LifecycleState.TERMINATED
    task.send_command(Stop(StopReason.SLEEP)).get()
    assert error_of(task.send_command(Start())).code == "stopping"
