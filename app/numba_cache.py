"""Point Numba's on-disk cache at a folder keyed by the hash of the compiled sources.

Numba invalidates a cached function when its own file changes, not when a kernel it
calls (in another file) does; a stale cache would then run old code. Keying the cache
folder by the content of every source file the compiled loop depends on makes a
changed kernel mean a fresh cache, and an unchanged tree mean a warm start.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COMPILED_PACKAGES = ("framework", "sim", "strategies", "models")


def source_hash(root: Path = ROOT) -> str:
    """Return a short hash of every Python file in the compiled packages."""
    h = hashlib.sha256()
    for package in COMPILED_PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            h.update(str(path.relative_to(root)).encode())
            h.update(path.read_bytes())
    return h.hexdigest()[:16]


def configure_numba_cache() -> Path:
    """Set NUMBA_CACHE_DIR (unless the caller already did) before Numba is imported."""
    if "NUMBA_CACHE_DIR" in os.environ:
        return Path(os.environ["NUMBA_CACHE_DIR"])
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    path = base / "pipeline-trader" / "numba" / source_hash()
    os.environ["NUMBA_CACHE_DIR"] = str(path)
    return path
