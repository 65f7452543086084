"""The engine the integration tests run: reachable on loopback only, started again on other ports when one it was
given is taken meanwhile, stopped cleanly."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from tests.engine import engine_process
from tests.engine.engine_process import RunningEngine, start_engine

SERVICES = ("guard", "api_peer", "metrics")


def accepts(address: str, port: int) -> bool:
    try:
        socket.create_connection((address, port), timeout=5).close()
    except ConnectionRefusedError:
        return False
    return True


def test_every_service_listens_on_loopback_only(rivet_engine: RunningEngine) -> None:
    for service in SERVICES:
        port = rivet_engine.config[service]["port"]
        # 127.0.0.2 is this machine too: a service bound to every interface (the engine's default) would accept.
        assert (accepts("127.0.0.1", port), accepts("127.0.0.2", port)) == (True, False), service


def test_a_port_taken_before_the_engine_binds_it_is_replaced(
    engine_binary: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    picks: list[list[int]] = []

    def first_pick_taken(count: int) -> list[int]:
        ports = original(count)
        if not picks:
            ports[0] = taken.getsockname()[1]  # the guard's port, as if another process won the race for it
        picks.append(ports)
        return ports

    original = engine_process.free_ports
    monkeypatch.setattr(engine_process, "free_ports", first_pick_taken)
    try:
        engine = start_engine(engine_binary, tmp_path / "engine")
    finally:
        taken.close()
    try:
        assert len(picks) == 2
        assert engine.endpoint == f"http://127.0.0.1:{picks[1][0]}"
        assert accepts("127.0.0.1", picks[1][0])
    finally:
        assert engine.stop() == 0  # SIGTERM: a clean exit
