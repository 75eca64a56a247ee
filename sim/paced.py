"""The simulated exchange on wall-clock time: what the paper venue server runs.

The backtest loop owns simulated time; here the wall clock does. Data rows are played
at their own pace (``speed`` times faster): a row is due at ``start_ns + (ts_event -
first ts_event) / speed``, and the exchange sees it when it is played, with that
moment as its ``ts_event`` (so GTD expiries, stops and every report live in wall time,
the engine's staleness checks see current data, and ``ts_recv - ts_event`` at the
engine is the feed's real delay). Orders are applied when they arrive.
Reports leave when the exchange's response latency says they reach the trader
(``ts_recv``), so the latency model still applies on top of the real transport's.

The exchange's own kernels do the matching (``sim.exchange``): the same fills a
backtest would make for an order arriving at that moment. Batches of rows and commands
go through two small compiled functions called through their entry points, so the
server spends its time waiting for the clock, not in Python.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from numba import njit

from framework.events import COMMAND_DTYPE, EVENT_DTYPE, FILL_DTYPE, TS_MAX, concat_events, records
from framework.jit import KERNEL, entry_point
from sim.exchange import RQ_HEAD, RQ_OVERFLOW, RQ_TAIL, Exchange, on_command, on_market


@njit(**KERNEL)
def _play(ex, rows, n: int) -> None:
    """The exchange sees ``rows[:n]`` (already restamped to wall time), in order."""
    for i in range(n):
        on_market(ex, rows[i])


@njit(**KERNEL)
def _apply(ex, t: int, commands, n: int) -> None:
    """``commands[:n]`` reach the exchange at wall time ``t``."""
    for i in range(n):
        on_command(ex, t, commands[i])


class PacedVenue:
    """The exchange, the data it plays, and the clock mapping between them."""

    def __init__(self, ex: Exchange, chunks: Iterator[np.ndarray], *, speed: float, max_batch: int = 256,
                 start_ns: int = 0) -> None:
        if speed <= 0:
            raise ValueError(f"live.paper.speed: must be > 0, got {speed}")
        self.ex = ex
        self.speed = speed
        self.start_ns = start_ns
        self._chunks = chunks
        self._rows = np.zeros(0, EVENT_DTYPE)
        self._i = 0
        self._t0: int | None = None
        self._batch = records(max_batch, EVENT_DTYPE)
        self._fills: list[np.ndarray] = []
        self.rows_played = 0
        self.commands_applied = 0
        self._play = entry_point(_play, (ex, self._batch, 0))  # compiled now, not when the first rows are due
        self._apply = entry_point(_apply, (ex, 0, records(1, COMMAND_DTYPE), 0))
        self._refill()

    # -- data -----------------------------------------------------------------------------------

    def _refill(self) -> None:
        while self._i >= len(self._rows):
            chunk = next(self._chunks, None)
            if chunk is None:
                return
            self._rows, self._i = chunk, 0
            if self._t0 is None and len(chunk):
                self._t0 = int(chunk["ts_event"][0])

    def start(self, now_ns: int) -> None:
        """Start the clock: the first row is due at ``now_ns``."""
        self.start_ns = now_ns

    def _wall_time(self, ts_event: int) -> int:
        return self.start_ns + int((ts_event - self._t0) / self.speed)

    @property
    def exhausted(self) -> bool:
        """Whether every data row has been played."""
        return self._i >= len(self._rows)

    def next_row_ns(self) -> int:
        """Wall time the next row is due (``TS_MAX`` when the data is exhausted)."""
        if self.exhausted:
            return TS_MAX
        return self._wall_time(int(self._rows["ts_event"][self._i]))

    def play_due(self, now_ns: int) -> np.ndarray:
        """Let the exchange see the rows due by ``now_ns`` (at most one batch); return them,
        restamped, for the market-data stream (a view valid until the next call)."""
        n = 0
        batch = self._batch
        while n < len(batch) and not self.exhausted:
            ts = self._wall_time(int(self._rows["ts_event"][self._i]))
            if ts > now_ns:
                break
            batch[n] = self._rows[self._i]
            batch[n]["ts_event"] = now_ns
            batch[n]["ts_recv"] = now_ns
            n += 1
            self._i += 1
            self._refill()
        if n:
            self._play(self.ex, batch, n)
            self.rows_played += n
        return batch[:n]

    # -- orders and reports ---------------------------------------------------------------------

    def apply(self, commands: np.ndarray, now_ns: int) -> None:
        """Commands (COMMAND_DTYPE) reach the exchange now."""
        if len(commands):
            self._apply(self.ex, now_ns, np.ascontiguousarray(commands, COMMAND_DTYPE).copy(), len(commands))
            self.commands_applied += len(commands)

    def next_report_ns(self) -> int:
        """Wall time the next report reaches the trader (``TS_MAX``: none pending)."""
        rq = self.ex.rq
        if rq[RQ_TAIL] == rq[RQ_HEAD]:
            return TS_MAX
        return int(self.ex.reports[rq[RQ_HEAD] % len(self.ex.reports)]["ts_recv"])

    def due_reports(self, now_ns: int) -> np.ndarray:
        """The reports that have reached the trader by ``now_ns``, in order (copies)."""
        rq = self.ex.rq
        if rq[RQ_OVERFLOW]:
            raise RuntimeError("the simulated venue's report queue overflowed: raise sim.queue_capacity")
        cap = len(self.ex.reports)
        out = []
        while rq[RQ_TAIL] > rq[RQ_HEAD]:
            r = self.ex.reports[rq[RQ_HEAD] % cap]
            if int(r["ts_recv"]) > now_ns:
                break
            out.append(self.ex.reports[rq[RQ_HEAD] % cap:rq[RQ_HEAD] % cap + 1].copy())
            rq[RQ_HEAD] += 1
        return concat_events(out) if out else np.zeros(0, EVENT_DTYPE)

    def take_fills(self) -> None:
        """Move the fills made so far out of the exchange's buffer."""
        n = int(self.ex.n_fills[0])
        if n:
            self._fills.append(self.ex.fills[:n].copy())
            self.ex.n_fills[0] = 0

    @property
    def fills(self) -> np.ndarray:
        """Every fill made so far."""
        self.take_fills()
        return np.concatenate(self._fills) if self._fills else np.zeros(0, FILL_DTYPE)
