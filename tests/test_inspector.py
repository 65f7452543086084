"""The per-actor inspector (core.md §8) and the host's admin API for the inspector page.

HTTP routes go through Flask's test client (the gateway path ``/gateway/{id}/inspector/...``); the live WebSocket
runs against a real gevent server on loopback, spoken to by ``rivetgreen.client.websocket`` (every receive is
bounded); the idle-sleep interplay runs in-process on the virtual clock with a fake socket.
"""

from __future__ import annotations

import json
from typing import Any

import gevent
import gevent.queue
import pytest

import rivetgreen.inspector as inspector_package
from rivetgreen import UserError, actor, setup
from rivetgreen.client.websocket import WebSocket
from rivetgreen.inspector import auth
from rivetgreen.inspector import websocket as inspector_ws
from rivetgreen.registry.router import ActorRouter
from rivetgreen.tokens import bearer_token, tokens_match

TIMEOUT = 10.0

# Actors -----------------------------------------------------------------------------------------------------------

inspected = actor("inspected", state={"count": 0, "tags": []})


@inspected.action
def increment(c, amount=1):
    c.state["count"] += amount
    return c.state["count"]


@inspected.action
def get(c):
    return c.state["count"]


@inspected.action
def whoami(c):
    return {"conns": len(c.conns), "params": c.conn.params}


@inspected.action
def fail(c):
    raise UserError("no luck", code="unlucky", metadata={"n": 7})


@inspected.action
def crash(c):
    raise RuntimeError("secret detail")


@inspected.action
def echo(c, *args):
    return list(args)


@inspected.action
def later(c, seconds, action, *args):
    return c.schedule.after(seconds, action, *args)


@inspected.action
def make_table(c, rows):
    c.db.execute("CREATE TABLE IF NOT EXISTS items (id INTEGER PRIMARY KEY, name TEXT, data BLOB)")
    with c.db.transaction() as tx:
        for index in range(rows):
            tx.execute("INSERT INTO items (name, data) VALUES (?, ?)", (f"item-{index}", bytes([index % 256])))
    return rows


@inspected.action
def send_job(c, body):
    c.queue.send("jobs", body)


stateless = actor("stateless")


@stateless.action
def ping(c):
    return "pong"


sleepy = actor("sleepy", state={"n": 0}, options={"sleep_timeout": 5.0})


@sleepy.action
def bump(c):
    c.state["n"] += 1
    return c.state["n"]


# Fixtures and helpers ---------------------------------------------------------------------------------------------

@pytest.fixture
def registry(tmp_path):
    registry = setup(inspected, stateless, data_dir=str(tmp_path / "data"))
    yield registry
    registry.shutdown()


def actor_id(registry, name="inspected", key="a") -> str:
    return registry.get_or_create(name, [key]).resolve()


def token_of(registry, actor_id_: str) -> str:
    """The actor's inspector token (wakes it, as the admin API does)."""
    return registry.engine.running_task(actor_id_).inspector_token


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


class Inspector:
    """The inspector HTTP routes of one actor through the test client."""

    def __init__(self, client, registry, name="inspected", key="a") -> None:
        self.client = client
        self.id = actor_id(registry, name, key)
        self.token = token_of(registry, self.id)

    def url(self, path: str) -> str:
        return f"/gateway/{self.id}/inspector{path}"

    def call(self, method: str, path: str, body: Any = None, token: str | None = None, raw: bytes | None = None):
        data = raw if raw is not None else (None if body is None else json.dumps(body))
        return self.client.open(self.url(path), method=method, data=data, headers={
            **bearer(token or self.token), "content-type": "application/json"})

    def ok(self, method: str, path: str, body: Any = None) -> Any:
        response = self.call(method, path, body)
        assert response.status_code == 200, (response.status_code, response.data[:500])
        assert response.headers["content-type"].startswith("application/json")
        return response.get_json()


def assert_error(response, status: int, group: str, code: str) -> dict[str, Any]:
    assert response.status_code == status, (response.status_code, response.data[:500])
    assert response.headers["content-type"].startswith("application/json")
    body = response.get_json()
    assert (body["group"], body["code"]) == (group, code), body
    assert isinstance(body["message"], str) and body["message"]
    assert "metadata" in body
    return body


