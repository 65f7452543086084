"""``Client``: the entry point, configured like the JS ``createClient`` (client-protocol.md §1).

``client.counter.get_or_create(["a"])`` (or ``client.get_or_create("counter", ["a"])``) returns an
:class:`~rivetgreen.client.handle.ActorHandle`. The endpoint's ``GET /metadata`` is looked up once, on first use;
a ``clientEndpoint`` it names (with ``clientNamespace``/``clientToken``) replaces the configured endpoint.
"""

from __future__ import annotations

import logging
import os
import time
import weakref
from typing import TYPE_CHECKING, Any

import gevent
import gevent.lock

from rivetgreen.client.engine import EngineApi
from rivetgreen.client.errors import ClientTimeout
from rivetgreen.client.handle import ActorHandle
from rivetgreen.client.http import USER_AGENT, HttpTransport
from rivetgreen.client.urls import DEFAULT_POOL, ActorTarget, Endpoint, parse_endpoint
from rivetgreen.encoding.actor_key import validate_key
from rivetgreen.encoding.client_protocol import check_encoding
from rivetgreen.errors import RivetError

if TYPE_CHECKING:
    from rivetgreen.client.connection import ActorConnection

log = logging.getLogger("rivetgreen.client")

DEFAULT_ENDPOINT = "http://localhost:6420"
DEFAULT_TIMEOUT = 60.0
METADATA_FIRST_BACKOFF = 0.5
METADATA_MAX_BACKOFF = 15.0


