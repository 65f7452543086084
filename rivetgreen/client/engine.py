"""The engine's JSON REST API, as the JS client calls it (client-protocol.md §1.2, §2): ``GET /metadata`` and
``GET``/``PUT``/``POST /actors``. Every call carries ``?namespace=`` and, with a token, ``Authorization: Bearer``."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

from rivetgreen.client.errors import client_error, error_from_dict
from rivetgreen.client.http import HttpResponse, HttpTransport
from rivetgreen.client.urls import CRASH_POLICY, DEFAULT_POOL, Endpoint, combine_url_path, input_for_api
from rivetgreen.encoding.actor_key import serialize_key
from rivetgreen.encoding.json_compat import from_json_compat
from rivetgreen.errors import RivetError


class EngineApi:
    """Calls on one endpoint's REST API. Responses are JSON; errors become RivetErrors."""

    def __init__(self, transport: HttpTransport, extra_headers: dict[str, str] | None = None) -> None:
        self.transport = transport
        self.extra_headers = dict(extra_headers or {})

    def call(
        self, endpoint: Endpoint, method: str, path: str, timeout: float,
        query: dict[str, str] | None = None, body: Any = None, *, namespaced: bool = True,
    ) -> Any:
        """``{method} {path}?{query}&namespace=…`` with an optional JSON body; the parsed JSON reply.
        ``namespaced=False`` leaves ``namespace`` out, for the routes that refuse it (``GET /namespaces``)."""
        params = dict(query or {})
        if namespaced:
            params["namespace"] = endpoint.namespace
        url = combine_url_path(endpoint, f"{path}?{urlencode(params)}")
        headers = dict(self.extra_headers)
        if endpoint.token is not None:
            headers["Authorization"] = f"Bearer {endpoint.token}"
        data = None
        if body is not None:
            data = json.dumps(body, separators=(",", ":")).encode()
            headers["Content-Type"] = "application/json"
        response = self.transport.request(method, url, body=data, headers=headers, timeout=timeout)
        if not response.ok:
            raise _api_error(response)
        try:
            return from_json_compat(response.json())
        except (ValueError, RivetError) as error:
            raise client_error("malformed_response", f"{method} {path} returned invalid JSON: {error}") from error

    def metadata(self, endpoint: Endpoint, timeout: float) -> dict[str, Any]:
        result = self.call(endpoint, "GET", "/metadata", timeout)
        return result if isinstance(result, dict) else {}

    def get_actor_by_key(self, endpoint: Endpoint, name: str, key: list[str], timeout: float) -> dict[str, Any]:
        """``GET /actors?name=&key=``; ``actor/not_found`` when there is none."""
        actors: list[dict[str, Any]]
        try:
            actors = self.call(endpoint, "GET", "/actors", timeout,
                               {"name": name, "key": serialize_key(key)}).get("actors") or []
        except RivetError as error:
            if error.matches("actor", "not_found"):
                actors = []
            else:
                raise
        if not actors:
            raise RivetError("actor", "not_found", f"Actor '{name}' with key {key!r} was not found.",
                             {"name": name, "key": key}, public=True)
        return actors[0]

    def get_or_create_actor(
        self, endpoint: Endpoint, name: str, key: list[str], has_input: bool, create_input: Any, timeout: float,
        pool: str = DEFAULT_POOL,
    ) -> dict[str, Any]:
        """``PUT /actors``; the ``actor`` object of the reply."""
        body = _creation_body(name, key, has_input, create_input, pool)
        actor: dict[str, Any] = self.call(endpoint, "PUT", "/actors", timeout, body=body)["actor"]
        return actor

    def create_actor(
        self, endpoint: Endpoint, name: str, key: list[str], has_input: bool, create_input: Any, timeout: float,
        pool: str = DEFAULT_POOL,
    ) -> dict[str, Any]:
        """``POST /actors`` (``actor/duplicate_key`` if the key is taken); the ``actor`` object of the reply."""
        body = _creation_body(name, key, has_input, create_input, pool)
        actor: dict[str, Any] = self.call(endpoint, "POST", "/actors", timeout, body=body)["actor"]
        return actor


def _creation_body(name: str, key: list[str], has_input: bool, create_input: Any, pool: str) -> dict[str, Any]:
    body: dict[str, Any] = {"name": name, "key": serialize_key(key), "runner_name_selector": pool}
    if has_input:
        body["input"] = input_for_api(create_input)
    body["crash_policy"] = CRASH_POLICY
    return body


def _api_error(response: HttpResponse) -> RivetError:
    """A non-2xx engine reply: ``{group, code, message, metadata?}`` when JSON, else ``client/http_error``."""
    content_type = response.headers.get("Content-Type") or ""
    if "application/json" in content_type.lower():
        try:
            document = response.json()
            if isinstance(document, dict) and {"group", "code", "message"} <= document.keys():
                return error_from_dict(document)
        except ValueError:
            pass
    text = response.text
    return client_error("http_error", f"{response.reason} ({response.status}):\n{text}",
                        {"status": response.status, "body": text})
