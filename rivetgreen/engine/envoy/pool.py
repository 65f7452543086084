"""What an envoy host needs on the engine before it connects: its namespace, and its pool (a runner config,
serverful: ``normal``) in every datacenter of the engine (engine-envoy.md §4). Only what is missing is created, so
every host runs this at every start, concurrently or not.

The engine sometimes stalls 15–56 s creating things (§10.5: a timeout on our side, or its own 500
``core/internal_error`` "operation timed out"); those calls are retried, with backoff, within an overall bound.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import quote

import gevent

from rivetgreen.client.engine import EngineApi
from rivetgreen.client.errors import ClientTimeout
from rivetgreen.client.http import HttpTransport
from rivetgreen.engine.envoy.settings import EngineSettings
from rivetgreen.errors import RivetError

log = logging.getLogger("rivetgreen.engine.envoy")

SETUP_TIMEOUT = 120.0  # overall bound of ensure_pool, retries included
REQUEST_TIMEOUT = 35.0  # one call: the engine itself gives up on a stalled operation after 30 s
FIRST_RETRY_DELAY = 0.5
MAX_RETRY_DELAY = 5.0
# What rivetkit-core registers for a pool of hosts that connect by themselves (§4): serverful, and drained when a
# newer version of the pool's hosts connects.
SERVERFUL_POOL = {"normal": {}, "drain_on_version_upgrade": True}

Result = TypeVar("Result")


@dataclass(frozen=True)
class PoolRegistration:
    """The namespace and pool as ``ensure_pool`` left them: ``datacenters`` the pool is registered in, and whether
    this call created the namespace or (part of) the pool (hosts registering the same pool at the same moment may
    each report that they did: the registration is an upsert)."""

    namespace: str
    pool: str
    datacenters: tuple[str, ...]
    namespace_created: bool
    pool_created: bool
    engine_version: str


def ensure_pool(
    settings: EngineSettings,
    *,
    timeout: float = SETUP_TIMEOUT,
    request_timeout: float = REQUEST_TIMEOUT,
    transport: HttpTransport | None = None,
) -> PoolRegistration:
    """Make sure ``settings``' namespace exists and its pool is registered in every datacenter, creating what is
    missing; a call that gets no answer within ``request_timeout`` seconds counts as a stall. Failures are
    RivetErrors: ``engine/unreachable``, ``engine/not_an_engine``, ``engine/pool_not_serverful``,
    ``engine/setup_timed_out`` (stalls past ``timeout`` seconds) or the engine's own error (``api/forbidden``...)."""
    own_transport = transport is None
    api = EngineApi(transport or HttpTransport())
    setup = _PoolSetup(settings, api, time.monotonic() + timeout, request_timeout)
    try:
        return setup.run()
    finally:
        if own_transport:
            setup.api.transport.close()


