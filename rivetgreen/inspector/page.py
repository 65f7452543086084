"""The inspector web page of the Flask host (``/inspector/``) and the small admin API it uses.

Everything here needs the host's admin token (``RIVETGREEN_ADMIN_TOKEN``, else a random one made when the app is
created and logged once): as ``Authorization: Bearer <token>`` or ``?token=``. The API lists actors from the
engine's directory without waking them, and hands out one actor's inspector token (read from its storage without
waking it; only an actor that never started is started to make one); the page then talks to that actor's own
inspector routes through the gateway (``/gateway/{id}/inspector/...`` and the live
``/gateway/{id}/inspector/connect``), exactly as any other inspector client would. The admin token is checked
before anything else. The routes sit on rivetgreen's Blueprint, so they follow its URL prefix (the page finds its
base from its own address).

Routes: ``GET /inspector/`` (the page), ``GET /inspector/api/actors[?name=]``, ``GET /inspector/api/actors/{id}``,
``POST /inspector/api/actors/{id}/token``.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Any

from flask import Blueprint, Response, request

from rivetgreen.encoding.actor_key import serialize_key
from rivetgreen.errors import RivetError
from rivetgreen.inspector import auth, dispatch
from rivetgreen.inspector.http_routes import error_status
from rivetgreen.tokens import bearer_token, tokens_match

if TYPE_CHECKING:
    from rivetgreen.engine.directory import ActorRecord
    from rivetgreen.engine.local import LocalEngine
    from rivetgreen.server.extension import RivetHost

log = logging.getLogger("rivetgreen.inspector")

ADMIN_TOKEN_ENV = "RIVETGREEN_ADMIN_TOKEN"
PAGE_HEADERS = {
    "Content-Type": "text/html; charset=utf-8",
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; "
        "img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
}
UNAUTHORIZED_PAGE = """<!doctype html><meta charset="utf-8"><title>rivetgreen inspector</title>
<body style="font:15px system-ui;margin:3em"><h1>rivetgreen inspector</h1>
<p>Open this page with the admin token: <code>/inspector/?token=&lt;token&gt;</code>. The token is logged when the
app starts, or set it with <code>RIVETGREEN_ADMIN_TOKEN</code>.</p></body>"""


@cache
def page_html() -> str:
    """The page (package data ``rivetgreen/inspector/page.html``)."""
    return resources.files("rivetgreen.inspector").joinpath("page.html").read_text(encoding="utf-8")


def admin_token_from_env() -> tuple[str, bool]:
    """The admin token and whether it was generated here."""
    configured = os.environ.get(ADMIN_TOKEN_ENV)
    if configured:
        return configured, False
    return secrets.token_urlsafe(24), True


def register(blueprint: Blueprint, host: RivetHost, server_name: str | None = None) -> None:
    """Add the page and its API to ``blueprint``; the admin token is ``host.admin_token``."""
    token, generated = admin_token_from_env()
    host.admin_token = token
    engine = host.engine
    if generated and server_name:
        # Otherwise the address is not known yet; rivetgreen.server.serve() logs the full URL once it listens.
        prefix = blueprint.url_prefix or ""
        log.info("rivetgreen inspector: http://%s%s/inspector/?token=%s", server_name, prefix, token)

    def authorized() -> bool:
        given = bearer_token(request.headers.get("Authorization")) or request.args.get("token")
        return tokens_match(given, host.admin_token)

    @blueprint.route("/inspector/", methods=["GET"], endpoint="rivet_inspector_page")
    def page() -> Response:
        if not authorized():
            return Response(UNAUTHORIZED_PAGE, status=401, headers=PAGE_HEADERS)
        return Response(page_html(), headers=PAGE_HEADERS)

    @blueprint.route("/inspector/api/actors", methods=["GET"], endpoint="rivet_inspector_actors")
    def actors() -> Response:
        if not authorized():
            return _unauthorized()
        name = request.args.get("name") or None
        records = engine.directory.list(name) if name is None or name in engine.definitions else []
        return _json({"names": list(engine.definitions), "actors": [describe(engine, r) for r in records]})

    @blueprint.route("/inspector/api/actors/<actor_id>", methods=["GET"], endpoint="rivet_inspector_actor")
    def actor(actor_id: str) -> Response:
        if not authorized():
            return _unauthorized()
        record = engine.directory.get(actor_id)
        if record is None:
            return _error(RivetError("actor", "not_found", f"Actor {actor_id!r} was not found.", public=True))
        return _json(describe(engine, record))

    @blueprint.route("/inspector/api/actors/<actor_id>/token", methods=["POST"], endpoint="rivet_inspector_actor_token")
    def actor_token(actor_id: str) -> Response:
        if not authorized():
            return _unauthorized()
        try:
            token = auth.stored_token(engine, actor_id) or dispatch.perform(engine, actor_id, auth.expected_token)
        except RivetError as error:
            return _error(error)
        return _json({**describe(engine, engine.lookup(actor_id)), "token": token})


def describe(engine: LocalEngine, record: ActorRecord) -> dict[str, Any]:
    """An actor as the page lists it; ``status`` is ``asleep`` unless a generation is placed."""
    instance = engine.instances.get(record.actor_id)
    return {
        "id": record.actor_id,
        "name": record.name,
        "key": list(record.key),
        "keyString": serialize_key(record.key),
        "createdAt": record.created_at,
        "status": "asleep" if instance is None else instance.status.value,
    }


def _json(value: Any, status: int = 200) -> Response:
    return Response(json.dumps(value), status=status, mimetype="application/json",
                    headers={"Cache-Control": "no-store"})


def _error(error: RivetError) -> Response:
    body = error.to_client()
    body.setdefault("metadata", None)
    return _json(body, error_status(error))


def _unauthorized() -> Response:
    return _error(auth.unauthorized())
