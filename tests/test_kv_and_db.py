"""Per-actor storage (core.md §3.4 KV, §3.5 SQLite, §6.4): what survives, limits, transactions, reserved tables."""

from __future__ import annotations

import pytest

from rivetgreen import RivetError, UserError, actor
from tests.helpers import stored_state


def error_of(call, *args):
    with pytest.raises(RivetError) as caught:
        call(*args)
    return caught.value.group, caught.value.code


# KV -------------------------------------------------------------------------------------------------------------

def make_kv():
    definition = actor("kv")

    @definition.action
    def put(c, key, value):
        c.kv.put(key, value)

    @definition.action
    def get(c, key):
        return c.kv.get(key)

    @definition.action
    def delete(c, key):
        c.kv.delete(key)

    @definition.action
    def batch_put(c, entries):
        c.kv.batch_put([(k, v) for k, v in entries])

    @definition.action
    def batch_get(c, keys):
        return c.kv.batch_get(keys)

    @definition.action
    def list_prefix(c, prefix, reverse=False, limit=None):
        return c.kv.list_prefix(prefix, reverse=reverse, limit=limit)

    @definition.action
    def list_range(c, start, end, reverse=False, limit=None):
        return c.kv.list_range(start, end, reverse=reverse, limit=limit)

    @definition.action
    def delete_range(c, start, end):
        c.kv.delete_range(start, end)

    @definition.action
    def keys(c):
        return [key for key, _ in c.kv.list_prefix(b"")]

    return definition


@pytest.fixture
def kv(virtual_clock, make_registry):
    registry = make_registry(make_kv())
    return registry.get_or_create("kv", ["a"])


def test_kv_put_get_delete_with_str_and_bytes_keys(kv):
    kv.put("name", "ada")
    kv.put(b"\x00bin", b"\xff\x00")
    assert kv.get("name") == b"ada"
    assert kv.get(b"name") == b"ada"
    assert kv.get(b"\x00bin") == b"\xff\x00"
    kv.put("name", "grace")
    assert kv.get("name") == b"grace"
    kv.delete("name")
    assert kv.get("name") is None
    assert kv.get("never") is None


def test_kv_batch_get_keeps_request_order_and_reports_missing_as_none(kv):
    kv.batch_put([("b", "2"), ("a", "1"), ("c", "3")])
    assert kv.batch_get(["c", "missing", "a", "b", "a"]) == [b"3", None, b"1", b"2", b"1"]


def test_kv_list_prefix_is_ordered_and_supports_reverse_and_limit(kv):
    kv.batch_put([("user:2", "b"), ("user:1", "a"), ("user:10", "c"), ("userx", "no"), ("use", "no"), ("z", "no")])
    assert kv.list_prefix("user:") == [[b"user:1", b"a"], [b"user:10", b"c"], [b"user:2", b"b"]]
    assert kv.list_prefix("user:", True) == [[b"user:2", b"b"], [b"user:10", b"c"], [b"user:1", b"a"]]
    assert kv.list_prefix("user:", False, 2) == [[b"user:1", b"a"], [b"user:10", b"c"]]
    assert kv.list_prefix("user:", True, 1) == [[b"user:2", b"b"]]


def test_kv_list_prefix_with_ff_bytes_in_the_prefix(kv):
    kv.batch_put([(b"a\xff\x01", b"1"), (b"a\xff\xff", b"2"), (b"b", b"3")])
    assert kv.list_prefix(b"a\xff") == [[b"a\xff\x01", b"1"], [b"a\xff\xff", b"2"]]


def test_kv_list_range_and_delete_range_are_half_open(kv):
    kv.batch_put([(k, k) for k in ["a", "b", "c", "d", "e"]])
    assert [k for k, _ in kv.list_range("b", "d")] == [b"b", b"c"]
    assert [k for k, _ in kv.list_range("b", "e", True, 2)] == [b"d", b"c"]
    kv.delete_range("b", "d")
    assert kv.keys() == [b"a", b"d", b"e"]


def test_kv_key_size_limit(kv):
    kv.put("k" * 2048, "fits")
    assert kv.get("k" * 2048) == b"fits"
    assert error_of(kv.put, "k" * 2049, "x") == ("kv", "key_too_large")
    assert error_of(kv.get, "k" * 2049) == ("kv", "key_too_large")


