"""``ensure_pool`` against a real Rivet Engine: the namespace and the pool are created when missing, found when
present, read back through the engine's own API; stalls are retried within a bound; a wrong endpoint, a token the
engine refuses and a pool that is not serverful are clear errors."""

from __future__ import annotations

import itertools
import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import gevent
import gevent.event
import pytest

from rivetgreen import actor, setup
from rivetgreen.engine.envoy.pool import PoolRegistration, ensure_pool
from rivetgreen.engine.envoy.settings import EngineSettings, engine_settings
from rivetgreen.errors import RivetError
from rivetgreen.server.serve import make_server
from tests.engine.engine_process import LOOPBACK, RunningEngine, free_ports, start_engine

ADMIN_TOKEN = "engine-admin-token-for-tests"
names = itertools.count(1)


def unique(prefix: str) -> str:
    """A name no other test of this session uses on the shared engine."""
    return f"{prefix}-{next(names)}"


def engine_get(endpoint: str, path: str, token: str | None = None) -> Any:
    """``GET path`` on the engine's API, read with the standard library (not the code under test)."""
    request = urllib.request.Request(endpoint + path)
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    with LOOPBACK.open(request, timeout=30) as response:
        return json.loads(response.read())


def engine_put(endpoint: str, path: str, body: Any) -> Any:
    request = urllib.request.Request(
        endpoint + path, json.dumps(body).encode(), {"Content-Type": "application/json"}, method="PUT"
    )
    with LOOPBACK.open(request, timeout=30) as response:
        return json.loads(response.read())


def settings_for(
    endpoint: str, namespace: str = "default", pool: str = "default", token: str | None = None
) -> EngineSettings:
    settings = engine_settings(endpoint, pool, namespace, token, environ={})
    assert settings is not None
    return settings


def test_ensure_pool_creates_what_is_missing_then_finds_it(rivet_engine: RunningEngine) -> None:
    namespace, pool = unique("ns"), unique("backend")
    settings = settings_for(rivet_engine.endpoint, namespace, pool)

    first = ensure_pool(settings)
    assert first == PoolRegistration(namespace, pool, ("default",), True, True, "2.3.19")
    again = ensure_pool(settings)
    assert again == PoolRegistration(namespace, pool, ("default",), False, False, "2.3.19")

    # Read back through the engine's API: one namespace of that name, the pool serverful in its datacenter.
    found = engine_get(rivet_engine.endpoint, f"/namespaces?name={namespace}")["namespaces"]
    assert [each["name"] for each in found] == [namespace]
    configs = engine_get(rivet_engine.endpoint, f"/runner-configs?namespace={namespace}")["runner_configs"]
    assert list(configs) == [pool]
    assert configs[pool]["datacenters"]["default"]["normal"]["drain_on_version_upgrade"] is True


def test_the_default_namespace_is_found_not_created(rivet_engine: RunningEngine) -> None:
    pool = unique("backend")
    registration = ensure_pool(settings_for(rivet_engine.endpoint, "default", pool))
    assert (registration.namespace, registration.namespace_created, registration.pool_created) == (
        "default", False, True
    )


def test_hosts_starting_together_register_the_pool_once(rivet_engine: RunningEngine) -> None:
    settings = settings_for(rivet_engine.endpoint, unique("ns"), unique("backend"))
    runs = [gevent.spawn(ensure_pool, settings) for _ in range(4)]
    gevent.joinall(runs, raise_error=True)
    results = [run.value for run in runs]
    assert all(result.datacenters == ("default",) for result in results)
    assert sum(result.namespace_created for result in results) == 1  # the others found it, or lost the race
    found = engine_get(rivet_engine.endpoint, f"/namespaces?name={settings.endpoint.namespace}")["namespaces"]
    assert len(found) == 1


def test_a_serverless_pool_of_that_name_is_refused_and_left_alone(rivet_engine: RunningEngine) -> None:
    pool = unique("serverless")
    serverless = {
        "url": "http://127.0.0.1:9/api", "headers": {}, "request_lifespan": 300, "max_concurrent_actors": 10,
        "drain_grace_period": 10, "metadata_poll_interval": 1000, "slots_per_runner": 1, "min_runners": 0,
        "max_runners": 1, "runners_margin": 0,
    }
    engine_put(rivet_engine.endpoint, f"/runner-configs/{pool}?namespace=default",
               {"datacenters": {"default": {"serverless": serverless}}})

    with pytest.raises(RivetError) as refused:
        ensure_pool(settings_for(rivet_engine.endpoint, "default", pool))
    assert (refused.value.group, refused.value.code) == ("engine", "pool_not_serverful")
    assert f"Pool '{pool}'" in refused.value.message
    configs = engine_get(rivet_engine.endpoint, f"/runner-configs?namespace=default&runner_name={pool}")
    assert "serverless" in configs["runner_configs"][pool]["datacenters"]["default"]


def test_a_closed_port_is_unreachable_at_once() -> None:
    closed = f"http://127.0.0.1:{free_ports(1)[0]}"
    started = time.monotonic()
    with pytest.raises(RivetError) as failed:
        ensure_pool(settings_for(closed))
    assert (failed.value.group, failed.value.code) == ("engine", "unreachable")
    assert closed in failed.value.message and "refused" in failed.value.message
    assert time.monotonic() - started < 5  # not retried as if it were a stall


