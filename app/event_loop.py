"""The event loop every live process runs on: uvloop where it is installed, else asyncio's.

uvloop (libuv) wakes a waiting task and runs a callback in a fraction of asyncio's
Python-level scheduler time. The engine's fast path spends little time in the loop,
but everything else does: the venue's reports and the orders they cause, the command
path's acknowledgements, the market-data service and the gateway of the multi
topology. ``live.uvloop=false`` runs asyncio's own loop, for comparison or where uvloop
misbehaves.

The simulated venue server keeps asyncio's loop: it plays the market on wall-clock
time, waking for each row as it falls due, and under uvloop it played late. At 3,000
rows/s the engine's feed delay p99 was 3.0-3.4 ms with the venue on uvloop against
0.36-0.62 ms on asyncio (``bench/tick_to_order.py``), while the engine's own figures
did not change measurably with its loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


PACED_ROLES = frozenset({"venue"})
"""Processes that keep asyncio's loop whatever ``live.uvloop`` says (module docstring)."""


def wants_uvloop(role: str, configured: bool) -> bool:
    """Whether the process of ``role`` should run on uvloop, given ``live.uvloop``."""
    return configured and role not in PACED_ROLES


def loop_name(use_uvloop: bool) -> str:
    """Which loop ``run`` will use: "uvloop" or "asyncio"."""
    if not use_uvloop:
        return "asyncio"
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return "asyncio"
    return "uvloop"


def run(main: Coroutine[Any, Any, T], use_uvloop: bool = True) -> T:
    """Run ``main`` to completion on a new loop (``asyncio.run``'s contract) and return its result."""
    if loop_name(use_uvloop) == "uvloop":
        import uvloop

        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            return runner.run(main)
    return asyncio.run(main)
