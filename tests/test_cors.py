"""CORS on the Flask host: only rivetgreen's routes (its Blueprint) get CORS headers, credentials only for listed
origins; the gateway refuses browser requests from origins the policy does not allow and keeps the visitor's cookies
from actors when an origin is allowed only without credentials (HTTP and WebSocket); and the URL prefix option moves
every rivetgreen route."""

from __future__ import annotations

from collections import deque

import gevent.socket
import pytest
from flask import Flask, jsonify
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, Request

from rivetgreen import Response, actor, setup
from rivetgreen.client import Client
from rivetgreen.server import init_app
from rivetgreen.server.cors import ORIGINS_ENV
from rivetgreen.server.serve import make_server
from tests.compat.actors import ACTORS
from tests.test_server import TIMEOUT, WsClient, query

APP_ORIGIN = "https://app.example"
EVIL_ORIGIN = "https://evil.example"
ACTION = {"json": {"args": [1]}, "headers": {"x-rivet-encoding": "json"}}


COOKIE = "session=visitor-secret"

# An actor whose raw routes report the cookie they were given, as a cookie-authenticated handler would read it.
cookie_jar = actor("cookieJar")


@cookie_jar.on_request
def cookie_request(c, request):
    return Response(request.headers.get("cookie") or "no cookie")


@cookie_jar.on_websocket
def cookie_websocket(c, ws, request):
    ws.send(request.headers.get("cookie") or "no cookie")


@pytest.fixture
def registry(tmp_path, monkeypatch):
    monkeypatch.delenv(ORIGINS_ENV, raising=False)
    monkeypatch.delenv("RIVETGREEN_TOKEN", raising=False)
    registry = setup(*ACTORS, cookie_jar, data_dir=str(tmp_path / "data"))
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
    assert cors_headers(preflight(client, url, EVIL_ORIGIN)) == {}
    # A "simple" request needs no preflight, and CORS would only hide its answer: it is refused before it runs.
    response = client.post(url, headers={**ACTION["headers"], "Origin": EVIL_ORIGIN}, json=ACTION["json"])
    assert response.status_code == 403
    assert (response.get_json()["group"], response.get_json()["code"]) == ("api", "forbidden_origin")
    assert cors_headers(response) == {}
    assert "Origin" in response.headers["Vary"]  # a cache must not hand one origin's answer to another
    assert registry.engine.directory.list("counter") == []
    same_site = client.post(url, headers={**ACTION["headers"], "Origin": "http://localhost"}, json=ACTION["json"])
    assert same_site.get_json() == {"output": 1}  # a page of this host itself (Host: localhost) is never refused


@pytest.mark.parametrize("origin, cookie", [
    (EVIL_ORIGIN, "no cookie"),  # allowed by "*" only: without credentials
    (APP_ORIGIN, COOKIE),  # listed: with credentials
    ("http://localhost", COOKIE),  # same origin
    (None, COOKIE),  # not a browser
])
def test_cookies_reach_actors_only_from_origins_allowed_credentials(registry, origin, cookie):
    client = user_app(registry, cors_origins=["*", APP_ORIGIN]).test_client()
    client.set_cookie("session", "visitor-secret")
    headers = {"Origin": origin} if origin else {}
    assert client.get(query("cookieJar", "/request/me", ["jar"]), headers=headers).text == cookie


class BrowserSocket(WsClient):
    """A WebSocket opened as a browser page opens one: with its ``Origin`` and the site's cookies."""

    def __init__(self, port: int, target: str, origin: str) -> None:
        self.sock = gevent.socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
        self.ws = WSConnection(ConnectionType.CLIENT)
        self.events = deque()
        self.close_event = None
        headers = [(b"Origin", origin.encode()), (b"Cookie", COOKIE.encode())]
        self._send(self.ws.send(Request(host=f"127.0.0.1:{port}", target=target, subprotocols=["rivet"],
                                        extra_headers=headers)))
        assert isinstance(self._next_event(), AcceptConnection)


def test_websockets_from_other_origins_are_gated_too(registry):
    server = make_server(user_app(registry, cors_origins=["*", APP_ORIGIN]), "127.0.0.1", 0)
    port = server.server_port
    try:
        target = query("cookieJar", "/websocket/", ["jar"])
        assert BrowserSocket(port, target, APP_ORIGIN).receive_message() == COOKIE
        assert BrowserSocket(port, target, f"http://127.0.0.1:{port}").receive_message() == COOKIE
        assert BrowserSocket(port, target, EVIL_ORIGIN).receive_message() == "no cookie"
    finally:
        server.stop(timeout=5)
    server = make_server(user_app(registry, cors_origins=[APP_ORIGIN]), "127.0.0.1", 0)
    try:
        refused = BrowserSocket(server.server_port, query("cookieJar", "/websocket/", ["other"]), EVIL_ORIGIN)
        assert refused.expect_close() == (1008, "api.forbidden_origin", [])
        assert [record.key for record in registry.engine.directory.list("cookieJar")] == [["jar"]]
    finally:
        server.stop(timeout=5)


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


def test_the_engine_api_and_metrics_refuse_unlisted_origins_before_anything_runs(registry):
    """A cross-site page can send a "simple" POST (text/plain) without a preflight: it is refused, not run."""
    client = user_app(registry, cors_origins=[APP_ORIGIN]).test_client()
    body = '{"name": "counter", "key": "from-evil", "runner_name_selector": "default", "crash_policy": "sleep"}'
    for method, path in [("POST", "/actors"), ("PUT", "/actors"), ("GET", "/actors?name=counter"),
                         ("DELETE", "/actors/anything"), ("GET", "/metrics")]:
        response = client.open(path, method=method, data=body, content_type="text/plain",
                               headers={"Origin": EVIL_ORIGIN})
        assert response.status_code == 403, (method, path, response.data)
        assert response.get_json()["code"] == "forbidden_origin"
    assert registry.engine.directory.list("counter") == []
    listed = client.open("/actors", method="POST", data=body, content_type="text/plain", headers={"Origin": APP_ORIGIN})
    assert listed.status_code == 200, listed.data  # the listed origin may
