"""Guarantees that earlier tests let slip: each test here fails when its guarantee is broken on purpose (see the
report of issue 8): an immediate save that returns before the write, a run handler left running at shutdown, the
final save skipped, a tracked state mutation that does not mark the state dirty."""

from __future__ import annotations

import copy
import os
import signal
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import gevent
import pytest

from rivetgreen import actor, clock
from tests.helpers import stored_state

ROOT = Path(__file__).resolve().parent.parent

# The subprocess saves with save_state(immediate=True), says so, then blocks the whole process (time.sleep is not
# patched: no greenlet, so no later save, can run) until the test kills it with SIGKILL.
IMMEDIATE_SAVE_SCRIPT = textwrap.dedent("""
    import sys
    import time

    from rivetgreen import actor
    from rivetgreen.registry import Registry

    counter = actor("counter", state={"n": 0}, options={"state_save_interval": 3600.0})

    @counter.action
    def save(c, value):
        c.state["n"] = value
        c.save_state(immediate=True)
        print("saved", flush=True)
        time.sleep(60)

    Registry([counter], sys.argv[1]).get_or_create("counter", ["a"]).save(42)
""")


def make_counter(options=None):
    definition = actor("counter", state={"n": 0}, options={"state_save_interval": 3600.0, **(options or {})})

    @definition.action
    def get(c):
        return c.state["n"]

    return definition