class Client:
    """A synchronous, gevent-cooperative RivetKit client.

    ``endpoint`` defaults to ``$RIVET_ENGINE``, ``$RIVET_ENDPOINT`` or ``http://localhost:6420``; it may embed
    ``namespace:token@``. ``encoding`` is ``bare`` (default), ``cbor`` or ``json``. ``timeout`` bounds every
    blocking call (seconds). ``headers`` are added to every request; ``pool`` is the runner pool for
    getOrCreate. ``metadata_lookup=False`` skips ``GET /metadata``."""

    def __init__(
        self,
        endpoint: str | None = None,
        *,
        encoding: str = "bare",
        token: str | None = None,
        namespace: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        headers: dict[str, str] | None = None,
        pool: str = DEFAULT_POOL,
        metadata_lookup: bool = True,
    ) -> None:
        check_encoding(encoding)
        endpoint = endpoint or os.environ.get("RIVET_ENGINE") or os.environ.get("RIVET_ENDPOINT") or DEFAULT_ENDPOINT
        self.encoding = encoding
        self.timeout = timeout
        self.pool = pool
        self.headers = dict(headers or {})
        self.transport = HttpTransport()
        self.engine = EngineApi(self.transport, self.headers)
        self._configured = parse_endpoint(endpoint, namespace or os.environ.get("RIVET_NAMESPACE"),
                                          token if token is not None else os.environ.get("RIVET_TOKEN"))
        self._resolved: Endpoint | None = None if metadata_lookup else self._configured
        self._metadata_lock = gevent.lock.Semaphore()
        self._connections: weakref.WeakSet[ActorConnection] = weakref.WeakSet()

    def __repr__(self) -> str:
        return f"<Client {self._configured.url} namespace={self._configured.namespace} encoding={self.encoding}>"

    def __getattr__(self, name: str) -> ActorAccessor:
        if name.startswith("_"):
            raise AttributeError(name)
        return ActorAccessor(self, name)

    def __getitem__(self, name: str) -> ActorAccessor:
        return ActorAccessor(self, name)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    # Handles ------------------------------------------------------------------------------------------------
    def get(self, name: str, key: Any = (), *, params: Any = None) -> ActorHandle:
        """A handle to the existing actor ``name`` with ``key`` (calls fail with ``actor/not_found`` if none)."""
        return ActorHandle(self, ActorTarget(name, tuple(validate_key(key)), "get"), params)

    def get_or_create(self, name: str, key: Any = (), *, input: Any = None, params: Any = None) -> ActorHandle:
        """A handle that creates the actor on first use (with ``input``, if not None)."""
        target = ActorTarget(name, tuple(validate_key(key)), "getOrCreate", input=input, has_input=input is not None)
        return ActorHandle(self, target, params)

    def create(self, name: str, key: Any = (), *, input: Any = None, params: Any = None,
               timeout: float | None = None) -> ActorHandle:
        """Create the actor now (``POST /actors``; ``actor/duplicate_key`` if the key is taken); the handle is
        pinned to its id."""
        actor = self.engine.create_actor(self.endpoint(), name, validate_key(key), input is not None, input,
                                         self.remaining(self.deadline(timeout)), self.pool)
        return self.get_for_id(name, actor["actor_id"], params=params)

    def get_for_id(self, name: str, actor_id: str, *, params: Any = None) -> ActorHandle:
        """A handle to the actor with this id."""
        return ActorHandle(self, ActorTarget(name, actor_id=actor_id), params)

    # Lifecycle ----------------------------------------------------------------------------------------------
    def close(self) -> None:
        """Close every open connection and the idle HTTP connections."""
        for connection in list(self._connections):
            connection.close()
        self.transport.close()

    def _track(self, connection: ActorConnection) -> None:
        self._connections.add(connection)

    def _untrack(self, connection: ActorConnection) -> None:
        self._connections.discard(connection)

    # Plumbing shared by handles and connections -------------------------------------------------------------
    def endpoint(self) -> Endpoint:
        """The endpoint to talk to, after the one-time ``GET /metadata`` (retried with backoff for at most the
        client's timeout)."""
        if self._resolved is not None:
            return self._resolved
        with self._metadata_lock:
            if self._resolved is None:
                self._resolved = self._lookup_metadata()
        return self._resolved

    def _lookup_metadata(self) -> Endpoint:
        deadline = self.deadline(None)
        backoff = METADATA_FIRST_BACKOFF
        while True:
            try:
                metadata = self.engine.metadata(self._configured, self.remaining(deadline))
                break
            except RivetError as error:
                if isinstance(error, ClientTimeout) or deadline - time.monotonic() <= backoff:
                    raise
                log.warning("GET /metadata failed (%s); retrying in %.1f s", error, backoff)
                gevent.sleep(backoff)
                backoff = min(backoff * 2, METADATA_MAX_BACKOFF)
        client_endpoint = metadata.get("clientEndpoint")
        if not isinstance(client_endpoint, str) or not client_endpoint:
            return self._configured
        namespace = metadata.get("clientNamespace") or self._configured.namespace
        token = metadata.get("clientToken") or self._configured.token
        return parse_endpoint(client_endpoint, namespace, token)

    def deadline(self, timeout: float | None) -> float:
        """The monotonic time by which a call must end (``timeout`` None: the client's timeout)."""
        return time.monotonic() + (self.timeout if timeout is None else timeout)

    def remaining(self, deadline: float) -> float:
        """Seconds left until ``deadline``; ``client/timeout`` when none are."""
        left = deadline - time.monotonic()
        if left <= 0:
            raise ClientTimeout("The call ran out of time.")
        return left

    def websocket_headers(self) -> dict[str, str]:
        headers = {"User-Agent": USER_AGENT}
        headers.update(self.headers)
        return headers


class ActorAccessor:
    """``client.<name>``: the handle factories of one actor name."""

    def __init__(self, client: Client, name: str) -> None:
        self._client = client
        self.name = name

    def __repr__(self) -> str:
        return f"<ActorAccessor {self.name}>"

    def get(self, key: Any = (), *, params: Any = None) -> ActorHandle:
        return self._client.get(self.name, key, params=params)

    def get_or_create(self, key: Any = (), *, input: Any = None, params: Any = None) -> ActorHandle:
        return self._client.get_or_create(self.name, key, input=input, params=params)

    def create(self, key: Any = (), *, input: Any = None, params: Any = None,
               timeout: float | None = None) -> ActorHandle:
        return self._client.create(self.name, key, input=input, params=params, timeout=timeout)

    def get_for_id(self, actor_id: str, *, params: Any = None) -> ActorHandle:
        return self._client.get_for_id(self.name, actor_id, params=params)
