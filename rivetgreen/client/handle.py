"""``ActorHandle``: stateless calls to one actor over HTTP (actions, queue sends, raw fetch), plus its raw
WebSocket and its ``/connect`` connection (client-protocol.md §3, §4, §6).

get/getOrCreate handles name the actor by query (``/gateway/{name}/...?rvt-...``) on every call, so the gateway
resolves (or creates) it each time; handles from ``create``/``get_for_id`` use ``/gateway/{id}/...``.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import gevent

from rivetgreen.client.errors import ClientTimeout, client_error, error_from_http, is_retryable
from rivetgreen.client.http import HttpResponse
from rivetgreen.client.urls import (
    ActorTarget,
    encode_uri_component,
    gateway_url,
    javascript_truthy,
    json_text,
    raw_request_path,
    raw_websocket_path,
    websocket_protocols,
)
from rivetgreen.client.websocket import WebSocket
from rivetgreen.encoding import client_protocol as protocol
from rivetgreen.errors import RivetError

if TYPE_CHECKING:
    from rivetgreen.client.client import Client
    from rivetgreen.client.connection import ActorConnection

MAX_ATTEMPTS = 20  # of one call, when the actor is in a transient lifecycle state
FIRST_BACKOFF = 0.1
MAX_BACKOFF = 1.0


class ActorHandle:
    """Calls one actor. ``handle.increment(5)`` is ``handle.action("increment", 5)``.

    ``params`` are the connection params sent with every HTTP call (``x-rivet-conn-params``) and used by
    :meth:`connect` unless it is given its own."""

    def __init__(self, client: Client, target: ActorTarget, params: Any = None) -> None:
        self._client = client
        self._target = target
        self._params = params

    def __repr__(self) -> str:
        if self._target.actor_id is not None:
            return f"<ActorHandle {self._target.name} id={self._target.actor_id}>"
        return f"<ActorHandle {self._target.name}{list(self._target.key)!r} ({self._target.method})>"

    def __getattr__(self, name: str) -> Callable[..., Any]:
        if name.startswith("_"):
            raise AttributeError(name)
        return functools.partial(self.action, name)

    @property
    def target(self) -> ActorTarget:
        return self._target

    # Actions and queue -----------------------------------------------------------------------------------------
    def action(self, name: str, *args: Any, timeout: float | None = None) -> Any:
        """Call action ``name`` with ``args`` (``POST /action/{name}``) and return its output."""
        encoding = self._client.encoding
        body = protocol.encode_action_request(encoding, list(args))
        response = self._post(f"/action/{encode_uri_component(name)}", body, timeout)
        try:
            return protocol.decode_action_response(encoding, response.body)
        except RivetError as error:
            raise client_error("malformed_response", f"The response to action '{name}' is invalid: {error}") from error

    def send(self, name: str, body: Any, wait: bool = False, timeout: float | None = None,
             request_timeout: float | None = None) -> dict[str, Any] | None:
        """Send ``body`` to the actor's queue ``name`` (``POST /queue/{name}``). With ``wait``, block until the
        actor completes the message or ``timeout`` seconds pass and return ``{"status": "completed" |
        "timedOut", "response": ...}``; without, return None once it is enqueued."""
        encoding = self._client.encoding
        timeout_ms = None if timeout is None else round(timeout * 1000)
        request = protocol.QueueSendRequest(name=name, body=body, wait=wait, timeout_ms=timeout_ms)
        limit = request_timeout
        if limit is None and timeout is not None:
            limit = max(self._client.timeout, timeout + 10.0)
        response = self._post(f"/queue/{encode_uri_component(name)}",
                              protocol.encode_queue_send_request(encoding, request), limit)
        if not wait:
            return None
        try:
            status, output = protocol.decode_queue_send_response(encoding, response.body)
        except RivetError as error:
            raise client_error("malformed_response", f"The queue send response is invalid: {error}") from error
        return {"status": status, "response": output}

    def _post(self, path: str, body: bytes, timeout: float | None) -> HttpResponse:
        client = self._client
        headers = {"Content-Type": protocol.content_type(client.encoding), "x-rivet-encoding": client.encoding}
        headers.update(self._common_headers())

        def attempt() -> HttpResponse:
            response = client.transport.request("POST", self._url(path), body=body, headers=headers,
                                                timeout=client.remaining(deadline))
            if not response.ok:
                raise error_from_http(client.encoding, response.status, response.reason,
                                      response.headers.get("Content-Type"), response.body)
            return response

        deadline = client.deadline(timeout)
        return self._with_retries(attempt, deadline)

    def _with_retries(self, attempt: Callable[[], HttpResponse], deadline: float) -> HttpResponse:
        """Run ``attempt``, again after a short wait while the actor is in a transient lifecycle state."""
        backoff = FIRST_BACKOFF
        for number in range(MAX_ATTEMPTS):
            try:
                return attempt()
            except ClientTimeout:
                raise
            except RivetError as error:
                can_create = self._target.method == "getOrCreate"
                last = number == MAX_ATTEMPTS - 1
                if last or not is_retryable(error, self._target.is_query, can_create):
                    raise
                if deadline - time.monotonic() <= backoff:
                    raise
                gevent.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)
        raise AssertionError("unreachable")

    # Addressing ------------------------------------------------------------------------------------------------
    def resolve(self, timeout: float | None = None) -> str:
        """The actor id: ``PUT /actors`` for getOrCreate (creating it), ``GET /actors`` for get."""
        target = self._target
        if target.actor_id is not None:
            return target.actor_id
        client = self._client
        endpoint = client.endpoint()
        limit = client.remaining(client.deadline(timeout))
        if target.method == "getOrCreate":
            actor = client.engine.get_or_create_actor(endpoint, target.name, list(target.key), target.has_input,
                                                      target.input, limit, client.pool)
        else:
            actor = client.engine.get_actor_by_key(endpoint, target.name, list(target.key), limit)
        actor_id: str = actor["actor_id"]
        return actor_id

    def gateway_url(self) -> str:
        """The gateway prefix of this actor, without a path."""
        return self._url("")

    # Raw HTTP and WebSocket ------------------------------------------------------------------------------------
    def fetch(
        self,
        path: str = "/",
        method: str = "GET",
        body: bytes | str | None = None,
        headers: dict[str, str] | None = None,
        timeout: float | None = None,
    ) -> HttpResponse:
        """A raw HTTP request to the actor's ``on_request`` (``/request/{path}``); any status is returned as is."""
        all_headers = dict(headers or {})
        data = body.encode("utf-8") if isinstance(body, str) else body
        if isinstance(body, str) and not any(name.lower() == "content-type" for name in all_headers):
            all_headers["Content-Type"] = "text/plain;charset=UTF-8"
        all_headers.update(self._common_headers(raw=True))
        client = self._client
        return client.transport.request(method.upper(), self._url(raw_request_path(path)), body=data,
                                        headers=all_headers, timeout=client.remaining(client.deadline(timeout)))

    def websocket(self, path: str = "", timeout: float | None = None) -> WebSocket:
        """Open a raw WebSocket to the actor's ``on_websocket`` (``/websocket/{path}``). The returned socket's
        ``receive()`` waits at most the client's timeout unless given another."""
        client = self._client
        return WebSocket.connect(
            self._url(raw_websocket_path(path)),
            subprotocols=websocket_protocols("bare", self._params),
            headers=client.websocket_headers(),
            timeout=client.remaining(client.deadline(timeout)),
            default_timeout=client.timeout,
        )

    def connect(self, params: Any = None) -> ActorConnection:
        """Open a ``/connect`` connection (events, actions over the WebSocket, automatic reconnects)."""
        from rivetgreen.client.connection import ActorConnection

        return ActorConnection(self._client, self._target, self._params if params is None else params)

    # helpers ---------------------------------------------------------------------------------------------------
    def _url(self, path: str) -> str:
        return gateway_url(self._client.endpoint(), self._target, path, self._client.pool)

    def _common_headers(self, raw: bool = False) -> dict[str, str]:
        headers = dict(self._client.headers)
        # As the official client: actions and queue sends carry any params given (``!== undefined``), raw requests
        # only params that are truthy in JavaScript (``if (params)``).
        if javascript_truthy(self._params) if raw else self._params is not None:
            headers["x-rivet-conn-params"] = json_text(self._params, ascii_only=True)
        token = self._client.endpoint().token
        if token is not None:
            headers["x-rivet-token"] = token
        return headers
