"""Helpers shared by test modules."""

from __future__ import annotations

import os
from typing import Any

from rivetgreen.encoding.cbor import decode
from rivetgreen.storage import ActorStore, LocalSqliteBackend


def stored_state(registry: Any, actor_id: str) -> Any:
    """The state bytes on disk right now, decoded, read through a second connection to the actor's file."""
    store = ActorStore(LocalSqliteBackend(os.path.join(registry.data_dir, "actors", f"{actor_id}.sqlite")))
    try:
        return decode(store.load().state)
    finally:
        store.close()
