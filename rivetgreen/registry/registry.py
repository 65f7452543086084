"""``setup(...)`` and :class:`Registry`: actor definitions plus the placement that runs them."""

from __future__ import annotations

import atexit
import logging
import os
from collections.abc import Iterable
from types import TracebackType
from typing import Any

from rivetgreen.actor.definition import ActorDefinition
from rivetgreen.encoding.actor_key import validate_key
from rivetgreen.encoding.cbor import encode
from rivetgreen.engine.local import LocalEngine
from rivetgreen.metrics import RuntimeMetrics
from rivetgreen.registry.handle import ActorHandle

DEFAULT_DATA_DIR = "./.rivetgreen"

log = logging.getLogger("rivetgreen.registry")

# Registries not shut down yet; the interpreter shuts them down at exit. Held strongly: a registry the script no
# longer references still has actors running (its engine lives on in its alarm greenlet) with changes to save.
_open_registries: set[Registry] = set()


class Registry:
    """Actor definitions by name, and the embedded engine that places their actors.

    ``metrics`` holds the registry's Prometheus series (served at ``GET /metrics``); ``metrics_token`` (default:
    the ``RIVETKIT_METRICS_TOKEN`` environment variable) makes that endpoint require ``Authorization: Bearer``.
    """

    def __init__(
        self,
        definitions: Iterable[ActorDefinition],
        data_dir: str | None = None,
        *,
        metrics_token: str | None = None,
        token: str | None = None,
    ) -> None:
        self.definitions: dict[str, ActorDefinition] = {}
        for definition in definitions:
            if not isinstance(definition, ActorDefinition):
                raise TypeError(f"setup() takes actor definitions, not {definition!r}")
            if definition.name in self.definitions:
                raise ValueError(f"two actor definitions are named {definition.name!r}")
            self.definitions[definition.name] = definition
        self.data_dir = data_dir or os.environ.get("RIVETGREEN_DATA_DIR") or DEFAULT_DATA_DIR
        self.metrics = RuntimeMetrics(metrics_token)
        # Clients must present this token to the Flask host's API and gateway (None: open; rivetgreen.server.access).
        self.token = token or os.environ.get("RIVETGREEN_TOKEN") or None
        self.engine = LocalEngine(
            self.definitions, self.data_dir, os.environ.get("RIVET_REGION", ""), metrics=self.metrics
        )
        _open_registries.add(self)

    def __enter__(self) -> Registry:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.shutdown()

    def __repr__(self) -> str:
        return f"<Registry {sorted(self.definitions)} data_dir={self.data_dir!r}>"

    def get(self, name: str, key: Any = ()) -> ActorHandle:
        """A handle to an existing actor; calls fail with ``actor/not_found`` if there is none."""
        return ActorHandle(self, name, validate_key(key), create=False)

    def get_or_create(self, name: str, key: Any = (), input: Any = None) -> ActorHandle:
        """A handle that creates the actor on first use (``input`` is used only on creation)."""
        return ActorHandle(self, name, validate_key(key), create=True, create_input=input)

    def create(self, name: str, key: Any = (), input: Any = None) -> ActorHandle:
        """Create a new actor now (``actor/duplicate_key`` if the key is taken); the handle is pinned to its id."""
        record = self.engine.create(name, validate_key(key), None if input is None else encode(input))
        return self.get_for_id(record.actor_id)

    def get_for_id(self, actor_id: str) -> ActorHandle:
        """A handle to the actor with this id."""
        return ActorHandle(self, None, None, actor_id=actor_id)

    def sleep(self, actor_id: str) -> None:
        """Put an actor to sleep now and wait until it is asleep."""
        self.engine.sleep(actor_id)

    def destroy(self, actor_id: str) -> None:
        """Destroy an actor and its data; its id is ``actor/not_found`` afterwards."""
        self.engine.destroy(actor_id)

    def flask_app(self, name: str = "rivetgreen", **options: Any) -> Any:
        """A new Flask app serving these actors to RivetKit clients (see ``rivetgreen.server``; ``options``:
        ``url_prefix``, ``cors_origins``)."""
        from rivetgreen.server import create_app  # the server sits above the registry; imported on demand

        return create_app(self, name, **options)

    def init_app(self, app: Any, **options: Any) -> Any:
        """Serve these actors from an existing Flask app (Flask extension convention; options as for
        :meth:`flask_app`)."""
        from rivetgreen.server import init_app

        return init_app(app, self, **options)

    def shutdown(self) -> None:
        """Put every running actor to sleep (final state save, connections hibernated) and close storage. The
        registry cannot be used afterwards. Runs by itself at interpreter exit and at the end of a ``with`` block;
        calling it again does nothing."""
        _open_registries.discard(self)
        self.engine.shutdown()


def setup(
    *definitions: ActorDefinition,
    data_dir: str | None = None,
    metrics_token: str | None = None,
    token: str | None = None,
) -> Registry:
    """The registry of these actor definitions, storing data under ``data_dir`` (default ``./.rivetgreen``);
    ``metrics_token`` protects ``GET /metrics``; ``token`` (default: ``RIVETGREEN_TOKEN``) is the token clients must
    present to the served API and gateway (see :class:`Registry`)."""
    return Registry(definitions, data_dir, metrics_token=metrics_token, token=token)


@atexit.register
def _shut_down_open_registries() -> None:
    """At interpreter exit, save what scripts changed in their last moments (they rarely call ``shutdown()``)."""
    for registry in list(_open_registries):
        try:
            registry.shutdown()
        except Exception:
            log.exception("shutting down %r at exit failed", registry)
