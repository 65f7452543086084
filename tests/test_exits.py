"""Exits lose nothing: a script that ends, ``python -m app`` on SIGTERM or Ctrl-C, and gunicorn's gevent worker
save the changes of their last moments (the final save of every awake actor), exit 0 and print no traceback.

Each process test runs a real interpreter in a subprocess, as a user would, on a temporary data directory. The
actors used here have a long ``state_save_interval`` (or are stopped well within the default 1 s), so a change can
only be on disk if the exit saved it.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import gevent
import gevent.event
import pytest

from rivetgreen import actor, setup
from rivetgreen.actor.config import ActorOptions
from rivetgreen.actor.definition import ActorDefinition
from rivetgreen.client import Client
from rivetgreen.errors import RivetError

REPO = Path(__file__).resolve().parents[1]
PROCESS_TIMEOUT = 60.0  # seconds for any one process to start, answer or exit
SLEEP_GRACE_PERIOD = ActorOptions().sleep_grace_period
LISTENING = re.compile(r"istening (?:at: |on )(http://127\.0\.0\.1:\d+)")

counter = actor("counter", state={"count": 0}, options={"state_save_interval": 600.0})


@counter.action
def increment(c, amount=1):
    c.state["count"] += amount
    return c.state["count"]


@counter.action
def get(c):
    return c.state["count"]


# The same counter, as an app module a server process imports (gunicorn).
APP_MODULE = '''
from rivetgreen import actor, setup

counter = actor("counter", state={"count": 0}, options={"state_save_interval": 600.0})


@counter.action
def increment(c, amount=1):
    c.state["count"] += amount
    return c.state["count"]


app = setup(counter).flask_app()
'''


def process_env(data_dir: Path | None) -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    env.pop("RIVETGREEN_DATA_DIR", None)
    if data_dir is not None:
        env["RIVETGREEN_DATA_DIR"] = str(data_dir)
    return env


def stored_count(data_dir: Path, definition: ActorDefinition = counter) -> int:
    """The count of actor ``definition["a"]`` as a new registry on the same directory finds it."""
    with setup(definition, data_dir=str(data_dir)) as registry:
        return registry.get_or_create(definition.name, ["a"]).get()


class HostProcess:
    """A server in a subprocess; its log (stderr) goes to a file the test reads."""

    def __init__(self, command: list[str], cwd: Path, env: dict[str, str], log_path: Path) -> None:
        self.log_path = log_path
        with open(log_path, "wb") as log_file:
            self.process = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=log_file)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def url(self) -> str:
        deadline = time.monotonic() + PROCESS_TIMEOUT
        while time.monotonic() < deadline:
            match = LISTENING.search(self.log())
            if match:
                return match.group(1)
            assert self.process.poll() is None, f"the server exited early:\n{self.log()}"
            time.sleep(0.05)  # bounded poll of an observable condition: the log line
        raise AssertionError(f"the server never listened:\n{self.log()}")

    def stop(self, signal_number: int) -> int:
        """Send the signal and wait for the exit; its status. ``stop_seconds`` says how long the exit took."""
        started = time.monotonic()
        self.process.send_signal(signal_number)
        status = self.process.wait(PROCESS_TIMEOUT)
        self.stop_seconds = time.monotonic() - started
        return status

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(PROCESS_TIMEOUT)


@pytest.fixture
def start_host(tmp_path: Path) -> Any:
    started: list[HostProcess] = []

    def start(command: list[str], data_dir: Path, **env: str) -> HostProcess:
        environment = {**process_env(data_dir), **env}
        host = HostProcess(command, tmp_path, environment, tmp_path / f"host-{len(started)}.log")
        started.append(host)
        return host

    yield start
    for host in started:
        host.kill()


def quick_start_code() -> str:
    """The README's quick start, exactly as a new user would copy it."""
    section = (REPO / "README.rst").read_text().split("\nQuick start\n", 1)[1]
    match = re.search(r"\.\. code-block:: python\n\n((?:    .*\n|\n)+)", section)
    assert match is not None, "the quick start has no python code block"
    return textwrap.dedent(match.group(1))


def test_readme_quick_start_keeps_its_count_across_runs(tmp_path: Path) -> None:
    script = tmp_path / "quick_start.py"
    script.write_text(quick_start_code())
    printed = []
    for _ in range(3):
        result = subprocess.run(
            [sys.executable, str(script)], cwd=tmp_path, env=process_env(None), capture_output=True, text=True,
            timeout=PROCESS_TIMEOUT,
        )
        assert result.returncode == 0, result.stderr
        assert "Traceback" not in result.stderr, result.stderr
        printed.append(result.stdout.split())
    assert printed == [["6"], ["12"], ["18"]]


