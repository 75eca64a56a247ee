"""``within``: await something for at most a given time without ever losing a cancel.

On Python 3.11, ``asyncio.wait_for`` returns the awaited result when it completes in
the same loop iteration as a cancel of the waiting task, and drops the cancel (CPython
gh-86296, fixed in 3.12 by rebuilding ``wait_for`` on ``asyncio.timeout``). A loop that
waits that way for a wake-up never stops if its wake and its cancel come together. The
Binance adapter's poller did exactly that: ``close`` cancelled it just as an order's
fills woke it, and then waited for it forever (a test hung for ten minutes).
``asyncio.timeout`` keeps the cancel, so every timed wait of the live processes goes
through here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

T = TypeVar("T")


async def within(awaitable: Awaitable[T], seconds: float) -> T:
    """The result of ``awaitable``, or ``TimeoutError`` after ``seconds`` (the awaitable is
    then cancelled); a cancel of the caller always propagates."""
    async with asyncio.timeout(seconds):
        return await awaitable