@pytest.fixture
def inspector(client, registry) -> Inspector:
    return Inspector(client, registry)


# Auth (core.md §8.1) ------------------------------------------------------------------------------------------------

ROUTES = [
    ("GET", "/state"), ("PATCH", "/state"), ("GET", "/connections"), ("GET", "/rpcs"), ("POST", "/action/increment"),
    ("GET", "/queue"), ("POST", "/queue"), ("DELETE", "/queue"), ("GET", "/schedules"),
    ("GET", "/database/schema"), ("GET", "/database/rows?table=items"), ("POST", "/database/execute"),
    ("GET", "/summary"), ("GET", "/traces"), ("GET", "/workflow-history"), ("GET", "/no-such-route"),
]


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_every_route_refuses_a_missing_or_wrong_token(inspector, client, method, path):
    before = inspector.ok("GET", "/state")
    for headers in ({}, bearer("wrong"), bearer(inspector.token + "x"), {"Authorization": inspector.token},
                    {"Authorization": f"Basic {inspector.token}"}, bearer("")):
        response = client.open(inspector.url(path), method=method, data=json.dumps({"state": {"count": 99}}),
                               headers={**headers, "content-type": "application/json"})
        body = assert_error(response, 401, "inspector", "unauthorized")
        assert body["message"] == "Inspector request requires a valid bearer token"
    assert inspector.ok("GET", "/state") == before  # nothing was changed by a refused request


def test_tokens_are_per_actor_and_survive_sleep(client, registry):
    first, second = Inspector(client, registry, key="one"), Inspector(client, registry, key="two")
    assert first.token != second.token and len(first.token) >= 40
    assert_error(first.call("GET", "/state", token=second.token), 401, "inspector", "unauthorized")
    registry.sleep(first.id)
    assert first.id not in registry.engine.instances
    assert token_of(registry, first.id) == first.token  # stored in _rivet_runtime, not regenerated
    assert first.ok("GET", "/state")["isStateEnabled"] is True


def test_a_refused_request_does_not_wake_the_actor(inspector, client, registry):
    registry.sleep(inspector.id)
    assert_error(inspector.call("GET", "/state", token="wrong"), 401, "inspector", "unauthorized")
    assert inspector.id not in registry.engine.instances  # checked against the stored token (tests/test_access.py)


def test_test_token_environment_variable_overrides_every_actor_token(inspector, monkeypatch):
    monkeypatch.setenv(auth.TEST_TOKEN_ENV, "test-token")
    assert inspector.call("GET", "/state", token="test-token").status_code == 200
    assert_error(inspector.call("GET", "/state"), 401, "inspector", "unauthorized")


def test_token_comparison_is_constant_time_and_rejects_empty_tokens():
    assert tokens_match("abc", "abc")
    assert not tokens_match("abc", "abd")
    assert not tokens_match("", "")
    assert not tokens_match(None, "abc")
    assert not tokens_match("abc", None)
    assert bearer_token("bearer  tok ") == "tok"
    assert bearer_token("Token tok") is None
    assert auth.websocket_token(["rivet", "rivet_inspector_token.abc"], "token=zzz") == "abc"
    assert auth.websocket_token(["rivet"], "protocol_version=6&token=zzz") == "zzz"
    assert auth.websocket_token([], "") is None


def test_unknown_actor_is_401_and_unknown_route_is_404_after_auth(inspector, client):
    # No actor, no token to match: answered as a wrong token is, so ids cannot be probed (README "Inspector").
    assert_error(client.get("/gateway/no-such-actor/inspector/state", headers=bearer(inspector.token)),
                 401, "inspector", "unauthorized")
    body = assert_error(inspector.call("GET", "/nope"), 404, "actor", "not_found")
    assert body["message"] == "Inspector route was not found"
    assert_error(inspector.call("PUT", "/state", {"state": 1}), 404, "actor", "not_found")
    assert_error(inspector.call("GET", "/action/increment"), 404, "actor", "not_found")


# State ------------------------------------------------------------------------------------------------------------

