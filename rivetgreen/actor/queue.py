"""``c.queue``: a durable FIFO of messages per actor (core.md §3.6).

Messages are rows of ``_rivet_queue``. A plain receive deletes what it takes. A *completable* receive leaves the
message stored until ``message.complete(response)``; until then no other receiver gets it, and if the actor
sleeps or crashes first, the next generation receives it again. Receives block the calling greenlet (never the
actor) and raise :class:`~rivetgreen.errors.ActorAborted` (clients see ``actor/aborted``) when the actor starts
shutting down.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import gevent.event

from rivetgreen import clock, errors
from rivetgreen.actor.lifecycle import LifecycleState
from rivetgreen.encoding.cbor import decode, encode
from rivetgreen.errors import RivetError
from rivetgreen.storage import QueueRow

if TYPE_CHECKING:
    from rivetgreen.actor.task import ActorTask

# Bytes a stored message costs beyond its name and body (id, timestamp, framing), for the size limit.
MESSAGE_OVERHEAD = 16


def queue_error(code: str, message: str, metadata: Any = None) -> RivetError:
    return RivetError("queue", code, message, metadata)


class QueueMessage:
    """A received message. ``complete(response)`` finishes a completable one."""

    def __init__(self, queue: ActorQueue, row: QueueRow, completable: bool) -> None:
        self._queue = queue
        self.id = row.id
        self.name = row.name
        self.body = decode(row.body)
        self.created_at = row.created_at / 1000
        self.completable = completable
        self.completed = False

    def __repr__(self) -> str:
        return f"<QueueMessage {self.id} {self.name!r}>"

    def complete(self, response: Any = None) -> None:
        """Delete the message and answer whoever waits for it (``enqueue_and_wait`` or an HTTP ``wait`` send)."""
        if not self.completable:
            raise queue_error("complete_not_configured", "This message was not received as completable.")
        if self.completed:
            raise queue_error("already_completed", f"Message {self.id} was already completed.")
        self._queue._complete(self, response)
        self.completed = True


def _names(names: str | Sequence[str] | None) -> list[str] | None:
    if names is None:
        return None
    if isinstance(names, str):
        return [names]
    return list(names)


class ActorQueue:
    """The actor's queue."""

    def __init__(self, task: ActorTask) -> None:
        self._task = task
        self._changed = gevent.event.Event()
        self._delivered: set[int] = set()  # completable messages handed out and not completed yet
        self._completions: dict[int, gevent.event.AsyncResult[Any]] = {}
        # Stored messages, for metrics: unknown (None) until the queue is first used or scraped, then kept up to
        # date here. Not counted at startup: that read alone keeps another SQLite page cached per awake actor.
        self.depth: int | None = None

    # sending -------------------------------------------------------------------------------------------------
    def send(self, name: str, body: Any = None) -> QueueMessage:
        """Append a message; durable when this returns. ``queue/full`` and ``queue/message_too_large`` on limits."""
        row = self._insert(name, body)
        return QueueMessage(self, row, completable=False)

    def enqueue_and_wait(self, name: str, body: Any = None, timeout: float | None = None) -> Any:
        """Send a message and block until a receiver completes it; returns the response.
        ``queue/timed_out`` after ``timeout`` seconds (the message stays queued)."""
        result: gevent.event.AsyncResult[Any] = gevent.event.AsyncResult()
        row = self._insert(name, body, result)
        if not clock.wait_timeout(result, timeout):
            self._completions.pop(row.id, None)
            raise queue_error("timed_out", f"Message {row.id} was not completed within {timeout} s.")
        return result.get()

    def _insert(self, name: str, body: Any, waiter: gevent.event.AsyncResult[Any] | None = None) -> QueueRow:
        if not isinstance(name, str) or not name:
            raise queue_error("message_invalid", f"A queue name must be a non-empty string, not {name!r}.")
        options = self._task.options
        data = encode(body)
        size = len(name.encode()) + len(data) + MESSAGE_OVERHEAD
        if size > options.max_queue_message_size:
            raise queue_error(
                "message_too_large", f"The message is {size} bytes; the limit is {options.max_queue_message_size}.",
                {"size": size, "max": options.max_queue_message_size},
            )
        store = self._task.store
        stored = store.queue_size()
        if stored >= options.max_queue_size:
            raise queue_error("full", f"The queue holds {options.max_queue_size} messages already.",
                              {"max": options.max_queue_size})
        created_at = clock.now_ms()
        message_id = store.queue_insert(name, data, created_at)
        self.depth = stored + 1
        self._task.metrics.queue_sent.inc()
        if waiter is not None:
            self._completions[message_id] = waiter  # registered before any receiver can run
        self.notify()
        return QueueRow(message_id, name, data, created_at)

    # receiving -----------------------------------------------------------------------------------------------
    def next(
        self, names: str | Sequence[str] | None = None, *, timeout: float | None = None, completable: bool = False
    ) -> QueueMessage | None:
        """The oldest message (optionally only with one of ``names``); waits up to ``timeout`` seconds (None:
        forever, 0: not at all). Returns None on timeout."""
        messages = self.next_batch(names, count=1, timeout=timeout, completable=completable)
        return messages[0] if messages else None

    def next_batch(
        self,
        names: str | Sequence[str] | None = None,
        *,
        count: int = 1,
        timeout: float | None = None,
        completable: bool = False,
    ) -> list[QueueMessage]:
        """Up to ``count`` messages, waiting as :meth:`next` does for the first one."""
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise queue_error("message_invalid", f"count must be a whole number >= 1, not {count!r}.")
        wanted = _names(names)
        deadline = None if timeout is None else clock.monotonic() + timeout
        while True:
            if self._task.aborted:
                raise errors.ActorAborted()
            taken = self._take(wanted, count, completable)
            if taken or (deadline is not None and clock.monotonic() >= deadline):
                return taken
            self._wait_for_change(deadline)

    def try_next(
        self, names: str | Sequence[str] | None = None, *, completable: bool = False
    ) -> QueueMessage | None:
        """The oldest matching message, or None at once."""
        return self.next(names, timeout=0, completable=completable)

    def wait_for_names(
        self, names: str | Sequence[str], *, timeout: float | None = None, completable: bool = False
    ) -> QueueMessage:
        """Like :meth:`next`, but a timeout is the error ``queue/timed_out``."""
        message = self.next(names, timeout=timeout, completable=completable)
        if message is None:
            raise queue_error("timed_out", f"No message for {names!r} within {timeout} s.")
        return message

    def iter(
        self, names: str | Sequence[str] | None = None, *, completable: bool = False
    ) -> Iterator[QueueMessage]:
        """Messages as they arrive, forever; ends quietly when the actor starts shutting down."""
        while True:
            try:
                message = self.next(names, completable=completable)
            except errors.ActorAborted:
                return
            if message is not None:
                yield message

    def _take(self, names: list[str] | None, count: int, completable: bool) -> list[QueueMessage]:
        store = self._task.store
        rows = store.queue_peek(names, count, sorted(self._delivered))
        if not rows:
            return []
        if completable:
            self._delivered.update(row.id for row in rows)
        else:
            store.queue_delete([row.id for row in rows])
            self._forget(len(rows))
            self._task.changes.changed("queue")
        self._task.metrics.queue_received.inc(len(rows))
        return [QueueMessage(self, row, completable) for row in rows]

    def _wait_for_change(self, deadline: float | None) -> None:
        changed = self._changed
        self._task.queue_waits += 1
        self._task.signal_activity()
        try:
            clock.wait(changed, deadline)
        finally:
            self._task.queue_waits -= 1
            self._task.signal_activity()

    # completion, notification, inspection -------------------------------------------------------------------------
    def _complete(self, message: QueueMessage, response: Any) -> None:
        self._task.store.queue_delete([message.id])
        self._forget(1)
        self._task.changes.changed("queue")
        self._delivered.discard(message.id)
        waiter = self._completions.pop(message.id, None)
        if waiter is not None:
            waiter.set(response)

    def _forget(self, count: int) -> None:
        """``count`` stored messages were deleted."""
        if self.depth is None:
            self.depth = self._task.store.queue_size()  # the queue's pages were just read anyway
        else:
            self.depth = max(0, self.depth - count)

    def known_depth(self) -> int:
        """Stored messages for metrics: counted now if unknown and the database is open, else 0 when unknown
        (a parked database is not reopened for a scrape)."""
        if self.depth is None:
            store = self._task.store
            if self._task.lifecycle is not LifecycleState.STARTED or store.db.parked:
                return 0
            try:
                self.depth = store.queue_size()
            except Exception:
                return 0
        return self.depth

    def notify(self) -> None:
        """Wake every waiting receiver (a message arrived, or shutdown began)."""
        self._task.changes.changed("queue")
        changed, self._changed = self._changed, gevent.event.Event()
        changed.set()

    def drop_waiters(self) -> None:
        """The generation is ending: senders still waiting for completions get ``queue/completion_waiter_dropped``."""
        for waiter in self._completions.values():
            waiter.set_exception(
                queue_error("completion_waiter_dropped", "The actor stopped before the message was completed.")
            )
        self._completions.clear()

    def size(self) -> int:
        return self._task.store.queue_size()

    def max_size(self) -> int:
        return self._task.options.max_queue_size

    def messages(self, limit: int = 100) -> list[QueueMessage]:
        """The oldest ``limit`` messages, without receiving them (inspector)."""
        return [QueueMessage(self, row, False) for row in self._task.store.queue_peek(None, limit)]

    def reset(self) -> None:
        """Delete every message and drop completion waiters (inspector)."""
        self._task.store.queue_reset()
        self.depth = 0
        self._task.changes.changed("queue")
        self._delivered.clear()
        self.drop_waiters()
