"""``c.kv``: a small key-value store inside the actor's database (core.md §3.4). Keys and values are bytes;
``str`` is accepted and stored as UTF-8."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from rivetgreen.errors import RivetError

if TYPE_CHECKING:
    from rivetgreen.storage import ActorStore

MAX_KEY_SIZE = 2048
MAX_VALUE_SIZE = 128 * 1024

Bytes = bytes | str


def _as_bytes(value: Bytes, what: str) -> bytes:
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    raise RivetError("kv", f"invalid_{what}", f"KV {what}s must be bytes or str, not {type(value).__name__}.")


def _key(key: Bytes) -> bytes:
    data = _as_bytes(key, "key")
    if len(data) > MAX_KEY_SIZE:
        raise RivetError("kv", "key_too_large", f"KV key is {len(data)} bytes; the limit is {MAX_KEY_SIZE}.")
    return data


def _value(value: Bytes) -> bytes:
    data = _as_bytes(value, "value")
    if len(data) > MAX_VALUE_SIZE:
        raise RivetError("kv", "value_too_large", f"KV value is {len(data)} bytes; the limit is {MAX_VALUE_SIZE}.")
    return data


def prefix_end(prefix: bytes) -> bytes | None:
    """The smallest key greater than every key starting with ``prefix`` (None: no upper bound)."""
    trimmed = prefix.rstrip(b"\xff")
    if not trimmed:
        return None
    return trimmed[:-1] + bytes([trimmed[-1] + 1])


class ActorKv:
    """Per-actor key-value storage; every write is durable when the call returns."""

    def __init__(self, store: ActorStore) -> None:
        self._store = store

    def get(self, key: Bytes) -> bytes | None:
        return self._store.kv_get_many([_key(key)])[0]

    def put(self, key: Bytes, value: Bytes) -> None:
        self._store.kv_put_many([(_key(key), _value(value))])

    def delete(self, key: Bytes) -> None:
        self._store.kv_delete_many([_key(key)])

    def batch_get(self, keys: Sequence[Bytes]) -> list[bytes | None]:
        """Values in the order of ``keys``; None for missing keys."""
        return self._store.kv_get_many([_key(k) for k in keys])

    def batch_put(self, entries: Iterable[tuple[Bytes, Bytes]]) -> None:
        """Write many entries. Every entry is validated first; batches over 128 rows or 512 KiB are not atomic."""
        self._store.kv_put_many([(_key(k), _value(v)) for k, v in entries])

    def batch_delete(self, keys: Sequence[Bytes]) -> None:
        self._store.kv_delete_many([_key(k) for k in keys])

    def delete_range(self, start: Bytes, end: Bytes) -> None:
        """Delete keys in ``[start, end)``."""
        self._store.kv_delete_range(_key(start), _key(end))

    def list_prefix(
        self, prefix: Bytes, *, reverse: bool = False, limit: int | None = None
    ) -> list[tuple[bytes, bytes]]:
        """``(key, value)`` pairs whose key starts with ``prefix``, ascending unless ``reverse``."""
        start = _key(prefix)
        return self._store.kv_list_range(start, prefix_end(start), reverse=reverse, limit=limit)

    def list_range(
        self, start: Bytes, end: Bytes, *, reverse: bool = False, limit: int | None = None
    ) -> list[tuple[bytes, bytes]]:
        """``(key, value)`` pairs with keys in ``[start, end)``."""
        return self._store.kv_list_range(_key(start), _key(end), reverse=reverse, limit=limit)
