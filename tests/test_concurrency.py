"""Concurrent actions on one actor, and no greenlets left behind by wake/sleep cycles."""

from __future__ import annotations

import gc

import gevent
import greenlet

from rivetgreen import actor


def test_1000_concurrent_actions_interleave_without_lost_updates(virtual_clock, make_registry):
    definition = actor("tally", state={"count": 0, "log": []})
    running = {"now": 0, "max": 0}

    @definition.action
    def add(c, item):
        running["now"] += 1
        running["max"] = max(running["max"], running["now"])
        c.kv.put(f"item:{item}", b"x")  # a storage call between entering and updating
        gevent.sleep(0)  # and an explicit yield: other actions run here
        c.state["count"] += 1
        c.state["log"].append(item)
        running["now"] -= 1
        return c.state["count"]

    @definition.action
    def snapshot(c):
        return c.state

    registry = make_registry(definition)
    handle = registry.get_or_create("tally", ["a"])
    calls = [gevent.spawn(handle.add, i) for i in range(1000)]
    gevent.joinall(calls, raise_error=True)
    state = handle.snapshot()
    assert state["count"] == 1000
    assert sorted(state["log"]) == list(range(1000))
    assert sorted(call.value for call in calls) == list(range(1, 1001))
    assert running["max"] > 100  # they really ran at the same time


def live_greenlets() -> int:
    gc.collect()
    return sum(1 for obj in gc.get_objects() if isinstance(obj, greenlet.greenlet) and not obj.dead)


def test_no_greenlet_leaks_after_1000_wake_sleep_cycles(virtual_clock, make_registry):
    definition = actor("cycler", state={"wakes": 0})

    @definition.on_wake
    def on_wake(c):
        c.state["wakes"] += 1

    @definition.action
    def wakes(c):
        return c.state["wakes"]

    registry = make_registry(definition)
    handle = registry.get_or_create("cycler", ["a"])
    actor_id = handle.resolve()
    handle.wakes()
    registry.sleep(actor_id)
    virtual_clock.settle()
    baseline = live_greenlets()
    for _ in range(1000):
        handle.wakes()
        registry.sleep(actor_id)
    virtual_clock.settle()
    assert handle.wakes() == 1002
    registry.sleep(actor_id)
    virtual_clock.settle()
    assert live_greenlets() <= baseline
    assert registry.engine.instances == {}
