"""libzmq and the clocks, callable from compiled code, for the engine's receive loop.

pyzmq wraps every message in Python objects (a ``bytes``, the exceptions of a
non-blocking poll), and on the engine's path from a market-data message to its order
that Python costs more than the pipeline's work. ``live.fastpath`` therefore calls
libzmq itself from a Numba kernel: the same library, on the same sockets, that pyzmq
uses (``zmq.Socket.underlying`` is the address of the libzmq socket).

The functions are declared by symbol name (``numba.types.ExternalFunction``) and
resolved when a kernel is linked, so the kernels stay in Numba's on-disk cache (a
ctypes function pointer would be a per-process address, which Numba cannot cache).
For that the library pyzmq loaded must be visible to LLVM's linker: ``AVAILABLE``
says whether it is; why not, if not, is in ``UNAVAILABLE_BECAUSE`` and the engine then
takes the layered path. It is found in ``/proc/self/maps`` (Linux) after pyzmq is
imported, so it can only ever be the instance pyzmq's sockets live in, and it is
checked to be what the linker resolves ``zmq_msg_recv`` to.

Pointers are passed as ``uintp`` (an array's ``.ctypes.data``, a socket's address):
the same bits as ``void *`` in the C calling convention.
"""

from __future__ import annotations

import ctypes
import time
from pathlib import Path

import numba
import zmq
from numba import types

ZMQ_DONTWAIT = zmq.DONTWAIT
EAGAIN = zmq.EAGAIN
MSG_T_SIZE = 64
"""Bytes of a ``zmq_msg_t`` (opaque, 64 in every libzmq 4.x)."""
CLOCK_MONOTONIC = time.CLOCK_MONOTONIC
"""What ``time.perf_counter_ns`` reads on Linux: stamps from both compare."""
CLOCK_REALTIME = time.CLOCK_REALTIME
"""What ``time.time_ns`` reads: the live clock (``live.clock.LiveClock.now_ns``)."""

_ptr, _i32 = types.uintp, types.int32
zmq_msg_init = types.ExternalFunction("zmq_msg_init", _i32(_ptr))
zmq_msg_recv = types.ExternalFunction("zmq_msg_recv", _i32(_ptr, _ptr, _i32))
zmq_msg_data = types.ExternalFunction("zmq_msg_data", types.voidptr(_ptr))
zmq_msg_close = types.ExternalFunction("zmq_msg_close", _i32(_ptr))
zmq_send = types.ExternalFunction("zmq_send", _i32(_ptr, _ptr, _ptr, _i32))
zmq_errno = types.ExternalFunction("zmq_errno", _i32())
clock_gettime = types.ExternalFunction("clock_gettime", _i32(_i32, _ptr))


def _loaded_libzmq() -> Path | None:
    """The libzmq shared object mapped into this process (pyzmq's, loaded by ``import zmq``
    with its backend), if there is one."""
    zmq.zmq_version()  # the backend is loaded
    maps = Path("/proc/self/maps")
    if not maps.exists():
        return None
    for line in maps.read_text().splitlines():
        fields = line.split(maxsplit=5)  # address, perms, offset, device, inode, path (which may hold spaces)
        path = fields[5] if len(fields) == 6 else ""
        if path.startswith("/") and Path(path).name.startswith("libzmq"):
            return Path(path)
    return None


def _load() -> tuple[ctypes.CDLL | None, str]:
    if numba.config.DISABLE_JIT:
        return None, "the JIT is disabled (NUMBA_DISABLE_JIT=1): nothing is compiled to call it from"
    path = _loaded_libzmq()
    if path is None:
        return None, "pyzmq's libzmq is not a shared object mapped into this process (a static build?)"
    import llvmlite.binding as llvm

    llvm.load_library_permanently(str(path))
    lib = ctypes.CDLL(str(path))
    resolved = llvm.address_of_symbol("zmq_msg_recv")
    if resolved != ctypes.cast(lib.zmq_msg_recv, ctypes.c_void_p).value:
        return None, f"the linker resolves zmq_msg_recv to another libzmq than pyzmq's ({path})"
    lib.zmq_msg_close.argtypes = [ctypes.c_void_p]
    lib.zmq_msg_close.restype = ctypes.c_int
    return lib, ""


LIB, UNAVAILABLE_BECAUSE = _load()
AVAILABLE = LIB is not None


def close_message(msg_address: int) -> None:
    """Release a ``zmq_msg_t`` a kernel left open for Python to read."""
    if LIB.zmq_msg_close(msg_address) != 0:
        raise zmq.ZMQError()
