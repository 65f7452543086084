"""Idle awake actors release their database connection and get it back transparently."""

from __future__ import annotations

import gevent
import gevent.event

from rivetgreen import actor


def test_idle_awake_actor_parks_its_database_and_reopens_it_on_use(virtual_clock, make_registry):
    definition = actor("parker", state={"n": 0}, options={"no_sleep": True, "database_idle_timeout": 10.0})

    @definition.action
    def bump(c):
        c.state["n"] += 1
        c.kv.put("last", str(c.state["n"]))
        return c.state["n"]

    @definition.action
    def read(c):
        return c.state["n"], c.kv.get("last")

    registry = make_registry(definition)
    handle = registry.get_or_create("parker", ["a"])
    assert handle.bump() == 1
    actor_id = handle.resolve()
    database = registry.engine.instances[actor_id].task.store.db
    virtual_clock.advance(1)  # the throttled state save uses the database at t=1
    virtual_clock.advance(9.9)
    assert not database.parked
    virtual_clock.advance(0.2)
    assert database.parked
    assert handle.bump() == 2  # reopened on demand
    assert not database.parked
    assert handle.read() == [2, b"2"]
    registry.sleep(actor_id)
    assert handle.read() == [2, b"2"]


def test_zero_database_idle_timeout_never_parks(virtual_clock, make_registry):
    definition = actor("keeper", state={"n": 0}, options={"no_sleep": True, "database_idle_timeout": 0})

    @definition.action
    def bump(c):
        c.state["n"] += 1

    registry = make_registry(definition)
    handle = registry.get_or_create("keeper", ["a"])
    handle.bump()
    virtual_clock.advance(3600)
    assert not registry.engine.instances[handle.resolve()].task.store.db.parked


def test_a_connection_held_by_an_open_transaction_is_not_parked_and_the_actor_stays_responsive(
    virtual_clock, make_registry
):
    definition = actor("holder", options={"no_sleep": True, "database_idle_timeout": 5.0, "action_timeout": 600.0})
    release = gevent.event.Event()

    @definition.action
    def hold(c):
        c.db.execute("CREATE TABLE IF NOT EXISTS t (x)")
        with c.db.transaction() as tx:
            tx.execute("INSERT INTO t VALUES (1)")
            release.wait()

    @definition.action
    def ping(c):
        return "pong"

    registry = make_registry(definition)
    handle = registry.get_or_create("holder", ["a"])
    holding = gevent.spawn(handle.hold)
    virtual_clock.settle()
    virtual_clock.advance(60)  # many park attempts while the transaction holds the connection
    database = registry.engine.instances[handle.resolve()].task.store.db
    assert not database.parked
    assert handle.ping() == "pong"
    release.set()
    holding.get()
