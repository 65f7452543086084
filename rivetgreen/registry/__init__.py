"""The registry of actor definitions, and in-process handles to its actors."""

from rivetgreen.registry.handle import ActorHandle, LocalConnection
from rivetgreen.registry.registry import Registry, setup

__all__ = ["ActorHandle", "LocalConnection", "Registry", "setup"]
