"""The live clock: wall time for the engine, and the pipeline's timers on the event loop.

``step`` asks for timers with SET_TIMER commands (``framework.events.CommandKind``); in
a backtest the compiled loop serves them, here the asyncio loop does, with the same
rules: a strategy's timers (id >= 0) accumulate and each fires once; the pipeline's
own (id < 0) replace the one pending under that id, and ``TS_MAX`` cancels it. A due
timer becomes a TIMER event with ``ts_event`` its scheduled time.

Wall time is ``time.time_ns()``; the engine makes ``ts_recv`` non-decreasing, so a clock
stepped back by NTP never reaches ``step`` as time going backwards.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from framework.events import TS_MAX

TimerFired = Callable[[int, int], None]
"""Called with ``(timer_id, scheduled_ns)`` when a timer is due."""


class LiveClock:
    """Wall-clock time and timers on the running asyncio loop."""

    def __init__(self, fire: TimerFired) -> None:
        self._fire = fire
        self._own: dict[int, asyncio.TimerHandle] = {}
        self._strategy: set[asyncio.TimerHandle] = set()

    @staticmethod
    def now_ns() -> int:
        """Nanoseconds since the Unix epoch."""
        return time.time_ns()

    def set_timer(self, timer_id: int, at_ns: int) -> None:
        """Fire ``timer_id`` at ``at_ns`` (at once if that has passed), as the backtest loop would."""
        if timer_id < 0:
            old = self._own.pop(timer_id, None)
            if old is not None:
                old.cancel()
            if at_ns == TS_MAX:
                return
        delay = max(0.0, (at_ns - time.time_ns()) / 1e9)
        loop = asyncio.get_running_loop()
        handle: asyncio.TimerHandle
        if timer_id < 0:
            handle = loop.call_later(delay, self._due_own, timer_id, at_ns)
            self._own[timer_id] = handle
        else:
            handle = loop.call_later(delay, lambda: self._due_strategy(handle, timer_id, at_ns))
            self._strategy.add(handle)

    def _due_own(self, timer_id: int, at_ns: int) -> None:
        self._own.pop(timer_id, None)
        self._fire(timer_id, at_ns)

    def _due_strategy(self, handle: asyncio.TimerHandle, timer_id: int, at_ns: int) -> None:
        self._strategy.discard(handle)
        self._fire(timer_id, at_ns)

    @property
    def pending(self) -> int:
        """Timers set and not yet fired."""
        return len(self._own) + len(self._strategy)

    def cancel_all(self) -> None:
        """Drop every pending timer (at shutdown)."""
        for handle in (*self._own.values(), *self._strategy):
            handle.cancel()
        self._own.clear()
        self._strategy.clear()
