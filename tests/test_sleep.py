"""Idle sleep (core.md §1.5): exactly after sleep_timeout of idleness, never while something keeps it awake."""

from __future__ import annotations

import gevent.event

from rivetgreen import actor, clock


def make_sleepy(options=None):
    definition = actor("sleepy", state={"n": 0}, options=options or {})

    @definition.action
    def bump(c):
        c.state["n"] += 1
        return c.state["n"]

    return definition


def is_awake(registry, actor_id):
    return actor_id in registry.engine.instances


def test_sleeps_after_exactly_sleep_timeout_of_idleness(virtual_clock, make_registry):
    registry = make_registry(make_sleepy())
    handle = registry.get_or_create("sleepy", ["a"])
    handle.bump()
    actor_id = handle.resolve()
    virtual_clock.advance(29.999)
    assert is_awake(registry, actor_id)
    virtual_clock.advance(0.001)
    assert not is_awake(registry, actor_id)


def test_each_action_restarts_the_idle_window(virtual_clock, make_registry):
    registry = make_registry(make_sleepy({"sleep_timeout": 10.0}))
    handle = registry.get_or_create("sleepy", ["a"])
    actor_id = handle.resolve()
    handle.bump()
    for _ in range(5):
        virtual_clock.advance(9)
        handle.bump()
    virtual_clock.advance(9.5)
    assert is_awake(registry, actor_id)
    virtual_clock.advance(0.5)
    assert not is_awake(registry, actor_id)


def test_no_sleep_option_keeps_actor_awake(virtual_clock, make_registry):
    registry = make_registry(make_sleepy({"no_sleep": True}))
    handle = registry.get_or_create("sleepy", ["a"])
    handle.bump()
    virtual_clock.advance(3600)
    assert is_awake(registry, handle.resolve())


def test_open_connection_blocks_sleep_until_closed(virtual_clock, make_registry):
    registry = make_registry(make_sleepy())
    handle = registry.get_or_create("sleepy", ["a"])
    conn = handle.connect()
    virtual_clock.advance(300)
    assert is_awake(registry, handle.resolve())
    conn.close()
    virtual_clock.advance(30)
    assert not is_awake(registry, handle.resolve())


def test_keep_awake_blocks_sleep_until_the_work_ends(virtual_clock, make_registry):
    definition = make_sleepy()
    release = gevent.event.Event()

    @definition.action
    def hold(c):
        c.keep_awake(release.wait)

    registry = make_registry(definition)
    handle = registry.get_or_create("sleepy", ["a"])
    handle.hold()
    virtual_clock.advance(120)
    assert is_awake(registry, handle.resolve())
    release.set()
    virtual_clock.advance(29)
    assert is_awake(registry, handle.resolve())
    virtual_clock.advance(1)
    assert not is_awake(registry, handle.resolve())


def test_wait_until_does_not_block_idle_sleep_but_grace_waits_for_it(virtual_clock, make_registry):
    definition = make_sleepy({"sleep_grace_period": 60.0})
    finished = []

    @definition.action
    def background(c):
        c.wait_until(lambda: (clock.sleep(40), finished.append(True)))

    registry = make_registry(definition)
    handle = registry.get_or_create("sleepy", ["a"])
    handle.background()
    virtual_clock.advance(30)  # 30 s idle: the work does not keep the actor awake, so sleep begins
    assert is_awake(registry, handle.resolve())  # grace waits for the work
    assert finished == []
    virtual_clock.advance(10)
    assert finished == [True]
    assert not is_awake(registry, handle.resolve())


def test_wait_until_work_that_ends_restarts_the_idle_window(virtual_clock, make_registry):
    definition = make_sleepy()

    @definition.action
    def background(c):
        c.wait_until(clock.sleep, 20)

    registry = make_registry(definition)
    handle = registry.get_or_create("sleepy", ["a"])
    handle.background()
    virtual_clock.advance(49.9)  # the work ended at t=20: 30 s idle from there is t=50, not t=30
    assert is_awake(registry, handle.resolve())
    virtual_clock.advance(0.1)
    assert not is_awake(registry, handle.resolve())


def test_in_flight_action_blocks_sleep(virtual_clock, make_registry):
    definition = make_sleepy({"action_timeout": 1000.0})

    @definition.action
    def slow(c):
        clock.sleep(100)
        return "done"

    registry = make_registry(definition)
    handle = registry.get_or_create("sleepy", ["a"])
    result = gevent.spawn(handle.slow)
    virtual_clock.advance(99)
    assert is_awake(registry, handle.resolve())
    virtual_clock.advance(1)
    assert result.get() == "done"
    virtual_clock.advance(29)
    assert is_awake(registry, handle.resolve())
    virtual_clock.advance(1)
    assert not is_awake(registry, handle.resolve())


def test_active_run_handler_blocks_sleep_until_it_returns(virtual_clock, make_registry):
    definition = make_sleepy()

    @definition.run
    def loop(c):
        for _ in range(10):
            clock.sleep(60)

    registry = make_registry(definition)
    handle = registry.get_or_create("sleepy", ["a"])
    handle.bump()
    virtual_clock.advance(599)
    assert is_awake(registry, handle.resolve())
    virtual_clock.advance(1)  # run returned at t=600; idle from here
    virtual_clock.advance(29.9)
    assert is_awake(registry, handle.resolve())
    virtual_clock.advance(0.1)
    assert not is_awake(registry, handle.resolve())


def test_c_sleep_puts_the_actor_to_sleep_now(virtual_clock, make_registry):
    definition = make_sleepy()
    slept = []

    @definition.action
    def nap(c):
        c.sleep()
        c.sleep()  # idempotent

    @definition.on_sleep
    def on_sleep(c):
        slept.append(c.state["n"])

    registry = make_registry(definition)
    handle = registry.get_or_create("sleepy", ["a"])
    handle.bump()
    handle.nap()
    virtual_clock.settle()
    assert slept == [1]
    assert not is_awake(registry, handle.resolve())
