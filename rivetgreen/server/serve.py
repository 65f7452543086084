"""Serving a Flask app with gevent's WSGI server."""

from __future__ import annotations

import logging
import signal
from typing import Any

import gevent
import gevent.event

from rivetgreen.server.handler import RivetServer
from rivetgreen.settings import HostSettings

log = logging.getLogger("rivetgreen.server")

# After the actors are asleep, how long requests still in flight may take before their connections are closed.
STOP_TIMEOUT = 1.0


def make_server(app: Any, host: str = "127.0.0.1", port: int = 6420,
                settings: HostSettings | None = None) -> RivetServer:
    """A started server for ``app`` (port 0 picks a free port: see ``server.server_port``); ``settings`` default to
    :meth:`HostSettings.from_environment`."""
    server = RivetServer((host, port), app, settings=settings, log=None,
                         error_log=logging.getLogger("rivetgreen.wsgi"))
    server.start()
    return server


def serve(app: Any, host: str = "127.0.0.1", port: int = 6420, settings: HostSettings | None = None) -> None:
    """Serve ``app`` until SIGTERM or SIGINT (Ctrl-C), then shut down cleanly and return: stop accepting, put every
    awake actor to sleep (final state save, connections hibernated, each within its grace period), close the
    remaining connections. Call it from the main thread (signal handlers can only be installed there)."""
    server = make_server(app, host, port, settings)
    log.info("rivetgreen listening on http://%s:%s", host, server.server_port)
    rivet_host = getattr(app, "extensions", {}).get("rivetgreen")
    token = getattr(rivet_host, "admin_token", None)
    if token:
        prefix = getattr(rivet_host, "url_prefix", None) or ""
        log.info("inspector: http://%s:%s%s/inspector/?token=%s", host, server.server_port, prefix, token)
    received: gevent.event.AsyncResult[str] = gevent.event.AsyncResult()  # the first stop signal's name
    # gevent's handlers run in a greenlet, so the shutdown below may block on actors (Python's own SIGINT handler
    # would raise KeyboardInterrupt wherever the main greenlet happens to be).
    handlers = [
        gevent.signal_handler(number, received.set, signal.Signals(number).name)
        for number in (signal.SIGTERM, signal.SIGINT)
    ]
    try:
        log.info("%s received: shutting down", received.get())
        server.close()  # stop accepting; requests already in flight carry on
        registry = getattr(rivet_host, "registry", None)
        if registry is not None:
            registry.shutdown()
    finally:
        for handler in handlers:
            handler.cancel()
        server.stop(timeout=STOP_TIMEOUT)
    log.info("rivetgreen stopped")
