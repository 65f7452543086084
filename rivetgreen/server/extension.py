"""The Flask extension: serves a registry's actors to the official RivetKit clients and ours.

``init_app(app, registry)`` adds the engine-shaped API (``/metadata``, ``/actors``) and the gateway
(``/gateway/...``, HTTP and WebSocket) and the inspector page (``/inspector/``, see ``rivetgreen.inspector.page``)
to an existing Flask app; ``create_app(registry)`` makes a new one.
Serve it with gevent (``rivetgreen.server.serve``) or gunicorn's gevent worker; one worker per host process, as
actors live in the process that runs them.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from flask import Flask, Response, request

from rivetgreen import errors
from rivetgreen.encoding.cbor import encode
from rivetgreen.engine.local import LocalEngine
from rivetgreen.errors import RivetError
from rivetgreen.http import Request
from rivetgreen.inspector import page as inspector_page
from rivetgreen.registry.router import ActorRouter
from rivetgreen.server import access, engine_api
from rivetgreen.server.gateway import GatewayTarget, parse_gateway
from rivetgreen.server.websocket import GreenWebSocket

log = logging.getLogger("rivetgreen.server")

HTTP_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
EXTENSION_KEY = "rivetgreen"


class RivetHost:
    """The state the extension keeps on ``app.extensions["rivetgreen"]``."""

    def __init__(self, registry: Any) -> None:
        self.registry = registry
        self.engine: LocalEngine = registry.engine
        self.router = ActorRouter(self.engine)

    # gateway ---------------------------------------------------------------------------------------------------
    def resolve(self, target: GatewayTarget) -> str:
        """The actor id a gateway target names (creating it for a getOrCreate query)."""
        if target.actor_id is not None:
            return target.actor_id
        query = target.query
        assert query is not None
        if query.method == "get":
            record = self.engine.get(query.name, query.key)
            if record is None:
                raise errors.actor_not_found_by_key(query.name, query.key)
            return record.actor_id
        create_input = encode(query.create_input) if query.has_input else None
        record, _ = self.engine.get_or_create(query.name, query.key, create_input)
        return record.actor_id

    def authorize(self, target: GatewayTarget, headers: dict[str, str], subprotocols: list[str] = ()) -> None:
        """The host's client token, unless the route has a token of its own (the inspector)."""
        if target.path == "/inspector" or target.path.startswith("/inspector/"):
            return
        access.check(self.registry.token, access.presented_tokens(headers, target.token, subprotocols))

    def gateway_http(self, path: str) -> Response:
        if request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers:
            return Response(status=204)  # a browser's CORS preflight; allow_browsers() adds the headers
        headers = _headers(request.environ)
        try:
            target = parse_gateway("/gateway/" + path, request.query_string.decode("latin-1"))
            self.authorize(target, headers)
            actor_id = self.resolve(target)
        except RivetError as error:
            return _json_error(error, _gateway_status(error))
        neutral = Request(
            request.method, target.path, target.actor_query_string, headers, request.get_data(cache=False),
        )
        answer = self.router.handle_http(actor_id, neutral)
        return Response(answer.data, status=answer.status, headers=answer.headers)

    def gateway_websocket(self, path: str) -> Response:
        ws = GreenWebSocket(request.environ, subprotocols=["rivet"])
        headers = _headers(request.environ)
        try:
            target = parse_gateway("/gateway/" + path, request.query_string.decode("latin-1"))
            self.authorize(target, headers, ws.offered_subprotocols)
            actor_id = self.resolve(target)
        except RivetError as error:
            ws.close(1008 if error.code == "unauthorized" else 1011, f"{error.group}.{error.code}")
        else:
            try:
                self.router.handle_websocket(actor_id, target.path, target.actor_query_string, headers, ws)
            except Exception:
                log.exception("websocket to actor %s failed", actor_id)
                ws.close(1011, "core.internal_error")
        ws.finish(request.environ)
        return _AlreadySent()


