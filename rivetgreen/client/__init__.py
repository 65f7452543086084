"""A synchronous, gevent-cooperative network client for rivetgreen servers and any RivetKit-compatible endpoint.

>>> from rivetgreen.client import Client
>>> client = Client("http://127.0.0.1:6420")
>>> counter = client.counter.get_or_create(["a"])
>>> counter.increment(5)          # POST /gateway/counter/action/increment?rvt-...
>>> conn = counter.connect()      # the /connect WebSocket: events, actions, reconnects
>>> conn.on("newCount", print)

Modules: :mod:`~rivetgreen.client.client` (Client), :mod:`~rivetgreen.client.handle` (HTTP calls),
:mod:`~rivetgreen.client.connection` (the connection protocol), :mod:`~rivetgreen.client.websocket`
(wsproto on gevent), :mod:`~rivetgreen.client.http` (keep-alive HTTP on gevent),
:mod:`~rivetgreen.client.engine` (the REST API), :mod:`~rivetgreen.client.urls` (URL building) and
:mod:`~rivetgreen.client.errors`. Nothing here monkey patches; it can share a hub with a rivetgreen server.
"""

from rivetgreen.client.client import ActorAccessor, Client
from rivetgreen.client.connection import ActorConnection
from rivetgreen.client.errors import ClientTimeout
from rivetgreen.client.handle import ActorHandle
from rivetgreen.client.http import HttpResponse
from rivetgreen.client.websocket import WebSocket

__all__ = ["ActorAccessor", "ActorConnection", "ActorHandle", "Client", "ClientTimeout", "HttpResponse", "WebSocket"]
