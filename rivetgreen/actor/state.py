"""Tracked actor state: dicts and lists whose every mutation is validated and reported.

Containers are wrapped once, when they enter the state, so reads cost nothing extra. Every mutator first calls
the owner's ``before_mutation(path, value)`` hook, which validates the new value (``actor/invalid_state_type``),
refuses mutation from inside ``on_state_change`` and schedules a save. A refused write leaves the state unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import gevent.event

from rivetgreen import errors
from rivetgreen.encoding.cbor import SCALARS, check_value, encode, plain_key

BeforeMutation = Callable[[], None]


def wrap(value: Any, before: BeforeMutation, path: str, depth: int = 0) -> Any:
    """Validate ``value`` (placed ``depth`` containers deep in the state, which bounds its nesting) and return it
    with every container replaced by a tracked one."""
    bad = check_value(value, path, depth)
    if bad is not None:
        raise errors.invalid_state_type(bad)
    return _wrap_checked(value, before, path, depth)


def _wrap_checked(value: Any, before: BeforeMutation, path: str, depth: int) -> Any:
    if isinstance(value, SCALARS):
        return value
    if isinstance(value, dict):
        tracked = TrackedDict()
        tracked._attach(before, path, depth)
        dict.update(tracked, {k: _wrap_checked(v, before, f"{path}.{k}", depth + 1) for k, v in value.items()})
        return tracked
    tracked_list = TrackedList()
    tracked_list._attach(before, path, depth)
    list.extend(tracked_list, [_wrap_checked(v, before, f"{path}[{i}]", depth + 1) for i, v in enumerate(value)])
    return tracked_list


def unwrap(value: Any) -> Any:
    """A plain (untracked) deep copy of a state value."""
    if isinstance(value, dict):
        return {k: unwrap(v) for k, v in value.items()}
    if isinstance(value, list):
        return [unwrap(v) for v in value]
    return value


class TrackedDict(dict):
    """A dict inside actor state."""

    __slots__ = ("_before", "_path", "_depth")

    def _attach(self, before: BeforeMutation, path: str, depth: int) -> None:
        self._before = before
        self._path = path
        self._depth = depth

    def _wrap(self, key: Any, value: Any) -> Any:
        if not plain_key(key):
            raise errors.invalid_state_type(f"{self._path}[{key!r}]")
        return wrap(value, self._before, f"{self._path}.{key}", self._depth + 1)

    def __setitem__(self, key: Any, value: Any) -> None:
        value = self._wrap(key, value)
        self._before()
        dict.__setitem__(self, key, value)

    def __delitem__(self, key: Any) -> None:
        self._before()
        dict.__delitem__(self, key)

    def setdefault(self, key: Any, default: Any = None) -> Any:
        if key not in self:
            self[key] = default
        return dict.__getitem__(self, key)

    def update(self, *args: Any, **kwargs: Any) -> None:
        items = dict(*args, **kwargs)
        wrapped = {key: self._wrap(key, value) for key, value in items.items()}
        self._before()
        dict.update(self, wrapped)

    def __ior__(self, other: Any) -> TrackedDict:
        self.update(other)
        return self

    def pop(self, *args: Any) -> Any:
        self._before()
        return dict.pop(self, *args)

    def popitem(self) -> tuple[Any, Any]:
        self._before()
        return dict.popitem(self)

    def clear(self) -> None:
        self._before()
        dict.clear(self)

    def __reduce__(self) -> Any:
        return (dict, (dict(self),))


class TrackedList(list):
    """A list inside actor state."""

    __slots__ = ("_before", "_path", "_depth")

    def _attach(self, before: BeforeMutation, path: str, depth: int) -> None:
        self._before = before
        self._path = path
        self._depth = depth

    def _wrap_all(self, values: Iterable[Any]) -> list[Any]:
        start = len(self)
        return [wrap(v, self._before, f"{self._path}[{start + i}]", self._depth + 1) for i, v in enumerate(values)]

    def __setitem__(self, index: Any, value: Any) -> None:
        if isinstance(index, slice):
            value = self._wrap_all(value)
        else:
            value = wrap(value, self._before, f"{self._path}[{index}]", self._depth + 1)
        self._before()
        list.__setitem__(self, index, value)

    def __delitem__(self, index: Any) -> None:
        self._before()
        list.__delitem__(self, index)

    def append(self, value: Any) -> None:
        value = wrap(value, self._before, f"{self._path}[{len(self)}]", self._depth + 1)
        self._before()
        list.append(self, value)

    def extend(self, values: Iterable[Any]) -> None:
        wrapped = self._wrap_all(values)
        self._before()
        list.extend(self, wrapped)

    def __iadd__(self, values: Iterable[Any]) -> TrackedList:  # type: ignore[override]
        self.extend(values)
        return self

    def __imul__(self, count: int) -> TrackedList:  # type: ignore[override]
        self._before()
        list.__imul__(self, count)
        return self

    def insert(self, index: int, value: Any) -> None:
        value = wrap(value, self._before, f"{self._path}[{index}]", self._depth + 1)
        self._before()
        list.insert(self, index, value)

    def pop(self, index: int = -1) -> Any:
        self._before()
        return list.pop(self, index)

    def remove(self, value: Any) -> None:
        self._before()
        list.remove(self, value)

    def clear(self) -> None:
        self._before()
        list.clear(self)

    def sort(self, *args: Any, **kwargs: Any) -> None:
        self._before()
        list.sort(self, *args, **kwargs)

    def reverse(self) -> None:
        self._before()
        list.reverse(self)

    def __reduce__(self) -> Any:
        return (list, (list(self),))


class ActorState:
    """The live user state of one generation and its save throttle (core.md §3.2)."""

    def __init__(
        self,
        enabled: bool,
        save_interval: float,
        on_mutation: Callable[[], None],
        on_save_requested: Callable[[bool], None],
    ) -> None:
        self.enabled = enabled
        self._save_interval = save_interval
        self._on_mutation = on_mutation
        self._on_save_requested = on_save_requested
        self.root: Any = None
        self.revision = 0
        self.saved_revision = 0
        self.last_save_at: float | None = None
        self.save_requested = False
        self.immediate_requested = False
        self.max_wait_deadline: float | None = None
        self.save_error: errors.RivetError | None = None  # why the last save failed (None: it succeeded)
        self._waiters: list[tuple[int, gevent.event.Event]] = []

    # the value ---------------------------------------------------------------------------------------------
    def install(self, value: Any, now: float) -> None:
        """Set the state at startup, without counting a mutation. What was just loaded or written is what is on
        disk, so it counts as the last save for the throttle."""
        self.root = wrap(value, self._before_mutation, "state")
        self.last_save_at = now

    def replace(self, value: Any) -> None:
        """``c.state = value``."""
        wrapped = wrap(value, self._before_mutation, "state")
        self._before_mutation()
        self.root = wrapped

    def _before_mutation(self) -> None:
        self._on_mutation()
        self.revision += 1
        self.request_save(immediate=False)

    # the throttle ------------------------------------------------------------------------------------------
    @property
    def dirty(self) -> bool:
        return self.revision != self.saved_revision

    def request_save(self, immediate: bool = False, max_wait: float | None = None, now: float = 0.0) -> None:
        """Ask for a save; the task is only told when this request is stricter than the pending one."""
        stricter = not self.save_requested or (immediate and not self.immediate_requested)
        if max_wait is not None and (self.max_wait_deadline is None or now + max_wait < self.max_wait_deadline):
            self.max_wait_deadline = now + max_wait
            stricter = True
        self.save_requested = True
        self.immediate_requested = self.immediate_requested or immediate
        if stricter:
            self._on_save_requested(immediate)

    def save_deadline(self, now: float) -> float | None:
        """When the next save should run, or None when nothing is pending."""
        if not self.save_requested:
            return None
        if self.immediate_requested:
            return now
        since_last = self._save_interval if self.last_save_at is None else now - self.last_save_at
        deadline = now + max(0.0, self._save_interval - since_last)
        if self.max_wait_deadline is not None:
            deadline = min(deadline, self.max_wait_deadline)
        return deadline

    def serialize(self) -> bytes:
        return encode(self.root)

    def mark_saved(self, revision: int, now: float) -> None:
        self.saved_revision = max(self.saved_revision, revision)
        self.last_save_at = now
        if not self.dirty:
            self.save_requested = False
            self.immediate_requested = False
            self.max_wait_deadline = None
        still_waiting = []
        for wanted, result in self._waiters:
            if self.saved_revision >= wanted:
                result.set()
            else:
                still_waiting.append((wanted, result))
        self._waiters = still_waiting

    def saved_event_for(self, revision: int) -> Any:
        """An event set once ``revision`` is saved."""
        event = gevent.event.Event()
        if self.saved_revision >= revision:
            event.set()
        else:
            self._waiters.append((revision, event))
        return event

    def fail_waiters(self) -> None:
        """Wake save waiters when the actor stops (their save either happened in the final save or never will)."""
        for _, event in self._waiters:
            event.set()
        self._waiters = []
