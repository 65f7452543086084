"""A SQLite file on local disk, shared safely by the greenlets of one actor.

One connection per actor, guarded by a gevent lock: the single writer transaction holds the lock for its whole
life, and every other statement queues behind it. Short internal statements run on the hub; statements issued
by user code (``c.db``) may be sent to gevent's threadpool so a long query does not stall other actors.
WAL with ``synchronous=NORMAL``: a committed transaction survives the process being killed (``kill -9``).
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar
from urllib.parse import quote

import gevent
import gevent.lock

from rivetgreen import clock
from rivetgreen.errors import RivetError
from rivetgreen.storage.backend import Params, Statement, rows_as_dicts
from rivetgreen.storage.faults import faults_as_storage_errors, read_only, storage_fault

T = TypeVar("T")

MAX_QUEUED_OPERATIONS = 128


def sqlite_error(code: str, message: str) -> RivetError:
    return RivetError("sqlite", code, message)


class LocalSqliteBackend:
    """One actor's database file."""

    def __init__(self, path: str, *, offload: bool = True) -> None:
        self.path = path
        self._offload = offload
        self._gate = gevent.lock.Semaphore(1)
        self._owner: Any = None
        self._depth = 0
        self._waiting = 0
        self._parked = False
        self.last_used = clock.monotonic()
        directory = os.path.dirname(path)
        if directory:
            os.makedirs(directory, exist_ok=True)
        with faults_as_storage_errors():
            self._connection: sqlite3.Connection | None = self._open()

    def _open(self) -> sqlite3.Connection:
        if not os.access(os.path.dirname(self.path) or ".", os.W_OK):
            return self._open_read_only()
        connection = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, cached_statements=32)
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=NORMAL")
        connection.execute("PRAGMA cache_size=-128")
        return connection

    def _open_read_only(self) -> sqlite3.Connection:
        """The database on a read-only directory: reads work, writes fail with ``storage/read_only``.

        SQLite cannot open a WAL database there normally (it must create the ``-shm`` file). After a clean close
        there is no ``-wal`` file and nothing can change the file, so it is opened as immutable; a ``-wal`` left by
        a crash holds committed data, so then SQLite's own read-only WAL mode is used.
        """
        if not os.path.exists(self.path):
            raise read_only()
        mode = "mode=ro" if os.path.exists(self.path + "-wal") else "immutable=1"
        uri = f"file:{quote(os.path.abspath(self.path))}?{mode}"
        return sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False, cached_statements=32)

    def park(self) -> bool:
        """Close the connection while nothing uses it (an open SQLite connection costs ~100-150 KiB); the next
        statement reopens it. Returns True if it was parked."""
        connection = self._connection
        if connection is None or self._owner is not None or connection.in_transaction:
            return False
        connection.close()
        self._connection = None
        self._parked = True
        return True

    @property
    def parked(self) -> bool:
        return self._parked

    # SqlBackend ------------------------------------------------------------------------------------------
    def execute(self, sql: str, params: Params = (), *, offload: bool = False) -> int:
        with self._locked():
            return self._run(lambda db: db.execute(sql, params).rowcount, offload)

    def query(self, sql: str, params: Params = (), *, offload: bool = False) -> list[dict[str, Any]]:
        with self._locked():
            return self._run(lambda db: rows_as_dicts(db.execute(sql, params)), offload)

    def query_values(self, sql: str, params: Params = ()) -> list[tuple[Any, ...]]:
        """Rows as plain tuples (internal fast path)."""
        with self._locked():
            return self._connection_or_raise().execute(sql, params).fetchall()

    def execute_script(self, script: str, *, offload: bool = False) -> None:
        with self._locked():
            self._run(lambda db: db.executescript(script), offload)

    def execute_batch(self, statements: Sequence[Statement]) -> None:
        with self._locked():
            db = self._connection_or_raise()
            if db.in_transaction:
                # Already inside the caller's own transaction: join it.
                for sql, params in statements:
                    db.execute(sql, params)
                return
            db.execute("BEGIN IMMEDIATE")
            try:
                for sql, params in statements:
                    db.execute(sql, params)
                db.execute("COMMIT")
            except BaseException:
                _roll_back(db)
                raise

    @contextmanager
    def transaction(self, timeout: float = 60.0, *, offload: bool = False) -> Iterator[Transaction]:
        with self._locked():
            db = self._connection_or_raise()
            if db.in_transaction:
                raise sqlite_error("transaction_invalid_argument", "A transaction is already open on this actor.")
            db.execute("BEGIN IMMEDIATE")
            tx = Transaction(self, clock.monotonic() + timeout, offload)
            try:
                yield tx
            except BaseException:
                _roll_back(db)
                raise
            finally:
                tx.closed = True
            if tx.expired():
                _roll_back(db)
                raise sqlite_error("transaction_expired", "The transaction expired and was rolled back.")
            try:
                db.execute("COMMIT")
            except sqlite3.Error as error:
                # A failed COMMIT (a deferred constraint, a full disk) may leave the transaction open; it would
                # swallow every later write of this actor, so make sure it is gone.
                _roll_back(db)
                raise _as_rivet_error(error) from error

    def close(self) -> None:
        with self._locked():
            self._parked = False
            if self._connection is not None:
                self._connection.close()
                self._connection = None

    # internals -------------------------------------------------------------------------------------------
    @contextmanager
    def _locked(self) -> Iterator[None]:
        """Hold the connection; re-entrant for the greenlet that holds it (so a transaction can call helpers)."""
        current = gevent.getcurrent()
        if self._owner is current:
            self._depth += 1
        else:
            if self._owner is not None:
                if self._waiting >= MAX_QUEUED_OPERATIONS:
                    raise sqlite_error("transaction_queue_full", "Too many operations are waiting for the database.")
                self._waiting += 1
                try:
                    self._gate.acquire()
                finally:
                    self._waiting -= 1
            else:
                self._gate.acquire()
            self._owner, self._depth = current, 1
        try:
            with faults_as_storage_errors():
                yield
        finally:
            self._depth -= 1
            if self._depth == 0:
                self._owner = None
                self._gate.release()

    def _connection_or_raise(self) -> sqlite3.Connection:
        self.last_used = clock.monotonic()
        if self._connection is None and self._parked:
            self._connection = self._open()
            self._parked = False
        if self._connection is None:
            raise sqlite_error("closed", "The actor's database is closed.")
        return self._connection

    def _run(self, operation: Callable[[sqlite3.Connection], T], offload: bool) -> T:
        db = self._connection_or_raise()
        in_transaction_before = db.in_transaction
        try:
            if offload and self._offload:
                with clock.background_job():
                    return gevent.get_hub().threadpool.apply(operation, (db,))
            return operation(db)
        except sqlite3.Error as error:
            if db.in_transaction and not in_transaction_before:
                # A failed script that opened its own transaction (BEGIN; ...) must not leave it open: every
                # later write of the actor would land in it and never commit.
                db.execute("ROLLBACK")
            raise _as_rivet_error(error) from error


