"""rivetgreen: stateful actors for Python on gevent, wire-compatible with RivetKit.

>>> from rivetgreen import actor, setup
>>> counter = actor("counter", state={"count": 0})
"""

from rivetgreen.actor.connection import Conn
from rivetgreen.actor.context import ActorContext
from rivetgreen.actor.definition import ActorDefinition, actor
from rivetgreen.client import Client
from rivetgreen.errors import RivetError, UserError
from rivetgreen.http import Request, Response
from rivetgreen.registry import ActorHandle, LocalConnection, Registry, setup

__version__ = "0.1.0"

__all__ = [
    "ActorContext", "ActorDefinition", "ActorHandle", "Client", "Conn", "LocalConnection", "Registry", "Request",
    "Response", "RivetError", "UserError", "actor", "setup",
]