def test_state_read_and_patch_persists_across_sleep(inspector, registry):
    assert inspector.ok("GET", "/state") == {"state": {"count": 0, "tags": []}, "isStateEnabled": True}
    new_state = {"count": 41, "tags": ["x"], "blob": ["$Uint8Array", "AAH/"], "big": ["$BigInt", str(2**70)]}
    assert inspector.ok("PATCH", "/state", {"state": new_state}) == {"ok": True}
    handle = registry.get_or_create("inspected", ["a"])
    assert handle.increment(1) == 42  # the actor sees the patched state
    registry.sleep(inspector.id)
    assert inspector.id not in registry.engine.instances
    state = inspector.ok("GET", "/state")["state"]  # wakes the actor: the state came back from disk
    assert state == {**new_state, "count": 42}
    task = registry.engine.instances[inspector.id].task
    assert task.state.root["blob"] == b"\x00\x01\xff" and task.state.root["big"] == 2**70


def test_patch_state_refuses_bad_bodies_and_stateless_actors(inspector, client, registry):
    assert_error(inspector.call("PATCH", "/state", {"count": 1}), 400, "actor", "invalid_request")
    assert_error(inspector.call("PATCH", "/state", raw=b"{not json"), 400, "actor", "invalid_request")
    assert inspector.ok("GET", "/state")["state"]["count"] == 0
    plain = Inspector(client, registry, name="stateless")
    assert plain.ok("GET", "/state") == {"state": None, "isStateEnabled": False}
    assert_error(plain.call("PATCH", "/state", {"state": {}}), 400, "actor", "state_not_enabled")


# Connections, rpcs, actions -----------------------------------------------------------------------------------------

def test_connections_list_open_connections(inspector, registry):
    assert inspector.ok("GET", "/connections") == {"connections": []}
    connection = registry.get_or_create("inspected", ["a"]).connect({"user": "ada"})
    connection.on("anything", lambda *args: None)
    try:
        [listed] = inspector.ok("GET", "/connections")["connections"]
        assert listed == {"type": None, "id": connection.id, "details": {
            "type": None, "params": {"user": "ada"}, "stateEnabled": True, "state": None, "subscriptions": 1,
            "isHibernatable": False,
        }}
    finally:
        connection.close()
    assert inspector.ok("GET", "/connections") == {"connections": []}


def test_rpcs_list_action_names_in_declaration_order(inspector):
    assert inspector.ok("GET", "/rpcs") == {"rpcs": [
        "increment", "get", "whoami", "fail", "crash", "echo", "later", "make_table", "send_job"]}


def test_action_call_runs_on_a_transient_connection(inspector):
    assert inspector.ok("POST", "/action/increment", {"args": [5]}) == {"output": 5}
    assert inspector.ok("POST", "/action/increment", {"args": 2}) == {"output": 7}  # a lone value is one argument
    assert inspector.ok("POST", "/action/get", {}) == {"output": 7}
    assert inspector.ok("POST", "/action/get", None) == {"output": 7}
    assert inspector.ok("POST", "/action/whoami", {"args": []}) == {"output": {"conns": 1, "params": None}}
    assert inspector.ok("GET", "/connections") == {"connections": []}  # disconnected after the reply
    assert inspector.ok("POST", "/action/echo", {"properties": {"a": 1}}) == {"output": [{"a": 1}]}
    assert inspector.ok("POST", "/action/echo", {"args": [["$Uint8Array", "AQI="], 2**60]}) == {
        "output": [["$Uint8Array", "AQI="], ["$BigInt", str(2**60)]]}


def test_action_call_errors(inspector):
    assert_error(inspector.call("POST", "/action/nope", {"args": []}), 404, "actor", "action_not_found")
    user = assert_error(inspector.call("POST", "/action/fail", {"args": []}), 500, "user", "unlucky")
    assert user["message"] == "no luck" and user["metadata"] == {"n": 7}
    internal = assert_error(inspector.call("POST", "/action/crash", {"args": []}), 500, "core", "internal_error")
    assert "secret" not in internal["message"]
    assert_error(inspector.call("POST", "/action/echo", {"args": [1], "properties": {}}), 400, "actor",
                 "invalid_request")
    assert_error(inspector.call("POST", "/action/echo", raw=b"[1,"), 400, "actor", "invalid_request")


