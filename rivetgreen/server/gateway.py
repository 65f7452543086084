"""The gateway path: ``/gateway/{actorId}[@token]/...`` (direct) or ``/gateway/{name}/...?rvt-*`` (query form),
parsed as the Rivet Engine's guard does (client-protocol.md §1.4).

A path is the query form if and only if a query key starts with ``rvt-``. Unknown and repeated ``rvt-*`` keys are
refused; ``rvt-key`` is split on ``,`` (not unescaped, like the engine); every ``rvt-*`` parameter is stripped
before the actor sees the query.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_plus

from rivetgreen.encoding.actor_key import validate_key
from rivetgreen.encoding.cbor import decode_wire
from rivetgreen.encoding.json_compat import from_json_compat
from rivetgreen.errors import invalid_request

GATEWAY_PREFIX = "/gateway/"
KNOWN_PARAMS = {
    "rvt-namespace", "rvt-method", "rvt-runner", "rvt-pool", "rvt-key", "rvt-input", "rvt-region",
    "rvt-crash-policy", "rvt-token", "rvt-skip-ready-wait",
}
GET_REFUSES = ("rvt-input", "rvt-region", "rvt-crash-policy", "rvt-runner", "rvt-pool")


@dataclass(frozen=True)
class ActorQuery:
    """The query form: which actor to get (or create)."""

    name: str
    method: str  # "get" or "getOrCreate"
    key: list[str]
    create_input: Any = None
    has_input: bool = False


@dataclass(frozen=True)
class GatewayTarget:
    """Where a gateway request goes: an actor id or a query, the actor-relative path, and the actor's own query."""

    actor_id: str | None
    query: ActorQuery | None
    path: str
    actor_query_string: str
    token: str | None


def parse_gateway(path: str, raw_query: str) -> GatewayTarget:
    """Parse the part of a request URL after the host. ``path`` is percent-decoded; ``raw_query`` is not."""
    if not path.startswith(GATEWAY_PREFIX):
        raise invalid_request(f"Not a gateway path: {path!r}.")
    segment, _, rest = path[len(GATEWAY_PREFIX):].partition("/")
    actor_path = "/" + rest
    own_parts, rvt_params = _split_query(raw_query)
    actor_query_string = "&".join(own_parts)
    if not segment:
        raise invalid_request("The gateway path names no actor.")
    if rvt_params:
        return GatewayTarget(None, _actor_query(segment, rvt_params), actor_path, actor_query_string,
                             rvt_params.get("rvt-token"))
    actor_id, _, token = segment.partition("@")
    return GatewayTarget(actor_id, None, actor_path, actor_query_string, token or None)


def _split_query(raw_query: str) -> tuple[list[str], dict[str, str]]:
    own: list[str] = []
    rvt: dict[str, str] = {}
    for part in raw_query.split("&") if raw_query else []:
        raw_key, _, raw_value = part.partition("=")
        key = unquote_plus(raw_key)
        if not key.startswith("rvt-"):
            own.append(part)
            continue
        if key not in KNOWN_PARAMS:
            raise invalid_request(f"Unknown gateway parameter {key!r}.")
        if key in rvt:
            raise invalid_request(f"Gateway parameter {key!r} is given twice.")
        rvt[key] = unquote_plus(raw_value)
    return own, rvt


def _actor_query(name: str, params: dict[str, str]) -> ActorQuery:
    method = params.get("rvt-method")
    if method not in ("get", "getOrCreate"):
        raise invalid_request(f"rvt-method must be 'get' or 'getOrCreate', not {method!r}.")
    if method == "get":
        refused = [key for key in GET_REFUSES if key in params]
        if refused:
            raise invalid_request(f"rvt-method=get does not take {', '.join(refused)}.")
    raw_key = params.get("rvt-key", "")
    key = validate_key(raw_key.split(",") if raw_key else [])
    if "rvt-input" not in params:
        return ActorQuery(name, method, key)
    return ActorQuery(name, method, key, decode_input(params["rvt-input"], urlsafe=True), True)


def decode_input(text: str, *, urlsafe: bool) -> Any:
    """Creation input: base64 (url-safe without padding on the gateway, standard on the REST API) of CBOR."""
    if not isinstance(text, str):
        raise invalid_request(f"The actor input must be a base64 string, not {type(text).__name__}.")
    try:
        padded = text + "=" * (-len(text) % 4)
        data = base64.urlsafe_b64decode(padded) if urlsafe else base64.b64decode(padded, validate=True)
    except ValueError as error:
        raise invalid_request(f"The actor input is not valid base64: {error}") from error
    return from_json_compat(decode_wire(data))
