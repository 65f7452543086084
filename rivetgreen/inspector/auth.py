"""Inspector tokens (core.md §8.1): where a request carries one, and the constant-time check against the actor's.

Each actor generates its token on first start (``task.inspector_token``, stored in ``_rivet_runtime``). HTTP
requests carry it as ``Authorization: Bearer <token>``; the WebSocket as the sub-protocol
``rivet_inspector_token.<token>`` or, for browsers that cannot set headers or odd sub-protocols, ``?token=``.
The environment variable ``_RIVET_TEST_INSPECTOR_TOKEN`` replaces every actor's token (tests only).

The host checks the token before it routes an inspector request (:func:`verify_stored`), against the token stored
with the actor, so an unauthenticated request never creates or wakes one; the routes check it again in the actor.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING
from urllib.parse import parse_qs

from rivetgreen.errors import RivetError
from rivetgreen.tokens import bearer_token, tokens_match

if TYPE_CHECKING:
    from rivetgreen.actor.task import ActorTask
    from rivetgreen.engine.local import LocalEngine

TEST_TOKEN_ENV = "_RIVET_TEST_INSPECTOR_TOKEN"
SUBPROTOCOL_PREFIX = "rivet_inspector_token."
UNAUTHORIZED_MESSAGE = "Inspector request requires a valid bearer token"
UNAUTHORIZED_CLOSE = (1008, "inspector.unauthorized")


def unauthorized() -> RivetError:
    """``inspector/unauthorized`` (HTTP 401; WebSocket close 1008)."""
    return RivetError("inspector", "unauthorized", UNAUTHORIZED_MESSAGE, public=True, status=401)


def websocket_token(subprotocols: list[str], query: str) -> str | None:
    """The token a WebSocket offers: the ``rivet_inspector_token.*`` sub-protocol first, then ``?token=``."""
    for item in subprotocols:
        if item.startswith(SUBPROTOCOL_PREFIX):
            return item[len(SUBPROTOCOL_PREFIX):]
    values = parse_qs(query, keep_blank_values=True).get("token")
    return values[0] if values else None


def expected_token(task: ActorTask) -> str | None:
    """The token this actor accepts now."""
    return os.environ.get(TEST_TOKEN_ENV) or task.inspector_token


def verify(task: ActorTask, given: str | None) -> None:
    """Raise ``inspector/unauthorized`` unless ``given`` is the actor's inspector token."""
    if not tokens_match(given, expected_token(task)):
        raise unauthorized()


def presented_tokens(headers: dict[str, str], subprotocols: list[str], query: str) -> list[str]:
    """Every inspector token a request carries: the bearer header, the sub-protocol or ``?token=``."""
    candidates = [bearer_token(headers.get("authorization")), websocket_token(subprotocols, query)]
    return [token for token in candidates if token]


def stored_token(engine: LocalEngine, actor_id: str) -> str | None:
    """The token this actor accepts, read without waking it (None before its first start)."""
    return os.environ.get(TEST_TOKEN_ENV) or engine.stored_inspector_token(actor_id)


def verify_stored(engine: LocalEngine, actor_id: str, presented: list[str]) -> None:
    """Raise ``inspector/unauthorized`` unless one of ``presented`` is the actor's stored token; never wakes it."""
    try:
        expected = stored_token(engine, actor_id)
    except RivetError:  # an unknown id answers as a wrong token does, so ids cannot be probed without one
        raise unauthorized() from None
    if not any(tokens_match(token, expected) for token in presented):
        raise unauthorized()
