"""``rivetgreen serve MODULE:ATTRIBUTE``, run as a user runs it: a real process, reached over HTTP by our Python
client, stopped with SIGTERM. A command line that cannot run ends with one line on stderr and exit status 2."""

from __future__ import annotations

import configparser
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rivetgreen.client import Client
from tests import test_exits
from tests.test_exits import APP_MODULE, PROCESS_TIMEOUT, REPO, process_env, stored_count

start_host = test_exits.start_host  # the fixture: a server in a subprocess, killed after the test if still running

# The user's module: a registry held by a module attribute (built at import time, so it reads the data directory
# the command sets).
USER_MODULE = APP_MODULE.replace("app = setup(counter).flask_app()", "registry = setup(counter)")


def console_script(directory: Path) -> Path:
    """The ``rivetgreen`` script pip makes from setup.cfg's ``console_scripts`` entry (the same wrapper code)."""
    config = configparser.ConfigParser()
    config.read(REPO / "setup.cfg")
    scripts = config["options.entry_points"]["console_scripts"].strip().splitlines()
    entries = {name.strip(): target.strip() for name, target in (line.split("=", 1) for line in scripts)}
    module, function = entries["rivetgreen"].split(":")
    directory.mkdir()
    script = directory / "rivetgreen"
    script.write_text(f"import sys\nfrom {module} import {function}\nsys.exit({function}())\n")
    return script


def test_console_script_serves_a_module_registry_and_exits_0_on_sigterm(tmp_path: Path, start_host: Any) -> None:
    (tmp_path / "myapp.py").write_text(USER_MODULE)
    data_dir = tmp_path / "data"
    # The script lives in another folder (so sys.path starts there, as for an installed script); it runs in the
    # folder that holds the user's module, which must be found there.
    script = console_script(tmp_path / "bin")
    command = [sys.executable, str(script), "serve", "myapp:registry", "--port", "0", "--data-dir", str(data_dir)]
    host = start_host(command, None)
    with Client(host.url()) as client:
        assert client.counter.get_or_create(["a"]).increment(3) == 3
    assert host.stop(signal.SIGTERM) == 0, host.log()
    assert "Traceback" not in host.log()
    assert stored_count(data_dir) == 3  # saved on the way out (before the save throttle), in --data-dir


def test_serve_calls_a_function_that_returns_the_registry(tmp_path: Path, start_host: Any) -> None:
    data_dir = tmp_path / "data"
    host = start_host([sys.executable, "-m", "rivetgreen", "serve", "app:registry", "--port", "0"], data_dir)
    with Client(host.url()) as client:
        assert client.counter.get_or_create(["a"]).increment(4) == 4  # the demo app's counter
    assert host.stop(signal.SIGTERM) == 0, host.log()
    assert (data_dir / "directory.sqlite").exists()  # RIVETGREEN_DATA_DIR, as the registry reads it


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A loopback port another socket is listening on."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        yield listener.getsockname()[1]


def run_command(tmp_path: Path, *arguments: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", *arguments], cwd=tmp_path, env=process_env(tmp_path / "data"), capture_output=True,
        text=True, timeout=PROCESS_TIMEOUT,
    )


ERROR_CASES = {
    "no-colon": (["app"], "'app' is not MODULE:ATTRIBUTE (for example app:registry)"),
    "empty-attribute": (["app:"], "'app:' is not MODULE:ATTRIBUTE"),
    "two-colons": (["app:registry:x"], "'app:registry:x' is not MODULE:ATTRIBUTE"),
    "missing-module": (["nosuchmodule:registry"], "no module named 'nosuchmodule'"),
    "missing-package": (["nosuchpackage.app:registry"], "no module named 'nosuchpackage'"),
    "missing-attribute": (["app:nosuchattribute"], "module 'app' has no attribute 'nosuchattribute'"),
    "wrong-type": (["app:BANNER"], "app:BANNER is a str, not a rivetgreen Registry or a function returning one"),
    "factory-returns-wrong-type": (
        ["app:create_app"], "app:create_app() returned a flask.app.Flask, not a rivetgreen Registry"
    ),
    "factory-needs-arguments": (["userapp:needs_arguments"], "must be callable without arguments"),
    "explicit-data-dir-conflict": (
        ["userapp:fixed_data_dir", "--data-dir", "elsewhere"], "--data-dir 'elsewhere' cannot apply"
    ),
}


@pytest.mark.parametrize(("arguments", "expected"), ERROR_CASES.values(), ids=ERROR_CASES.keys())
def test_a_bad_target_is_one_line_and_exit_2(tmp_path: Path, arguments: list[str], expected: str) -> None:
    (tmp_path / "userapp.py").write_text(USER_MODULE + (
        "\n\ndef needs_arguments(name):\n    return registry\n"
        "\n\nfixed_data_dir = setup(counter, data_dir='fixed')\n"
    ))
    result = run_command(tmp_path, "rivetgreen", "serve", *arguments, "--port", "0")
    assert result.returncode == 2, result.stderr
    [line] = result.stderr.splitlines()
    assert line.startswith("rivetgreen: error: ") and expected in line


@pytest.mark.parametrize("command", [["rivetgreen", "serve", "app:registry"], ["app"]], ids=["serve", "python-m-app"])
def test_a_taken_port_is_one_line_and_exit_2(tmp_path: Path, taken_port: int, command: list[str]) -> None:
    result = run_command(tmp_path, *command, "--port", str(taken_port))
    assert result.returncode == 2, result.stderr
    assert result.stderr.splitlines() == [
        f"rivetgreen: error: cannot listen on 127.0.0.1:{taken_port}: Address already in use"
    ]
