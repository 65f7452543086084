"""Addressing actors (core.md §7.1): get / get_or_create / create / get_for_id, keys, destroy, copied values."""

from __future__ import annotations

import os

import pytest

from rivetgreen import RivetError, actor


def make_counter(created=None):
    definition = actor("counter")

    @definition.create_state
    def create_state(c, input):
        if created is not None:
            created.append(input)
        return {"count": (input or {}).get("start", 0), "items": []}

    @definition.action
    def increment(c, by=1):
        c.state["count"] += by
        return c.state["count"]

    @definition.action
    def count(c):
        return c.state["count"]

    @definition.action
    def whoami(c):
        return {"id": c.actor_id, "name": c.name, "key": c.key}

    @definition.action
    def set_items(c, items):
        c.state["items"] = items
        return c.state["items"]

    @definition.action
    def items(c):
        return c.state["items"]

    @definition.action
    def bad_output(c):
        c.state["count"] += 1
        return {1, 2, 3}

    return definition


def error_of(call, *args, **kwargs):
    with pytest.raises(RivetError) as caught:
        call(*args, **kwargs)
    return caught.value.group, caught.value.code


def actor_file(registry, actor_id):
    return os.path.join(registry.data_dir, "actors", f"{actor_id}.sqlite")


def test_get_of_a_missing_key_is_not_found_and_creates_nothing(virtual_clock, make_registry):
    registry = make_registry(make_counter())
    assert error_of(registry.get("counter", ["missing"]).count) == ("actor", "not_found")
    assert error_of(registry.get("counter", ["missing"]).resolve) == ("actor", "not_found")
    assert registry.engine.directory.list() == []


def test_get_finds_an_actor_made_by_get_or_create(virtual_clock, make_registry):
    registry = make_registry(make_counter())
    registry.get_or_create("counter", ["a"]).increment(3)
    assert registry.get("counter", ["a"]).count() == 3


def test_keys_are_scoped_to_the_actor_name(virtual_clock, make_registry):
    other = actor("other")

    @other.action
    def ping(c):
        return "pong"

    registry = make_registry(make_counter(), other)
    registry.get_or_create("counter", ["shared"]).increment()
    assert error_of(registry.get("other", ["shared"]).ping) == ("actor", "not_found")
    assert registry.get_or_create("other", ["shared"]).ping() == "pong"
    assert registry.get("counter", ["shared"]).count() == 1


def test_create_of_an_existing_key_is_a_duplicate(virtual_clock, make_registry):
    registry = make_registry(make_counter())
    first = registry.create("counter", ["a"], input={"start": 5})
    assert error_of(registry.create, "counter", ["a"], input={"start": 9}) == ("actor", "duplicate_key")
    assert first.count() == 5
    assert registry.get("counter", ["a"]).count() == 5


def test_get_or_create_uses_input_only_on_creation(virtual_clock, make_registry):
    created = []
    registry = make_registry(make_counter(created))
    assert registry.get_or_create("counter", ["a"], input={"start": 10}).count() == 10
    assert registry.get_or_create("counter", ["a"], input={"start": 99}).count() == 10
    assert created == [{"start": 10}]


@pytest.mark.parametrize("key", [[1], [None], {"a": 1}, ["ok", 2], b"bytes", 5, ["x" * 129]])
def test_invalid_keys_are_refused_and_nothing_is_created(virtual_clock, make_registry, key):
    registry = make_registry(make_counter())
    assert error_of(registry.get_or_create, "counter", key) == ("actor", "invalid_key")
    assert error_of(registry.create, "counter", key) == ("actor", "invalid_key")
    assert error_of(registry.get, "counter", key) == ("actor", "invalid_key")
    assert registry.engine.directory.list() == []


@pytest.mark.parametrize(
    "key",
    [["a/b", "c"], ["a\\b"], ["a\\/b/", "\\"], ["", "x"], [""], [], ["\\0"], ["0", ""], ["tenant", "ü/ñ"]],
)
def test_key_segments_round_trip(virtual_clock, make_registry, key):
    registry = make_registry(make_counter())
    handle = registry.create("counter", key)
    assert handle.whoami()["key"] == key
    handle.increment()
    registry.sleep(handle.resolve())
    assert handle.whoami()["key"] == key  # reloaded from the directory after a wake
    assert registry.get("counter", key).resolve() == handle.resolve()


def test_escaped_keys_do_not_collide(virtual_clock, make_registry):
    registry = make_registry(make_counter())
    keys = [["a/b"], ["a", "b"], ["a\\", "b"], ["a\\/b"], [""], [], ["", ""], ["\\0"]]
    ids = {registry.create("counter", key).resolve() for key in keys}
    assert len(ids) == len(keys)
    for key in keys:
        assert registry.get("counter", key).whoami()["key"] == key


def test_a_string_key_is_a_one_segment_key(virtual_clock, make_registry):
    registry = make_registry(make_counter())
    registry.get_or_create("counter", "solo").increment(4)
    assert registry.get("counter", ["solo"]).count() == 4
    assert registry.get("counter", "solo").resolve() == registry.get("counter", ["solo"]).resolve()
    assert error_of(registry.create, "counter", ["solo"]) == ("actor", "duplicate_key")


