"""The compiled code's caches are keyed by every source file it is compiled from.

Numba invalidates a cached function when its own file changes, not when a kernel it
calls from another file does, so the cache folder (``app.numba_cache``) and a
strategy's identity in the cache index (``cache_by_source``) hash every file that
holds kernels. A module that gains a kernel outside the compiled packages must be
named in ``COMPILED_MODULES``, or an edit of it would leave stale machine code running.
"""

from __future__ import annotations

import re

from app.numba_cache import source_hash
from framework.jit import COMPILED_MODULES, COMPILED_PACKAGES, ROOT, compiled_sources

KERNEL_DECORATOR = re.compile(r"^@(numba\.)?(njit|jit|vectorize|guvectorize|cfunc)\b", re.MULTILINE)
APPLICATION_DIRS = ("app", "live", "sim", "framework", "strategies", "models")


def test_every_module_with_a_kernel_is_among_the_compiled_sources():
    sources = set(compiled_sources())
    with_kernels = {
        path for folder in APPLICATION_DIRS for path in (ROOT / folder).rglob("*.py")
        if KERNEL_DECORATOR.search(path.read_text())
    }
    assert with_kernels - sources == set(), f"add these to framework.jit.COMPILED_MODULES: {with_kernels - sources}"


def test_the_compiled_sources_exist_and_cover_the_packages():
    paths = compiled_sources()
    assert all(path.is_file() for path in paths)
    assert {path.relative_to(ROOT).parts[0] for path in paths} == {*COMPILED_PACKAGES, "live"}
    assert [str(p.relative_to(ROOT)) for p in paths[-len(COMPILED_MODULES):]] == list(COMPILED_MODULES)


def test_the_cache_folder_changes_with_a_live_kernel(tmp_path):
    for path in compiled_sources():
        copy = tmp_path / path.relative_to(ROOT)
        copy.parent.mkdir(parents=True, exist_ok=True)
        copy.write_bytes(path.read_bytes())
    before = source_hash(tmp_path)
    assert before == source_hash()
    kernels = tmp_path / "live" / "wire_kernels.py"
    kernels.write_text(kernels.read_text() + "\n# an edit\n")
    assert source_hash(tmp_path) != before