def test_kv_value_size_limit(kv):
    kv.put("big", b"v" * 131072)
    assert kv.get("big") == b"v" * 131072
    assert error_of(kv.put, "bigger", b"v" * 131073) == ("kv", "value_too_large")
    assert kv.get("bigger") is None


def test_kv_batch_put_with_an_oversize_value_writes_nothing(kv):
    entries = [("a", "1"), ("b", b"v" * 131073), ("c", "3")]
    assert error_of(kv.batch_put, entries) == ("kv", "value_too_large")
    assert kv.keys() == []
    assert error_of(kv.batch_put, [("a", "1"), ("k" * 2049, "2")]) == ("kv", "key_too_large")
    assert kv.keys() == []


def test_kv_values_survive_sleep_and_wake(virtual_clock, make_registry):
    registry = make_registry(make_kv())
    handle = registry.get_or_create("kv", ["a"])
    handle.put("x", b"1")
    handle.batch_put([("y", "2"), ("z", "3")])
    actor_id = handle.resolve()
    registry.sleep(actor_id)
    assert actor_id not in registry.engine.instances
    assert handle.batch_get(["x", "y", "z"]) == [b"1", b"2", b"3"]


# SQLite ---------------------------------------------------------------------------------------------------------

def make_db():
    definition = actor("db", state={"n": 0})

    @definition.on_migrate
    def migrate(c, is_new):
        c.db.execute("CREATE TABLE IF NOT EXISTS notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL UNIQUE)")

    @definition.action
    def add(c, body):
        return c.db.execute("INSERT INTO notes (body) VALUES (?)", (body,))

    @definition.action
    def notes(c):
        return c.db.query("SELECT id, body FROM notes ORDER BY id")

    @definition.action
    def find(c, body):
        return c.db.query("SELECT body FROM notes WHERE body = :body", {"body": body})

    @definition.action
    def add_pair(c, first, second, fail):
        with c.db.transaction() as tx:
            tx.execute("INSERT INTO notes (body) VALUES (?)", (first,))
            tx.execute("INSERT INTO notes (body) VALUES (?)", (second,))
            if fail:
                raise UserError("changed my mind")

    @definition.action
    def run(c, sql):
        return c.db.query(sql)

    @definition.action
    def script(c, sql):
        c.db.execute_script(sql)

    @definition.action
    def bump(c):
        c.state["n"] += 1
        return c.state["n"]

    @definition.action
    def schedule_bump(c, seconds):
        c.schedule.after(seconds, "bump")

    @definition.action
    def count(c):
        return c.state["n"]

    return definition


@pytest.fixture
def db(virtual_clock, make_registry):
    registry = make_registry(make_db())
    return registry.get_or_create("db", ["a"])


def test_db_execute_and_query_with_params_return_rows_as_dicts(db):
    assert db.add("first") == 1
    assert db.add("second") == 1
    assert db.notes() == [{"id": 1, "body": "first"}, {"id": 2, "body": "second"}]
    assert db.find("second") == [{"body": "second"}]
    assert db.find("nope") == []


def test_db_transaction_commits_when_the_block_ends(db):
    db.add_pair("a", "b", False)
    assert [row["body"] for row in db.notes()] == ["a", "b"]


def test_db_transaction_rolls_back_when_the_block_raises(db):
    db.add("kept")
    with pytest.raises(RivetError) as caught:
        db.add_pair("a", "b", True)
    assert (caught.value.group, caught.value.code) == ("user", "user_error")
    assert [row["body"] for row in db.notes()] == ["kept"]


def test_db_transaction_rolls_back_when_a_statement_fails(db):
    db.add("dup")
    assert error_of(db.add_pair, "new", "dup", False)[0] == "sqlite"
    assert [row["body"] for row in db.notes()] == ["dup"]


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT * FROM _rivet_actor_state",
        "DELETE FROM _rivet_user_kv",
        "drop table _RIVET_schedule_events",
        'UPDATE "_rivet_actor" SET has_initialized = 0',
    ],
)
def test_db_refuses_the_runtime_tables(virtual_clock, make_registry, sql):
    registry = make_registry(make_db())
    handle = registry.get_or_create("db", ["a"])
    handle.bump()
    assert error_of(handle.run, sql) == ("sqlite", "reserved_table")
    assert error_of(handle.script, sql) == ("sqlite", "reserved_table")
    registry.sleep(handle.resolve())
    assert handle.count() == 1


