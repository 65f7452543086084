"""CORS on the Flask host: only rivetgreen's routes (its Blueprint) get CORS headers, credentials only for listed
origins, and the URL prefix option moves every rivetgreen route."""

from __future__ import annotations

import pytest
from flask import Flask, jsonify

from rivetgreen import setup
from rivetgreen.client import Client
from rivetgreen.server import init_app
from rivetgreen.server.cors import ORIGINS_ENV
from rivetgreen.server.serve import make_server
from tests.compat.actors import ACTORS
from tests.test_server import query

APP_ORIGIN = "https://app.example"
EVIL_ORIGIN = "https://evil.example"
ACTION = {"json": {"args": [1]}, "headers": {"x-rivet-encoding": "json"}}


@pytest.fixture
def registry(tmp_path, monkeypatch):
    monkeypatch.delenv(ORIGINS_ENV, raising=False)
    monkeypatch.delenv("RIVETGREEN_TOKEN", raising=False)
    registry = setup(*ACTORS, data_dir=str(tmp_path / "data"))
    yield registry
    registry.shutdown()


def user_app(registry, **options) -> Flask:
    """A user's app with its own cookie-authenticated route, and rivetgreen added to it."""
    app = Flask("user-app")

    @app.get("/me")
    def me():
        return jsonify({"user": "alice", "session": "from-a-cookie"})

    init_app(app, registry, **options)
    return app


def cors_headers(response) -> dict[str, str]:
    return {name: value for name, value in response.headers.items() if name.lower().startswith("access-control-")}


def preflight(client, url: str, origin: str, method: str = "POST"):
    return client.options(url, headers={
        "Origin": origin, "Access-Control-Request-Method": method,
        "Access-Control-Request-Headers": "content-type,x-rivet-encoding",
    })


@pytest.mark.parametrize("options", [{}, {"cors_origins": [APP_ORIGIN]}, {"cors_origins": ["*", APP_ORIGIN]}])
def test_the_users_own_route_gets_no_cors_headers(registry, options):
    client = user_app(registry, **options).test_client()
    for origin in (EVIL_ORIGIN, APP_ORIGIN):
        response = client.get("/me", headers={"Origin": origin})
        assert response.get_json()["user"] == "alice"
        assert cors_headers(response) == {}
        assert cors_headers(preflight(client, "/me", origin, "GET")) == {}
    # while rivetgreen's own routes in the same app do answer browsers
    assert "Access-Control-Allow-Origin" in client.get("/metadata", headers={"Origin": APP_ORIGIN}).headers


def test_by_default_any_origin_may_read_without_credentials(registry):
    client = user_app(registry).test_client()
    response = client.post(query("counter", "/action/increment", ["cors"]), headers={
        **ACTION["headers"], "Origin": EVIL_ORIGIN}, json=ACTION["json"])
    assert response.get_json() == {"output": 1}
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert "Access-Control-Allow-Credentials" not in response.headers
    answer = preflight(client, query("counter", "/action/increment", ["cors"]), EVIL_ORIGIN)
    assert answer.headers["Access-Control-Allow-Origin"] == "*"
    assert "Access-Control-Allow-Credentials" not in answer.headers


def test_an_unlisted_origin_gets_nothing_when_origins_are_listed(registry):
    client = user_app(registry, cors_origins=[APP_ORIGIN]).test_client()
    url = query("counter", "/action/increment", ["listed"])
    response = client.post(url, headers={**ACTION["headers"], "Origin": EVIL_ORIGIN}, json=ACTION["json"])
    assert response.status_code == 200  # the browser, not the server, withholds the answer from the page
    assert cors_headers(response) == {}
    assert cors_headers(preflight(client, url, EVIL_ORIGIN)) == {}
    assert "Origin" in response.headers["Vary"]  # a cache must not hand one origin's answer to another


def test_a_listed_origin_gets_preflight_and_request_with_credentials(registry):
    client = user_app(registry, cors_origins=[APP_ORIGIN + "/"]).test_client()
    url = query("counter", "/action/increment", ["listed"])
    answer = preflight(client, url, APP_ORIGIN)
    assert answer.status_code == 204
    assert answer.headers["Access-Control-Allow-Origin"] == APP_ORIGIN
    assert answer.headers["Access-Control-Allow-Credentials"] == "true"
    assert "POST" in answer.headers["Access-Control-Allow-Methods"]
    assert answer.headers["Access-Control-Allow-Headers"] == "content-type,x-rivet-encoding"
    assert registry.engine.directory.list("counter") == []  # a preflight is not the call: nothing was created
    response = client.post(url, headers={**ACTION["headers"], "Origin": APP_ORIGIN}, json=ACTION["json"])
    assert response.get_json() == {"output": 1}
    assert response.headers["Access-Control-Allow-Origin"] == APP_ORIGIN
    assert response.headers["Access-Control-Allow-Credentials"] == "true"
    # with credentials "*" would name a header literally, so the answer's own headers are listed
    assert "x-rivet-actor" in response.headers["Access-Control-Expose-Headers"].split(", ")
    api = preflight(client, "/actors?namespace=default", APP_ORIGIN, "PUT")
    assert api.status_code in (200, 204)
    assert api.headers["Access-Control-Allow-Origin"] == APP_ORIGIN


def test_origins_from_the_environment_and_an_empty_list_turns_cors_off(registry, monkeypatch):
    monkeypatch.setenv(ORIGINS_ENV, "https://a.example, https://b.example")
    client = user_app(registry).test_client()
    for origin in ("https://a.example", "https://b.example"):
        response = client.get("/metadata", headers={"Origin": origin})
        assert (response.headers["Access-Control-Allow-Origin"], response.headers["Access-Control-Allow-Credentials"]) \
            == (origin, "true")
    assert cors_headers(client.get("/metadata", headers={"Origin": EVIL_ORIGIN})) == {}
    monkeypatch.delenv(ORIGINS_ENV)
    closed = Flask("closed")
    init_app(closed, registry, cors_origins=[])
    assert cors_headers(closed.test_client().get("/metadata", headers={"Origin": APP_ORIGIN})) == {}


def test_a_url_prefix_moves_every_rivetgreen_route(registry):
    client = user_app(registry, url_prefix="/rivet").test_client()
    assert client.get("/rivet/metadata").get_json()["runtime"] == "rivetkit"
    assert client.get("/metadata").status_code == 404
    url = query("counter", "/action/increment", ["prefixed"])
    assert client.post("/rivet" + url, **ACTION).get_json() == {"output": 1}
    assert client.post(url, **ACTION).status_code == 404
    token = client.application.extensions["rivetgreen"].admin_token
    assert client.get(f"/rivet/inspector/?token={token}").status_code == 200
    listing = client.get("/rivet/inspector/api/actors", headers={"Authorization": f"Bearer {token}"}).get_json()
    assert [actor["key"] for actor in listing["actors"]] == [["prefixed"]]
    assert client.get("/me", headers={"Origin": EVIL_ORIGIN}).get_json()["user"] == "alice"


def test_the_python_client_works_under_a_url_prefix(registry):
    server = make_server(user_app(registry, url_prefix="/rivet"), "127.0.0.1", 0)
    try:
        with Client(f"http://127.0.0.1:{server.server_port}/rivet", timeout=10) as client:
            handle = client.counter.get_or_create(["py-prefix"])
            assert handle.increment(2) == 2
            with handle.connect() as conn:  # the WebSocket under the prefix too
                assert conn.increment(1) == 3
    finally:
        server.stop(timeout=5)
