"""Inspector tokens (core.md §8.1): where a request carries one, and the constant-time check against the actor's.

Each actor generates its token on first start (``task.inspector_token``, stored in ``_rivet_runtime``). HTTP
requests carry it as ``Authorization: Bearer <token>``; the WebSocket as the sub-protocol
``rivet_inspector_token.<token>`` or, for browsers that cannot set headers or odd sub-protocols, ``?token=``.
The environment variable ``_RIVET_TEST_INSPECTOR_TOKEN`` replaces every actor's token (tests only).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING
from urllib.parse import parse_qs

from rivetgreen.errors import RivetError
from rivetgreen.tokens import tokens_match

if TYPE_CHECKING:
    from rivetgreen.actor.task import ActorTask

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