# Queue and schedules ----------------------------------------------------------------------------------------------

def test_queue_post_list_and_delete(inspector, registry):
    empty = inspector.ok("GET", "/queue")
    assert empty == {"size": 0, "maxSize": 1000, "truncated": False, "messages": []}
    first = inspector.ok("POST", "/queue", {"name": "jobs", "body": {"n": 1}})
    assert first["id"] == "1" and first["name"] == "jobs" and isinstance(first["createdAtMs"], int)
    registry.get_or_create("inspected", ["a"]).send_job(["two"])
    listed = inspector.ok("GET", "/queue?limit=1")
    assert (listed["size"], listed["truncated"]) == (2, True)
    assert listed["messages"] == [
        {"id": 1, "name": "jobs", "createdAtMs": first["createdAtMs"], "body": {"n": 1}}]
    assert [m["body"] for m in inspector.ok("GET", "/queue")["messages"]] == [{"n": 1}, ["two"]]
    assert_error(inspector.call("POST", "/queue", {"name": "", "body": 1}), 400, "actor", "invalid_request")
    assert_error(inspector.call("POST", "/queue", {"body": 1}), 400, "actor", "invalid_request")
    assert_error(inspector.call("GET", "/queue?limit=-1"), 400, "actor", "invalid_request")
    assert_error(inspector.call("GET", "/queue?limit=abc"), 400, "actor", "invalid_request")
    assert inspector.ok("DELETE", "/queue") == {}
    assert inspector.ok("GET", "/queue")["size"] == 0
    task = registry.engine.instances[inspector.id].task
    assert task.queue.try_next() is None


def test_queue_limits_apply_to_inspector_sends(client, tmp_path):
    tiny = actor("tiny", options={"max_queue_size": 1})
    registry = setup(tiny, data_dir=str(tmp_path / "tiny"))
    try:
        view = Inspector(registry.flask_app().test_client(), registry, name="tiny")
        view.ok("POST", "/queue", {"name": "q", "body": None})
        assert_error(view.call("POST", "/queue", {"name": "q", "body": None}), 400, "queue", "full")
    finally:
        registry.shutdown()


def test_schedules_list(inspector, registry):
    assert inspector.ok("GET", "/schedules") == {"schedules": []}
    handle = registry.get_or_create("inspected", ["a"])
    late = handle.later(120, "increment", 3)
    soon = handle.later(60, "echo", "x", b"\x00")
    schedules = inspector.ok("GET", "/schedules")["schedules"]
    assert [s["id"] for s in schedules] == [soon, late]
    assert schedules[0]["action"] == "echo" and schedules[0]["args"] == ["x", ["$Uint8Array", "AA=="]]
    assert schedules[1]["args"] == [3]
    assert schedules[1]["runAt"] - schedules[0]["runAt"] in range(59_000, 61_000)


# Database ---------------------------------------------------------------------------------------------------------

def test_database_schema_and_rows_of_a_user_table(inspector, registry):
    assert inspector.ok("GET", "/database/schema") == {"schema": {"tables": []}}  # no _rivet_* table shows
    registry.get_or_create("inspected", ["a"]).make_table(600)
    [table] = inspector.ok("GET", "/database/schema")["schema"]["tables"]
    assert table["table"] == {"schema": "main", "name": "items", "type": "table"}
    assert [column["name"] for column in table["columns"]] == ["id", "name", "data"]
    assert table["records"] == 600 and table["foreignKeys"] == []
    rows = inspector.ok("GET", "/database/rows?table=items&limit=2&offset=3")["rows"]
    assert rows == [{"id": 4, "name": "item-3", "data": ["$Uint8Array", "Aw=="]},
                    {"id": 5, "name": "item-4", "data": ["$Uint8Array", "BA=="]}]
    assert len(inspector.ok("GET", "/database/rows?table=items")["rows"]) == 100
    assert len(inspector.ok("GET", "/database/rows?table=items&limit=100000")["rows"]) == 500  # capped


