"""Fixtures for integration tests against a real Rivet Engine (``tests/engine/engine_process.py``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.engine.engine_process import RunningEngine, install_engine, start_engine


@pytest.fixture(scope="session")
def engine_binary() -> Path:
    """The ``rivet-engine`` binary (installed from npm into ``.cache/engine`` on first use)."""
    return install_engine()


@pytest.fixture(scope="session")
def rivet_engine(engine_binary: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningEngine]:
    """One engine for the whole session, on loopback with default settings and a temporary data directory."""
    engine = start_engine(engine_binary, tmp_path_factory.mktemp("rivet-engine"))
    yield engine
    engine.stop()