class _PoolSetup:
    """One ``ensure_pool`` run: its calls share the deadline."""

    def __init__(self, settings: EngineSettings, api: EngineApi, deadline: float, request_timeout: float) -> None:
        self.settings = settings
        self.endpoint = settings.endpoint
        self.api = api
        self.deadline = deadline
        self.request_timeout = request_timeout

    def run(self) -> PoolRegistration:
        version = self.engine_version()
        namespace_created = self.retrying("namespace", self.ensure_namespace)
        datacenters = self.retrying("datacenters", self.datacenter_names)
        pool_created = self.retrying("pool", lambda: self.ensure_runner_config(datacenters))
        return PoolRegistration(
            self.endpoint.namespace, self.settings.pool, datacenters, namespace_created, pool_created, version
        )

    def engine_version(self) -> str:
        """The engine's version from ``GET /metadata``, which also proves the endpoint is a Rivet Engine."""
        try:
            metadata = self.retrying("metadata", lambda: self.call("GET", "/metadata"))
        except RivetError as error:
            # An HTTP error without a status never got an answer: refused, unknown host, reset.
            if error.matches("client", "http_error") and "status" not in (error.metadata or {}):
                raise RivetError(
                    "engine", "unreachable", f"The Rivet Engine at {self.endpoint.url} cannot be reached: "
                    f"{error.message}", {"endpoint": self.endpoint.url},
                ) from error
            if error.matches("engine", "setup_timed_out"):
                raise
            metadata = None  # an answer, but an error: some other HTTP server
        if not isinstance(metadata, dict) or metadata.get("runtime") != "engine":
            runtime = metadata.get("runtime") if isinstance(metadata, dict) else None
            answered = f"a {runtime!r} runtime" if runtime else "no engine metadata"
            raise RivetError(
                "engine", "not_an_engine", f"{self.endpoint.url} is not a Rivet Engine: GET /metadata gave {answered}.",
                {"endpoint": self.endpoint.url},
            )
        return str(metadata.get("version", ""))

    def ensure_namespace(self) -> bool:
        """Create the namespace unless it exists; whether this call created it."""
        name = self.endpoint.namespace
        found = self.call("GET", "/namespaces", {"name": name}, namespaced=False).get("namespaces") or []
        if any(namespace.get("name") == name for namespace in found):
            return False
        try:
            self.call("POST", "/namespaces", body={"name": name, "display_name": name})
        except RivetError as error:
            if error.matches("namespace", "name_not_unique"):
                return False  # another host (or our own earlier attempt, which stalled) created it meanwhile
            raise
        log.info("created namespace %r on the Rivet Engine at %s", name, self.endpoint.url)
        return True

    def datacenter_names(self) -> tuple[str, ...]:
        datacenters = self.call("GET", "/datacenters").get("datacenters") or []
        return tuple(datacenter["name"] for datacenter in datacenters)

    def ensure_runner_config(self, datacenters: tuple[str, ...]) -> bool:
        """Register the pool in the datacenters that lack it; whether there were any. A pool already registered as
        serverless (the engine starts its hosts through a URL) is the user's: it is left alone and refused."""
        pool = self.settings.pool
        configs = self.call("GET", "/runner-configs", {"runner_name": pool}).get("runner_configs") or {}
        registered = (configs.get(pool) or {}).get("datacenters") or {}
        for datacenter, config in registered.items():
            if "normal" not in config:
                raise RivetError(
                    "engine", "pool_not_serverful",
                    f"Pool {pool!r} of namespace {self.endpoint.namespace!r} is registered as "
                    f"{', '.join(sorted(config)) or 'something else'} in datacenter {datacenter!r}; hosts that "
                    "join by themselves need a serverful (normal) pool. Choose another pool name, or delete this "
                    "runner config.",
                    {"pool": pool, "datacenter": datacenter},
                )
        missing = [datacenter for datacenter in datacenters if datacenter not in registered]
        if not missing:
            return False
        # Only the datacenters that lack the pool are sent (the route is the engine's upsert), so a config already
        # there, perhaps tuned by the operator, is not replaced.
        body = {"datacenters": {datacenter: SERVERFUL_POOL for datacenter in missing}}
        self.call("PUT", f"/runner-configs/{quote(pool, safe='')}", body=body)
        log.info("registered pool %r in %s on the Rivet Engine at %s", pool, ", ".join(missing), self.endpoint.url)
        return True

    def call(self, method: str, path: str, query: dict[str, str] | None = None, **options: Any) -> Any:
        remaining = self.deadline - time.monotonic()
        timeout = min(self.request_timeout, max(remaining, 0.1))
        return self.api.call(self.endpoint, method, path, timeout, query, **options)

    def retrying(self, step: str, attempt: Callable[[], Result]) -> Result:
        """``attempt()``, again after each transient failure (a stall), until the deadline."""
        delay = FIRST_RETRY_DELAY
        while True:
            try:
                return attempt()
            except RivetError as error:
                if not is_transient(error):
                    raise
                remaining = self.deadline - time.monotonic()
                if remaining <= delay:
                    raise RivetError(
                        "engine", "setup_timed_out",
                        f"Setting up pool {self.settings.pool!r} on the Rivet Engine at {self.endpoint.url} did not "
                        f"finish in time ({step}): {error}",
                        {"endpoint": self.endpoint.url, "step": step},
                    ) from error
                log.warning("Rivet Engine setup (%s) stalled: %s; retrying in %.1f s", step, error, delay)
                gevent.sleep(delay)
                delay = min(delay * 2, MAX_RETRY_DELAY)


def is_transient(error: RivetError) -> bool:
    """Whether a failed call may succeed if repeated: a timeout, or the engine failing on its side (5xx)."""
    if isinstance(error, ClientTimeout) or error.group in ("core", "guard"):
        return True
    status = (error.metadata or {}).get("status") if isinstance(error.metadata, dict) else None
    return error.matches("client", "http_error") and isinstance(status, int) and status >= 500