def test_unknown_actor_name_is_not_registered(virtual_clock, make_registry):
    registry = make_registry(make_counter())
    assert error_of(registry.get("nope", ["a"]).count) == ("actor", "not_registered")
    assert error_of(registry.get_or_create("nope", ["a"]).count) == ("actor", "not_registered")
    assert error_of(registry.create, "nope", ["a"]) == ("actor", "not_registered")
    assert registry.engine.directory.list() == []


def test_actor_whose_definition_is_gone_after_restart_is_not_registered(virtual_clock, make_registry):
    registry = make_registry(make_counter())
    actor_id = registry.get_or_create("counter", ["a"]).resolve()
    registry.shutdown()
    reopened = make_registry(actor("something_else"), data_dir=registry.data_dir)
    assert error_of(reopened.get_for_id(actor_id).count) == ("actor", "not_registered")


def test_unknown_action_is_not_found_and_state_is_intact(virtual_clock, make_registry):
    registry = make_registry(make_counter())
    handle = registry.get_or_create("counter", ["a"])
    handle.increment(2)
    assert error_of(handle.no_such_action, 1) == ("actor", "action_not_found")
    assert handle.count() == 2
    assert handle.increment() == 3


def test_get_for_id_addresses_the_same_actor(virtual_clock, make_registry):
    registry = make_registry(make_counter())
    handle = registry.get_or_create("counter", ["a"])
    handle.increment(7)
    by_id = registry.get_for_id(handle.resolve())
    assert by_id.count() == 7
    assert by_id.whoami() == {"id": handle.resolve(), "name": "counter", "key": ["a"]}
    assert error_of(registry.get_for_id("0" * 32).count) == ("actor", "not_found")


def test_destroy_removes_the_actor_and_its_data(virtual_clock, make_registry):
    created = []
    registry = make_registry(make_counter(created))
    handle = registry.get_or_create("counter", ["a"], input={"start": 1})
    handle.increment(10)
    old_id = handle.resolve()
    assert os.path.exists(actor_file(registry, old_id))
    registry.destroy(old_id)
    assert old_id not in registry.engine.instances
    assert not os.path.exists(actor_file(registry, old_id))
    assert error_of(registry.get_for_id(old_id).count) == ("actor", "not_found")
    assert error_of(registry.get("counter", ["a"]).count) == ("actor", "not_found")
    fresh = registry.create("counter", ["a"])
    assert fresh.resolve() != old_id
    assert fresh.count() == 0
    assert created == [{"start": 1}, None]


def test_destroy_of_a_sleeping_actor_removes_it(virtual_clock, make_registry):
    registry = make_registry(make_counter())
    handle = registry.get_or_create("counter", ["a"])
    handle.increment(3)
    actor_id = handle.resolve()
    registry.sleep(actor_id)
    registry.destroy(actor_id)
    assert not os.path.exists(actor_file(registry, actor_id))
    assert error_of(registry.get_for_id(actor_id).count) == ("actor", "not_found")
    assert registry.get_or_create("counter", ["a"]).count() == 0


def test_destroyed_actor_stays_gone_after_a_restart(virtual_clock, make_registry):
    definition = make_counter()
    registry = make_registry(definition)
    handle = registry.get_or_create("counter", ["a"])
    handle.increment(3)
    actor_id = handle.resolve()
    registry.destroy(actor_id)
    registry.shutdown()
    reopened = make_registry(definition, data_dir=registry.data_dir)
    assert error_of(reopened.get_for_id(actor_id).count) == ("actor", "not_found")
    assert reopened.get_or_create("counter", ["a"]).count() == 0


def test_arguments_and_results_are_copies(virtual_clock, make_registry):
    registry = make_registry(make_counter())
    handle = registry.get_or_create("counter", ["a"])
    sent = [1, {"nested": [2]}]
    returned = handle.set_items(sent)
    sent.append("caller change")
    sent[1]["nested"].append("caller change")
    returned.append("caller change")
    returned[1]["nested"].append("caller change")
    assert handle.items() == [1, {"nested": [2]}]
    again = handle.items()
    again.clear()
    assert handle.items() == [1, {"nested": [2]}]


def test_unserialisable_result_is_an_error_and_the_actor_keeps_working(virtual_clock, make_registry):
    registry = make_registry(make_counter())
    handle = registry.get_or_create("counter", ["a"])
    with pytest.raises(RivetError):
        handle.bad_output()  # returns a set, which no client encoding can carry
    assert handle.increment() == 2
    assert handle.resolve() in registry.engine.instances


def test_unserialisable_argument_is_refused_before_the_action_runs(virtual_clock, make_registry):
    received = []
    definition = make_counter()

    @definition.action
    def echo(c, value):
        received.append(type(value).__name__)
        return value

    registry = make_registry(definition)
    handle = registry.get_or_create("counter", ["a"])
    with pytest.raises(RivetError):
        handle.echo({1, 2})
    with pytest.raises(RivetError):
        handle.echo(object())
    assert received == []
    assert handle.echo([1, "two"]) == [1, "two"]
    assert handle.increment() == 1
