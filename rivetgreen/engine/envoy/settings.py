"""Which Rivet Engine a host joins and which pool it serves, read from RivetKit's environment variables:
``RIVET_ENDPOINT`` (the engine's URL, which may carry ``namespace:token@``), ``RIVET_POOL`` (default ``default``),
``RIVET_NAMESPACE`` (default ``default``) and ``RIVET_TOKEN`` (the engine's admin token, if it has one). Values given
explicitly (command-line options) win over the environment; an empty variable counts as unset."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from rivetgreen.client.urls import DEFAULT_POOL, Endpoint, parse_endpoint
from rivetgreen.errors import RivetError


@dataclass(frozen=True)
class EngineSettings:
    """An engine to join: its API ``endpoint`` (URL, namespace and token) and the ``pool`` this host serves."""

    endpoint: Endpoint
    pool: str = DEFAULT_POOL


def engine_settings(
    endpoint: str | None = None,
    pool: str | None = None,
    namespace: str | None = None,
    token: str | None = None,
    environ: Mapping[str, str] = os.environ,
) -> EngineSettings | None:
    """The settings from these values, else from the environment; None when no engine endpoint is given at all (the
    host then runs embedded). A malformed endpoint is ``engine/invalid_endpoint``."""
    url = endpoint or environ.get("RIVET_ENDPOINT") or None
    if url is None:
        return None
    try:
        parsed = parse_endpoint(
            url, namespace or environ.get("RIVET_NAMESPACE") or None, token or environ.get("RIVET_TOKEN") or None
        )
    except ValueError as error:
        raise RivetError("engine", "invalid_endpoint", str(error), {"endpoint": url}) from None
    return EngineSettings(parsed, pool or environ.get("RIVET_POOL") or DEFAULT_POOL)