class _AlreadySent(Response):
    """The WebSocket wrote its own bytes on the raw socket; the WSGI server must send nothing more."""

    def __call__(self, environ: Any, start_response: Any) -> Any:
        return []


def _headers(environ: dict[str, Any]) -> dict[str, str]:
    """Request headers with lower-case names, read straight from the WSGI environ (cheaper than Werkzeug's view)."""
    headers = {key[5:].lower().replace("_", "-"): value for key, value in environ.items() if key.startswith("HTTP_")}
    for key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
        if environ.get(key):
            headers[key.lower().replace("_", "-")] = environ[key]
    return headers


def _gateway_status(error: RivetError) -> int:
    return {"not_found": 404, "unauthorized": 401}.get(error.code, 400)


def _json(value: Any, status: int = 200) -> Response:
    return Response(json.dumps(value), status=status, mimetype="application/json")


def _json_error(error: RivetError, status: int) -> Response:
    return _json(error.to_client(), status)


def init_app(app: Flask, registry: Any) -> RivetHost:
    """Serve ``registry``'s actors from ``app``; returns the host state (also at ``app.extensions``)."""
    host = RivetHost(registry)
    app.extensions[EXTENSION_KEY] = host

    def engine_call(function: Any, *args: Any) -> Response:
        try:
            access.check(registry.token, access.presented_tokens(_headers(request.environ)))
            return _json(function(*args))
        except RivetError as error:
            return _json_error(error, engine_api.engine_status(error))

    @app.route("/metadata", methods=["GET"], endpoint="rivet_metadata")
    def metadata() -> Response:
        return _json(engine_api.metadata(host.engine))

    @app.route("/metrics", methods=["GET"], endpoint="rivet_metrics")
    def metrics() -> Response:  # Prometheus text; bearer token when one is configured (rivetgreen.metrics)
        answer = host.engine.metrics.http_response(request.headers.get("Authorization"))
        return Response(answer.data, status=answer.status, headers=answer.headers)

    @app.route("/actors", methods=["GET", "PUT", "POST"], endpoint="rivet_actors")
    def actors() -> Response:
        if request.method == "GET":
            args = request.args
            return engine_call(engine_api.list_actors, host.engine, args.get("name"), args.get("key"),
                               args.get("actor_ids"))
        body = request.get_data(cache=False)  # parsed by engine_api under the input limits
        if request.method == "PUT":
            return engine_call(engine_api.get_or_create_actor, host.engine, body)
        return engine_call(engine_api.create_actor, host.engine, body)

    @app.route("/actors/<actor_id>", methods=["DELETE"], endpoint="rivet_actor")
    def actor(actor_id: str) -> Response:
        return engine_call(engine_api.destroy_actor, host.engine, actor_id)

    @app.route("/gateway/<path:path>", methods=HTTP_METHODS, endpoint="rivet_gateway")
    def gateway(path: str) -> Response:
        return host.gateway_http(path)

    @app.route("/gateway/<path:path>", websocket=True, endpoint="rivet_gateway_websocket")
    def gateway_websocket(path: str) -> Response:
        return host.gateway_websocket(path)

    @app.after_request
    def allow_browsers(response: Response) -> Response:
        # The official client sends credentials; the engine echoes the origin and allows them.
        origin = request.headers.get("Origin")
        if origin:
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Access-Control-Allow-Credentials"] = "true"
            response.headers["Access-Control-Expose-Headers"] = "*"
            if request.method == "OPTIONS":
                response.headers["Access-Control-Allow-Methods"] = ", ".join(HTTP_METHODS)
                requested = request.headers.get("Access-Control-Request-Headers")
                if requested:
                    response.headers["Access-Control-Allow-Headers"] = requested
        return response

    inspector_page.register(app, host)  # the inspector page and its admin API (host.admin_token)
    return host


def create_app(registry: Any, name: str = "rivetgreen") -> Flask:
    """A new Flask app serving ``registry``."""
    app = Flask(name)
    init_app(app, registry)
    return app
