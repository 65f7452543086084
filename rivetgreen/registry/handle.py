"""In-process handles: call actors from scripts and tests through the same dispatch path as network clients.

Arguments and results cross the boundary as CBOR, exactly as they would over the network, so a value that a
remote client could not send or receive fails here too, and callers never share objects with the actor.
"""

from __future__ import annotations

import functools
import logging
from collections import defaultdict
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import gevent
import gevent.queue

from rivetgreen import errors
from rivetgreen.actor.actions import action_call, connection_action, open_connection
from rivetgreen.encoding.cbor import decode, encode

if TYPE_CHECKING:
    from rivetgreen.actor.connection import Conn
    from rivetgreen.registry.registry import Registry

log = logging.getLogger("rivetgreen.client")


def _copy(value: Any) -> Any:
    return decode(encode(value))


class ActorHandle:
    """Addresses one actor by name + key (resolved on every call) or by id. ``handle.increment(5)`` calls the
    action ``increment``."""

    def __init__(
        self,
        registry: Registry,
        name: str | None,
        key: list[str] | None,
        *,
        create: bool = False,
        create_input: Any = None,
        actor_id: str | None = None,
    ) -> None:
        self._registry = registry
        self._name = name
        self._key = key
        self._create = create
        self._create_input = create_input
        self._actor_id = actor_id

    def __repr__(self) -> str:
        target = self._actor_id or f"{self._name}{self._key!r}"
        return f"<ActorHandle {target}>"

    def __getattr__(self, name: str) -> Callable[..., Any]:
        if name.startswith("_"):
            raise AttributeError(name)
        return functools.partial(self.action, name)

    def resolve(self) -> str:
        """The actor id this handle addresses now (creating the actor for ``get_or_create`` handles)."""
        if self._actor_id is not None:
            return self._actor_id
        engine = self._registry.engine
        assert self._name is not None and self._key is not None
        if self._create:
            create_input = None if self._create_input is None else encode(self._create_input)
            created, _ = engine.get_or_create(self._name, self._key, create_input)
            return created.actor_id
        record = engine.get(self._name, self._key)
        if record is None:
            raise errors.actor_not_found_by_key(self._name, self._key)
        return record.actor_id

    def action(self, name: str, *args: Any, params: Any = None) -> Any:
        """Call action ``name`` over a transient connection (with ``params``), as HTTP ``/action`` does."""
        call_args = _copy(list(args))
        call_params = _copy(params)
        output = self._registry.engine.perform(self.resolve(), lambda: action_call(name, call_args, call_params))
        return _copy(output)

    def connect(self, params: Any = None) -> LocalConnection:
        """Open a long-lived connection that receives events (``conn.on(name, callback)``)."""
        return LocalConnection(self, _copy(params))


class LocalConnection:
    """An in-process connection: events, actions, and reconnection after the actor closed it (for example
    when it fell asleep)."""

    def __init__(self, handle: ActorHandle, params: Any) -> None:
        self._handle = handle
        self._params = params
        self._listeners: dict[str, list[Callable[..., Any]]] = defaultdict(list)
        self._events: gevent.queue.Queue[tuple[str, list[Any]]] = gevent.queue.Queue()
        self._conn: Conn | None = None
        self._closed = False
        self._delivery = gevent.spawn(self._deliver_events)
        self._open()

    @property
    def id(self) -> str | None:
        return self._conn.id if self._conn is not None else None

    def _open(self) -> None:
        transport = _LocalTransport(self)
        engine = self._handle._registry.engine
        self._conn = engine.perform(self._handle.resolve(), lambda: open_connection(self._params, transport))
        self._conn.subscriptions.update(self._listeners)

    def on(self, event: str, callback: Callable[..., Any]) -> None:
        """Subscribe: ``callback(*args)`` runs for every ``event`` this connection receives."""
        self._listeners[event].append(callback)
        if self._conn is not None:
            self._conn.subscriptions.add(event)

    def action(self, name: str, *args: Any) -> Any:
        """Call an action over this connection (reconnecting first if the actor closed it)."""
        if self._closed:
            raise errors.RivetError("client", "closed", "This connection was closed.")
        if self._conn is None:
            self._open()
        conn, call_args = self._conn, _copy(list(args))
        output = self._handle._registry.engine.perform(
            self._handle.resolve(), lambda: connection_action(conn, name, call_args)
        )
        return _copy(output)

    def __getattr__(self, name: str) -> Callable[..., Any]:
        if name.startswith("_"):
            raise AttributeError(name)
        return functools.partial(self.action, name)

    def close(self) -> None:
        """Disconnect; ``on_disconnect`` runs on the actor."""
        self._closed = True
        if self._conn is not None:
            conn, self._conn = self._conn, None
            conn.disconnect("closed by client")
        self._delivery.kill(block=False)

    def _deliver_events(self) -> None:
        for name, args in self._events:
            for callback in list(self._listeners.get(name, ())):
                try:
                    callback(*args)
                except Exception:
                    log.exception("event listener for %s failed", name)

    def _transport_closed(self, transport: _LocalTransport) -> None:
        if self._conn is not None and self._conn.transport is transport:
            self._conn = None


class _LocalTransport:
    """The actor's side of a LocalConnection."""

    def __init__(self, connection: LocalConnection) -> None:
        self._connection = connection

    def send_event(self, name: str, args: list[Any]) -> None:
        self._connection._events.put((name, _copy(args)))

    def close(self, reason: str | None) -> None:
        self._connection._transport_closed(self)
