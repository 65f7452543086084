"""Fixtures for running the official RivetKit client (npm ``rivetkit@2.3.19``) against a live rivetgreen server."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import gevent.subprocess
import pytest

from rivetgreen import setup
from rivetgreen.server.serve import make_server
from tests.compat.actors import ACTORS
from tests.helpers import npm_install

CLIENT_VERSION = "2.3.19"
ROOT = Path(__file__).resolve().parents[2]
NODE_DIR = ROOT / ".cache" / "node"
SCENARIOS = Path(__file__).with_name("scenarios.mjs")


@pytest.fixture(scope="session")
def node_client() -> Path:
    """The directory holding the official client (installed on first use, never committed)."""
    try:
        npm_install(NODE_DIR, "rivetkit", CLIENT_VERSION)
    except RuntimeError as error:
        pytest.fail(str(error))
    # ES modules resolve packages from the script's own folder, so the script runs from the install folder.
    shutil.copy(SCENARIOS, NODE_DIR / SCENARIOS.name)
    return NODE_DIR


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory):
    """A live server on a free loopback port, serving the compat actors."""
    registry = setup(*ACTORS, data_dir=str(tmp_path_factory.mktemp("compat")))
    server = make_server(registry.flask_app(), "127.0.0.1", 0)
    yield f"http://127.0.0.1:{server.server_port}"
    server.stop(timeout=5)
    registry.shutdown()


@pytest.fixture
def run_scenario(node_client, endpoint):
    """Run one scenario of scenarios.mjs; returns its result (fails the test with the client's output if not ok)."""

    def run(encoding: str, scenario: str) -> dict:
        completed = gevent.subprocess.run(
            ["node", SCENARIOS.name, endpoint, encoding, scenario],
            cwd=node_client, capture_output=True, text=True, timeout=60,
            env={**os.environ, "RIVET_LOG_LEVEL": "error"},
        )
        lines = [line for line in completed.stdout.splitlines() if line.startswith("{")]
        if not lines:
            pytest.fail(f"scenario {scenario} ({encoding}) printed no result:\n{completed.stdout}\n{completed.stderr}")
        outcome = json.loads(lines[-1])
        if not outcome["ok"]:
            pytest.fail(f"scenario {scenario} ({encoding}) failed: {outcome}\n{completed.stderr[-3000:]}")
        return outcome["result"]

    return run