def test_an_immediate_save_is_on_disk_when_it_returns_even_if_the_process_is_killed_then(tmp_path, make_registry):
    data_dir = str(tmp_path / "data")
    process = subprocess.Popen(
        [sys.executable, "-c", IMMEDIATE_SAVE_SCRIPT, data_dir], stdout=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        assert process.stdout.readline() == "saved\n"
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
        process.stdout.close()
    registry = make_registry(make_counter(), data_dir=data_dir)
    assert registry.get_or_create("counter", ["a"]).get() == 42


def test_a_run_handler_that_ignores_the_abort_is_killed_by_destroy(virtual_clock, make_registry):
    definition = make_counter()
    ticks = []

    @definition.run
    def loop(c):
        while True:  # never looks at c.aborted
            clock.sleep(1)
            ticks.append(clock.monotonic())

    registry = make_registry(definition)
    handle = registry.get_or_create("counter", ["a"])
    assert handle.get() == 0
    virtual_clock.advance(3)
    destroyer = gevent.spawn(registry.destroy, handle.resolve())
    virtual_clock.settle()
    assert destroyer.dead  # destroy does not wait for the run handler: it aborts it
    destroyer.get()
    ticked = len(ticks)
    virtual_clock.advance(10)
    assert len(ticks) == ticked == 3


def test_a_run_handler_that_ignores_the_abort_is_killed_at_the_sleep_grace_deadline(virtual_clock, make_registry):
    definition = make_counter({"sleep_grace_period": 5.0})
    ticks = []

    @definition.run
    def loop(c):
        while True:
            clock.sleep(1)
            ticks.append(clock.monotonic())

    registry = make_registry(definition)
    handle = registry.get_or_create("counter", ["a"])
    assert handle.get() == 0
    sleeper = gevent.spawn(registry.sleep, handle.resolve())
    virtual_clock.advance(5)
    assert sleeper.dead
    virtual_clock.advance(10)
    assert ticks == [1, 2, 3, 4]  # the tick due at t=5 never came: the handler was killed at the deadline


@pytest.mark.parametrize("when", ["before sleep", "during grace"])
def test_every_state_change_is_there_after_sleep_and_wake(when, virtual_clock, make_registry):
    definition = make_counter({"sleep_grace_period": 30.0, "action_timeout": 60.0})

    @definition.action
    def bump(c, delay):
        clock.sleep(delay)
        c.state["n"] += 1

    registry = make_registry(definition)
    handle = registry.get_or_create("counter", ["a"])
    actor_id = handle.resolve()
    handle.bump(0)
    # "during grace": this change lands after on_sleep ran (and saved), so only the final save keeps it.
    call = gevent.spawn(handle.bump, 5) if when == "during grace" else None
    virtual_clock.settle()
    sleeper = gevent.spawn(registry.sleep, actor_id)
    virtual_clock.advance(5)
    sleeper.get(timeout=0)
    if call is not None:
        call.get(timeout=0)
    expected = 2 if call is not None else 1
    assert actor_id not in registry.engine.instances
    assert stored_state(registry, actor_id) == {"n": expected}
    assert handle.get() == expected  # awake again, from what was stored


# Every tracked mutation method, alone: (container path, operation). Each one changes the value.
MUTATIONS = {
    "list.append": ("items", lambda v: v.append(4)),
    "list.extend": ("items", lambda v: v.extend([4, 5])),
    "list.insert": ("items", lambda v: v.insert(0, 9)),
    "list.pop": ("items", lambda v: v.pop()),
    "list.pop(0)": ("items", lambda v: v.pop(0)),
    "list.remove": ("items", lambda v: v.remove(1)),
    "list.clear": ("items", lambda v: v.clear()),
    "list.sort": ("items", lambda v: v.sort()),
    "list.sort(reverse)": ("items", lambda v: v.sort(reverse=True)),
    "list.reverse": ("items", lambda v: v.reverse()),
    "list[i] =": ("items", lambda v: v.__setitem__(0, 7)),
    "list[a:b] =": ("items", lambda v: v.__setitem__(slice(0, 2), [8])),
    "del list[i]": ("items", lambda v: v.__delitem__(0)),
    "list +=": ("items", lambda v: v.__iadd__([6])),
    "list *=": ("items", lambda v: v.__imul__(2)),
    "dict[k] =": ("table", lambda v: v.__setitem__("c", 3)),
    "del dict[k]": ("table", lambda v: v.__delitem__("a")),
    "dict.setdefault": ("table", lambda v: v.setdefault("c", 3)),
    "dict.update": ("table", lambda v: v.update(c=3)),
    "dict |=": ("table", lambda v: v.__ior__({"c": 3})),
    "dict.pop": ("table", lambda v: v.pop("a")),
    "dict.popitem": ("table", lambda v: v.popitem()),
    "dict.clear": ("table", lambda v: v.clear()),
}
INITIAL = {"items": [3, 1, 2], "table": {"a": 1, "b": 2}}


@pytest.mark.parametrize("mutation", sorted(MUTATIONS))
def test_each_tracked_mutation_marks_the_state_dirty(mutation, virtual_clock, make_registry):
    definition = actor("tracked", state=INITIAL, options={"state_save_interval": 1.0})
    path, operation = MUTATIONS[mutation]

    @definition.action
    def mutate(c):
        operation(c.state[path])

    registry = make_registry(definition)
    handle = registry.get_or_create("tracked", ["a"])
    actor_id = handle.resolve()
    handle.mutate()
    virtual_clock.advance(1)  # the save throttle
    expected = copy.deepcopy(INITIAL)
    operation(expected[path])
    assert expected != INITIAL
    assert stored_state(registry, actor_id) == expected


HANGING_TESTS = textwrap.dedent("""
    import gevent
    import gevent.event


    def test_hangs():
        gevent.spawn(lambda: [gevent.sleep(0.1) for _ in iter(int, 1)])  # keeps the hub busy, as a server would
        gevent.event.Event().wait()


    def test_runs_after_the_hang():
        assert gevent.spawn(lambda: 42).get() == 42
""")


def test_a_hanging_test_fails_alone_with_its_stack(tmp_path):
    """The suite's pytest-timeout settings (pyproject.toml; only the limit is shortened here) work under gevent:
    the hanging test fails with a timeout and where it hung, and the run goes on."""
    options = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    assert 0 < options["timeout"] <= 300
    (tmp_path / "test_hanging.py").write_text(HANGING_TESTS)
    completed = subprocess.run(
        [sys.executable, "-m", "pytest", "-c", str(ROOT / "pyproject.toml"), "--rootdir", str(tmp_path),
         "-o", "timeout=2", "-p", "no:randomly", str(tmp_path / "test_hanging.py")],
        capture_output=True, text=True, timeout=60, cwd=tmp_path,
    )
    assert "1 failed, 1 passed" in completed.stdout, completed.stdout[-3000:]
    assert "Timeout >2.0s" in completed.stdout.replace("(", "").replace(")", "")  # pytest-timeout's words vary
    assert "Event().wait()" in completed.stdout  # the line that hung
