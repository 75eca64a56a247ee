"""Drive the compiled loop over a stream of data chunks and collect what it produced.

Python touches the data once per chunk: it hands the loop a buffer (the rows the
strategy has not seen yet from the previous chunk, then the new chunk), drains the
fills, equity samples and journal blocks when the loop asks, and moves on. One chunk
of look-ahead tells the loop when the next buffer starts, which is all it needs to
keep the global time order across buffer boundaries. Memory is bounded by the chunk
size, whatever the length of the history.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Generator, Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np

from framework.events import EQUITY_DTYPE, EVENT_DTYPE, FILL_DTYPE, TS_MAX, concat_events, kernel_view
from framework.jit import cache_by_source
from framework.journal import JournalHasher, JournalWriter
from framework.state import Pipeline
from sim.exchange import Exchange
from sim.loop import Loop, Status, final_sample, route_commands, run_chunk

RemoteStep = Callable[[np.ndarray], np.ndarray]
"""A pipeline run elsewhere: takes one input (a length-1 ``EVENT_DTYPE`` array) and returns
the commands it produced (``COMMAND_DTYPE``), as ``step`` would have."""
AsyncRemoteStep = Callable[[np.ndarray], Awaitable[np.ndarray]]
"""``RemoteStep`` reached through asyncio."""


@dataclass
class BacktestResult:
    """What a backtest produced: fills, equity samples, the journal hash and timings."""

    fills: np.ndarray
    equity: np.ndarray
    n_events: int
    n_inputs: int
    loop_seconds: float
    total_seconds: float
    compile_seconds: float = 0.0
    journal_hash: str | None = None
    counters: dict[str, int] = field(default_factory=dict)


@dataclass
class Strategy:
    """A strategy as the loop sees it: its compiled kernel, parameter record and state."""

    on_event: Callable
    params: np.ndarray
    state: object

    def __post_init__(self) -> None:
        cache_by_source(self.on_event)  # so that a warm Numba cache holds the loop compiled for it


class Backtest:
    """One backtest: the pipeline, the simulated exchange, the loop state and a strategy."""

    def __init__(self, pipeline: Pipeline, exchange: Exchange, loop: Loop, strategy: Strategy,
                 journal: JournalWriter | JournalHasher | None = None, remote: RemoteStep | None = None) -> None:
        if remote is not None and not loop.st["remote"][0]:
            raise ValueError("a remote pipeline needs a loop allocated with remote=True")
        if pipeline is not None and exchange is not None and exchange.n_active.shape[1] != len(pipeline.market):
            # the loop checks each row against the exchange's instruments only (sim.loop._known_ids)
            raise ValueError(f"the pipeline holds {len(pipeline.market)} instrument(s) and the simulated exchange "
                             f"{exchange.n_active.shape[1]}: allocate both for the same instruments")
        self.p = pipeline
        self.remote = remote
        self.ex = exchange
        self.lp = loop
        self.strategy = strategy
        self.journal = journal
        self._fills: list[np.ndarray] = []
        self._equity: list[np.ndarray] = []

    def _drain(self) -> None:
        n = int(self.ex.n_fills[0])
        if n:
            self._fills.append(self.ex.fills[:n].copy())
            self.ex.n_fills[0] = 0
        st = self.lp.st
        n = int(st["n_equity"][0])
        if n:
            self._equity.append(self.lp.equity[:n].copy())
            st["n_equity"] = 0
        ne, nc = int(st["n_journal_events"][0]), int(st["n_journal_commands"][0])
        if self.journal is not None and (ne or nc):
            blocks = (self.lp.journal_events[:ne], self.lp.journal_commands[:nc])
            if isinstance(self.journal, JournalWriter):
                self.journal.write(*blocks)
            else:
                self.journal.update(*blocks)
        st["n_journal_events"] = 0
        st["n_journal_commands"] = 0

    def _run_buffer(self, events: np.ndarray, next_ts: int, final: bool) -> Generator[np.ndarray, np.ndarray, float]:
        """Run the loop over one buffer; return the seconds spent in it. With a remote
        pipeline, yield each input due at it and take back the commands it produced."""
        s = self.strategy
        spent = 0.0
        while True:
            t0 = time.perf_counter()
            status = run_chunk(
                events, len(events), next_ts, final, self.p, self.ex, self.lp, s.on_event, s.params, s.state
            )
            spent += time.perf_counter() - t0
            if status == Status.STEP:
                status = self._route((yield self.lp.handoff))
                if status == Status.DONE:  # routed: resume the loop
                    continue
            self._drain()
            if status == Status.DONE:
                return spent
            if status == Status.UNKNOWN_ROW:
                raise ValueError(self._unknown_row(events[int(self.lp.st["ex_i"][0])]))
            if status != Status.OUTPUT_FULL:
                name = Status._fields[status]
                raise RuntimeError(
                    f"backtest stopped: {name}. The strategy keeps more orders or timers in flight than the "
                    "simulator's queues hold; raise sim.queue_capacity or check the strategy for a runaway loop."
                )

    def _unknown_row(self, row: np.void) -> str:
        """The error for a data row whose venue or instrument the simulation was not allocated for."""
        n_venues, n_instruments = self.ex.n_active.shape
        return (f"backtest input row at ts_event {int(row['ts_event'])} names venue {int(row['venue_id'])} and "
                f"instrument {int(row['instrument_id'])}, but the simulation runs {n_venues} venue(s) (ids 0.."
                f"{n_venues - 1}) and {n_instruments} instrument(s) (ids 0..{n_instruments - 1}); configure the "
                "venue in `venue.venues`, or build the data with the instrument ids the backtest was given")

    def _route(self, commands: np.ndarray) -> int:
        """Route the commands the remote pipeline produced for the input in ``handoff``."""
        n = len(commands)
        if n > len(self.lp.out):
            raise RuntimeError(f"the remote pipeline answered one input with {n} commands; at most "
                               f"{len(self.lp.out)} fit (order capacity + intents)")
        if n:
            self.lp.out[:n] = commands
        return route_commands(self.lp, self.ex, n)

    def compile(self) -> float:
        """Compile (or load from the cache) the loop for this strategy; return the seconds it took.

        Runs the loop once over no data, which changes no state, so that the loop's own
        timing measures simulation, not compilation.
        """
        s = self.strategy
        t0 = time.perf_counter()
        empty = kernel_view(np.zeros(0, EVENT_DTYPE))
        run_chunk(empty, 0, 0, False, self.p, self.ex, self.lp, s.on_event, s.params, s.state)
        return time.perf_counter() - t0

    def run(self, chunks: Iterable[np.ndarray], progress: Callable[[int], None] | None = None) -> BacktestResult:
        """Run the whole stream of EVENT_DTYPE chunks; ``progress`` gets each chunk's row count.

        With a remote pipeline (``remote=True`` loops), ``remote`` of the constructor
        steps each input."""
        if self.remote is None and self.lp.st["remote"][0]:
            raise RuntimeError("this loop steps a remote pipeline: give the Backtest `remote`, or use run_async")
        sim = self.simulate(chunks, progress)
        try:
            due = next(sim)
            while True:
                due = sim.send(self.remote(due))
        except StopIteration as done:
            return done.value

    async def run_async(self, chunks: Iterable[np.ndarray], remote: AsyncRemoteStep,
                        progress: Callable[[int], None] | None = None) -> BacktestResult:
        """``run`` for a remote pipeline reached through asyncio (the lockstep venue server):
        ``await remote(input)`` steps each input, so the event loop serves sockets meanwhile."""
        sim = self.simulate(chunks, progress)
        try:
            due = next(sim)
            while True:
                due = sim.send(await remote(due))
        except StopIteration as done:
            return done.value

    def simulate(self, chunks: Iterable[np.ndarray],
                 progress: Callable[[int], None] | None = None) -> Generator[np.ndarray, np.ndarray, BacktestResult]:
        """The simulation as a generator: it yields every input due at a remote pipeline (a
        length-1 EVENT_DTYPE view, valid until the next send) and takes back the commands
        it produced; it returns the result. With a local pipeline it never yields."""
        t_start = time.perf_counter()
        compile_seconds = self.compile()
        loop_seconds = 0.0
        n_events = 0
        it: Iterator[np.ndarray] = (chunk for chunk in chunks if len(chunk))  # look-ahead must see data
        current = next(it, None)
        carry = np.zeros(0, EVENT_DTYPE)
        st = self.lp.st
        while current is not None:
            if current.dtype != EVENT_DTYPE:
                raise TypeError(
                    f"backtest input chunk has dtype {current.dtype} (itemsize {current.dtype.itemsize}), not "
                    "EVENT_DTYPE: build event arrays with framework.events.concat_events, never np.concatenate"
                )
            upcoming = next(it, None)
            events = kernel_view(current if len(carry) == 0 else concat_events([carry, current]))
            st["ex_i"] = len(carry)
            st["st_i"] = 0
            next_ts = int(upcoming["ts_event"][0]) if upcoming is not None and len(upcoming) else TS_MAX
            loop_seconds += yield from self._run_buffer(events, next_ts, upcoming is None)
            n_events += len(current)
            carry = events[int(st["st_i"][0]):].copy()
            if progress is not None:
                progress(len(current))
            current = upcoming
        if n_events == 0:
            loop_seconds += yield from self._run_buffer(kernel_view(np.zeros(0, EVENT_DTYPE)), TS_MAX, True)
        final_sample(self.lp, self.p)
        self._drain()
        journal_hash = None
        if isinstance(self.journal, JournalWriter):
            journal_hash = self.journal.close()
        elif isinstance(self.journal, JournalHasher):
            journal_hash = self.journal.hexdigest()
        fills = np.concatenate(self._fills) if self._fills else np.zeros(0, FILL_DTYPE)
        equity = np.concatenate(self._equity) if self._equity else np.zeros(0, EQUITY_DTYPE)
        return BacktestResult(
            fills=fills,
            equity=equity,
            n_events=n_events,
            n_inputs=int(st["n_inputs"][0]),
            loop_seconds=loop_seconds,
            total_seconds=time.perf_counter() - t_start,
            compile_seconds=compile_seconds,
            journal_hash=journal_hash,
        )



