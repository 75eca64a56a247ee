"""Shared test setup: a Numba cache keyed by the source tree, and the shared data folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from app.numba_cache import configure_numba_cache

configure_numba_cache()

ROOT = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path:
    """Return ../shared/data (or $SHARED_DATA), where the real market data lives."""
    return Path(os.environ.get("SHARED_DATA", ROOT.parent / "shared" / "data")).resolve()


@pytest.fixture
def shared_data() -> Path:
    """The real-data folder; skip the test with a clear reason when it is absent."""
    path = shared_data_dir()
    if not path.is_dir():
        pytest.skip(f"real market data not found at {path} (set SHARED_DATA to its folder)")
    return path
