"""The official client (npm rivetkit@2.3.19) with actor keys outside Latin-1 (``["日本"]``, ``["😀"]``): every HTTP
action answered a plain-text 500 before, because the ``x-rivet-actor-key`` response header could not be encoded."""

from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path

import gevent.subprocess
import pytest

SCRIPT = Path(__file__).with_name("unicode_keys.mjs")


@pytest.mark.parametrize("encoding", ["bare", "cbor", "json"])
def test_unicode_keys_through_the_official_client(node_client, endpoint, encoding):
    shutil.copy(SCRIPT, node_client / SCRIPT.name)
    completed = gevent.subprocess.run(
        ["node", SCRIPT.name, endpoint, encoding, uuid.uuid4().hex[:8]],
        cwd=node_client, capture_output=True, text=True, timeout=60, env={**os.environ, "RIVET_LOG_LEVEL": "error"},
    )
    lines = [line for line in completed.stdout.splitlines() if line.startswith("{")]
    assert lines, (completed.stdout, completed.stderr[-2000:])
    outcome = json.loads(lines[-1])
    assert outcome["ok"], outcome
    for name in ("japanese", "emoji", "single"):
        assert outcome["result"][name] == {"viaHttp": 1, "viaConnection": 3, "viaGet": 3, "viaId": 3}, name