def _as_rivet_error(error: sqlite3.Error) -> RivetError:
    """SQLite's error as a public one: ``storage/*`` for a full or read-only disk, else ``sqlite/execution_failed``."""
    return storage_fault(error) or sqlite_error("execution_failed", str(error))


def _roll_back(db: sqlite3.Connection) -> None:
    """End the open transaction, unless SQLite already rolled it back (it does when a statement hits a full
    disk; a second ROLLBACK would fail and hide that error)."""
    if db.in_transaction:
        db.execute("ROLLBACK")


class Transaction:
    """The open writer transaction; statements run inside it until the ``with`` block ends."""

    def __init__(self, backend: LocalSqliteBackend, deadline: float, offload: bool) -> None:
        self._backend = backend
        self._deadline = deadline
        self._offload = offload
        self.closed = False

    def expired(self) -> bool:
        return clock.monotonic() > self._deadline

    def execute(self, sql: str, params: Params = ()) -> int:
        self._check()
        return self._backend.execute(sql, params, offload=self._offload)

    def query(self, sql: str, params: Params = ()) -> list[dict[str, Any]]:
        self._check()
        return self._backend.query(sql, params, offload=self._offload)

    def _check(self) -> None:
        if self.closed:
            raise sqlite_error("transaction_closed", "The transaction is already closed.")
        if self.expired():
            raise sqlite_error("transaction_expired", "The transaction expired and will be rolled back.")