@pytest.mark.parametrize(
    ("ending", "exit_code"),
    [("pass", 0), ("raise SystemExit(3)", 3), ("raise RuntimeError('the script failed')", 1)],
    ids=["returns", "sys.exit", "uncaught-exception"],
)
def test_a_script_that_never_shuts_down_keeps_its_last_change(tmp_path: Path, ending: str, exit_code: int) -> None:
    script = tmp_path / "script.py"
    script.write_text(APP_MODULE.replace("app = setup(counter).flask_app()", "") + textwrap.dedent(f'''
        print(setup(counter).get_or_create("counter", ["a"]).increment(4))  # not even a reference to the registry
        import gc
        gc.collect()
        {ending}
    '''))
    data_dir = tmp_path / "data"
    result = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, env=process_env(data_dir), capture_output=True, text=True,
        timeout=PROCESS_TIMEOUT,
    )
    assert (result.returncode, result.stdout.strip()) == (exit_code, "4"), result.stderr
    assert stored_count(data_dir) == 4


def test_registry_as_context_manager_saves_on_exit(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    with setup(counter, data_dir=str(data_dir)) as registry:
        handle = registry.get_or_create("counter", ["a"])
        assert handle.increment(3) == 3
    assert not registry.engine.instances  # every actor is asleep
    assert stored_count(data_dir) == 3


def test_work_arriving_during_shutdown_is_refused_and_wakes_nothing(tmp_path: Path) -> None:
    slow_sleeper = actor("slowSleeper", state={"count": 0})
    sleeping, finish_sleep = gevent.event.Event(), gevent.event.Event()
    slow_sleeper.action(increment)
    slow_sleeper.action(get)

    @slow_sleeper.on_sleep
    def wait_to_finish(c):
        sleeping.set()
        finish_sleep.wait()

    registry = setup(slow_sleeper, data_dir=str(tmp_path / "data"))
    handle = registry.get_or_create("slowSleeper", ["a"])
    assert handle.increment(1) == 1
    shutdown = gevent.spawn(registry.shutdown)
    sleeping.wait()
    late = gevent.spawn(handle.increment, 10)  # held while the actor falls asleep, as the engine does
    gevent.idle()
    finish_sleep.set()
    shutdown.get()
    with pytest.raises(RivetError) as refused:
        late.get()
    assert (refused.value.group, refused.value.code) == ("registry", "shut_down")
    assert not registry.engine.instances  # no new generation was started behind the shutdown's back
    assert stored_count(tmp_path / "data", slow_sleeper) == 1


@pytest.mark.parametrize("signal_number", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_python_m_app_saves_the_last_change_on_signal(tmp_path: Path, start_host: Any, signal_number: int) -> None:
    data_dir = tmp_path / "data"
    command = [sys.executable, "-m", "app", "--port", "0"]

    host = start_host(command, data_dir)
    with Client(host.url()) as client:
        assert client.counter.get_or_create(["a"]).increment(10) == 10
    assert host.stop(signal_number) == 0, host.log()  # right after the change: before the 1 s save throttle
    assert host.stop_seconds < SLEEP_GRACE_PERIOD  # the actors' grace bounds the exit (here it is immediate)
    assert "Traceback" not in host.log()
    assert f"{signal.Signals(signal_number).name} received: shutting down" in host.log()

    again = start_host(command, data_dir)
    with Client(again.url()) as client:
        assert client.counter.get_or_create(["a"]).getCount() == 10
    assert again.stop(signal.SIGTERM) == 0, again.log()


@pytest.mark.parametrize("signal_number", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_gunicorn_gevent_worker_saves_the_last_change_on_exit(
    tmp_path: Path, start_host: Any, signal_number: int
) -> None:
    (tmp_path / "exitapp.py").write_text(APP_MODULE)
    data_dir = tmp_path / "data"
    command = [
        sys.executable, "-m", "gunicorn", "-k", "gevent", "-w", "1", "-b", "127.0.0.1:0", "exitapp:app",
    ]
    host = start_host(command, data_dir, XDG_RUNTIME_DIR=str(tmp_path))  # gunicorn >= 25.1 puts its socket there
    with Client(host.url()) as client:
        assert client.counter.get_or_create(["a"]).increment(7) == 7
    assert host.stop(signal_number) == 0, host.log()
    assert "Traceback" not in host.log()
    assert stored_count(data_dir) == 7
