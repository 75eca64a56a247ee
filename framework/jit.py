"""How the compiled code is compiled: ``@njit(**KERNEL)`` and ``@njit(**HOT)``.

Both are ``njit(cache=True)`` plus two choices that decide the loop's speed:

``_nrt=False`` (no reference counting)
    Numba normally counts references to every array: each array argument of a
    compiled call, and each array taken out of a tuple (``p.market``), costs an
    atomic increment on the way in and a decrement on the way out. Numba's pruning
    pass removes few of these pairs when several arrays live in one function, and
    the ``Pipeline`` tuple alone holds twelve, so one event paid for some hundred
    atomic operations and the calls they sat in were too large for LLVM to inline.
    The kernels never allocate (the state is allocated once, in Python, and
    mutated in place), so they do not need the counts: the caller owns every
    array for the whole call. The one rule this adds: a kernel, strategies
    included, must not create arrays (``np.empty``, ``.copy()``). Numba refuses it
    at compile time, with "No implementation of function ... empty/zeros"; keep
    scratch arrays in the state a strategy's ``make`` returns instead. A strategy
    that really must allocate can put ``_nrt=True`` on its kernel, and pays the
    counts again (some 50-100 ns per event).

``forceinline`` (``HOT`` only)
    A compiled call that is not inlined passes every array among its arguments as
    seven to eleven machine words (pointers, sizes, shape, strides), most of them on
    the stack: a call taking the ``Pipeline`` (twenty arrays, 154 words) costs some
    170-220 instructions before the callee does anything, more than the risk checks
    themselves, and the exchange's state about 110. So the per-event path (``step``,
    the market-data and marking kernels, the reports' way in, the intents' way out
    with submit, modify, cancel and the risk checks, the strategy kernels, the
    loop's feed) is inlined into its caller, and so is the exchange's handling of
    the order commands. A market maker sends a command on every third input or so:
    one out-of-line call for its intents and one for the exchange's handling cost
    it 10% of its instructions and 20-25% of its wall-clock time (the stack traffic
    of passing 154 words is slower than its count says). Rare paths (control
    events, the L2 book, recovery, routing, fills, the exchange's queries and
    conditional orders) stay separate functions, called only when needed, which
    keeps the compiled loop small and compile time short.
    ``bench/instruction_count.py`` shows what a change here costs or saves.

Both flags are set explicitly on every kernel because Numba otherwise inherits
them from whichever caller compiles a kernel first. A strategy kernel decorated
with plain ``@njit(cache=True)`` inherits ``HOT`` from ``step``, which is what it
should be.

``cache_by_source`` lets Numba's on-disk cache find the loop compiled for a strategy
in the next process too (``sim.backtest.Strategy`` applies it).
"""

from __future__ import annotations

import hashlib
import inspect
from pathlib import Path
from typing import Any

KERNEL = {"cache": True, "_nrt": False, "forceinline": False}
"""A compiled kernel: cached, no reference counting, inlined only where LLVM sees fit."""

HOT = {"cache": True, "_nrt": False, "forceinline": True}
"""A kernel on the per-event path: like ``KERNEL`` and always inlined into its caller."""


ROOT = Path(__file__).resolve().parents[1]
COMPILED_PACKAGES = ("framework", "sim", "strategies", "models")
"""Packages whose kernels are compiled into the loop."""
COMPILED_MODULES = ("live/engine.py", "live/fastpath.py", "live/libzmq.py", "live/wire.py", "live/wire_kernels.py")
"""Modules elsewhere whose kernels or constants are compiled with a strategy (the live
engine's fast path calls ``step`` for it)."""


def compiled_sources(root: Path = ROOT) -> list[Path]:
    """Every source file a strategy's compiled code may depend on, in a fixed order.

    Numba invalidates a cached function when its own file changes, not when a kernel it
    calls in another file does: whatever keys a cache must cover all of these."""
    paths = sorted(p for package in COMPILED_PACKAGES for p in (root / package).rglob("*.py"))
    return paths + [root / module for module in COMPILED_MODULES]


def cache_by_source(kernel: Any) -> Any:
    """Give a kernel that is passed as an argument (a strategy's ``on_event``) an identity
    that is the same in every process started from the same sources, and return it.

    ``step`` and ``run_chunk`` are compiled per strategy: the strategy's dispatcher is
    part of their signature. Numba names a dispatcher in its on-disk cache index by a
    random id drawn once per process, so those signatures never matched a cached entry
    and every run recompiled the whole loop (about 5 s) even with a warm cache. The id
    given here is the kernel's module and name plus a hash of its module's source and
    of every compiled package, so that a change anywhere compiles the loop afresh
    rather than reusing a stale one. Uses a Numba internal; if that changes, this does
    nothing and runs only start slower.
    """
    py_func = getattr(kernel, "py_func", None)
    if py_func is None or getattr(kernel, "_MemoMixin__uuid", "") is not None:
        return kernel  # not a Numba dispatcher, or its id is already in use
    h = hashlib.sha256()
    try:
        paths = [Path(inspect.getsourcefile(py_func) or ""), *compiled_sources()]
        for path in paths:
            h.update(path.read_bytes())
        kernel._set_uuid(f"{py_func.__module__}.{py_func.__qualname__}:{h.hexdigest()[:16]}")
    except (OSError, TypeError, AttributeError, AssertionError):
        pass
    return kernel


def entry_point(dispatcher: Any, args: tuple) -> Any:
    """Compile (or load) ``dispatcher`` for ``args`` by calling it once, and return the fastest
    way to call it again with arguments of exactly the same types.

    Calling a Numba dispatcher from Python costs some 10 us with a ``Pipeline`` among the
    arguments: it computes the type of each of its twenty arrays on every call. The
    compiled overload's own entry point skips that and costs about half a microsecond.
    It checks nothing, so it must only ever get arguments of the types it was resolved
    for (the same arrays, scalars of the same kind); the live engine's callers do. With
    the JIT disabled it returns the plain function.
    """
    dispatcher(*args)
    return _overload_entry(dispatcher, args)


def resolve(dispatcher: Any, args: tuple) -> Any:
    """``entry_point`` without the call: for a kernel that acts on the world (reads a socket),
    which must not run before its caller is ready for what it does."""
    from numba import config, typeof

    if config.DISABLE_JIT:
        return dispatcher
    dispatcher.compile(tuple(typeof(a) for a in args))
    return _overload_entry(dispatcher, args)


def _overload_entry(dispatcher: Any, args: tuple) -> Any:
    overloads = getattr(dispatcher, "overloads", None)
    if not overloads:
        return dispatcher
    from numba import typeof

    cres = overloads.get(tuple(typeof(a) for a in args))
    return cres.entry_point if cres is not None else dispatcher
