"""The interface every per-actor SQL backend implements (local file today, the engine's remote SQLite later)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol

Params = Sequence[Any] | dict[str, Any]
Statement = tuple[str, Params]


class SqlTransaction(Protocol):
    def execute(self, sql: str, params: Params = ()) -> int: ...
    def query(self, sql: str, params: Params = ()) -> list[dict[str, Any]]: ...


class SqlBackend(Protocol):
    """One actor's SQLite database. Calls block the calling greenlet only, never the whole hub for long."""

    def execute(self, sql: str, params: Params = ()) -> int:
        """Run one statement; returns the number of changed rows."""

    def query(self, sql: str, params: Params = ()) -> list[dict[str, Any]]:
        """Run one statement and return its rows as dicts."""

    def execute_batch(self, statements: Sequence[Statement]) -> None:
        """Run statements atomically, in one transaction."""

    def transaction(self, timeout: float) -> AbstractContextManager[SqlTransaction]:
        """Hold the single writer transaction; commits on normal exit, rolls back on error or after ``timeout``."""

    def close(self) -> None: ...


def rows_as_dicts(cursor: Any) -> list[dict[str, Any]]:
    names = [column[0] for column in cursor.description or ()]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def iterate_chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]
