"""One-shot schedules (core.md §3.7, §1.9, §6.4): timing, cancel/list/get, limits, and waking sleeping actors."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from rivetgreen import RivetError, actor, clock


def make_timer(fired, options=None):
    """An actor whose ``ring`` action records (args, virtual time) in ``fired``."""
    definition = actor("timer", state={"rings": 0}, options=options or {})

    @definition.action
    def ring(c, *args):
        fired.append((list(args), clock.monotonic()))
        c.state["rings"] += 1

    @definition.action
    def after(c, seconds, action, *args):
        return c.schedule.after(seconds, action, *args)

    @definition.action
    def at_datetime(c, epoch_seconds, action, *args):
        return c.schedule.at(datetime.fromtimestamp(epoch_seconds, tz=UTC), action, *args)

    @definition.action
    def at_epoch(c, epoch_seconds, action, *args):
        return c.schedule.at(epoch_seconds, action, *args)

    @definition.action
    def cancel(c, schedule_id):
        return c.schedule.cancel(schedule_id)

    @definition.action
    def list_schedules(c):
        return c.schedule.list()

    @definition.action
    def get_schedule(c, schedule_id):
        return c.schedule.get(schedule_id)

    @definition.action
    def rings(c):
        return c.state["rings"]

    return definition


def is_awake(registry, actor_id):
    return actor_id in registry.engine.instances


def test_after_runs_once_at_the_right_time(virtual_clock, make_registry):
    fired = []
    registry = make_registry(make_timer(fired, {"no_sleep": True}))
    handle = registry.get_or_create("timer", ["a"])
    handle.after(10, "ring", "hello", 2)
    virtual_clock.advance(9.9)
    assert fired == []
    virtual_clock.advance(0.1)
    assert fired == [(["hello", 2], 10.0)]
    virtual_clock.advance(100)
    assert len(fired) == 1
    assert handle.rings() == 1


def test_at_a_datetime_and_at_epoch_seconds(virtual_clock, make_registry):
    fired = []
    registry = make_registry(make_timer(fired, {"no_sleep": True}))
    handle = registry.get_or_create("timer", ["a"])
    start = clock.now()
    handle.at_datetime(start + 20, "ring", "dt")
    handle.at_epoch(start + 5, "ring", "epoch")
    virtual_clock.advance(4)
    assert fired == []
    virtual_clock.advance(1)
    assert fired == [(["epoch"], 5.0)]
    virtual_clock.advance(14)
    assert len(fired) == 1
    virtual_clock.advance(1)
    assert fired == [(["epoch"], 5.0), (["dt"], 20.0)]


def test_schedule_in_the_past_runs_promptly(virtual_clock, make_registry):
    fired = []
    registry = make_registry(make_timer(fired, {"no_sleep": True}))
    handle = registry.get_or_create("timer", ["a"])
    handle.at_epoch(clock.now() - 60, "ring", "late")
    virtual_clock.settle()
    assert fired == [(["late"], 0.0)]


def test_cancel_prevents_the_run_and_reports_whether_it_removed_something(virtual_clock, make_registry):
    fired = []
    registry = make_registry(make_timer(fired, {"no_sleep": True}))
    handle = registry.get_or_create("timer", ["a"])
    cancelled = handle.after(10, "ring", "cancelled")
    kept = handle.after(10, "ring", "kept")
    assert handle.cancel(cancelled) is True
    assert handle.cancel(cancelled) is False
    assert handle.cancel("no-such-id") is False
    virtual_clock.advance(10)
    assert [args for args, _ in fired] == [["kept"]]
    assert handle.cancel(kept) is False  # it already ran


def test_list_and_get_describe_pending_schedules_by_time(virtual_clock, make_registry):
    fired = []
    registry = make_registry(make_timer(fired, {"no_sleep": True}))
    handle = registry.get_or_create("timer", ["a"])
    start = clock.now()
    late = handle.after(30, "ring", "late", {"x": [1]})
    early = handle.after(10, "ring", "early")
    assert handle.list_schedules() == [
        {"id": early, "action": "ring", "args": ["early"], "run_at": start + 10},
        {"id": late, "action": "ring", "args": ["late", {"x": [1]}], "run_at": start + 30},
    ]
    assert handle.get_schedule(late) == {
        "id": late, "action": "ring", "args": ["late", {"x": [1]}], "run_at": start + 30,
    }
    assert handle.get_schedule("no-such-id") is None
    virtual_clock.advance(10)
    assert [entry["id"] for entry in handle.list_schedules()] == [late]
    assert handle.get_schedule(early) is None


def test_max_schedules_is_enforced(virtual_clock, make_registry):
    fired = []
    registry = make_registry(make_timer(fired, {"no_sleep": True, "max_schedules": 2}))
    handle = registry.get_or_create("timer", ["a"])
    first = handle.after(10, "ring", 1)
    handle.after(10, "ring", 2)
    with pytest.raises(RivetError) as caught:
        handle.after(10, "ring", 3)
    assert (caught.value.group, caught.value.code) == ("schedule", "max_schedules_exceeded")
    assert len(handle.list_schedules()) == 2
    handle.cancel(first)
    handle.after(10, "ring", 4)
    virtual_clock.advance(10)
    assert sorted(args[0] for args, _ in fired) == [2, 4]


def test_schedule_for_an_unknown_action_does_not_break_the_actor(virtual_clock, make_registry):
    fired = []
    registry = make_registry(make_timer(fired, {"no_sleep": True}))
    handle = registry.get_or_create("timer", ["a"])
    handle.after(5, "no_such_action", 1)
    handle.after(10, "ring", "later")
    virtual_clock.advance(5)
    assert is_awake(registry, handle.resolve())
    assert handle.rings() == 0
    virtual_clock.advance(5)
    assert [args for args, _ in fired] == [["later"]]
    assert handle.rings() == 1
    assert handle.list_schedules() == []


def test_schedule_wakes_a_sleeping_actor_at_the_right_time_and_runs_once(virtual_clock, make_registry):
    fired = []
    registry = make_registry(make_timer(fired))
    handle = registry.get_or_create("timer", ["a"])
    actor_id = handle.resolve()
    handle.after(60, "ring", "wake up")
    registry.sleep(actor_id)
    assert not is_awake(registry, actor_id)
    virtual_clock.advance(59.9)
    assert not is_awake(registry, actor_id)
    assert fired == []
    virtual_clock.advance(0.1)
    assert fired == [(["wake up"], 60.0)]
    assert is_awake(registry, actor_id)
    virtual_clock.advance(120)  # falls asleep again; nothing fires twice
    assert not is_awake(registry, actor_id)
    assert len(fired) == 1
    assert handle.rings() == 1


def test_overdue_schedule_runs_once_after_a_restart(virtual_clock, make_registry):
    fired = []
    definition = make_timer(fired)
    registry = make_registry(definition)
    handle = registry.get_or_create("timer", ["a"])
    handle.after(10, "ring", "overdue")
    registry.shutdown()
    virtual_clock.advance(100)
    assert fired == []
    reopened = make_registry(definition, data_dir=registry.data_dir)
    virtual_clock.settle()  # the embedded engine wakes the actor for its past-due alarm by itself
    assert [args for args, _ in fired] == [["overdue"]]
    virtual_clock.advance(100)
    assert reopened.get_or_create("timer", ["a"]).rings() == 1
    assert len(fired) == 1
