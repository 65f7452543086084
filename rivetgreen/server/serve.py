"""Serving a Flask app with gevent's WSGI server."""

from __future__ import annotations

import logging
from typing import Any

from rivetgreen.server.handler import RivetServer
from rivetgreen.settings import HostSettings

log = logging.getLogger("rivetgreen.server")


def make_server(app: Any, host: str = "127.0.0.1", port: int = 6420,
                settings: HostSettings | None = None) -> RivetServer:
    """A started server for ``app`` (port 0 picks a free port: see ``server.server_port``); ``settings`` default to
    :meth:`HostSettings.from_environment`."""
    server = RivetServer((host, port), app, settings=settings, log=None,
                         error_log=logging.getLogger("rivetgreen.wsgi"))
    server.start()
    return server


def serve(app: Any, host: str = "127.0.0.1", port: int = 6420, settings: HostSettings | None = None) -> None:
    """Serve ``app`` until interrupted."""
    server = make_server(app, host, port, settings)
    log.info("rivetgreen listening on http://%s:%s", host, server.server_port)
    rivet_host = getattr(app, "extensions", {}).get("rivetgreen")
    token = getattr(rivet_host, "admin_token", None)
    if token:
        log.info("inspector: http://%s:%s/inspector/?token=%s", host, server.server_port, token)
    try:
        server.serve_forever()
    finally:
        server.stop()
