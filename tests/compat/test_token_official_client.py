"""The official client with a token, against a host that requires one."""

from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path

import gevent.subprocess
import pytest

from rivetgreen import setup
from rivetgreen.server.serve import make_server
from tests.compat.actors import ACTORS

SCRIPT = Path(__file__).with_name("token.mjs")
TOKEN = "s3cret-token"


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory):
    registry = setup(*ACTORS, data_dir=str(tmp_path_factory.mktemp("compat-token")), token=TOKEN)
    server = make_server(registry.flask_app(), "127.0.0.1", 0)
    yield f"http://127.0.0.1:{server.server_port}"
    server.stop(timeout=5)
    registry.shutdown()


@pytest.mark.parametrize("encoding", ["bare", "json"])
def test_official_client_with_the_right_token_works_and_a_wrong_one_is_refused(node_client, endpoint, encoding):
    shutil.copy(SCRIPT, node_client / SCRIPT.name)
    completed = gevent.subprocess.run(
        ["node", SCRIPT.name, endpoint, encoding, TOKEN, f"token-{uuid.uuid4().hex[:8]}"],
        cwd=node_client, capture_output=True, text=True, timeout=60, env={**os.environ, "RIVET_LOG_LEVEL": "error"},
    )
    outcome = json.loads([line for line in completed.stdout.splitlines() if line.startswith("{")][-1])
    assert outcome["ok"], outcome
    result = outcome["result"]
    assert (result["viaQuery"], result["viaId"], result["viaSocket"], result["createdCount"]) == (1, 2, 3, 5)
    assert (result["refused"]["group"], result["refused"]["code"]) == ("api", "unauthorized")
