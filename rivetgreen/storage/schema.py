"""The runtime's own tables inside every actor database (core.md §6.1) and their migration ladder."""

from __future__ import annotations

import struct

from rivetgreen.errors import RivetError
from rivetgreen.storage.local import LocalSqliteBackend

RESERVED_PREFIX = "_rivet_"
INTERNAL_SCHEMA_VERSION = 1

_META = "CREATE TABLE IF NOT EXISTS _rivet_meta (key TEXT PRIMARY KEY, value BLOB)"

# Index i holds the script that moves the schema from version i to version i + 1.
MIGRATIONS: list[str] = [
    """
    CREATE TABLE _rivet_runtime (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        last_pushed_alarm INTEGER,
        inspector_token TEXT,
        queue_next_id INTEGER NOT NULL DEFAULT 1
    );
    INSERT INTO _rivet_runtime (id) VALUES (1);
    CREATE TABLE _rivet_actor (id INTEGER PRIMARY KEY CHECK (id = 1), has_initialized INTEGER NOT NULL, input BLOB);
    CREATE TABLE _rivet_actor_state (id INTEGER PRIMARY KEY CHECK (id = 1), state BLOB NOT NULL);
    CREATE TABLE _rivet_schedule_events (
        event_id TEXT PRIMARY KEY,
        trigger_at INTEGER NOT NULL,
        action TEXT NOT NULL,
        args BLOB,
        kind INTEGER NOT NULL DEFAULT 0,
        cron_expression TEXT,
        timezone TEXT,
        interval_ms INTEGER,
        last_started_at INTEGER,
        max_history INTEGER NOT NULL DEFAULT 100
    );
    CREATE INDEX _rivet_schedule_events_trigger_at ON _rivet_schedule_events (trigger_at);
    CREATE TABLE _rivet_schedule_history (
        id INTEGER PRIMARY KEY,
        schedule_id TEXT NOT NULL,
        action TEXT NOT NULL,
        scheduled_at INTEGER NOT NULL,
        fired_at INTEGER NOT NULL,
        finished_at INTEGER,
        result INTEGER NOT NULL,
        error_group TEXT,
        error_code TEXT,
        error_message TEXT,
        error_metadata BLOB
    );
    CREATE TABLE _rivet_conns (
        conn_id TEXT PRIMARY KEY,
        parameters BLOB,
        gateway_id BLOB,
        request_id BLOB,
        request_path TEXT,
        request_headers BLOB
    );
    CREATE TABLE _rivet_conn_state (
        conn_id TEXT PRIMARY KEY,
        state BLOB,
        server_message_index INTEGER NOT NULL DEFAULT 0,
        client_message_index INTEGER NOT NULL DEFAULT 0,
        subscriptions BLOB
    );
    CREATE TABLE _rivet_queue (id INTEGER PRIMARY KEY, name TEXT NOT NULL, body BLOB, created_at INTEGER NOT NULL);
    CREATE INDEX _rivet_queue_name_id ON _rivet_queue (name, id);
    CREATE TABLE _rivet_wf_kv (key BLOB PRIMARY KEY, value BLOB);
    CREATE TABLE _rivet_user_kv (key BLOB PRIMARY KEY, value BLOB);
    INSERT OR REPLACE INTO _rivet_meta (key, value) VALUES ('kv_import_state', 'done');
    """,
]
assert len(MIGRATIONS) == INTERNAL_SCHEMA_VERSION


def ensure_internal_schema(db: LocalSqliteBackend) -> None:
    """Create or upgrade the ``_rivet_*`` tables; refuse a database written by a newer runtime."""
    version = _stored_version(db)
    if version == INTERNAL_SCHEMA_VERSION:
        return
    if version > INTERNAL_SCHEMA_VERSION:
        raise RivetError(
            "protocol", "invalid_persisted_data",
            f"Actor database schema version {version} is newer than this runtime supports "
            f"({INTERNAL_SCHEMA_VERSION}).",
        )
    for target in range(version, INTERNAL_SCHEMA_VERSION):
        db.execute_script(
            "BEGIN IMMEDIATE;" + MIGRATIONS[target]
            + f"INSERT OR REPLACE INTO _rivet_meta (key, value) VALUES ('schema_version', X'{_encode(target + 1)}');"
            + "COMMIT;"
        )


def _stored_version(db: LocalSqliteBackend) -> int:
    if not db.query_values("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = '_rivet_meta'"):
        db.execute(_META)
        return 0
    rows = db.query_values("SELECT value FROM _rivet_meta WHERE key = 'schema_version'")
    return struct.unpack("<q", rows[0][0])[0] if rows else 0


def _encode(version: int) -> str:
    return struct.pack("<q", version).hex()
