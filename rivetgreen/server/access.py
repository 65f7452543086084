"""Client tokens: when the registry has a token (``setup(token=...)`` or ``RIVETGREEN_TOKEN``), the engine-shaped API
and the gateway require it.

The official client sends its token (``createClient({token})``) as ``Authorization: Bearer`` on the API and, on the
gateway, in the path (``/gateway/{id}@{token}/...``), as ``rvt-token`` on the query form, and in ``x-rivet-token``;
on WebSockets also as the sub-protocol ``rivet_token.{token}``. ``/metadata`` stays open (clients call it first),
and ``/inspector`` routes are exempt because each needs its actor's own, stronger inspector token.
"""

from __future__ import annotations

from rivetgreen.errors import RivetError
from rivetgreen.tokens import bearer_token, tokens_match


def unauthorized() -> RivetError:
    return RivetError("api", "unauthorized", "A valid token is required.")


def presented_tokens(
    headers: dict[str, str], gateway_token: str | None = None, subprotocols: list[str] = ()
) -> list[str]:
    """Every token the request carries, wherever the clients put it."""
    tokens = [gateway_token] if gateway_token else []
    if headers.get("x-rivet-token"):
        tokens.append(headers["x-rivet-token"])
    bearer = bearer_token(headers.get("authorization"))
    if bearer:
        tokens.append(bearer)
    tokens += [item[len("rivet_token."):] for item in subprotocols if item.startswith("rivet_token.")]
    return tokens


def check(expected: str | None, presented: list[str]) -> None:
    """Raise ``api/unauthorized`` unless no token is configured or one of ``presented`` matches it."""
    if expected is None:
        return
    if not any(tokens_match(token, expected) for token in presented):
        raise unauthorized()
