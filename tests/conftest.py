"""Shared test setup: a Numba cache keyed by the source tree, and the shared data folder.

Tests compile the loop for strategies defined in test modules, and Numba's cache index
names them by module: every test folder is put on ``sys.path`` (and on ``PYTHONPATH``,
for the processes a test starts) so that any process can import them when it reads
the index, and the tests' cache is kept apart from the one ``run.py`` uses
(``app.numba_cache``).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from app.numba_cache import configure_numba_cache

configure_numba_cache("tests")

ROOT = Path(__file__).resolve().parents[1]
_TEST_FOLDERS = [str(f) for f in sorted({p.parent for p in (ROOT / "tests").rglob("*.py")} - {ROOT / "tests"})]
for folder in _TEST_FOLDERS:
    if folder not in sys.path:
        sys.path.append(folder)
# Processes the tests start (a live session's venue, engine, gateway) share this cache and
# read the same index, so they must be able to import the tests' strategies too.
os.environ["PYTHONPATH"] = os.pathsep.join([*os.environ.get("PYTHONPATH", "").split(os.pathsep), *_TEST_FOLDERS]
                                           ).strip(os.pathsep)


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
