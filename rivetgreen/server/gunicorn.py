"""A gunicorn worker with the host's transport: gunicorn's gevent pywsgi worker, serving with
:class:`rivetgreen.server.handler.RivetHandler` (TCP_NODELAY, timeouts, limits, WebSocket socket hand-over)::

    gunicorn -k rivetgreen.server.gunicorn.Worker -w 1 -b 127.0.0.1:6420 'app:create_app()'

One worker per host process (actors live in the process that runs them). The limits and timeouts come from the
``RIVETGREEN_*`` environment variables (:class:`rivetgreen.settings.HostSettings`); ``--worker-connections`` is
replaced by ``RIVETGREEN_MAX_CONNECTIONS``. gunicorn's own ``-k gevent`` worker parses HTTP itself and logs an
``AttributeError`` on every WebSocket close; this one does not.
"""

from __future__ import annotations

from gunicorn.workers.ggevent import GeventPyWSGIWorker, PyWSGIHandler

from rivetgreen.server.handler import RivetHandler, RivetServer
from rivetgreen.settings import HostSettings

# Greenlets beyond max_connections for the quick 503 answers: gunicorn's pool stops accepting when it is full,
# which would leave new connections waiting in the backlog instead of being answered.
TURN_AWAY_GREENLETS = 128


class Handler(RivetHandler, PyWSGIHandler):
    """The host's handler, with gunicorn's access log and environ keys (``gunicorn.sock``, ``RAW_URI``)."""

    def log_request(self) -> None:
        if self.environ is None:
            return  # a request head refused before it was parsed: nothing gunicorn's log format can show
        if self.status is None and self._upgrade:
            # The WebSocket wrote its own handshake on the socket; gunicorn's log needs a status and headers.
            self.status = b"101 Switching Protocols"
            self.response_headers = []
        super().log_request()


class Worker(GeventPyWSGIWorker):
    """``gunicorn -k rivetgreen.server.gunicorn.Worker``."""

    server_class = RivetServer
    wsgi_handler = Handler

    def run(self) -> None:
        self.worker_connections = HostSettings.from_environment().max_connections + TURN_AWAY_GREENLETS
        super().run()
