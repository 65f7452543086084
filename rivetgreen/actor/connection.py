"""Connections: one per client transport (a ``/connect`` socket, or a transient one per HTTP action call).

The actor layer knows a connection only through :class:`ConnectionTransport`; the server (or the in-process
client) supplies it. Hook order follows core.md §3.8: ``on_before_connect`` → ``create_conn_state`` → the
connection becomes visible in ``c.conns`` → ``on_connect``.
"""

from __future__ import annotations

import logging
import uuid
from typing import TYPE_CHECKING, Any, Protocol, cast

import gevent

from rivetgreen.actor.calls import call_with_timeout
from rivetgreen.actor.failures import report_failure
from rivetgreen.actor.work import WorkKind
from rivetgreen.encoding.cbor import decode, encode
from rivetgreen.errors import RivetError, callback_timed_out
from rivetgreen.storage import HibernatedConnection

if TYPE_CHECKING:
    from rivetgreen.actor.task import ActorTask

log = logging.getLogger("rivetgreen.actor")

# Events handed to connections between two yields to the event loop during a broadcast (each takes some 40 µs).
BROADCAST_BATCH = 50
YIELD_SECONDS = 0.000001


class ConnectionTransport(Protocol):
    """What a connection needs from the transport that carries it."""

    def send_event(self, name: str, args: list[Any]) -> None: ...

    def close(self, reason: str | None) -> None: ...


class HibernatableTransport(ConnectionTransport, Protocol):
    """A transport that can outlive its actor's generation (the host keeps the socket open while it sleeps)."""

    @property
    def closed(self) -> bool: ...

    def hibernate(self) -> None:
        """The actor is going to sleep; the connection object is gone until :meth:`reattach`."""

    def reattach(self, conn: Conn) -> None:
        """A new generation restored the connection as ``conn``."""


class Conn:
    """A client connection as actor code sees it (``c.conn``, ``c.conns``)."""

    def __init__(
        self,
        manager: ConnectionManager,
        params: Any,
        transport: ConnectionTransport | None,
        is_hibernatable: bool = False,
        conn_id: str | None = None,
    ) -> None:
        self.id = conn_id or str(uuid.uuid4())
        self.params = params
        self.state: Any = None
        self.subscriptions: set[str] = set()
        self.is_hibernatable = is_hibernatable
        self.transport = transport
        self._manager = manager

    def __repr__(self) -> str:
        return f"<Conn {self.id}>"

    def send(self, name: str, *args: Any) -> None:
        """Send an event to this connection only, subscribed or not."""
        if self.transport is None:
            log.debug("conn %s has no event transport; dropping event %s", self.id, name)
            return
        self.transport.send_event(name, list(args))

    def disconnect(self, reason: str | None = None) -> None:
        """Close the transport and run ``on_disconnect``."""
        self._manager.disconnect(self, reason)


