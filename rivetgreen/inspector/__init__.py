"""The per-actor inspector (core.md §8): token-protected HTTP routes and a live WebSocket, plus the inspector web
page the Flask host serves at ``/inspector/``.

Modules: :mod:`~rivetgreen.inspector.auth` (tokens), :mod:`~rivetgreen.inspector.http_routes` (``/inspector/*``
HTTP), :mod:`~rivetgreen.inspector.websocket` (``/inspector/connect``), :mod:`~rivetgreen.inspector.snapshot`
(what is shown, JSON-safe), :mod:`~rivetgreen.inspector.operations` (state patch, queue writes),
:mod:`~rivetgreen.inspector.database` (the database tab), :mod:`~rivetgreen.inspector.page` (the admin page and
its API). The router calls the two functions below.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rivetgreen.http import Request, Response

if TYPE_CHECKING:
    from rivetgreen.registry.router import ActorRouter, WebSocket


def handle_http(router: ActorRouter, actor_id: str, request: Request) -> Response:
    """Answer ``/inspector/...`` for one actor (``request.path`` starts with ``/inspector``)."""
    from rivetgreen.inspector import http_routes  # imported on use: the router imports this package early

    return http_routes.handle(router.engine, actor_id, request)


def serve_websocket(router: ActorRouter, actor_id: str, query: str, ws: WebSocket) -> None:
    """Serve ``/inspector/connect`` until the socket closes."""
    from rivetgreen.inspector import websocket

    websocket.serve(router.engine, actor_id, query, ws)