def test_a_rivetgreen_host_is_not_an_engine(tmp_path: Any) -> None:
    registry = setup(actor("counter", state={}), data_dir=str(tmp_path))
    server = make_server(registry.flask_app(), "127.0.0.1", 0)
    try:
        with pytest.raises(RivetError) as failed:
            ensure_pool(settings_for(f"http://127.0.0.1:{server.server_port}"))
    finally:
        server.stop(timeout=5)
        registry.shutdown()
    assert (failed.value.group, failed.value.code) == ("engine", "not_an_engine")
    assert "'rivetkit' runtime" in failed.value.message


@pytest.fixture(scope="module")
def engine_with_token(engine_binary: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningEngine]:
    """A second engine, whose API requires an admin token."""
    engine = start_engine(engine_binary, tmp_path_factory.mktemp("engine-with-token"),
                          {"auth": {"admin_token": ADMIN_TOKEN}})
    yield engine
    engine.stop()


def test_the_token_is_sent_to_an_engine_that_requires_one(engine_with_token: RunningEngine) -> None:
    namespace, pool = unique("ns"), unique("backend")
    registration = ensure_pool(settings_for(engine_with_token.endpoint, namespace, pool, ADMIN_TOKEN))
    assert (registration.namespace_created, registration.pool_created) == (True, True)
    configs = engine_get(engine_with_token.endpoint, f"/runner-configs?namespace={namespace}", ADMIN_TOKEN)
    assert list(configs["runner_configs"]) == [pool]


@pytest.mark.parametrize("token", [None, "a-wrong-token"], ids=["no-token", "wrong-token"])
def test_a_refused_token_is_the_engines_error(engine_with_token: RunningEngine, token: str | None) -> None:
    started = time.monotonic()
    with pytest.raises(RivetError) as refused:
        ensure_pool(settings_for(engine_with_token.endpoint, "default", unique("backend"), token))
    assert (refused.value.group, refused.value.code) == ("api", "forbidden")
    assert time.monotonic() - started < 5  # not retried


# Stalls ----------------------------------------------------------------------------------------------------------
class StallingProxy:
    """A loopback HTTP server in front of the engine that stalls its first ``stalls`` pool registrations, the way
    the engine sometimes does: an error 500 ``core/internal_error``, or no answer at all."""

    def __init__(self, engine: str, stalls: int, how: str) -> None:
        self.engine = engine
        self.stalls = stalls
        self.how = how
        self.registrations = 0
        self.never = gevent.event.Event()
        self.server = make_server(self.app, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self.server.server_port}"

    def app(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        path = environ["PATH_INFO"] + ("?" + environ["QUERY_STRING"] if environ.get("QUERY_STRING") else "")
        if environ["REQUEST_METHOD"] == "PUT" and path.startswith("/runner-configs/"):
            self.registrations += 1
            if self.registrations <= self.stalls:
                if self.how == "no-answer":
                    self.never.wait()
                error = {"group": "core", "code": "internal_error", "message": "operation timed out"}
                start_response("500 Internal Server Error", [("Content-Type", "application/json")])
                return [json.dumps(error).encode()]
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else None
        request = urllib.request.Request(self.engine + path, body, method=environ["REQUEST_METHOD"])
        if body is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with LOOPBACK.open(request, timeout=30) as response:
                status, data = f"{response.status} {response.reason}", response.read()
        except urllib.error.HTTPError as error:
            status, data = f"{error.code} {error.reason}", error.read()
        start_response(status, [("Content-Type", "application/json")])
        return [data]


@pytest.fixture
def stalling_proxy(rivet_engine: RunningEngine) -> Iterator[Any]:
    proxies: list[StallingProxy] = []

    def make(stalls: int, how: str) -> StallingProxy:
        proxies.append(StallingProxy(rivet_engine.endpoint, stalls, how))
        return proxies[-1]

    yield make
    for proxy in proxies:
        proxy.never.set()
        proxy.server.stop(timeout=5)


@pytest.mark.parametrize("how", ["error-500", "no-answer"])
def test_a_stalled_registration_is_retried(rivet_engine: RunningEngine, stalling_proxy: Any, how: str) -> None:
    proxy = stalling_proxy(stalls=1, how=how)
    pool = unique("backend")

    registration = ensure_pool(settings_for(proxy.url, "default", pool), request_timeout=1.0)
    assert registration.pool_created
    assert proxy.registrations == 2
    configs = engine_get(rivet_engine.endpoint, f"/runner-configs?namespace=default&runner_name={pool}")
    assert "normal" in configs["runner_configs"][pool]["datacenters"]["default"]


def test_setup_gives_up_at_its_bound(stalling_proxy: Any) -> None:
    proxy = stalling_proxy(stalls=1_000_000, how="error-500")
    started = time.monotonic()
    with pytest.raises(RivetError) as failed:
        ensure_pool(settings_for(proxy.url, "default", unique("backend")), timeout=2.0)
    assert (failed.value.group, failed.value.code) == ("engine", "setup_timed_out")
    assert "operation timed out" in failed.value.message  # the last stall is named
    assert 1.0 < time.monotonic() - started < 3.0
    assert proxy.registrations >= 2