class ConnectionManager:
    """The connections of one actor generation."""

    def __init__(self, task: ActorTask) -> None:
        self._task = task
        self.conns: dict[str, Conn] = {}
        self._saying_goodbye: set[str] = set()  # ids whose grace-time on_disconnect is running

    def connect(
        self, params: Any, transport: ConnectionTransport | None = None, *, hibernatable: bool = False
    ) -> Conn:
        """Run the connect hooks and register the connection; a failing hook rejects it with that error.
        A ``hibernatable`` connection survives the actor's sleep (its transport must be a HibernatableTransport)."""
        task = self._task
        hooks = task.definition.hooks
        options = task.definition.options
        conn = Conn(self, params, transport, hibernatable)
        if "on_before_connect" in hooks:
            call_with_timeout(
                hooks["on_before_connect"], (task.ctx, params), options.on_before_connect_timeout,
                lambda: callback_timed_out("on_before_connect"),
            )
        if "create_conn_state" in hooks:
            conn.state = call_with_timeout(
                hooks["create_conn_state"], (task.ctx, params), options.create_conn_state_timeout,
                lambda: callback_timed_out("create_conn_state"),
            )
        else:
            conn.state = task.definition.static_conn_state()
        self.conns[conn.id] = conn
        task.metrics.connections_total.inc()
        task.signal_activity()
        task.changes.changed("connections")
        if "on_connect" in hooks:
            try:
                call_with_timeout(
                    hooks["on_connect"], (task.ctx, conn), options.on_connect_timeout,
                    lambda: callback_timed_out("on_connect"),
                )
            except BaseException:
                self._remove(conn)
                raise
        return conn

    def disconnect(self, conn: Conn, reason: str | None = None) -> None:
        """Managed disconnect: close the transport, forget the connection, run ``on_disconnect``."""
        self._close_transport(conn, reason)
        if conn.id in self._saying_goodbye:
            return  # disconnect_at_shutdown runs on_disconnect and forgets it
        if self._remove(conn):
            self._run_on_disconnect(conn)

    def disconnect_at_shutdown(self, conn: Conn, reason: str | None) -> None:
        """Grace-time disconnect (core.md §1.6): ``on_disconnect`` runs first, while the connection is still open
        and listed, so a farewell ``conn.send`` reaches the client; then the transport is closed and it is removed."""
        if conn.id not in self.conns or conn.id in self._saying_goodbye:
            return
        self._saying_goodbye.add(conn.id)
        try:
            self._run_on_disconnect(conn)
        finally:
            self._saying_goodbye.discard(conn.id)
            self._close_transport(conn, reason)
            self._remove(conn)

    def _close_transport(self, conn: Conn, reason: str | None) -> None:
        if conn.transport is not None:
            try:
                conn.transport.close(reason)
            except Exception:
                log.exception("closing the transport of conn %s failed", conn.id)

    def _run_on_disconnect(self, conn: Conn) -> None:
        hook = self._task.definition.hooks.get("on_disconnect")
        if hook is None:
            return
        with self._task.work.region(WorkKind.DISCONNECT_CALLBACK):
            try:
                call_with_timeout(
                    hook, (self._task.ctx, conn), self._task.definition.options.on_connect_timeout,
                    lambda: callback_timed_out("on_disconnect"),
                )
            except Exception as error:
                report_failure(self._task, "on_disconnect", error)

    def _remove(self, conn: Conn) -> bool:
        removed = self.conns.pop(conn.id, None) is not None
        conn.subscriptions.clear()
        if removed:
            self._task.signal_activity()
            self._task.changes.changed("connections")
        return removed

    def broadcast(self, name: str, args: list[Any]) -> None:
        """Send an event to every subscribed connection; one that cannot take it does not stop the others."""
        sent = failed = 0
        first_failure: tuple[str, Exception] | None = None
        for conn in list(self.conns.values()):
            if name not in conn.subscriptions or conn.transport is None:
                continue
            try:
                conn.transport.send_event(name, args)
            except Exception as error:  # e.g. a value this connection's encoding cannot carry
                failed += 1
                first_failure = first_failure or (conn.id, error)
            sent += 1
            if sent % BROADCAST_BATCH == 0:
                # A fan-out to thousands of connections lets other requests be served meanwhile. Not sleep(0),
                # which only runs greenlets already ready: a timer takes the loop through an I/O poll, so requests
                # that arrive meanwhile are read too.
                gevent.sleep(YIELD_SECONDS)
        if first_failure is not None:
            log.warning("event %s could not be sent to %d of %d connections (first: conn %s: %s)",
                        name, failed, sent, *first_failure)

    # hibernation (core.md §3.8) ------------------------------------------------------------------------------
    def hibernate_all(self) -> list[tuple[HibernatedConnection, HibernatableTransport]]:
        """Take every hibernatable connection out of this generation, without ``on_disconnect``: their records
        and live transports. A connection whose state cannot be stored is disconnected instead."""
        taken: list[tuple[HibernatedConnection, HibernatableTransport]] = []
        for conn in [c for c in self.conns.values() if c.is_hibernatable and c.transport is not None]:
            try:
                record = HibernatedConnection(
                    conn.id, encode(conn.params), encode(conn.state), encode(sorted(conn.subscriptions))
                )
            except RivetError as error:
                log.error("connection %s cannot hibernate (%s); disconnecting it", conn.id, error)
                self.disconnect(conn, "actor stopping")
                continue
            self.conns.pop(conn.id, None)
            # connect()'s contract: a hibernatable connection's transport is a HibernatableTransport.
            taken.append((record, cast(HibernatableTransport, conn.transport)))
        return taken

    def restore(self, record: HibernatedConnection, transport: HibernatableTransport) -> Conn:
        """Bring a hibernated connection back in a new generation (no connect hooks run again)."""
        conn = Conn(self, decode(record.params), transport, True, record.conn_id)
        conn.state = decode(record.state)
        conn.subscriptions = set(decode(record.subscriptions))
        self.conns[conn.id] = conn
        transport.reattach(conn)
        return conn
