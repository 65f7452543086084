"""Storage faults: a full or read-only disk as public ``storage/*`` errors, and the backoff for retrying a write.

A full or read-only disk is not a bug in the caller's request nor in the runtime: the client gets a clear error
with a 503 status (try again later), and a write the runtime owes (a state save) is retried with capped exponential
backoff and at most one warning per interval, so a full disk never turns into a busy loop or a flood of logs.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

from rivetgreen.errors import RivetError

FAULT_STATUS = 503  # Service Unavailable: the request was fine, the host cannot store it now

# SQLite primary result codes (the low byte of an extended code).
SQLITE_READONLY = 8
SQLITE_FULL = 13

FIRST_RETRY_DELAY = 0.25  # seconds
MAX_RETRY_DELAY = 8.0
WARNING_INTERVAL = 30.0


def disk_full() -> RivetError:
    return RivetError(
        "storage", "disk_full", "The actor's storage is full; nothing was written. Try again later.",
        public=True, status=FAULT_STATUS,
    )


def read_only() -> RivetError:
    return RivetError(
        "storage", "read_only", "The actor's storage is read-only; nothing was written.",
        public=True, status=FAULT_STATUS,
    )


def storage_fault(error: sqlite3.Error) -> RivetError | None:
    """The public error for a full or read-only disk, or None for any other database error."""
    primary = getattr(error, "sqlite_errorcode", 0) & 0xFF
    if primary == SQLITE_FULL:
        return disk_full()
    if primary == SQLITE_READONLY:
        return read_only()
    return None


@contextmanager
def faults_as_storage_errors() -> Iterator[None]:
    """Re-raise SQLite's error for a full or read-only disk as its public ``storage/*`` error."""
    try:
        yield
    except sqlite3.Error as error:
        fault = storage_fault(error)
        if fault is None:
            raise
        raise fault from error


def is_storage_fault(error: BaseException) -> bool:
    return isinstance(error, RivetError) and error.group == "storage"


class WriteRetry:
    """When to retry a write that keeps failing (capped exponential backoff), with rate-limited warnings."""

    def __init__(
        self,
        first_delay: float = FIRST_RETRY_DELAY,
        max_delay: float = MAX_RETRY_DELAY,
        warning_interval: float = WARNING_INTERVAL,
    ) -> None:
        self.first_delay = first_delay
        self.max_delay = max_delay
        self.warning_interval = warning_interval
        self.failures = 0  # consecutive
        self.retry_at: float | None = None  # None: not failing, write whenever asked
        self._unreported = 0
        self._next_warning_at: float | None = None

    def failed(self, error: BaseException, now: float, log: logging.Logger, what: str) -> None:
        """Record a failed attempt: schedule the retry and warn at most once per interval (with a count)."""
        delay = min(self.max_delay, self.first_delay * 2 ** self.failures)
        self.failures += 1
        self.retry_at = now + delay
        self._unreported += 1
        if self._next_warning_at is not None and now < self._next_warning_at:
            return
        # A full or read-only disk is an operations problem with a clear message; anything else is a bug that
        # needs its traceback.
        log.warning(
            "%s failed %d time(s) since the last warning (%s); retrying in %.2f s",
            what, self._unreported, error, delay, exc_info=None if is_storage_fault(error) else error,
        )
        self._unreported = 0
        self._next_warning_at = now + self.warning_interval

    def succeeded(self, log: logging.Logger, what: str) -> None:
        """The write went through after failing: back to normal, and say so."""
        log.warning("%s succeeded after %d failed attempt(s)", what, self.failures)
        self.failures = 0
        self.retry_at = None
        self._unreported = 0
        self._next_warning_at = None
