"""The Flask host: the engine-shaped API and the gateway in front of ``ActorRouter``."""

from rivetgreen.server.extension import create_app, init_app
from rivetgreen.server.serve import serve

__all__ = ["create_app", "init_app", "serve"]
