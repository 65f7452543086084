"""Access before effects: with a client token configured, the API, the gateway and /metrics require it; inspector
routes require the actor's own inspector token. A refused request, on any route family, HTTP or WebSocket, never
creates, starts or wakes an actor."""

from __future__ import annotations

from collections import Counter

import pytest

from rivetgreen import Response, actor, setup
from rivetgreen.inspector import auth as inspector_auth
from tests.compat.actors import ACTORS
from tests.test_server import WsClient, direct, query

TOKEN = "t0ken"
ADMIN_TOKEN = "adm1n"
HOOK_CALLS: Counter[str] = Counter()  # how often the probe actor was created and woken

probe = actor("probe", state={"n": 0})


@probe.on_create
def probe_created(c, input):
    HOOK_CALLS["create"] += 1


@probe.on_wake
def probe_woke(c):
    HOOK_CALLS["wake"] += 1


@probe.action
def bump(c):
    c.state["n"] += 1
    return c.state["n"]


@probe.on_request
def probe_request(c, request):
    return Response("raw")


@probe.on_websocket
def probe_websocket(c, ws, request):
    ws.send("hello")


@pytest.fixture
def registry(tmp_path, monkeypatch):
    monkeypatch.setenv("RIVETGREEN_ADMIN_TOKEN", ADMIN_TOKEN)
    monkeypatch.delenv(inspector_auth.TEST_TOKEN_ENV, raising=False)
    HOOK_CALLS.clear()
    registry = setup(*ACTORS, probe, data_dir=str(tmp_path / "data"), token=TOKEN)
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


# Access before effects ----------------------------------------------------------------------------------------------
# Each route family behind the gateway: (method, actor-relative path, body, whose token it needs).
GATEWAY_ROUTES = [
    ("POST", "/action/bump", b'{"args": []}', "client"),
    ("POST", "/queue/jobs", b'{"body": 1}', "client"),
    ("GET", "/request/anything", b"", "client"),
    ("GET", "/metrics", b"", "client"),
    ("GET", "/health", b"", "client"),
    ("GET", "/inspector/state", b"", "inspector"),
    ("POST", "/inspector/action/bump", b'{"args": []}', "inspector"),
]
WEBSOCKET_ROUTES = [("/connect", "api.unauthorized"), ("/websocket/x", "api.unauthorized"),
                    ("/inspector/connect", "inspector.unauthorized")]
JSON = {"x-rivet-encoding": "json", "content-type": "application/json"}


def assert_refused(response, group: str = "api") -> None:
    """401 in the spec's error shape."""
    assert response.status_code == 401, (response.status_code, response.data[:300])
    body = response.get_json()
    assert set(body) == {"group", "code", "message", "metadata"}
    assert (body["group"], body["code"]) == (group, "unauthorized")


def wrong_credentials(kind: str) -> list[tuple[str, dict[str, str]]]:
    """(query suffix, headers) pairs that must all be refused: none, wrong ones, and the other kind's real token."""
    if kind == "inspector":  # the host's client token does not open an actor's inspector
        client_token = (f"&rvt-token={TOKEN}", {"Authorization": f"Bearer {TOKEN}"})
        return [("", {}), ("", {"Authorization": "Bearer wrong"}), client_token]
    return [("", {}), ("&rvt-token=wrong", {}), ("", {"x-rivet-token": "wrong", "Authorization": "Bearer wrong"})]


def asleep(registry, key: str) -> str:
    """An actor that has run once (it has an inspector token) and is now asleep; the hook counters start at zero."""
    handle = registry.get_or_create("probe", [key])
    handle.bump()
    actor_id = handle.resolve()
    registry.sleep(actor_id)
    HOOK_CALLS.clear()
    return actor_id


def assert_untouched(registry, actor_id: str | None = None) -> None:
    """No probe actor was created (beyond ``actor_id``), and none was started or woken."""
    records = registry.engine.directory.list("probe")
    assert [record.actor_id for record in records] == ([actor_id] if actor_id else [])
    assert not any(record.actor_id in registry.engine.instances for record in records)
    assert HOOK_CALLS == Counter()


@pytest.mark.parametrize("method, path, body, kind", GATEWAY_ROUTES)
def test_a_refused_get_or_create_creates_nothing(client, registry, method, path, body, kind):
    for method_name in ("getOrCreate", "get"):
        for suffix, headers in wrong_credentials(kind):
            url = query("probe", path, ["ghost"], method_name, suffix)
            response = client.open(url, method=method, data=body, headers={**JSON, **headers})
            assert_refused(response, "inspector" if kind == "inspector" else "api")
    assert_untouched(registry)


