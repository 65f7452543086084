"""Running user code off the caller's greenlet with a clock-measured timeout."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import gevent
import gevent.event

from rivetgreen import clock


def _capture(result: gevent.event.AsyncResult, function: Callable[..., Any], args: Sequence[Any]) -> None:
    try:
        result.set(function(*args))
    except BaseException as error:  # every outcome, kill included, travels back to the caller
        result.set_exception(error)


def call_with_timeout(
    function: Callable[..., Any],
    args: Sequence[Any],
    timeout: float,
    timeout_error: Callable[[], BaseException],
) -> Any:
    """Run ``function(*args)`` in a new greenlet; wait at most ``timeout`` clock seconds for it.

    On timeout the greenlet is killed and ``timeout_error()`` is raised. If the caller itself is killed while
    waiting (an abort, say), the same exception is raised in the greenlet and the caller ends only when it has
    ended, so whoever bounds the caller's end (``work.abort``) also bounds the user code it runs.
    """
    result = gevent.event.AsyncResult()
    greenlet = gevent.spawn(_capture, result, function, args)
    try:
        finished = clock.wait(result, clock.monotonic() + timeout)
    except BaseException as error:
        greenlet.kill(error, block=False)
        greenlet.join()
        raise
    if not finished:
        greenlet.kill(block=False)
        raise timeout_error()
    return result.get()
