"""Durable actor state (core.md §3.2, §6.4): initial values, tracked mutations, the save throttle, validation."""

from __future__ import annotations

import json

import pytest

from rivetgreen import RivetError, actor
from tests.helpers import stored_state


def plain(value):
    return json.loads(json.dumps(value))


def make_notes(options=None):
    definition = actor(
        "notes",
        state={"count": 0, "items": [], "meta": {"tags": []}},
        options=options or {},
    )

    @definition.action
    def get(c):
        return c.state

    @definition.action
    def bump(c):
        c.state["count"] += 1
        return c.state["count"]

    @definition.action
    def add(c, item):
        c.state["items"].append(item)
        return len(c.state["items"])

    return definition


# initial state -------------------------------------------------------------------------------------------------

def test_static_state_is_copied_per_actor(virtual_clock, make_registry):
    registry = make_registry(make_notes())
    first = registry.get_or_create("notes", ["a"])
    second = registry.get_or_create("notes", ["b"])
    first.add("only in a")
    first.bump()
    assert second.get() == {"count": 0, "items": [], "meta": {"tags": []}}
    assert first.get() == {"count": 1, "items": ["only in a"], "meta": {"tags": []}}


def test_static_state_object_of_the_definition_is_not_mutated(virtual_clock, make_registry):
    initial = {"items": []}
    definition = actor("holder", state=initial)

    @definition.action
    def add(c, item):
        c.state["items"].append(item)

    registry = make_registry(definition)
    registry.get_or_create("holder", ["a"]).add(1)
    assert initial == {"items": []}


def test_create_state_receives_input_and_runs_only_on_first_start(virtual_clock, make_registry):
    calls = []
    definition = actor("greeter")

    @definition.create_state
    def create_state(c, input):
        calls.append(input)
        return {"name": input["name"], "visits": 0}

    @definition.action
    def visit(c):
        c.state["visits"] += 1
        return dict(c.state)

    registry = make_registry(definition)
    handle = registry.get_or_create("greeter", ["a"], input={"name": "ada"})
    assert handle.visit() == {"name": "ada", "visits": 1}
    actor_id = handle.resolve()
    registry.sleep(actor_id)
    assert actor_id not in registry.engine.instances
    assert handle.visit() == {"name": "ada", "visits": 2}
    assert calls == [{"name": "ada"}]


def test_create_state_does_not_run_again_after_a_restart(virtual_clock, make_registry):
    calls = []
    definition = actor("greeter")

    @definition.create_state
    def create_state(c, input):
        calls.append(input)
        return {"visits": 0}

    @definition.action
    def visit(c):
        c.state["visits"] += 1
        return c.state["visits"]

    registry = make_registry(definition)
    registry.get_or_create("greeter", ["a"], input=7).visit()
    registry.shutdown()
    reopened = make_registry(definition, data_dir=registry.data_dir)
    assert reopened.get_or_create("greeter", ["a"], input=8).visit() == 2
    assert calls == [7]


# nested mutations ------------------------------------------------------------------------------------------------

def make_mutator():
    definition = actor("mutator", state={"log": [3, 1, 2], "profile": {"name": "x"}, "tally": [], "extra": {}})

    @definition.action
    def mutate(c):
        state = c.state
        state["log"].append(0)  # [3, 1, 2, 0]
        state["log"].sort()  # [0, 1, 2, 3]
        state["log"][1:3] = ["one", "two"]  # [0, "one", "two", 3]
        state["log"].pop(0)  # ["one", "two", 3]
        state["profile"].update({"age": 30, "langs": ["py"]})
        state["profile"]["langs"] += ["rust"]
        state["profile"].setdefault("seen", []).append(1)
        state["profile"].pop("name")
        state["tally"] += [1, 2]
        state["extra"]["deep"] = {"list": [{"k": 1}]}
        state["extra"]["deep"]["list"][0]["k"] = 2
        return state

    @definition.action
    def get(c):
        return c.state

    return definition


EXPECTED_AFTER_MUTATE = {
    "log": ["one", "two", 3],
    "profile": {"age": 30, "langs": ["py", "rust"], "seen": [1]},
    "tally": [1, 2],
    "extra": {"deep": {"list": [{"k": 2}]}},
}


def test_nested_mutations_survive_sleep_and_wake(virtual_clock, make_registry):
    registry = make_registry(make_mutator())
    handle = registry.get_or_create("mutator", ["a"])
    assert handle.mutate() == EXPECTED_AFTER_MUTATE
    actor_id = handle.resolve()
    registry.sleep(actor_id)
    assert actor_id not in registry.engine.instances
    assert stored_state(registry, actor_id) == EXPECTED_AFTER_MUTATE
    assert handle.get() == EXPECTED_AFTER_MUTATE


def test_nested_mutations_survive_a_registry_restart(virtual_clock, make_registry):
    definition = make_mutator()
    registry = make_registry(definition)
    registry.get_or_create("mutator", ["a"]).mutate()
    registry.shutdown()
    reopened = make_registry(definition, data_dir=registry.data_dir)
    assert reopened.get_or_create("mutator", ["a"]).get() == EXPECTED_AFTER_MUTATE


def test_replacing_the_whole_state_is_persisted(virtual_clock, make_registry):
    definition = make_notes()

    @definition.action
    def reset(c, value):
        c.state = value
        c.state["items"].append("after replace")
        return c.state

    registry = make_registry(definition)
    handle = registry.get_or_create("notes", ["a"])
    handle.add("old")
    assert handle.reset({"count": 10, "items": []}) == {"count": 10, "items": ["after replace"]}
    registry.sleep(handle.resolve())
    assert handle.get() == {"count": 10, "items": ["after replace"]}


