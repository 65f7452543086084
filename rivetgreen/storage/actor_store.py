"""Typed reads and writes of the runtime's ``_rivet_*`` tables. The actor layer never writes SQL for them."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rivetgreen.storage.backend import iterate_chunks
from rivetgreen.storage.faults import WriteRetry
from rivetgreen.storage.local import LocalSqliteBackend
from rivetgreen.storage.schema import ensure_internal_schema

KV_CHUNK_ROWS = 128
KV_CHUNK_BYTES = 512 * 1024


@dataclass
class PersistedActor:
    """What a new generation loads at startup."""

    has_initialized: bool
    input: bytes | None
    state: bytes | None
    inspector_token: str | None
    last_pushed_alarm: int | None


def read_inspector_token(path: str) -> str | None:
    """The inspector token stored in the actor database at ``path``, read through a second connection so the actor
    is not woken; None if the actor never started (no file, or its first start has not written it yet)."""
    if not os.path.exists(path):  # opening it would create the file
        return None
    try:
        connection = sqlite3.connect(Path(path).resolve().as_uri() + "?mode=ro", uri=True)
    except sqlite3.Error:
        return None
    try:
        rows = connection.execute("SELECT inspector_token FROM _rivet_runtime WHERE id = 1").fetchall()
    except sqlite3.Error:
        return None
    finally:
        connection.close()
    return rows[0][0] if rows else None


@dataclass(frozen=True)
class HibernatedConnection:
    """A connection that outlived its generation (core.md §6.1 ``_rivet_conns`` + ``_rivet_conn_state``)."""

    conn_id: str
    params: bytes
    state: bytes
    subscriptions: bytes
    request_path: str = ""
    request_headers: bytes = b""


@dataclass(frozen=True)
class ScheduleRow:
    event_id: str
    trigger_at: int  # milliseconds since the epoch
    action: str
    args: bytes | None


class ActorStore:
    """The runtime tables of one actor database."""

    def __init__(self, db: LocalSqliteBackend) -> None:
        self.db = db
        self.save_retry = WriteRetry()  # the backoff of the actor's state saves while they fail

    def open(self) -> None:
        ensure_internal_schema(self.db)

    def close(self) -> None:
        self.db.close()

    def park_if_idle(self, idle_for: float, now: float) -> bool:
        """Release the database connection if it has not been used for ``idle_for`` seconds."""
        if now - self.db.last_used < idle_for:
            return False
        if self.db.park():
            return True
        self.db.last_used = now  # busy (an open transaction): try again after another idle period
        return False

    def park_deadline(self, idle_for: float) -> float | None:
        """When the connection may be parked (None: it already is)."""
        return None if self.db.parked else self.db.last_used + idle_for

    # actor record and state -----------------------------------------------------------------------------
    def load(self) -> PersistedActor:
        actor = self.db.query_values("SELECT has_initialized, input FROM _rivet_actor WHERE id = 1")
        state = self.db.query_values("SELECT state FROM _rivet_actor_state WHERE id = 1")
        runtime = self.db.query_values("SELECT inspector_token, last_pushed_alarm FROM _rivet_runtime WHERE id = 1")
        has_initialized, stored_input = actor[0] if actor else (0, None)
        token, alarm = runtime[0]
        return PersistedActor(bool(has_initialized), stored_input, state[0][0] if state else None, token, alarm)

    def write_actor_record(self, has_initialized: bool, stored_input: bytes | None) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO _rivet_actor (id, has_initialized, input) VALUES (1, ?, ?)",
            (int(has_initialized), stored_input),
        )

    def write_state(self, state: bytes) -> None:
        self.db.execute("INSERT OR REPLACE INTO _rivet_actor_state (id, state) VALUES (1, ?)", (state,))

    def set_inspector_token(self, token: str) -> None:
        self.db.execute("UPDATE _rivet_runtime SET inspector_token = ? WHERE id = 1", (token,))

    def set_last_pushed_alarm(self, alarm_ms: int | None) -> None:
        self.db.execute("UPDATE _rivet_runtime SET last_pushed_alarm = ? WHERE id = 1", (alarm_ms,))

    # schedules ----------------------------------------------------------------------------------------------
    def insert_schedule(self, row: ScheduleRow) -> None:
        self.db.execute(
            "INSERT INTO _rivet_schedule_events (event_id, trigger_at, action, args, kind) VALUES (?, ?, ?, ?, 0)",
            (row.event_id, row.trigger_at, row.action, row.args),
        )

    def delete_schedule(self, event_id: str) -> bool:
        return self.db.execute("DELETE FROM _rivet_schedule_events WHERE event_id = ? AND kind = 0", (event_id,)) > 0

    def get_schedule(self, event_id: str) -> ScheduleRow | None:
        rows = self.db.query_values(
            "SELECT event_id, trigger_at, action, args FROM _rivet_schedule_events WHERE event_id = ?", (event_id,)
        )
        return ScheduleRow(*rows[0]) if rows else None

    def list_schedules(self) -> list[ScheduleRow]:
        rows = self.db.query_values(
            "SELECT event_id, trigger_at, action, args FROM _rivet_schedule_events ORDER BY trigger_at, event_id"
        )
        return [ScheduleRow(*row) for row in rows]

    def count_schedules(self) -> int:
        return self.db.query_values("SELECT COUNT(*) FROM _rivet_schedule_events")[0][0]

    def earliest_trigger(self) -> int | None:
        return self.db.query_values("SELECT MIN(trigger_at) FROM _rivet_schedule_events")[0][0]

    def take_due_schedules(self, now_ms: int) -> list[ScheduleRow]:
        """Claim (delete) every one-shot schedule due at ``now_ms``: at-most-once delivery."""
        earliest = self.earliest_trigger()
        if earliest is None or earliest > now_ms:
            return []  # the common case on a wake: no write transaction
        with self.db.transaction() as tx:
            rows = tx.query(
                "SELECT event_id, trigger_at, action, args FROM _rivet_schedule_events "
                "WHERE trigger_at <= ? ORDER BY trigger_at, event_id",
                (now_ms,),
            )
            tx.execute("DELETE FROM _rivet_schedule_events WHERE trigger_at <= ? AND kind = 0", (now_ms,))
        return [ScheduleRow(r["event_id"], r["trigger_at"], r["action"], r["args"]) for r in rows]

    # hibernated connections -----------------------------------------------------------------------------------
    def write_hibernated_connections(self, connections: Sequence[HibernatedConnection]) -> None:
        """Store the connections that survive this generation, in one transaction."""
        statements: list[tuple[str, tuple[Any, ...]]] = []
        for conn in connections:
            statements.append((
                "INSERT OR REPLACE INTO _rivet_conns (conn_id, parameters, gateway_id, request_id, request_path, "
                "request_headers) VALUES (?, ?, ?, ?, ?, ?)",
                (conn.conn_id, conn.params, b"", b"", conn.request_path, conn.request_headers),
            ))
            statements.append((
                "INSERT OR REPLACE INTO _rivet_conn_state (conn_id, state, server_message_index, "
                "client_message_index, subscriptions) VALUES (?, ?, 0, 0, ?)",
                (conn.conn_id, conn.state, conn.subscriptions),
            ))
        if statements:
            self.db.execute_batch(statements)

    def take_hibernated_connections(self) -> list[HibernatedConnection]:
        """Read and remove every stored connection (a new generation restores them into memory)."""
        if not self.db.query_values("SELECT 1 FROM _rivet_conns LIMIT 1"):
            return []  # the common case on a wake: no write transaction
        with self.db.transaction() as tx:
            rows = tx.query(
                "SELECT c.conn_id, c.parameters, s.state, s.subscriptions, c.request_path, c.request_headers "
                "FROM _rivet_conns c JOIN _rivet_conn_state s ON s.conn_id = c.conn_id ORDER BY c.conn_id"
            )
            if rows:
                tx.execute("DELETE FROM _rivet_conns")
                tx.execute("DELETE FROM _rivet_conn_state")
        return [
            HibernatedConnection(
                r["conn_id"], r["parameters"], r["state"], r["subscriptions"], r["request_path"] or "",
                r["request_headers"] or b"",
            )
            for r in rows
        ]

    # queue --------------------------------------------------------------------------------------------------
    def queue_insert(self, name: str, body: bytes, created_at: int) -> int:
        """Append a message; its id and the next id are written together. Returns the id."""
        with self.db.transaction() as tx:
            next_id = tx.query("SELECT queue_next_id FROM _rivet_runtime WHERE id = 1")[0]["queue_next_id"]
            tx.execute(
                "INSERT INTO _rivet_queue (id, name, body, created_at) VALUES (?, ?, ?, ?)",
                (next_id, name, body, created_at),
            )
            tx.execute("UPDATE _rivet_runtime SET queue_next_id = ? WHERE id = 1", (next_id + 1,))
        return next_id

    def queue_peek(self, names: Sequence[str] | None, count: int, exclude: Sequence[int] = ()) -> list[QueueRow]:
        """The first ``count`` messages (by id) matching ``names``, skipping the ids in ``exclude``."""
        where, params = _queue_filter(names, exclude)
        rows = self.db.query_values(
            f"SELECT id, name, body, created_at FROM _rivet_queue{where} ORDER BY id LIMIT ?", [*params, count]
        )
        return [QueueRow(*row) for row in rows]

    def queue_delete(self, ids: Sequence[int]) -> None:
        self.db.execute_batch([("DELETE FROM _rivet_queue WHERE id = ?", (message_id,)) for message_id in ids])

    def queue_size(self) -> int:
        return self.db.query_values("SELECT COUNT(*) FROM _rivet_queue")[0][0]

    def queue_reset(self) -> None:
        self.db.execute("DELETE FROM _rivet_queue")

    # user KV ------------------------------------------------------------------------------------------------
    def kv_get_many(self, keys: Sequence[bytes]) -> list[bytes | None]:
        found: dict[bytes, bytes] = {}
        for chunk in iterate_chunks(keys, KV_CHUNK_ROWS):
            marks = ",".join("?" * len(chunk))
            sql = f"SELECT key, value FROM _rivet_user_kv WHERE key IN ({marks})"
            for key, value in self.db.query_values(sql, chunk):
                found[bytes(key)] = value
        return [found.get(key) for key in keys]

    def kv_put_many(self, entries: Sequence[tuple[bytes, bytes]]) -> None:
        for chunk in _write_chunks(entries):
            self.db.execute_batch(
                [("INSERT OR REPLACE INTO _rivet_user_kv (key, value) VALUES (?, ?)", entry) for entry in chunk]
            )

    def kv_delete_many(self, keys: Sequence[bytes]) -> None:
        for chunk in iterate_chunks(keys, KV_CHUNK_ROWS):
            self.db.execute_batch([("DELETE FROM _rivet_user_kv WHERE key = ?", (key,)) for key in chunk])

    def kv_delete_range(self, start: bytes, end: bytes) -> None:
        self.db.execute("DELETE FROM _rivet_user_kv WHERE key >= ? AND key < ?", (start, end))

    def kv_list_range(
        self, start: bytes, end: bytes | None, *, reverse: bool, limit: int | None
    ) -> list[tuple[bytes, bytes]]:
        sql = "SELECT key, value FROM _rivet_user_kv WHERE key >= ?"
        params: list[Any] = [start]
        if end is not None:
            sql += " AND key < ?"
            params.append(end)
        sql += " ORDER BY key DESC" if reverse else " ORDER BY key"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        return [(bytes(key), value) for key, value in self.db.query_values(sql, params)]


def _write_chunks(entries: Sequence[tuple[bytes, bytes]]) -> list[list[tuple[bytes, bytes]]]:
    """Split writes into transactions of at most 128 rows or 512 KiB (so large batches are not atomic)."""
    chunks: list[list[tuple[bytes, bytes]]] = [[]]
    size = 0
    for key, value in entries:
        entry_size = len(key) + len(value)
        if chunks[-1] and (len(chunks[-1]) >= KV_CHUNK_ROWS or size + entry_size > KV_CHUNK_BYTES):
            chunks.append([])
            size = 0
        chunks[-1].append((key, value))
        size += entry_size
    return [chunk for chunk in chunks if chunk]



@dataclass(frozen=True)
class QueueRow:
    id: int
    name: str
    body: bytes
    created_at: int  # milliseconds since the epoch


def _queue_filter(names: Sequence[str] | None, exclude: Sequence[int]) -> tuple[str, list[Any]]:
    clauses, params = [], []
    if names is not None:
        clauses.append(f"name IN ({','.join('?' * len(names))})")
        params.extend(names)
    if exclude:
        clauses.append(f"id NOT IN ({','.join('?' * len(exclude))})")
        params.extend(exclude)
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), params
