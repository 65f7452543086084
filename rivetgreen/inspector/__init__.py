"""The per-actor inspector (core.md §8): token-protected HTTP routes and a live WebSocket."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rivetgreen import errors
from rivetgreen.http import Request, Response

if TYPE_CHECKING:
    from rivetgreen.registry.router import ActorRouter, WebSocket


def handle_http(router: ActorRouter, actor_id: str, request: Request) -> Response:
    """Answer ``/inspector/...`` for one actor (``request.path`` starts with ``/inspector``)."""
    raise errors.actor_error("not_found", "Inspector route was not found.")


def serve_websocket(router: ActorRouter, actor_id: str, query: str, ws: WebSocket) -> None:
    """Serve ``/inspector/connect`` until the socket closes."""
    ws.close(1011, "actor.not_found")