def test_db_refuses_runtime_tables_inside_a_transaction(virtual_clock, make_registry):
    definition = make_db()

    @definition.action
    def sneaky(c):
        with c.db.transaction() as tx:
            tx.execute("INSERT INTO notes (body) VALUES ('inside')")
            tx.execute("DELETE FROM _rivet_actor_state")

    registry = make_registry(definition)
    handle = registry.get_or_create("db", ["a"])
    handle.bump()
    assert error_of(handle.sneaky) == ("sqlite", "reserved_table")
    assert handle.notes() == []
    registry.sleep(handle.resolve())
    assert handle.count() == 1


def test_db_tables_survive_sleep_and_restart(virtual_clock, make_registry):
    definition = make_db()
    registry = make_registry(definition)
    handle = registry.get_or_create("db", ["a"])
    handle.add("one")
    registry.sleep(handle.resolve())
    handle.add("two")
    registry.shutdown()
    reopened = make_registry(definition, data_dir=registry.data_dir)
    assert [row["body"] for row in reopened.get_or_create("db", ["a"]).notes()] == ["one", "two"]


def test_failing_statement_is_a_sqlite_error_and_state_is_unharmed(virtual_clock, make_registry):
    registry = make_registry(make_db())
    handle = registry.get_or_create("db", ["a"])
    handle.bump()
    assert error_of(handle.run, "SELECT * FROM no_such_table")[0] == "sqlite"
    assert error_of(handle.run, "THIS IS NOT SQL")[0] == "sqlite"
    assert handle.bump() == 2
    virtual_clock.advance(1)
    assert stored_state(registry, handle.resolve()) == {"n": 2}
    registry.sleep(handle.resolve())
    assert handle.count() == 2


def test_failing_script_with_its_own_begin_does_not_break_the_actor(virtual_clock, make_registry):
    registry = make_registry(make_db())
    handle = registry.get_or_create("db", ["a"])
    actor_id = handle.resolve()
    handle.bump()
    script = "BEGIN; INSERT INTO notes (body) VALUES ('x'); INSERT INTO no_such_table VALUES (1); COMMIT;"
    assert error_of(handle.script, script)[0] == "sqlite"
    # Later state changes still reach the disk ...
    assert handle.bump() == 2
    virtual_clock.advance(1)
    assert stored_state(registry, actor_id) == {"n": 2}
    # ... schedules still fire ...
    handle.schedule_bump(5)
    virtual_clock.advance(5)
    assert handle.count() == 3
    # ... and the actor wakes again after sleeping.
    registry.sleep(actor_id)
    assert handle.count() == 3


def test_a_commit_that_fails_leaves_no_transaction_behind(virtual_clock, make_registry):
    """A deferred foreign key fails at COMMIT, and SQLite then keeps the transaction open: it must be rolled back,
    or it would swallow every later write of the actor (its state saves included)."""
    definition = actor("orders", state={"count": 0})

    @definition.on_create
    def create_tables(c, _input):
        c.db.execute("PRAGMA foreign_keys = ON")
        c.db.execute_script(
            "CREATE TABLE customer (id INTEGER PRIMARY KEY);"
            "CREATE TABLE purchase (id INTEGER PRIMARY KEY, customer INTEGER"
            " REFERENCES customer (id) DEFERRABLE INITIALLY DEFERRED);"
        )

    @definition.action
    def buy_for_nobody(c):
        with c.db.transaction() as tx:
            tx.execute("INSERT INTO purchase (customer) VALUES (42)")  # no customer 42: refused at COMMIT

    @definition.action
    def count_and_save(c):
        c.state["count"] += 1
        c.save_state(immediate=True)
        return c.state["count"]

    registry = make_registry(definition)
    handle = registry.get_or_create("orders", ["a"])
    assert error_of(handle.buy_for_nobody)[0] == "sqlite"
    assert handle.count_and_save() == 1
    actor_id = handle.resolve()
    assert stored_state(registry, actor_id) == {"count": 1}  # on disk, not inside a transaction left open
