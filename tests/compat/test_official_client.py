"""The official RivetKit client (npm rivetkit@2.3.19), unchanged, against a live rivetgreen server, in every
encoding it speaks."""

from __future__ import annotations

import pytest

ENCODINGS = ["bare", "cbor", "json"]


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_actions_round_trip_every_value_type(run_scenario, encoding):
    result = run_scenario(encoding, "actions")
    assert result["first"] == 5
    assert result["second"] == 7
    assert result["echoed"] == [
        42, -7, 1.5, 2**40, "héllo", True, None, {"nested": {"list": [1, "two", {"three": 3}]}},
        {"bytes": [1, 2, 255]}, {"bigint": str(1 << 70)}, ["$x", 1],
    ]
    # What Python received: a BigInt is an int, bytes are bytes, 2**40 (a JS number) a float or int.
    assert result["types"][0] == "int"
    assert result["types"][1] == "bytes"
    assert result["types"][3] == "int"


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_errors_reach_the_client_with_group_code_and_metadata(run_scenario, encoding):
    result = run_scenario(encoding, "errors")
    assert result["user"] == {
        "group": "user", "code": "teapot", "message": "bad things", "metadata": {"hint": 418},
    }
    assert (result["unknown"]["group"], result["unknown"]["code"]) == ("actor", "action_not_found")
    internal = result["internal"]
    assert (internal["group"], internal["code"]) == ("core", "internal_error")
    assert "secret" not in internal["message"]  # internal errors are masked
    assert result["state"] == 0


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_events_reach_subscribed_connections(run_scenario, encoding):
    result = run_scenario(encoding, "events")
    assert result["viaConn"] == 1
    assert result["viaHandle"] == 11
    assert result["seen"] == [1, 11]
    assert result["connError"] == {
        "group": "user", "code": "socket_error", "message": "over the socket", "metadata": {"n": 1},
    }
    assert result["unknown"]["code"] == "action_not_found"
    assert result["afterError"] == 11


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_connection_params_state_and_refusal(run_scenario, encoding):
    result = run_scenario(encoding, "params")
    assert result["sent"] == 1
    assert result["messages"] == [{"user": "alice", "text": "hi there"}]
    assert result["whoami"] == "alice"
    assert result["viaHeader"] is None
    assert result["bob"] == {"user": "bob"}
    assert (result["refusal"]["group"], result["refusal"]["code"]) == ("user", "missing_user")


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_queue_send_with_and_without_wait(run_scenario, encoding):
    result = run_scenario(encoding, "queue")
    assert result["noWait"] is None
    assert result["waited"] == {"status": "completed", "response": {"done": "b"}}
    assert result["timedOut"]["status"] == "timedOut"
    assert result["processed"] == ["a", "b"]


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_raw_fetch_and_raw_websocket(run_scenario, encoding):
    result = run_scenario(encoding, "raw")
    assert result["fetched"] == {
        "status": 200,
        "body": {"method": "POST", "path": "/hello/world", "query": "x=1", "body": "hi", "custom": "1"},
        "header": "rivetgreen",
    }
    assert result["missingStatus"] == 404
    assert result["replies"] == ["echo:ping", "binary:3"]


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_create_get_get_for_id_resolve_and_duplicate_key(run_scenario, encoding):
    result = run_scenario(encoding, "addressing")
    assert result["idIsString"] and result["sameId"] and result["oddKeyIdIsString"]
    assert result["viaId"] == 7 and result["viaGet"] == 7
    assert (result["duplicate"]["group"], result["duplicate"]["code"]) == ("actor", "duplicate_key")
    assert (result["missing"]["group"], result["missing"]["code"]) == ("actor", "not_found")
    assert result["withInput"] == 3
    assert result["oddKeyCount"] == 1


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_server_side_close_and_client_reconnect(run_scenario, encoding):
    result = run_scenario(encoding, "reconnect")
    assert "unexpected" not in result["kicked"]
    assert result["after"] == 2
    assert result["opens"] >= 2