@pytest.mark.parametrize("method, path, body, kind", GATEWAY_ROUTES)
def test_a_refused_request_does_not_wake_a_sleeping_actor(client, registry, method, path, body, kind):
    actor_id = asleep(registry, "sleepy")
    for suffix, headers in wrong_credentials(kind):
        for url in (query("probe", path, ["sleepy"], "getOrCreate", suffix),
                    query("probe", path, ["sleepy"], "get", suffix),
                    direct(actor_id, path, token="wrong" if suffix else None)):
            response = client.open(url, method=method, data=body, headers={**JSON, **headers})
            assert_refused(response, "inspector" if kind == "inspector" else "api")
    assert_untouched(registry, actor_id)


def test_the_engine_api_refuses_before_touching_any_actor(client, registry):
    actor_id = asleep(registry, "sleepy")
    for headers in ({}, {"Authorization": "Bearer wrong"}):
        assert_refused(client.put("/actors", json={"name": "probe", "key": "new"}, headers=headers))
        assert_refused(client.post("/actors", json={"name": "probe", "key": "new"}, headers=headers))
        assert_refused(client.get("/actors?name=probe&key=sleepy", headers=headers))
        assert_refused(client.delete(f"/actors/{actor_id}", headers=headers))
        assert_refused(client.get("/metrics", headers=headers))  # the host's metrics: the client token guards it
    assert_untouched(registry, actor_id)
    assert client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200


def test_the_inspector_page_refuses_before_touching_any_actor(client, registry):
    actor_id = asleep(registry, "sleepy")
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Bearer {TOKEN}"}):
        assert client.get("/inspector/", headers=headers).status_code == 401
        assert_refused(client.get("/inspector/api/actors", headers=headers), "inspector")
        assert_refused(client.get(f"/inspector/api/actors/{actor_id}", headers=headers), "inspector")
        assert_refused(client.post(f"/inspector/api/actors/{actor_id}/token", headers=headers), "inspector")
    assert_untouched(registry, actor_id)


def test_the_stored_inspector_token_opens_a_sleeping_actor_and_the_page_hands_it_out_without_waking(client, registry):
    actor_id = asleep(registry, "sleepy")
    given = client.post(f"/inspector/api/actors/{actor_id}/token", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    token = given.get_json()["token"]
    assert token == registry.engine.stored_inspector_token(actor_id)
    assert_untouched(registry, actor_id)  # read from storage, not from a woken actor
    response = client.get(f"/gateway/{actor_id}/inspector/state", headers={"Authorization": f"Bearer {token}"})
    assert response.get_json()["state"] == {"n": 1}
    assert HOOK_CALLS == Counter({"wake": 1})  # an admitted request wakes it, as any client's does


@pytest.mark.parametrize("path, reason", WEBSOCKET_ROUTES)
def test_a_refused_websocket_closes_1008_and_touches_no_actor(port, registry, path, reason):
    actor_id = asleep(registry, "sleepy")
    offers = [["rivet"], ["rivet", "rivet_token.wrong", "rivet_inspector_token.wrong"]]
    if reason.startswith("inspector"):
        offers.append(["rivet", f"rivet_token.{TOKEN}"])  # the client token does not open the inspector
    for subprotocols in offers:
        for target in (query("probe", path, ["ghost"]), query("probe", path, ["sleepy"]), direct(actor_id, path)):
            ws = WsClient(port, target, subprotocols)
            code, got_reason, messages = ws.expect_close()
            assert (code, got_reason, messages) == (1008, reason, []), target
    assert_untouched(registry, actor_id)


def test_an_actors_metrics_check_the_metrics_token_before_resolving(tmp_path):
    guarded = setup(probe, data_dir=str(tmp_path / "metrics"), token=TOKEN, metrics_token="m3trics")
    try:
        client = guarded.flask_app().test_client()
        url = query("probe", "/metrics", ["ghost"], extra=f"&rvt-token={TOKEN}")
        response = client.get(url)  # the client token alone is not enough
        assert (response.status_code, response.get_json()["code"]) == (401, "unauthorized")
        assert response.get_json()["group"] == "metrics"
        assert guarded.engine.directory.list("probe") == []
        assert client.get(url, headers={"Authorization": "Bearer m3trics"}).status_code == 200
    finally:
        guarded.shutdown()
