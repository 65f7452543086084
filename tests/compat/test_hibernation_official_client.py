"""The official client across its actor's sleep: the connection hibernates and the client never notices."""

from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path

import gevent
import gevent.subprocess
import pytest

from rivetgreen import setup
from rivetgreen.server.serve import make_server
from tests.compat.actors import ACTORS

SCRIPT = Path(__file__).with_name("hibernation.mjs")
WAIT = 20.0


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    registry = setup(*ACTORS, data_dir=str(tmp_path_factory.mktemp("compat-hibernation")))
    server = make_server(registry.flask_app(), "127.0.0.1", 0)
    yield registry, f"http://127.0.0.1:{server.server_port}"
    server.stop(timeout=5)
    registry.shutdown()


def read_json_line(process) -> dict:
    with gevent.Timeout(WAIT, AssertionError("the node client printed nothing in time")):
        while True:
            line = process.stdout.readline()
            if not line:
                raise AssertionError(f"node exited early: {process.stderr.read()[-3000:]}")
            if line.startswith("{"):
                return json.loads(line)


@pytest.mark.parametrize("encoding", ["bare", "cbor", "json"])
def test_official_client_connection_survives_its_actors_sleep(node_client, live, encoding):
    registry, endpoint = live
    shutil.copy(SCRIPT, node_client / SCRIPT.name)
    key = f"hibernate-{encoding}-{uuid.uuid4().hex[:8]}"
    process = gevent.subprocess.Popen(
        ["node", SCRIPT.name, endpoint, encoding, key], cwd=node_client, text=True,
        stdin=gevent.subprocess.PIPE, stdout=gevent.subprocess.PIPE, stderr=gevent.subprocess.PIPE,
    )
    try:
        assert read_json_line(process) == {"ready": True}
        actor_id = registry.get_or_create("counter", [key]).resolve()
        registry.sleep(actor_id)
        assert actor_id not in registry.engine.instances
        assert registry.engine.held_connections(actor_id)  # the socket is held open while the actor sleeps
        process.stdin.write("slept\n")
        process.stdin.flush()
        outcome = read_json_line(process)
        assert outcome["ok"], outcome
        result = outcome["result"]
        assert (result["first"], result["second"]) == (1, 2)
        assert result["events"] == [1, 2]
        assert result["opens"] == 1 and result["closesBeforeDispose"] == 0  # never reconnected
        assert actor_id in registry.engine.instances  # the call woke it
    finally:
        process.kill()
        process.wait(timeout=WAIT)
