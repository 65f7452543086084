"""The official client against a host that serves rivetgreen under a URL prefix: ``createClient(".../rivet")``."""

from __future__ import annotations

import pytest

from rivetgreen import setup
from rivetgreen.server.serve import make_server
from tests.compat.actors import ACTORS

PREFIX = "/rivet"


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory):
    """Overrides the compat endpoint: the same actors, under ``PREFIX``."""
    registry = setup(*ACTORS, data_dir=str(tmp_path_factory.mktemp("compat-prefix")))
    server = make_server(registry.flask_app(url_prefix=PREFIX), "127.0.0.1", 0)
    yield f"http://127.0.0.1:{server.server_port}{PREFIX}"
    server.stop(timeout=5)
    registry.shutdown()


def test_actions_connections_and_addressing_under_a_prefix(run_scenario):
    assert run_scenario("bare", "actions")["second"] == 7
    events = run_scenario("bare", "events")
    assert (events["viaConn"], events["seen"]) == (1, [1, 11])
    addressing = run_scenario("bare", "addressing")
    assert addressing["viaId"] == 7 and addressing["sameId"]


def test_raw_fetch_and_raw_websocket_under_a_prefix(run_scenario):
    result = run_scenario("json", "raw")
    assert result["fetched"]["body"]["path"] == "/hello/world"
    assert result["replies"] == ["echo:ping", "binary:3"]
