"""Client tokens on the Flask host: with a token configured, the API and the gateway require it."""

from __future__ import annotations

import pytest

from rivetgreen import setup
from tests.compat.actors import ACTORS

TOKEN = "t0ken"


@pytest.fixture
def registry(tmp_path):
    registry = setup(*ACTORS, data_dir=str(tmp_path / "data"), token=TOKEN)
    yield registry
    registry.shutdown()


def increment_url(query: str = "") -> str:
    return f"/gateway/counter/action/increment?rvt-namespace=default&rvt-method=getOrCreate&rvt-key=a{query}"


BODY = {"json": {"args": [1]}, "headers": {"x-rivet-encoding": "json"}}


def error_of(response):
    body = response.get_json()
    return response.status_code, body["group"], body["code"]


def test_the_api_needs_the_token(client):
    assert error_of(client.put("/actors", json={"name": "counter", "key": "a"})) == (401, "api", "unauthorized")
    wrong = client.put("/actors", json={"name": "counter", "key": "a"}, headers={"Authorization": "Bearer nope"})
    assert error_of(wrong) == (401, "api", "unauthorized")
    right = client.put("/actors", json={"name": "counter", "key": "a"}, headers={"Authorization": f"Bearer {TOKEN}"})
    assert right.status_code == 200 and right.get_json()["created"] is True
    assert client.get("/metadata").status_code == 200  # clients call it first; it stays open


def test_the_gateway_needs_the_token_in_any_of_the_clients_places(client):
    assert error_of(client.post(increment_url(), **BODY)) == (401, "api", "unauthorized")
    assert client.post(increment_url(f"&rvt-token={TOKEN}"), **BODY).get_json() == {"output": 1}
    headers = {**BODY["headers"], "x-rivet-token": TOKEN}
    assert client.post(increment_url(), json=BODY["json"], headers=headers).get_json() == {"output": 2}
    actor_id = client.put(
        "/actors", json={"name": "counter", "key": "a"}, headers={"Authorization": f"Bearer {TOKEN}"}
    ).get_json()["actor"]["actor_id"]
    assert client.post(f"/gateway/{actor_id}@{TOKEN}/action/increment", **BODY).get_json() == {"output": 3}
    assert error_of(client.post(f"/gateway/{actor_id}@wrong/action/increment", **BODY))[0] == 401
    assert error_of(client.post(f"/gateway/{actor_id}/action/increment", **BODY))[0] == 401


def test_inspector_routes_keep_their_own_token(client, registry):
    handle = registry.get_or_create("counter", ["a"])
    handle.getCount()
    response = client.get(f"/gateway/{handle.resolve()}/inspector/state")  # no host token: the inspector decides
    assert error_of(response) == (401, "inspector", "unauthorized")


def test_without_a_token_access_is_open(tmp_path, monkeypatch):
    monkeypatch.delenv("RIVETGREEN_TOKEN", raising=False)
    open_registry = setup(*ACTORS, data_dir=str(tmp_path / "open"))
    try:
        client = open_registry.flask_app().test_client()
        assert client.post(increment_url(), **BODY).get_json() == {"output": 1}
    finally:
        open_registry.shutdown()


def test_the_python_client_presents_its_token(port):
    from rivetgreen.client import Client
    from rivetgreen.errors import RivetError

    with Client(f"http://127.0.0.1:{port}", token=TOKEN, timeout=10) as client:
        handle = client.counter.get_or_create(["py"])
        assert handle.increment(2) == 2
        assert client.counter.get_for_id(handle.resolve()).increment(1) == 3
        with handle.connect() as conn:
            assert conn.increment(1) == 4
    with Client(f"http://127.0.0.1:{port}", token="wrong", timeout=10) as client:
        with pytest.raises(RivetError) as caught:
            client.counter.get_or_create(["py"]).increment(1)
        assert (caught.value.group, caught.value.code) == ("api", "unauthorized")
