"""Per-actor durable data: the SQL backend interface, the local SQLite backend, and the ``_rivet_*`` tables."""

from rivetgreen.storage.actor_store import (
    ActorStore,
    HibernatedConnection,
    PersistedActor,
    QueueRow,
    ScheduleRow,
)
from rivetgreen.storage.backend import SqlBackend
from rivetgreen.storage.local import LocalSqliteBackend

__all__ = [
    "ActorStore", "HibernatedConnection", "LocalSqliteBackend", "PersistedActor", "QueueRow", "ScheduleRow",
    "SqlBackend",
]
