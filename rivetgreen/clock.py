"""The only source of "now" and of waits with deadlines.

Two clocks share one interface. :class:`RealClock` reads the system clock and waits with gevent.
:class:`VirtualClock` (tests) freezes wall time with freezegun and only moves when :meth:`VirtualClock.advance`
is called, waking every greenlet whose deadline has passed, in deadline order. Runtime code never calls
``time.time()`` or ``gevent.sleep(seconds)`` directly; it calls the module functions below, which delegate to the
installed clock.
"""

from __future__ import annotations

import heapq
import itertools
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import gevent
import gevent.event


class RealClock:
    """Wall time from the system; waits are ordinary gevent waits."""

    def now(self) -> float:
        """Seconds since the epoch (wall time), for timestamps that are stored or shown."""
        return time.time()

    def monotonic(self) -> float:
        """Seconds on a monotonic scale, for deadlines."""
        return time.monotonic()

    def wait(self, waitable: Any, deadline: float | None) -> bool:
        """Wait until ``waitable`` (an Event or AsyncResult) is ready or ``deadline`` passes; True when ready."""
        if deadline is None:
            waitable.wait()
        else:
            waitable.wait(max(0.0, deadline - time.monotonic()))
        return bool(waitable.ready())

    def sleep(self, seconds: float) -> None:
        gevent.sleep(max(0.0, seconds))


class _Timer:
    __slots__ = ("deadline", "event")

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self.event = gevent.event.Event()


class VirtualClock:
    """A clock that moves only on :meth:`advance`; wall time is frozen with freezegun while it is installed."""

    def __init__(self, start: datetime | None = None) -> None:
        self._start = start or datetime(2026, 1, 1, tzinfo=UTC)
        self._elapsed = 0.0
        self._timers: list[tuple[float, int, _Timer]] = []
        self._sequence = itertools.count()
        # freezegun's objects; freezegun is imported only when a test freezes time.
        self._freezer: Any = None
        self._frozen: Any = None
        self._background_jobs = 0
        self._jobs_done = gevent.event.Event()
        self._jobs_done.set()

    # freezegun ---------------------------------------------------------------------------------------------
    def freeze(self) -> None:
        """Freeze wall time (``time.time``, ``datetime.now``) at this clock's current instant."""
        from freezegun import freeze_time

        # gevent (threadpool, hub) and pytest (durations, timeouts) keep measuring real time.
        self._freezer = freeze_time(self._start, ignore=["gevent", "_pytest"])
        self._frozen = self._freezer.start()

    def unfreeze(self) -> None:
        if self._freezer is not None:
            self._freezer.stop()
            self._freezer = None
            self._frozen = None

    # Clock interface -------------------------------------------------------------------------------------
    def now(self) -> float:
        return self._start.timestamp() + self._elapsed

    def monotonic(self) -> float:
        return self._elapsed

    def wait(self, waitable: Any, deadline: float | None) -> bool:
        if waitable.ready():
            return True
        if deadline is None:
            waitable.wait()
            return True
        if deadline <= self._elapsed:
            return False
        timer = _Timer(deadline)
        heapq.heappush(self._timers, (deadline, next(self._sequence), timer))
        try:
            gevent.wait([waitable, timer.event], count=1)
        finally:
            timer.event.set()  # a fired or abandoned timer is skipped by advance()
        return bool(waitable.ready())

    def sleep(self, seconds: float) -> None:
        self.wait(gevent.event.Event(), self._elapsed + max(0.0, seconds))

    # Test control ----------------------------------------------------------------------------------------
    def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds``, firing every deadline on the way in order and letting each settle."""
        if seconds < 0:
            raise ValueError("time cannot move backwards")
        target = self._elapsed + seconds
        self.settle()
        while True:
            self._drop_fired_timers()
            if not self._timers or self._timers[0][0] > target:
                break
            deadline, _, timer = heapq.heappop(self._timers)
            self._move_to(max(deadline, self._elapsed))
            timer.event.set()
            self.settle()
        self._move_to(target)
        self.settle()

    def settle(self) -> None:
        """Run every greenlet that can run now, including background database work, until all are blocked."""
        for _ in range(1000):
            gevent.idle()
            if self._background_jobs == 0:
                gevent.idle()
                if self._background_jobs == 0:
                    return
            self._jobs_done.wait()
        raise RuntimeError("the system did not settle")

    def next_deadline(self) -> float | None:
        """Seconds until the earliest pending deadline, or None when nothing waits on time."""
        self._drop_fired_timers()
        return self._timers[0][0] - self._elapsed if self._timers else None

    def track_background_job(self) -> _BackgroundJob:
        """Mark a job running outside the hub (threadpool) so :meth:`settle` waits for it."""
        return _BackgroundJob(self)

    def _drop_fired_timers(self) -> None:
        while self._timers and self._timers[0][2].event.is_set():
            heapq.heappop(self._timers)

    def _move_to(self, elapsed: float) -> None:
        delta = elapsed - self._elapsed
        self._elapsed = elapsed
        if self._frozen is not None and delta > 0:
            self._frozen.tick(timedelta(seconds=delta))


class _BackgroundJob:
    def __init__(self, clock: VirtualClock) -> None:
        self._clock = clock

    def __enter__(self) -> None:
        self._clock._background_jobs += 1
        self._clock._jobs_done.clear()

    def __exit__(self, *exc: object) -> None:
        self._clock._background_jobs -= 1
        if self._clock._background_jobs == 0:
            self._clock._jobs_done.set()


class _NoJob:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


_NO_JOB = _NoJob()
_current: RealClock | VirtualClock = RealClock()


def install(clock: RealClock | VirtualClock) -> RealClock | VirtualClock:
    """Make ``clock`` the process clock; returns the one it replaces."""
    global _current
    previous, _current = _current, clock
    return previous


def current() -> RealClock | VirtualClock:
    return _current


def now() -> float:
    """Wall time in seconds since the epoch."""
    return _current.now()


def now_ms() -> int:
    """Wall time in whole milliseconds since the epoch (the unit of stored timestamps)."""
    return int(_current.now() * 1000)


def monotonic() -> float:
    return _current.monotonic()


def wait(waitable: Any, deadline: float | None) -> bool:
    """Wait for ``waitable`` until the monotonic ``deadline``; True when it became ready."""
    return _current.wait(waitable, deadline)


def wait_timeout(waitable: Any, timeout: float | None) -> bool:
    """Wait for ``waitable`` at most ``timeout`` seconds (None: forever); True when it became ready."""
    return _current.wait(waitable, None if timeout is None else _current.monotonic() + timeout)


def sleep(seconds: float) -> None:
    """Block this greenlet for ``seconds`` of clock time. Use this in actor code that tests should fast-forward."""
    _current.sleep(seconds)


def background_job() -> Any:
    """Context manager around work done outside the hub, so the virtual clock can wait for it to finish."""
    clock = _current
    return clock.track_background_job() if isinstance(clock, VirtualClock) else _NO_JOB
