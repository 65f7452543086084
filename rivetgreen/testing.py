"""Test actors the way rivetgreen tests itself: a registry on a temporary directory and a virtual clock.

Installed as a pytest plugin (entry point ``rivetgreen``), so these fixtures are available in any project that
installs rivetgreen:

* ``virtual_clock`` – a :class:`~rivetgreen.clock.VirtualClock`, installed for the test; wall time is frozen and
  moves only with ``virtual_clock.advance(seconds)``.
* ``make_registry`` – ``make_registry(*definitions)`` builds a registry on a temporary data directory; every
  registry made is shut down after the test. Pass ``data_dir=`` to reopen the same directory (a "restart").

Example::

    def test_counter_sleeps(virtual_clock, make_registry):
        registry = make_registry(counter)
        registry.get_or_create("counter", ["a"]).increment(1)
        virtual_clock.advance(30)
        assert not registry.engine.instances
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from rivetgreen import clock
from rivetgreen.actor.definition import ActorDefinition
from rivetgreen.clock import VirtualClock
from rivetgreen.registry import Registry

__all__ = ["VirtualClock", "make_registry", "virtual_clock"]


@pytest.fixture
def virtual_clock() -> Iterator[VirtualClock]:
    """A frozen, manually advanced clock installed as the process clock for one test."""
    fake = VirtualClock()
    fake.freeze()
    previous = clock.install(fake)
    try:
        yield fake
    finally:
        clock.install(previous)
        fake.unfreeze()


@pytest.fixture
def make_registry(tmp_path: Any) -> Iterator[Callable[..., Registry]]:
    """Factory for registries on a temporary data directory; all are shut down at the end of the test."""
    made: list[Registry] = []

    def make(*definitions: ActorDefinition, data_dir: str | None = None) -> Registry:
        registry = Registry(definitions, data_dir or str(tmp_path / "data"))
        made.append(registry)
        return registry

    yield make
    for registry in made:
        registry.shutdown()
