"""The Flask extension: serves a registry's actors to the official RivetKit clients and ours.

``init_app(app, registry)`` adds the engine-shaped API (``/metadata``, ``/actors``), ``/metrics``, the gateway
(``/gateway/...``, HTTP and WebSocket) and the inspector page (``/inspector/``, see ``rivetgreen.inspector.page``)
to an existing Flask app, on a Blueprint (optionally under a URL prefix) whose CORS policy
(``rivetgreen.server.cors``) touches no other route; ``create_app(registry)`` makes a new app.
Every route checks access before anything else (``rivetgreen.server.access``): no actor is resolved, created or
woken for a request that is refused.
Serve it with gevent (``rivetgreen.server.serve``) or gunicorn's gevent worker; one worker per host process, as
actors live in the process that runs them.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from typing import Any

from flask import Blueprint, Flask, Response, request
from werkzeug.exceptions import HTTPException

from rivetgreen import errors
from rivetgreen.encoding.cbor import encode
from rivetgreen.engine.local import LocalEngine
from rivetgreen.errors import RivetError
from rivetgreen.http import Request
from rivetgreen.inspector import auth as inspector_auth
from rivetgreen.inspector import page as inspector_page
from rivetgreen.registry.router import ActorRouter
from rivetgreen.server import access, engine_api
from rivetgreen.server.body import read_at_most
from rivetgreen.server.cors import CorsPolicy
from rivetgreen.server.gateway import GatewayTarget, parse_gateway
from rivetgreen.server.websocket import GreenWebSocket

log = logging.getLogger("rivetgreen.server")

HTTP_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
EXTENSION_KEY = "rivetgreen"
ACCESS_REFUSALS = ("unauthorized", "forbidden_origin")  # error codes a WebSocket is closed for with 1008


class RivetHost:
    """The state the extension keeps on ``app.extensions["rivetgreen"]``."""

    def __init__(self, registry: Any, cors: CorsPolicy) -> None:
        self.registry = registry
        self.cors = cors
        self.engine: LocalEngine = registry.engine
        self.router = ActorRouter(self.engine)

    # gateway ---------------------------------------------------------------------------------------------------
    def find(self, target: GatewayTarget) -> str:
        """The actor id a gateway target names, never creating one."""
        if target.actor_id is not None:
            return target.actor_id
        query = target.query
        assert query is not None
        record = self.engine.get(query.name, query.key)
        if record is None:
            raise errors.actor_not_found_by_key(query.name, query.key)
        return record.actor_id

    def resolve(self, target: GatewayTarget) -> str:
        """The actor id a gateway target names (creating it for a getOrCreate query)."""
        query = target.query
        if query is None or query.method == "get":
            return self.find(target)
        create_input = encode(query.create_input) if query.has_input else None
        record, _ = self.engine.get_or_create(query.name, query.key, create_input)
        return record.actor_id

    def admit(self, target: GatewayTarget, headers: dict[str, str], subprotocols: list[str] = ()) -> str:
        """Check access, then resolve: the actor id of an admitted request (nothing is created or woken first).

        A browser's origin must be allowed (``CorsPolicy.gate``, which also drops the cookies from ``headers`` of
        one allowed without credentials). Inspector routes need the actor's own inspector token, checked against
        the stored one without waking it, and never create an actor; every other route needs the host's client
        token (``/metrics`` also the metrics token)."""
        self.cors.gate(headers)
        if target.path == "/inspector" or target.path.startswith("/inspector/"):
            actor_id = self._find_for_inspector(target)
            presented = inspector_auth.presented_tokens(headers, subprotocols, target.actor_query_string)
            inspector_auth.verify_stored(self.engine, actor_id, presented)
            return actor_id
        access.check(self.registry.token, access.presented_tokens(headers, target.token, subprotocols))
        if target.path == "/metrics":
            access.check_metrics(self.engine.metrics, headers)
        return self.resolve(target)

    def _find_for_inspector(self, target: GatewayTarget) -> str:
        try:
            return self.find(target)
        except RivetError:  # an unknown actor answers as a wrong token does: no probing without a token
            raise inspector_auth.unauthorized() from None

    def gateway_http(self, path: str) -> Response:
        if request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers:
            return Response(status=204)  # a browser's CORS preflight; CorsPolicy.apply adds the headers
        headers = _headers(request.environ)
        try:
            target = parse_gateway("/gateway/" + path, request.query_string.decode("latin-1"))
            actor_id = self.admit(target, headers)
        except RivetError as error:
            return _json_error(error, _gateway_status(error))
        neutral = Request(
            request.method, target.path, target.actor_query_string, headers,
            read_at_most(request.stream, self.router.incoming_limit(actor_id, target.path)),
        )
        answer = self.router.handle_http(actor_id, neutral)
        return Response(answer.data, status=answer.status, headers=answer.headers)

    def gateway_websocket(self, path: str) -> Response:
        ws = GreenWebSocket(request.environ, subprotocols=["rivet"])
        if not ws.accepted:  # the handshake was refused (400/426): nothing may be resolved, created or woken
            ws.finish(request.environ)
            return _AlreadySent()
        headers = _headers(request.environ)
        try:
            target = parse_gateway("/gateway/" + path, request.query_string.decode("latin-1"))
            actor_id = self.admit(target, headers, ws.offered_subprotocols)
        except RivetError as error:
            ws.close(1008 if error.code in ACCESS_REFUSALS else 1011, f"{error.group}.{error.code}")
        except Exception:  # the 101 is out: an unexpected failure must still end the socket cleanly
            log.exception("websocket to %s could not be admitted", path)
            ws.close(1011, "core.internal_error")
        else:
            try:
                self.router.handle_websocket(actor_id, target.path, target.actor_query_string, headers, ws)
            except Exception:
                log.exception("websocket to actor %s failed", actor_id)
                ws.close(1011, "core.internal_error")
        ws.finish(request.environ)
        return _AlreadySent()


class _AlreadySent(Response):
    """The WebSocket wrote its own bytes on the raw socket and shut it down; the WSGI server must send nothing more.

    Its status is reported all the same: gunicorn's access log needs one (without it every close logged an
    AttributeError), and whatever the server then tries to write fails quietly on the shut-down socket."""

    def __call__(self, environ: Any, start_response: Any) -> Any:
        start_response("101 Switching Protocols", [])
        return []


def _headers(environ: dict[str, Any]) -> dict[str, str]:
    """Request headers with lower-case names, read straight from the WSGI environ (cheaper than Werkzeug's view)."""
    headers = {key[5:].lower().replace("_", "-"): value for key, value in environ.items() if key.startswith("HTTP_")}
    for key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
        if environ.get(key):
            headers[key.lower().replace("_", "-")] = environ[key]
    return headers


def _gateway_status(error: RivetError) -> int:
    return error.status or {"not_found": 404, "unauthorized": 401}.get(error.code, 400)


def _json(value: Any, status: int = 200) -> Response:
    return Response(json.dumps(value), status=status, mimetype="application/json")


def _json_error(error: RivetError, status: int) -> Response:
    body = error.to_client()
    body.setdefault("metadata", None)  # the spec's error shape always has the key
    return _json(body, status)


def init_app(
    app: Flask, registry: Any, *, url_prefix: str | None = None, cors_origins: Iterable[str] | None = None
) -> RivetHost:
    """Serve ``registry``'s actors from ``app`` (under ``url_prefix`` if given; CORS: ``rivetgreen.server.cors``);
    returns the host state (also at ``app.extensions``)."""
    host = RivetHost(registry, CorsPolicy.from_setting(cors_origins))
    host.url_prefix = url_prefix or ""  # where the routes are, for whoever announces the inspector page's address
    app.extensions[EXTENSION_KEY] = host
    blueprint = Blueprint("rivetgreen", __name__, url_prefix=url_prefix)

    def refused(check: Any, *args: Any) -> Response | None:
        """The error answer when ``check(*args)`` refuses access, else None."""
        try:
            check(*args)
        except RivetError as error:
            return _json_error(error, engine_api.engine_status(error))
        return None

    def client_token_refused() -> Response | None:
        """The origin gate (a cross-site page may not even send a "simple" request) and the client token."""
        headers = _headers(request.environ)
        return refused(host.cors.gate, headers) or refused(
            access.check, registry.token, access.presented_tokens(headers)
        )

    def engine_call(function: Any, *args: Any) -> Response:
        try:
            return _json(function(*args))
        except RivetError as error:
            return _json_error(error, engine_api.engine_status(error))

    @blueprint.route("/metadata", methods=["GET"], endpoint="rivet_metadata")
    def metadata() -> Response:
        return _json(engine_api.metadata(host.engine))

    @blueprint.route("/metrics", methods=["GET"], endpoint="rivet_metrics")
    def metrics() -> Response:  # Prometheus text; bearer token when one is configured (rivetgreen.server.access)
        headers = _headers(request.environ)
        refusal = refused(host.cors.gate, headers) or refused(access.check_metrics_scrape, registry, headers)
        if refusal is not None:
            return refusal
        answer = host.engine.metrics.http_response(request.headers.get("Authorization"))
        return Response(answer.data, status=answer.status, headers=answer.headers)

    @blueprint.route("/actors", methods=["GET", "PUT", "POST"], endpoint="rivet_actors")
    def actors() -> Response:
        refusal = client_token_refused()  # before the body is even read
        if refusal is not None:
            return refusal
        if request.method == "GET":
            args = request.args
            return engine_call(engine_api.list_actors, host.engine, args.get("name"), args.get("key"),
                               args.get("actor_ids"))
        body = request.get_data(cache=False)  # parsed by engine_api under the input limits
        if request.method == "PUT":
            return engine_call(engine_api.get_or_create_actor, host.engine, body)
        return engine_call(engine_api.create_actor, host.engine, body)

    @blueprint.route("/actors/<actor_id>", methods=["DELETE"], endpoint="rivet_actor")
    def actor(actor_id: str) -> Response:
        refusal = client_token_refused()
        if refusal is not None:
            return refusal
        return engine_call(engine_api.destroy_actor, host.engine, actor_id)

    # merge_slashes=False: werkzeug 3 would answer "/gateway//x" with an HTML redirect to a merged URL (werkzeug 2.3
    # redirects whatever the rule says)
    @blueprint.route("/gateway/<path:path>", methods=HTTP_METHODS, endpoint="rivet_gateway", merge_slashes=False)
    def gateway(path: str) -> Response:
        return host.gateway_http(path)

    @blueprint.route("/gateway/<path:path>", websocket=True, endpoint="rivet_gateway_websocket", merge_slashes=False)
    def gateway_websocket(path: str) -> Response:
        return host.gateway_websocket(path)

    blueprint.after_request(lambda response: host.cors.apply(request, response))
    # the inspector page and its admin API (host.admin_token)
    inspector_page.register(blueprint, host, app.config.get("SERVER_NAME"))
    app.register_blueprint(blueprint)
    _answer_routing_errors_as_json(app, host.url_prefix)
    return host


# The URL families rivetgreen serves; a URL under one of them that matches no route is answered in the spec's shape.
ROUTE_FAMILIES = ("/gateway", "/actors", "/metadata", "/metrics", "/inspector")
ROUTING_ERRORS = {404: ("not_found", "No route matches this URL."), 405: ("method_not_allowed", "Method not allowed.")}


def _answer_routing_errors_as_json(app: Flask, url_prefix: str) -> None:
    """Routing runs before Flask knows the Blueprint, so a URL under rivetgreen's routes that matches none of them
    (404) or not with this method (405) reaches the app's error handlers: answer those as JSON ``api/*`` errors, and
    leave every other URL to the handler the app had (or Flask's own page)."""
    families = tuple(url_prefix + family for family in ROUTE_FAMILIES)

    def handler_for(status: int, code: str, message: str) -> Any:
        app_handler = next(iter(app.error_handler_spec.get(None, {}).get(status, {}).values()), None)

        def answer(error: HTTPException) -> Any:
            path = request.path
            if any(path == family or path.startswith(family + "/") for family in families):
                return _json_error(RivetError("api", code, message), status)
            return app_handler(error) if app_handler is not None else error

        return answer

    for status, (code, message) in ROUTING_ERRORS.items():
        app.register_error_handler(status, handler_for(status, code, message))


def create_app(
    registry: Any, name: str = "rivetgreen", *, url_prefix: str | None = None,
    cors_origins: Iterable[str] | None = None,
) -> Flask:
    """A new Flask app serving ``registry`` (options as for :func:`init_app`)."""
    app = Flask(name)
    init_app(app, registry, url_prefix=url_prefix, cors_origins=cors_origins)
    return app
