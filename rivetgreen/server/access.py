"""Client tokens: when the registry has a token (``setup(token=...)`` or ``RIVETGREEN_TOKEN``), the engine-shaped API,
the gateway and ``/metrics`` require it, and the host checks it before it resolves, creates or wakes any actor.

The official client sends its token (``createClient({token})``) as ``Authorization: Bearer`` on the API and, on the
gateway, in the path (``/gateway/{id}@{token}/...``), as ``rvt-token`` on the query form, and in ``x-rivet-token``;
on WebSockets also as the sub-protocol ``rivet_token.{token}``. ``/metadata`` stays open (clients call it first).
``/inspector`` routes need their actor's own, stronger inspector token instead (``rivetgreen.inspector.auth``).
``/metrics`` takes the metrics token when one is configured (``rivetgreen.metrics``), else the client token; the
per-actor ``/metrics`` behind the gateway needs both, as every gateway route needs the client token.
"""

from __future__ import annotations

from typing import Any

from rivetgreen.errors import RivetError
from rivetgreen.metrics import RuntimeMetrics
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


def check_metrics(metrics: RuntimeMetrics, headers: dict[str, str]) -> None:
    """Raise the metrics endpoint's refusal (``metrics/unauthorized`` 401, ``metrics/disabled`` 403), if any."""
    refusal = metrics.access_error(headers.get("authorization"))
    if refusal is not None:
        status, error = refusal
        error.status = status
        raise error


def check_metrics_scrape(registry: Any, headers: dict[str, str]) -> None:
    """``GET /metrics`` of the host: the metrics token when one is configured, else the client token."""
    if registry.metrics.token is None:
        check(registry.token, presented_tokens(headers))