@pytest.mark.parametrize("table", ["_rivet_queue", "_rivet_runtime", "_RIVET_actor_state"])
def test_database_rows_refuse_runtime_tables(inspector, table):
    body = assert_error(inspector.call("GET", f"/database/rows?table={table}"), 400, "sqlite", "reserved_table")
    assert "reserved" in body["message"]


def test_database_rows_refuse_unknown_tables_and_bad_parameters(inspector, registry):
    registry.get_or_create("inspected", ["a"]).make_table(1)
    assert_error(inspector.call("GET", "/database/rows?table=nope"), 400, "actor", "invalid_request")
    assert_error(inspector.call("GET", '/database/rows?table=items"; DROP TABLE items; --'), 400, "actor",
                 "invalid_request")
    assert_error(inspector.call("GET", "/database/rows"), 400, "actor", "invalid_request")
    assert_error(inspector.call("GET", "/database/rows?table=items&offset=x"), 400, "actor", "invalid_request")
    assert len(inspector.ok("GET", "/database/rows?table=items")["rows"]) == 1


def test_database_execute_goes_through_the_user_database(inspector, registry):
    registry.get_or_create("inspected", ["a"]).make_table(3)
    assert inspector.ok("POST", "/database/execute", {"sql": "SELECT COUNT(*) AS n FROM items"}) == {"rows": [{"n": 3}]}
    assert inspector.ok("POST", "/database/execute", {"sql": "SELECT name FROM items WHERE id = ?", "args": [2]}) == {
        "rows": [{"name": "item-1"}]}
    assert_error(inspector.call("POST", "/database/execute", {"sql": "SELECT * FROM _rivet_queue"}), 400, "sqlite",
                 "reserved_table")
    assert_error(inspector.call("POST", "/database/execute", {"sql": " "}), 400, "actor", "invalid_request")


# Summary and the unsupported parts --------------------------------------------------------------------------------

def test_summary_traces_and_workflow(inspector, registry):
    registry.get_or_create("inspected", ["a"]).send_job(1)
    assert inspector.ok("GET", "/summary") == {
        "state": {"count": 0, "tags": []}, "isStateEnabled": True, "connections": [],
        "rpcs": ["increment", "get", "whoami", "fail", "crash", "echo", "later", "make_table", "send_job"],
        "queueSize": 1, "isDatabaseEnabled": True, "isWorkflowEnabled": False, "workflowHistory": None,
    }
    assert inspector.ok("GET", "/traces") == {"otlp": [], "clamped": False}
    assert inspector.ok("GET", "/workflow-history") == {"history": None, "isWorkflowEnabled": False}
    assert inspector.ok("POST", "/workflow/replay", {}) == {"history": None, "isWorkflowEnabled": False}


# The live WebSocket (core.md §8.3, JSON framing) -------------------------------------------------------------------

def open_socket(port: int, actor_id_: str, token: str | None, *, query: str = "", via_query: bool = False) -> WebSocket:
    url = f"http://127.0.0.1:{port}/gateway/{actor_id_}/inspector/connect"
    protocols = ["rivet"]
    if token is not None and via_query:
        query = f"{query}&token={token}" if query else f"token={token}"
    elif token is not None:
        protocols.append(f"rivet_inspector_token.{token}")
    return WebSocket.connect(url + (f"?{query}" if query else ""), subprotocols=protocols, timeout=TIMEOUT,
                             default_timeout=TIMEOUT)


def next_message(ws: WebSocket, tag: str) -> dict[str, Any]:
    """The next message with ``tag`` (pushes of other topics may come first)."""
    for _ in range(50):
        frame = ws.receive()
        assert frame is not None, f"socket closed ({ws.close_code} {ws.close_reason}) while waiting for {tag}"
        message = json.loads(frame)
        if message["tag"] == tag:
            return message["val"]
    raise AssertionError(f"no {tag} message")


def request(ws: WebSocket, tag: str, rid: int, **fields: Any) -> None:
    ws.send(json.dumps({"tag": tag, "val": {"id": rid, **fields}}))


