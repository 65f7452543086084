"""Serving a Flask app with gevent's WSGI server."""

from __future__ import annotations

import logging
import signal
from typing import Any

import gevent
import gevent.event
from gevent.pywsgi import WSGIServer

log = logging.getLogger("rivetgreen.server")

# After the actors are asleep, how long requests still in flight may take before their connections are closed.
STOP_TIMEOUT = 1.0


def make_server(app: Any, host: str = "127.0.0.1", port: int = 6420) -> WSGIServer:
    """A started gevent WSGI server for ``app`` (port 0 picks a free port: see ``server.server_port``)."""
    server = WSGIServer((host, port), app, log=None, error_log=logging.getLogger("rivetgreen.wsgi"))
    server.start()
    return server


def serve(app: Any, host: str = "127.0.0.1", port: int = 6420) -> None:
    """Serve ``app`` until SIGTERM or SIGINT (Ctrl-C), then shut down cleanly and return: stop accepting, put every
    awake actor to sleep (final state save, connections hibernated, each within its grace period), close the
    remaining connections. Call it from the main thread (signal handlers can only be installed there)."""
    server = make_server(app, host, port)
    log.info("rivetgreen listening on http://%s:%s", host, server.server_port)
    rivet_host = getattr(app, "extensions", {}).get("rivetgreen")
    token = getattr(rivet_host, "admin_token", None)
    if token:
        log.info("inspector: http://%s:%s/inspector/?token=%s", host, server.server_port, token)
    received = gevent.event.AsyncResult()  # the first stop signal's name
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
