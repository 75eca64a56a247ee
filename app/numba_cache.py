"""Point Numba's on-disk cache at a folder keyed by the hash of the compiled sources.

Numba invalidates a cached function when its own file changes, not when a kernel it
calls (in another file) does; a stale cache would then run old code. Keying the cache
folder by the content of every source file the compiled loop depends on makes a
changed kernel mean a fresh cache, and an unchanged tree mean a warm start.

The folder is also split by scope. The loop is compiled once per strategy and Numba
keeps every strategy's entry in one index per function, which it unpickles whole,
importing each strategy's module. A test's strategy lives in a module only the test
process can import; in a cache shared with ``run.py`` it would make every later run
fail with ``ModuleNotFoundError``. So tests use their own scope and the app its own,
whatever the environment inherited (``PIPELINE_TRADER_CACHE`` moves the whole tree).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from framework.jit import ROOT, compiled_sources  # (imports no Numba: the cache folder must be set first)


def source_hash(root: Path = ROOT) -> str:
    """Return a short hash of every source file the compiled code depends on."""
    h = hashlib.sha256()
    for path in compiled_sources(root):
        h.update(str(path.relative_to(root)).encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


def configure_numba_cache(scope: str = "app") -> Path:
    """Set NUMBA_CACHE_DIR for this process and its children before Numba is imported.

    The folder is ``<base>/numba/<source hash>/<scope>``, with ``<base>`` taken from
    ``PIPELINE_TRADER_CACHE`` or else ``$XDG_CACHE_HOME/pipeline-trader``. An inherited
    NUMBA_CACHE_DIR is replaced: a child ``run.py`` of a test must not share the test's
    scope.
    """
    default = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "pipeline-trader"
    base = Path(os.environ.get("PIPELINE_TRADER_CACHE") or default)
    path = base / "numba" / source_hash() / scope
    os.environ["NUMBA_CACHE_DIR"] = str(path)
    return path
