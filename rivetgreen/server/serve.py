"""Serving a Flask app with gevent's WSGI server."""

from __future__ import annotations

import logging
from typing import Any

from gevent.pywsgi import WSGIServer

log = logging.getLogger("rivetgreen.server")


def make_server(app: Any, host: str = "127.0.0.1", port: int = 6420) -> WSGIServer:
    """A started gevent WSGI server for ``app`` (port 0 picks a free port: see ``server.server_port``)."""
    server = WSGIServer((host, port), app, log=None, error_log=logging.getLogger("rivetgreen.wsgi"))
    server.start()
    return server


def serve(app: Any, host: str = "127.0.0.1", port: int = 6420) -> None:
    """Serve ``app`` until interrupted."""
    server = make_server(app, host, port)
    log.info("rivetgreen listening on http://%s:%s", host, server.server_port)
    rivet_host = getattr(app, "extensions", {}).get("rivetgreen")
    token = getattr(rivet_host, "admin_token", None)
    if token:
        log.info("inspector: http://%s:%s/inspector/?token=%s", host, server.server_port, token)
    try:
        server.serve_forever()
    finally:
        server.stop()
