"""The embedded engine's directory of actors: name + key → actor id, generations, pending alarms."""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass

from rivetgreen import clock, errors
from rivetgreen.encoding.actor_key import parse_key, serialize_key
from rivetgreen.storage import LocalSqliteBackend
from rivetgreen.storage.faults import is_storage_fault

_SCHEMA = """
CREATE TABLE IF NOT EXISTS actors (
    actor_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    key TEXT NOT NULL,
    input BLOB,
    generation INTEGER NOT NULL DEFAULT 0,
    alarm_at INTEGER,
    created_at INTEGER NOT NULL,
    UNIQUE (name, key)
);
"""


@dataclass(frozen=True)
class ActorRecord:
    actor_id: str
    name: str
    key: list[str]
    input: bytes | None
    created_at: int


class Directory:
    """Durable in a SQLite file beside the actor databases."""

    def __init__(self, data_dir: str) -> None:
        self.db = LocalSqliteBackend(os.path.join(data_dir, "directory.sqlite"), offload=False)
        self.db.execute_script(_SCHEMA)
        self._unsaved_generations: dict[str, int] = {}  # wakes counted while the disk refused writes

    def close(self) -> None:
        self.db.close()

    def create(self, name: str, key: list[str], create_input: bytes | None) -> ActorRecord:
        if self.find(name, key) is not None:
            raise errors.duplicate_key(name, key)
        actor_id = uuid.uuid4().hex
        now = clock.now_ms()
        self.db.execute(
            "INSERT INTO actors (actor_id, name, key, input, created_at) VALUES (?, ?, ?, ?, ?)",
            (actor_id, name, serialize_key(key), create_input, now),
        )
        return ActorRecord(actor_id, name, list(key), create_input, now)

    def find(self, name: str, key: list[str]) -> ActorRecord | None:
        return self._one("WHERE name = ? AND key = ?", (name, serialize_key(key)))

    def get(self, actor_id: str) -> ActorRecord | None:
        return self._one("WHERE actor_id = ?", (actor_id,))

    def list(self, name: str | None = None) -> list[ActorRecord]:
        if name is None:
            return self._many("ORDER BY created_at, actor_id", ())
        return self._many("WHERE name = ? ORDER BY created_at, actor_id", (name,))

    def next_generation(self, actor_id: str) -> int:
        try:
            self.db.execute("UPDATE actors SET generation = generation + 1 WHERE actor_id = ?", (actor_id,))
        except errors.RivetError as error:
            if not is_storage_fault(error):
                raise
            # A full or read-only disk must not stop a sleeping actor from waking to serve reads: count this
            # process's generations in memory until the directory can be written again.
            self._unsaved_generations[actor_id] = self._unsaved_generations.get(actor_id, 0) + 1
        stored = self.db.query_values("SELECT generation FROM actors WHERE actor_id = ?", (actor_id,))[0][0]
        return stored + self._unsaved_generations.get(actor_id, 0)

    def count_by_name(self) -> dict[str, int]:
        """How many actors of each name are stored."""
        return dict(self.db.query_values("SELECT name, COUNT(*) FROM actors GROUP BY name"))

    def set_alarm(self, actor_id: str, alarm_ms: int | None) -> None:
        self.db.execute("UPDATE actors SET alarm_at = ? WHERE actor_id = ?", (alarm_ms, actor_id))

    def alarms(self) -> dict[str, int]:
        return dict(self.db.query_values("SELECT actor_id, alarm_at FROM actors WHERE alarm_at IS NOT NULL"))

    def delete(self, actor_id: str) -> None:
        self.db.execute("DELETE FROM actors WHERE actor_id = ?", (actor_id,))

    def _one(self, where: str, params: tuple[str, ...]) -> ActorRecord | None:
        rows = self._many(where, params)
        return rows[0] if rows else None

    def _many(self, where: str, params: tuple[str, ...]) -> list[ActorRecord]:
        rows = self.db.query_values(f"SELECT actor_id, name, key, input, created_at FROM actors {where}", params)
        return [ActorRecord(row[0], row[1], parse_key(row[2]), row[3], row[4]) for row in rows]
