"""State survives a registry restart in a new process, and nothing acknowledged as saved is lost to kill -9."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

from rivetgreen import actor

COUNTER_MODULE = textwrap.dedent(
    """
    import sys
    from rivetgreen import actor, setup

    counter = actor("counter", state={"count": 0, "history": []})

    @counter.action
    def add(c, amount):
        c.state["count"] += amount
        c.state["history"].append(amount)
        return c.state["count"]

    @counter.action
    def add_and_save(c, amount):
        add(c, amount)
        c.save_state(immediate=True)
        c.kv.put("last", str(amount))
        return c.state["count"]

    registry = setup(counter, data_dir=sys.argv[1])
    """
)


def run_child(tmp_path, body: str, *, wait: bool = True) -> subprocess.Popen:
    script = tmp_path / "child.py"
    script.write_text(COUNTER_MODULE + textwrap.dedent(body))
    child = subprocess.Popen(
        [sys.executable, str(script), str(tmp_path / "data")], stdout=subprocess.PIPE, text=True
    )
    if wait:
        assert child.wait(timeout=60) == 0
    return child


def read_count_in_new_process(tmp_path) -> str:
    child = run_child(tmp_path, 'print(registry.get_or_create("counter", ["a"]).add(0), flush=True)\n', wait=False)
    output, _ = child.communicate(timeout=60)
    return output.strip()


def test_state_survives_a_registry_restart_in_a_new_process(tmp_path):
    run_child(tmp_path, 'registry.get_or_create("counter", ["a"]).add(5)\nregistry.shutdown()\n')
    run_child(tmp_path, 'registry.get_or_create("counter", ["a"]).add(2)\nregistry.shutdown()\n')
    assert read_count_in_new_process(tmp_path) == "7"


def test_acknowledged_saves_survive_kill_9(tmp_path):
    child = run_child(
        tmp_path,
        """
        handle = registry.get_or_create("counter", ["a"])
        handle.add_and_save(3)
        print("saved", flush=True)
        import gevent
        gevent.sleep(3600)
        """,
        wait=False,
    )
    assert child.stdout.readline().strip() == "saved"
    os.kill(child.pid, signal.SIGKILL)
    child.wait(timeout=60)
    assert read_count_in_new_process(tmp_path) == "3"


def test_restarted_registry_finds_every_actor(make_registry, tmp_path):
    definition = actor("named", state={"key": None})

    @definition.action
    def remember(c):
        c.state["key"] = c.key
        return c.actor_id

    @definition.action
    def recall(c):
        return c.state["key"]

    data_dir = str(tmp_path / "shared")
    first = make_registry(definition, data_dir=data_dir)
    ids = {name: first.get_or_create("named", [name]).remember() for name in ("a", "b", "c")}
    first.shutdown()
    second = make_registry(definition, data_dir=data_dir)
    for name, actor_id in ids.items():
        assert second.get_or_create("named", [name]).resolve() == actor_id
        assert second.get_for_id(actor_id).recall() == [name]