def test_websocket_init_then_state_pushes(port, registry):
    target = actor_id(registry)
    handle = registry.get_or_create("inspected", ["a"])
    handle.later(300, "increment", 1)
    handle.send_job("queued")
    ws = open_socket(port, target, token_of(registry, target))
    try:
        assert ws.subprotocol == "rivet"
        init = next_message(ws, "Init")
        assert init["state"] == {"count": 0, "tags": []} and init["isStateEnabled"] is True
        assert init["rpcs"][0] == "increment" and init["queueSize"] == 1
        assert [s["action"] for s in init["schedules"]] == ["increment"]
        assert init["connections"] == []
        assert (init["isDatabaseEnabled"], init["isWorkflowEnabled"]) == (True, False)
        assert handle.increment(5) == 5  # another client changes the state
        assert next_message(ws, "StateUpdated") == {"state": {"count": 5, "tags": []}}
        request(ws, "ActionRequest", 1, name="increment", args=[2])
        assert next_message(ws, "ActionResponse") == {"rid": 1, "output": 7}
        assert next_message(ws, "StateUpdated") == {"state": {"count": 7, "tags": []}}
    finally:
        ws.close()


def test_websocket_requests(port, registry):
    target = actor_id(registry)
    ws = open_socket(port, target, token_of(registry, target))
    try:
        next_message(ws, "Init")
        request(ws, "StateRequest", 1)
        assert next_message(ws, "StateResponse") == {"rid": 1, "state": {"count": 0, "tags": []},
                                                     "isStateEnabled": True}
        request(ws, "RpcsListRequest", 2)
        assert next_message(ws, "RpcsListResponse")["rpcs"][:2] == ["increment", "get"]
        ws.send(json.dumps({"tag": "PatchStateRequest", "val": {"state": {"count": 10}}}))
        assert next_message(ws, "StateUpdated") == {"state": {"count": 10}}
        request(ws, "ActionRequest", 3, name="later", args=[60, "get"])
        schedule_id = next_message(ws, "ActionResponse")["output"]
        assert [s["id"] for s in next_message(ws, "SchedulesUpdated")["schedules"]] == [schedule_id]
        request(ws, "SchedulesRequest", 4)
        assert next_message(ws, "SchedulesResponse")["schedules"][0]["action"] == "get"
        request(ws, "ActionRequest", 5, name="send_job", args=[{"n": 1}])
        assert next_message(ws, "QueueUpdated") == {"queueSize": 1}
        request(ws, "QueueRequest", 6, limit=10)
        status = next_message(ws, "QueueResponse")["status"]
        assert (status["size"], status["maxSize"], status["truncated"]) == (1, 1000, False)
        assert status["messages"][0]["name"] == "jobs"
        request(ws, "ConnectionsRequest", 7)
        assert next_message(ws, "ConnectionsResponse") == {"rid": 7, "connections": []}
        request(ws, "ActionRequest", 8, name="fail", args=[])
        error = next_message(ws, "Error")
        assert (error["rid"], error["group"], error["code"], error["message"]) == (8, "user", "unlucky", "no luck")
        request(ws, "NoSuchRequest", 9)
        assert next_message(ws, "Error")["rid"] == 9
        ws.send("{not json")
        assert "Invalid inspector message" in next_message(ws, "Error")["message"]
        request(ws, "StateRequest", 10)  # still serving
        assert next_message(ws, "StateResponse")["state"] == {"count": 10}
    finally:
        ws.close()


def test_websocket_pushes_connection_changes(port, registry):
    target = actor_id(registry)
    ws = open_socket(port, target, token_of(registry, target))
    try:
        next_message(ws, "Init")
        connection = registry.get_or_create("inspected", ["a"]).connect({"user": "bo"})
        pushed = next_message(ws, "ConnectionsUpdated")["connections"]
        assert [(c["id"], c["details"]["params"]) for c in pushed] == [(connection.id, {"user": "bo"})]
        connection.close()
        assert next_message(ws, "ConnectionsUpdated") == {"connections": []}
    finally:
        ws.close()


def test_websocket_token_in_the_query_for_browsers(port, registry):
    target = actor_id(registry)
    ws = open_socket(port, target, token_of(registry, target), via_query=True, query="protocol_version=6")
    try:
        assert next_message(ws, "Init")["state"]["count"] == 0
    finally:
        ws.close()


