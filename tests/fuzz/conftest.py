"""The fuzz suite's Hypothesis profiles and a live host shared by each module's examples.

``ci`` (the default) bounds the whole suite to well under a minute on two cores; ``RIVETGREEN_FUZZ=long`` selects
``long``, a run of many more examples per property (see README "Bad input and fuzzing")."""

from __future__ import annotations

import logging
import os

import gevent
import pytest
from hypothesis import HealthCheck, settings

from rivetgreen import setup
from rivetgreen.server.serve import make_server
from tests.compat.actors import ACTORS

COMMON = {
    "deadline": None,  # a gevent host shares the process; timing varies with the machine's load
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture],
    "print_blob": True,
}
settings.register_profile("ci", max_examples=60, **COMMON)
settings.register_profile("long", max_examples=5000, **COMMON)
settings.load_profile(os.environ.get("RIVETGREEN_FUZZ", "ci"))


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    registry = setup(*ACTORS, data_dir=str(tmp_path_factory.mktemp("fuzz")))
    yield registry
    registry.shutdown()


@pytest.fixture(scope="module")
def app(registry):
    return registry.flask_app()


@pytest.fixture(scope="module")
def client(app):
    return app.test_client()


@pytest.fixture(scope="module")
def port(app):
    server = make_server(app, "127.0.0.1", 0)
    yield server.server_port
    server.stop(timeout=5)


class Crashes:
    """Errors nobody handled: ERROR log records (Flask's "Exception on ...", the router's "failed") and exceptions
    that ended a greenlet (the hub's ``handle_error``)."""

    def __init__(self) -> None:
        self.records: list[logging.LogRecord] = []
        self.greenlets: list[str] = []

    def clear(self) -> None:
        self.records.clear()
        self.greenlets.clear()

    def assert_none(self) -> None:
        assert not self.greenlets, self.greenlets
        assert not self.records, [record.getMessage() for record in self.records]


@pytest.fixture(scope="module")
def crashes():
    found = Crashes()
    handler = logging.Handler(logging.ERROR)
    handler.emit = found.records.append  # type: ignore[method-assign]
    root = logging.getLogger()
    root.addHandler(handler)
    hub = gevent.get_hub()
    original = hub.handle_error

    def record(context, kind, value, traceback):
        found.greenlets.append(f"{kind.__name__}: {value}")
        return original(context, kind, value, traceback)

    hub.handle_error = record
    yield found
    hub.handle_error = original
    root.removeHandler(handler)
