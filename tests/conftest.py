"""Shared fixtures. The public ones (virtual_clock, make_registry) come from the rivetgreen pytest plugin."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from rivetgreen.actor.task import ActorTask
from rivetgreen.server.serve import make_server
from rivetgreen.storage import ActorStore, LocalSqliteBackend


class RecordingPlacement:
    """Placement that only records what a task asks for, so tests drive lifecycle commands themselves."""

    def __init__(self) -> None:
        self.sleep_requests: list[ActorTask] = []
        self.destroy_requests: list[tuple[ActorTask, str | None]] = []
        self.alarms: list[int | None] = []
        self.held: dict = {}

    def request_sleep(self, task: ActorTask) -> None:
        self.sleep_requests.append(task)

    def request_destroy(self, task: ActorTask, error: str | None) -> None:
        self.destroy_requests.append((task, error))

    def set_alarm(self, task: ActorTask, alarm_ms: int | None) -> None:
        self.alarms.append(alarm_ms)

    def hold_connections(self, task: ActorTask, transports: dict) -> None:
        self.held.update(transports)

    def release_connections(self, task: ActorTask) -> dict:
        held, self.held = self.held, {}
        return held


# Fixtures that may install an npm package first (tests.helpers.npm_install, up to 600 s on a fresh machine).
NPM_FIXTURES = {"node_client", "browser_driver", "envoy_protocol_package", "rivet_engine", "engine_binary"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test that may install an npm package first does so inside its own, longer timeout."""
    for item in items:
        if NPM_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.timeout(900))


@pytest.fixture
def placement() -> RecordingPlacement:
    return RecordingPlacement()


@pytest.fixture
def make_task(tmp_path: Any, placement: RecordingPlacement):
    """Build a bare ActorTask (no engine) on a fresh database; its loop greenlet is already running."""
    counter = itertools.count(1)
    tasks: list[ActorTask] = []

    def make(definition: Any, *, path: str | None = None, generation: int = 1) -> ActorTask:
        db_path = path or str(tmp_path / f"actor-{next(counter)}.sqlite")
        task = ActorTask(definition, "actor-1", ["k"], generation, ActorStore(LocalSqliteBackend(db_path)), placement)
        task.spawn()
        tasks.append(task)
        return task

    yield make
    for task in tasks:
        if task.greenlet is not None:
            task.greenlet.kill()


# Serving a module's ``registry`` fixture ---------------------------------------------------------------------------
@pytest.fixture
def app(registry):
    """The Flask app of the test module's ``registry`` fixture."""
    return registry.flask_app()


@pytest.fixture
def client(app):
    """Flask's in-process test client for ``app``."""
    return app.test_client()


@pytest.fixture
def port(app):
    """A live gevent server for ``app`` on a free loopback port."""
    server = make_server(app, "127.0.0.1", 0)
    yield server.server_port
    server.stop(timeout=5)
