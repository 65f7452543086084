"""Endpoints, actor targets and gateway URLs, built exactly as ``rivetkit@2.3.19`` builds them
(client-protocol.md §1.1, §1.3, §1.4, §5.1, §6).

Pure functions and small value types: nothing here does I/O.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, quote_plus, urlsplit

from rivetgreen.encoding.cbor import encode_wire
from rivetgreen.encoding.json_compat import to_json_compat

DEFAULT_NAMESPACE = "default"
DEFAULT_POOL = "default"
CRASH_POLICY = "sleep"  # the TS client never sends anything else


@dataclass(frozen=True)
class Endpoint:
    """Where the engine API and the gateway live: ``origin`` (``scheme://host[:port]``) plus a path ``prefix``."""

    origin: str
    prefix: str
    namespace: str = DEFAULT_NAMESPACE
    token: str | None = None

    @property
    def url(self) -> str:
        return self.origin + self.prefix


def parse_endpoint(endpoint: str, namespace: str | None = None, token: str | None = None) -> Endpoint:
    """``http://[namespace[:token]@]host[:port][/prefix]``. Credentials in the URL give the namespace and token
    (a token needs a namespace) and are stripped; explicit arguments win. A query or fragment is refused."""
    parts = urlsplit(endpoint)
    if parts.scheme not in ("http", "https", "ws", "wss") or not parts.hostname:
        raise ValueError(f"The endpoint must be an http(s) URL with a host, not {endpoint!r}.")
    if parts.query or parts.fragment:
        raise ValueError(f"The endpoint must not have a query string or fragment: {endpoint!r}.")
    url_namespace = parts.username or None
    url_token = parts.password or None
    if url_token is not None and url_namespace is None:
        raise ValueError("An endpoint with a token must also name the namespace (http://namespace:token@host).")
    host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    netloc = host if parts.port is None else f"{host}:{parts.port}"
    scheme = {"ws": "http", "wss": "https"}.get(parts.scheme, parts.scheme)
    return Endpoint(
        origin=f"{scheme}://{netloc}",
        prefix=parts.path.rstrip("/"),
        namespace=namespace or url_namespace or DEFAULT_NAMESPACE,
        token=token if token is not None else url_token,
    )


def combine_url_path(endpoint: Endpoint, path: str) -> str:
    """The endpoint's prefix joined with ``path`` (which may carry a query), collapsing ``//`` like the JS client."""
    path_only, _, query = path.partition("?")
    clean = path_only if path_only.startswith("/") else "/" + path_only
    full_path = (endpoint.prefix + clean).replace("//", "/")
    return endpoint.origin + full_path + (f"?{query}" if query else "")


def encode_uri_component(text: str) -> str:
    """JavaScript's ``encodeURIComponent``."""
    return quote(text, safe="-_.!~*'()")


def form_encode(pairs: list[tuple[str, str]]) -> str:
    """``URLSearchParams.toString()``: form encoding, which keeps only ``A-Za-z0-9*-._`` and writes space as ``+``."""
    return "&".join(f"{_form_component(name)}={_form_component(value)}" for name, value in pairs)


def _form_component(text: str) -> str:
    return quote_plus(text, safe="*").replace("~", "%7E")


def compat_cbor(value: Any) -> bytes:
    """The CBOR-compat encoding of a value (CBOR of its JSON-compat form), used for actor input."""
    return encode_wire(to_json_compat(value))


def input_for_query(value: Any) -> str:
    """``rvt-input``: base64url without padding of the CBOR-compat input."""
    return base64.urlsafe_b64encode(compat_cbor(value)).decode("ascii").rstrip("=")


def input_for_api(value: Any) -> str:
    """The ``input`` field of ``PUT``/``POST /actors``: standard padded base64 of the CBOR-compat input."""
    return base64.b64encode(compat_cbor(value)).decode("ascii")


def json_text(value: Any, ascii_only: bool = False) -> str:
    """``JSON.stringify``: compact JSON (conn params travel like this in a header or a subprotocol). Headers
    need ``ascii_only`` (non-ASCII characters become ``\\u`` escapes, which parse to the same value)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=ascii_only)


@dataclass(frozen=True)
class ActorTarget:
    """Which actor a handle addresses: by ``actor_id`` (the direct gateway form), or by ``name`` + ``key`` with
    ``method`` ``get`` or ``getOrCreate`` (the query form; ``input`` is used only when creating)."""

    name: str
    key: tuple[str, ...] = ()
    method: str | None = None
    actor_id: str | None = None
    input: Any = None
    has_input: bool = False

    @property
    def is_query(self) -> bool:
        return self.actor_id is None


def gateway_url(endpoint: Endpoint, target: ActorTarget, path: str, pool: str = DEFAULT_POOL) -> str:
    """The gateway URL of ``path`` (``/action/x``, ``/connect``, ``/request/...?q``) on the target actor:
    ``/gateway/{id}[@token]{path}`` or ``/gateway/{name}{path}?{own query&}rvt-...``."""
    if target.actor_id is not None:
        token = "" if endpoint.token is None else "@" + encode_uri_component(endpoint.token)
        return combine_url_path(endpoint, f"/gateway/{encode_uri_component(target.actor_id)}{token}{path}")
    params = [("rvt-namespace", endpoint.namespace), ("rvt-method", target.method or "getOrCreate")]
    if target.method == "getOrCreate":
        params.append(("rvt-runner", pool))
    if target.key:
        params.append(("rvt-key", ",".join(target.key)))  # not escaped, exactly like the JS client
    if target.method == "getOrCreate":
        if target.has_input:
            params.append(("rvt-input", input_for_query(target.input)))
        params.append(("rvt-crash-policy", CRASH_POLICY))
    if endpoint.token is not None:
        params.append(("rvt-token", endpoint.token))
    if path.endswith("?") or path.endswith("&"):
        separator = ""
    elif "?" in path:
        separator = "&"
    else:
        separator = "?"
    return combine_url_path(endpoint, f"/gateway/{encode_uri_component(target.name)}{path}{separator}"
                                      f"{form_encode(params)}")


def raw_request_path(path: str) -> str:
    """``/request/{path}`` for a raw fetch: one leading ``/`` of the user's path is dropped."""
    return "/request/" + (path[1:] if path.startswith("/") else path)


def raw_websocket_path(path: str) -> str:
    """``/websocket/{path}`` for a raw WebSocket; the user's query string is kept."""
    return "/websocket/" + (path[1:] if path.startswith("/") else path)


def javascript_truthy(value: Any) -> bool:
    """``if (params)`` in the official client: JavaScript truthiness, where ``{}`` and ``[]`` are true and only
    None, False, 0, NaN and "" are false."""
    if value is None or value is False or (isinstance(value, str) and not value):
        return False
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value == value and value != 0  # NaN is falsy
    return True


def websocket_protocols(encoding: str, params: Any) -> list[str]:
    """``Sec-WebSocket-Protocol`` offers: ``rivet``, ``rivet_encoding.X`` and, for params that are truthy in
    JavaScript (``{}`` and ``[]`` included), ``rivet_conn_params.{percent-encoded JSON}``. Unlike
    ``encodeURIComponent`` (which breaks the JS client on params containing parentheses), ``(`` and ``)`` are
    escaped too: they are not valid in a protocol token."""
    protocols = ["rivet", f"rivet_encoding.{encoding}"]
    if javascript_truthy(params):
        protocols.append("rivet_conn_params." + quote(json_text(params), safe="-_.!~*'"))
    return protocols