# the save throttle ---------------------------------------------------------------------------------------------

def test_mutation_is_saved_after_the_save_interval_not_before(virtual_clock, make_registry):
    registry = make_registry(make_notes())
    handle = registry.get_or_create("notes", ["a"])
    handle.bump()
    actor_id = handle.resolve()
    assert stored_state(registry, actor_id)["count"] == 0
    virtual_clock.advance(0.5)
    assert stored_state(registry, actor_id)["count"] == 0
    virtual_clock.advance(0.5)
    assert stored_state(registry, actor_id)["count"] == 1


def test_first_mutation_after_a_wake_is_throttled_too(virtual_clock, make_registry):
    # core.md §3.2: "with no previous save the delay is the full interval".
    registry = make_registry(make_notes())
    handle = registry.get_or_create("notes", ["a"])
    handle.get()
    actor_id = handle.resolve()
    registry.sleep(actor_id)
    assert actor_id not in registry.engine.instances
    handle.bump()
    assert stored_state(registry, actor_id)["count"] == 0
    virtual_clock.advance(1)
    assert stored_state(registry, actor_id)["count"] == 1


def test_throttle_counts_from_the_last_save_not_the_last_change(virtual_clock, make_registry):
    registry = make_registry(make_notes())
    handle = registry.get_or_create("notes", ["a"])
    actor_id = handle.resolve()
    handle.bump()
    virtual_clock.advance(0.6)
    handle.bump()  # a trailing debounce would push the save to t=1.6
    virtual_clock.advance(0.4)
    assert stored_state(registry, actor_id)["count"] == 2


def test_save_state_immediate_writes_before_returning(virtual_clock, make_registry):
    definition = make_notes()

    @definition.action
    def bump_and_save(c):
        c.state["count"] += 5
        c.save_state(immediate=True)
        return c.state["count"]

    registry = make_registry(definition)
    handle = registry.get_or_create("notes", ["a"])
    assert handle.bump_and_save() == 5
    assert stored_state(registry, handle.resolve())["count"] == 5


def test_request_save_with_max_wait_saves_within_that_time(virtual_clock, make_registry):
    definition = make_notes()

    @definition.action
    def bump_soon(c):
        c.state["count"] += 1
        c.request_save(max_wait=0.2)

    registry = make_registry(definition)
    handle = registry.get_or_create("notes", ["a"])
    handle.bump_soon()
    actor_id = handle.resolve()
    virtual_clock.advance(0.1)
    assert stored_state(registry, actor_id)["count"] == 0
    virtual_clock.advance(0.1)
    assert stored_state(registry, actor_id)["count"] == 1


# invalid values -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "write",
    [
        lambda c: c.state.__setitem__("bad", {1, 2}),
        lambda c: c.state["items"].append(object()),
        lambda c: c.state["meta"].update({"fine": 1, "bad": {(1, 2): "tuple key"}}),
        lambda c: c.state["items"].extend(["fine", {3}]),
        lambda c: setattr(c, "state", {"count": 0, "items": [object()]}),
    ],
    ids=["set", "object", "tuple-key-dict", "partial-extend", "replace"],
)
def test_unserialisable_value_is_refused_and_nothing_changes(virtual_clock, make_registry, write):
    definition = make_notes()

    @definition.action
    def bad_write(c):
        c.state["count"] = 1
        c.save_state(immediate=True)
        write(c)

    registry = make_registry(definition)
    handle = registry.get_or_create("notes", ["a"])
    with pytest.raises(RivetError) as caught:
        handle.bad_write()
    assert (caught.value.group, caught.value.code) == ("actor", "invalid_state_type")
    expected = {"count": 1, "items": [], "meta": {"tags": []}}
    assert handle.get() == expected
    virtual_clock.advance(2)
    assert stored_state(registry, handle.resolve()) == expected
    registry.sleep(handle.resolve())
    assert handle.get() == expected


# on_state_change --------------------------------------------------------------------------------------------------

def test_on_state_change_runs_once_per_burst_and_sees_the_new_state(virtual_clock, make_registry):
    seen = []
    definition = make_notes()

    @definition.on_state_change
    def changed(c, state):
        seen.append(plain(state))

    @definition.action
    def burst(c):
        for i in range(3):
            c.state["count"] += 1
            c.state["items"].append(i)

    registry = make_registry(definition)
    handle = registry.get_or_create("notes", ["a"])
    handle.burst()
    virtual_clock.settle()
    assert seen == [{"count": 3, "items": [0, 1, 2], "meta": {"tags": []}}]


def test_mutating_state_inside_on_state_change_is_refused(virtual_clock, make_registry):
    errors_seen = []
    definition = make_notes()

    @definition.on_state_change
    def changed(c, state):
        try:
            c.state["count"] = 100
        except RivetError as error:
            errors_seen.append((error.group, error.code))

    registry = make_registry(definition)
    handle = registry.get_or_create("notes", ["a"])
    handle.bump()
    virtual_clock.settle()
    assert errors_seen == [("actor", "state_mutation_reentrant")]
    assert handle.get()["count"] == 1


def test_state_on_an_actor_without_state_is_not_enabled(virtual_clock, make_registry):
    definition = actor("stateless")

    @definition.action
    def read(c):
        return c.state

    @definition.action
    def ping(c):
        return "pong"

    registry = make_registry(definition)
    handle = registry.get_or_create("stateless", ["a"])
    with pytest.raises(RivetError) as caught:
        handle.read()
    assert (caught.value.group, caught.value.code) == ("actor", "state_not_enabled")
    assert handle.ping() == "pong"
