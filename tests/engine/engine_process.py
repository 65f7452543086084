"""A real Rivet Engine for integration tests: the npm build ``@rivetkit/engine-cli-linux-x64-musl``, installed into
``.cache/engine`` on first use (never committed), started on loopback with a temporary data directory and config
file (engine-envoy.md §2), stopped with SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.helpers import npm_install

ENGINE_PACKAGE = "@rivetkit/engine-cli-linux-x64-musl"
ENGINE_VERSION = "2.3.19"
ROOT = Path(__file__).resolve().parents[2]
INSTALL_DIR = ROOT / ".cache" / "engine"
HEALTHY_TIMEOUT = 30.0  # seconds from start to a healthy /health (it takes well under 1 s here)
STOP_TIMEOUT = 15.0  # seconds for SIGTERM to end it (about 1 s) before it is killed
START_ATTEMPTS = 3  # another process may take one of the free ports picked before the engine binds it
LOOPBACK = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # straight to 127.0.0.1, whatever the proxy


class EngineError(Exception):
    """The engine could not be installed or started; the message carries its log."""


class PortTaken(EngineError):
    """Another process took one of the engine's ports between our pick and its bind."""


def install_engine() -> Path:
    """The engine binary, installed from npm unless this version is already there."""
    try:
        return npm_install(INSTALL_DIR, ENGINE_PACKAGE, ENGINE_VERSION) / "rivet-engine"
    except RuntimeError as error:
        raise EngineError(str(error)) from None


def free_ports(count: int) -> list[int]:
    """Loopback ports nobody listens on right now (all held open together, so they differ)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for each in sockets:
            each.bind(("127.0.0.1", 0))
        return [each.getsockname()[1] for each in sockets]
    finally:
        for each in sockets:
            each.close()


def merged(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``extra``'s sections merged in, key by key."""
    result = dict(base)
    for key, value in extra.items():
        result[key] = merged(result[key], value) if isinstance(value, dict) and key in result else value
    return result


@dataclass
class RunningEngine:
    """A started engine: ``endpoint`` is its guard (public API, gateway, envoy socket)."""

    process: subprocess.Popen
    endpoint: str
    directory: Path
    config: dict[str, Any] = field(repr=False)
    started_at: float  # time.monotonic() when the process was started
    start_seconds: float | None = None  # from the process start to a healthy /health

    @property
    def log_path(self) -> Path:
        return self.directory / "engine.log"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> int:
        """SIGTERM, then a kill if it does not end in time; its exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(STOP_TIMEOUT)
        return self.process.returncode


def start_engine(binary: Path, directory: Path, settings: dict[str, Any] | None = None) -> RunningEngine:
    """Start the engine with its data and log in ``directory``, every service on a free loopback port;
    ``settings`` are merged into its config file (for example ``{"auth": {"admin_token": "..."}}`` or
    ``{"pegboard": {"envoy_lost_threshold": 3000}}``; the engine refuses unknown keys, naming the valid ones)."""
    attempt = 1
    while True:
        engine = launch(binary, directory, settings or {})
        try:
            wait_until_healthy(engine)
            return engine
        except PortTaken:
            engine.stop()
            if attempt == START_ATTEMPTS:
                raise
            attempt += 1
        except EngineError:
            engine.stop()
            raise


def launch(binary: Path, directory: Path, settings: dict[str, Any]) -> RunningEngine:
    guard, api_peer, metrics = free_ports(3)
    # Without explicit hosts the engine binds every interface (::); the tests keep it on loopback.
    config = merged({
        "guard": {"host": "127.0.0.1", "port": guard},
        "api_peer": {"host": "127.0.0.1", "port": api_peer},
        "metrics": {"host": "127.0.0.1", "port": metrics},
        "file_system": {"path": str(directory / "db")},
    }, settings)
    directory.mkdir(parents=True, exist_ok=True)
    config_path = directory / "config.json"
    config_path.write_text(json.dumps(config, indent=2))
    # RIVET__SECTION__KEY variables override the config file; none from the caller's environment may leak in.
    environment = {name: value for name, value in os.environ.items() if not name.startswith("RIVET__")}
    started_at = time.monotonic()
    with open(directory / "engine.log", "wb") as log_file:
        process = subprocess.Popen(
            [str(binary), "start", "--config", str(config_path)], cwd=directory, env=environment,
            stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True,
        )
    return RunningEngine(process, f"http://127.0.0.1:{guard}", directory, config, started_at)


def wait_until_healthy(engine: RunningEngine) -> None:
    """Poll ``GET /health`` until it answers ``status: ok`` (bounded); records ``start_seconds``."""
    deadline = time.monotonic() + HEALTHY_TIMEOUT
    while time.monotonic() < deadline:
        if engine.process.poll() is not None:
            raise EngineError(f"the engine exited with status {engine.process.returncode}:\n{engine.log()[-4000:]}")
        if "Address in use" in engine.log():  # it keeps restarting the service that cannot bind, never exits
            raise PortTaken(f"a port of the engine was taken:\n{engine.log()[-4000:]}")
        try:
            with LOOPBACK.open(f"{engine.endpoint}/health", timeout=2) as response:
                if json.loads(response.read()).get("status") == "ok":
                    engine.start_seconds = time.monotonic() - engine.started_at
                    return
        except (OSError, ValueError):
            pass  # not listening yet
        time.sleep(0.02)  # bounded poll of an observable condition: the health endpoint
    raise EngineError(f"the engine was not healthy within {HEALTHY_TIMEOUT} s:\n{engine.log()[-4000:]}")