@pytest.mark.parametrize("token", [None, "wrong", ""])
def test_websocket_refuses_a_missing_or_wrong_token_with_1008(port, registry, token):
    target = actor_id(registry)
    ws = open_socket(port, target, token)
    assert ws.receive() is None
    assert (ws.close_code, ws.close_reason) == (1008, "inspector.unauthorized")


@pytest.mark.parametrize("version", ["0", "7", "abc"])
def test_websocket_refuses_an_invalid_protocol_version(port, registry, version):
    target = actor_id(registry)
    ws = open_socket(port, target, token_of(registry, target), query=f"protocol_version={version}")
    assert ws.receive() is None
    assert (ws.close_code, ws.close_reason) == (1002, "inspector.invalid_protocol_version")


def test_websocket_to_an_unknown_actor_closes(port, registry):
    ws = open_socket(port, "no-such-actor", "x")
    assert ws.receive() is None
    assert (ws.close_code, ws.close_reason) == (1008, "inspector.unauthorized")  # as a wrong token: no probing


# The session and idle sleep (virtual clock) ----------------------------------------------------------------------

class FakeSocket:
    """The router's WebSocket protocol, in memory: what the session sent, and how it closed."""

    def __init__(self, subprotocols: list[str]) -> None:
        self.offered_subprotocols = subprotocols
        self.sent: list[dict[str, Any]] = []
        self.closed_with: tuple[int, str] | None = None
        self._inbox: gevent.queue.Queue[str | None] = gevent.queue.Queue()

    def send(self, data: str | bytes) -> None:
        self.sent.append(json.loads(data))

    def receive(self) -> str | bytes | None:
        return self._inbox.get()

    def close(self, code: int = 1000, reason: str = "") -> None:
        if self.closed_with is None:
            self.closed_with = (code, reason)
            self._inbox.put(None)

    def tags(self) -> list[str]:
        return [message["tag"] for message in self.sent]


def test_inspector_socket_does_not_keep_the_actor_awake(virtual_clock, make_registry):
    registry = make_registry(sleepy)
    handle = registry.get_or_create("sleepy", ["a"])
    handle.bump()
    target = handle.resolve()
    task = registry.engine.instances[target].task
    ws = FakeSocket(["rivet", f"rivet_inspector_token.{task.inspector_token}"])
    session = gevent.spawn(inspector_ws.serve, registry.engine, target, "", ws)
    virtual_clock.settle()
    assert ws.tags() == ["Init"] and ws.sent[0]["val"]["state"] == {"n": 1}
    assert task.changes.watched
    handle.bump()
    handle.bump()
    virtual_clock.advance(inspector_ws.DEBOUNCE_SECONDS - 0.001)
    assert "StateUpdated" not in ws.tags()  # still collecting the burst
    virtual_clock.advance(0.001)
    assert [m["val"] for m in ws.sent if m["tag"] == "StateUpdated"] == [{"state": {"n": 3}}]  # one push for both
    virtual_clock.advance(5.0 - inspector_ws.DEBOUNCE_SECONDS - 0.001)
    assert target in registry.engine.instances
    virtual_clock.advance(0.001)  # exactly sleep_timeout after the last call: the open inspector changes nothing
    assert target not in registry.engine.instances
    assert ws.closed_with == inspector_ws.STOPPED_CLOSE
    virtual_clock.settle()
    assert session.dead and not task.changes.watched


def test_closing_the_socket_unsubscribes(virtual_clock, make_registry):
    registry = make_registry(sleepy)
    handle = registry.get_or_create("sleepy", ["a"])
    handle.bump()
    target = handle.resolve()
    task = registry.engine.instances[target].task
    ws = FakeSocket([f"rivet_inspector_token.{task.inspector_token}"])
    # Through the router's entry point this time.
    session = gevent.spawn(inspector_package.serve_websocket, ActorRouter(registry.engine), target, "", ws)
    virtual_clock.settle()
    assert task.changes.watched
    ws.close(1000, "bye")
    virtual_clock.settle()
    assert session.dead and not task.changes.watched
    handle.bump()
    virtual_clock.advance(1)
    assert ws.tags() == ["Init"]  # nothing pushed after the close


