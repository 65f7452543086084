"""``c.db``: the actor's own SQLite database (core.md §3.5). Statements run in gevent's threadpool, so a long
query blocks only the calling greenlet. Tables named ``_rivet_*`` belong to the runtime and are refused."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from rivetgreen.errors import RivetError
from rivetgreen.storage.backend import Params
from rivetgreen.storage.local import LocalSqliteBackend, Transaction

_RESERVED = re.compile(r"(?<!\w)_rivet_", re.IGNORECASE)
DEFAULT_TRANSACTION_TIMEOUT = 60.0


def _check(sql: str) -> str:
    if not isinstance(sql, str):
        raise RivetError("sqlite", "invalid_argument", f"SQL must be a string, not {type(sql).__name__}.")
    if _RESERVED.search(sql):
        raise RivetError("sqlite", "reserved_table", "Tables prefixed with _rivet_ are reserved for the runtime.")
    return sql


class ActorDatabase:
    """The user's tables in the actor's SQLite file."""

    def __init__(self, backend: LocalSqliteBackend) -> None:
        self._backend = backend

    def execute(self, sql: str, params: Params = ()) -> int:
        """Run one statement; returns the number of changed rows."""
        return self._backend.execute(_check(sql), params, offload=True)

    def query(self, sql: str, params: Params = ()) -> list[dict[str, Any]]:
        """Run a query; returns rows as dicts."""
        return self._backend.query(_check(sql), params, offload=True)

    def execute_script(self, script: str) -> None:
        """Run several statements (for example migrations in ``on_migrate``)."""
        self._backend.execute_script(_check(script), offload=True)

    @contextmanager
    def transaction(self, timeout: float = DEFAULT_TRANSACTION_TIMEOUT) -> Iterator[GuardedTransaction]:
        """The actor's single writer transaction: committed when the block ends, rolled back on error."""
        with self._backend.transaction(timeout, offload=True) as tx:
            yield GuardedTransaction(tx)


class GuardedTransaction:
    """A transaction that refuses the runtime's tables."""

    def __init__(self, tx: Transaction) -> None:
        self._tx = tx

    def execute(self, sql: str, params: Params = ()) -> int:
        return self._tx.execute(_check(sql), params)

    def query(self, sql: str, params: Params = ()) -> list[dict[str, Any]]:
        return self._tx.query(_check(sql), params)
