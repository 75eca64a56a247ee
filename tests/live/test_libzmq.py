"""Compiled code calls the libzmq pyzmq itself loaded, or none at all."""

from __future__ import annotations

import ctypes
import os
import subprocess
import sys
from pathlib import Path

import pytest
import zmq

from live import libzmq

ROOT = Path(__file__).resolve().parents[2]


def test_the_library_found_is_pyzmqs_own():
    if not libzmq.AVAILABLE:
        pytest.skip(f"no libzmq for compiled code here: {libzmq.UNAVAILABLE_BECAUSE}")
    version = [ctypes.c_int(), ctypes.c_int(), ctypes.c_int()]
    libzmq.LIB.zmq_version(*(ctypes.byref(v) for v in version))
    assert ".".join(str(v.value) for v in version) == zmq.zmq_version()


def test_without_the_jit_there_is_no_fast_path_and_the_reason_says_so():
    env = {**os.environ, "NUMBA_DISABLE_JIT": "1"}
    probe = "from live import libzmq; print(libzmq.AVAILABLE, libzmq.UNAVAILABLE_BECAUSE)"
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=120, check=True).stdout
    assert out.startswith("False") and "NUMBA_DISABLE_JIT" in out