def test_wrong_token_session_never_subscribes(virtual_clock, make_registry):
    registry = make_registry(sleepy)
    handle = registry.get_or_create("sleepy", ["a"])
    handle.bump()
    task = registry.engine.instances[handle.resolve()].task
    ws = FakeSocket(["rivet_inspector_token.nope"])
    session = gevent.spawn(inspector_ws.serve, registry.engine, handle.resolve(), "", ws)
    virtual_clock.settle()
    assert session.dead and ws.closed_with == (1008, "inspector.unauthorized") and ws.sent == []
    assert not task.changes.watched


# The admin API of the inspector page -------------------------------------------------------------------------------

def test_admin_token_is_generated_and_exposed(app):
    token = app.extensions["rivetgreen"].admin_token
    assert isinstance(token, str) and len(token) >= 24


def test_admin_token_from_the_environment(registry, monkeypatch):
    monkeypatch.setenv("RIVETGREEN_ADMIN_TOKEN", "admin-secret")
    client = registry.flask_app().test_client()
    assert client.get("/inspector/api/actors", headers=bearer("admin-secret")).status_code == 200
    assert client.get("/inspector/api/actors?token=admin-secret").status_code == 200


def test_page_and_api_require_the_admin_token(app, client, registry):
    target = actor_id(registry)
    for url in ("/inspector/api/actors", f"/inspector/api/actors/{target}"):
        for headers in ({}, bearer("wrong")):
            assert_error(client.get(url, headers=headers), 401, "inspector", "unauthorized")
    assert_error(client.post(f"/inspector/api/actors/{target}/token"), 401, "inspector", "unauthorized")
    refused = client.get("/inspector/")
    assert refused.status_code == 401 and "token" in refused.get_data(as_text=True)
    assert client.get("/inspector/?token=wrong").status_code == 401
    token = app.extensions["rivetgreen"].admin_token
    page = client.get(f"/inspector/?token={token}")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "rivetgreen" in page.get_data(as_text=True) and "<script>" in page.get_data(as_text=True)
    assert page.headers["Cache-Control"] == "no-store"
    redirect = client.get(f"/inspector?token={token}")
    assert redirect.status_code in (301, 308) and redirect.headers["Location"].endswith(f"/inspector/?token={token}")


def test_admin_api_lists_actors_without_waking_them(app, client, registry):
    admin = bearer(app.extensions["rivetgreen"].admin_token)
    first = actor_id(registry, key="one")
    second = actor_id(registry, "stateless", "two")
    registry.get_or_create("inspected", ["one"]).get()
    registry.sleep(first)
    listing = client.get("/inspector/api/actors", headers=admin).get_json()
    assert listing["names"] == ["inspected", "stateless"]
    assert sorted((a["name"], a["id"], a["key"], a["keyString"]) for a in listing["actors"]) == [
        ("inspected", first, ["one"], "one"), ("stateless", second, ["two"], "two")]
    assert [a["status"] for a in listing["actors"]] == ["asleep", "asleep"]
    assert first not in registry.engine.instances and second not in registry.engine.instances
    only = client.get("/inspector/api/actors?name=stateless", headers=admin).get_json()["actors"]
    assert [a["id"] for a in only] == [second]
    assert client.get("/inspector/api/actors?name=nope", headers=admin).get_json()["actors"] == []
    one = client.get(f"/inspector/api/actors/{first}", headers=admin).get_json()
    assert (one["id"], one["status"]) == (first, "asleep")
    assert_error(client.get("/inspector/api/actors/nope", headers=admin), 404, "actor", "not_found")


def test_admin_api_hands_out_an_actor_token_waking_it(app, client, registry):
    admin = bearer(app.extensions["rivetgreen"].admin_token)
    target = actor_id(registry)
    registry.sleep(target)
    answer = client.post(f"/inspector/api/actors/{target}/token", headers=admin).get_json()
    assert answer["id"] == target and answer["status"] == "active"
    assert target in registry.engine.instances
    state = client.get(f"/gateway/{target}/inspector/state", headers=bearer(answer["token"]))
    assert state.status_code == 200 and state.get_json()["state"]["count"] == 0
    assert_error(client.post("/inspector/api/actors/nope/token", headers=admin), 404, "actor", "not_found")
