"""The live runtime: one engine on an asyncio loop, between a market-data feed and a venue.

Inputs arrive from the feed (market data), the venue (execution reports) and the
clock (timers); each batch goes straight through ``Engine.process`` in the callback
that delivered it (no queue, no task switch between an input and its order), and the
commands go out at once: orders to the venue, timers to the clock, alerts to the log.
The journal is written in batches by a task of its own.

Two ways to run, set by ``lockstep``:

* paper and live: the engine's wall clock stamps every input and serves timers; only
  orders (SUBMIT, CANCEL, MODIFY, QUERY) go to the venue;
* lockstep: the simulated venue server is also the clock. It sends one input at a
  time, stamped with simulated time, and waits for the engine's answer: one command
  frame per input, empty when ``step`` produced nothing, timers included (the server
  schedules them). Time advances only when both sides agree, so the session is
  deterministic and must equal the in-process backtest bit for bit.

Stopping (``stop`` set, e.g. by SIGTERM, or ``duration_s`` elapsed): the kill switch
goes through ``step`` like any control event (so the journal holds it and a replay
reproduces the cancels), the runtime waits until the venue has answered every open
order or ``shutdown_timeout_s`` passes, then flushes and closes the journal. A
lockstep session ends when the server ends both of its streams.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import structlog

from framework.events import EVENT_DTYPE, VENUE_COMMAND_KINDS, CommandKind, EventKind, RejectReason, raw_copy, records
from live.engine import Engine, Origin
from live.transport import CommandBacklogFull
from live.transport.common import Rejects

log = structlog.get_logger("live.runtime")

Deliver = Callable[[np.ndarray, int], None]


class Feed(Protocol):
    """A market-data source: calls ``deliver(records, t_received_ns)`` until it ends."""

    async def run(self, deliver: Deliver) -> None: ...


class Venue(Protocol):
    """Where orders go and reports come from."""

    def send(self, commands: np.ndarray) -> None: ...

    async def run(self, deliver: Deliver) -> None: ...


_REASONS = dict(enumerate(RejectReason._fields))


@dataclass(frozen=True)
class RuntimeConfig:
    """How the runtime runs; times in seconds."""

    lockstep: bool = False
    duration_s: float | None = None
    """Stop after this long (None: until stopped or, in lockstep, until the session ends)."""
    journal_flush_s: float = 0.05
    """How often the journal is written and handed to the operating system."""
    journal_sync_s: float = 1.0
    """How often it is synced to disk."""
    shutdown_timeout_s: float = 5.0
    """How long to wait, on stopping, for the venue to confirm the cancels."""
    latency_samples: int = 1 << 20
    """Tick-to-order samples kept (the most recent)."""
    fast_path: bool = True
    """Take market-data frames through ``live.fastpath`` when the feed and the venue are
    ZeroMQ links (not in lockstep, which answers every input)."""


class LatencyRecorder:
    """Tick-to-order latencies (input received to its order sent), in nanoseconds."""

    def __init__(self, capacity: int) -> None:
        self._samples = np.zeros(capacity, np.int64)
        self.count = 0

    def record(self, ns: int) -> None:
        """Keep one sample (the oldest is overwritten when full)."""
        self._samples[self.count % len(self._samples)] = ns
        self.count += 1

    @property
    def samples(self) -> np.ndarray:
        """The samples kept, oldest first."""
        n = len(self._samples)
        if self.count <= n:
            return self._samples[:self.count].copy()
        k = self.count % n
        return np.concatenate([self._samples[k:], self._samples[:k]])

    def summary(self) -> dict[str, float]:
        """Count and p50/p99/p99.9/max in microseconds (empty without samples)."""
        s = self.samples
        if not len(s):
            return {"count": 0}
        p50, p99, p999 = np.percentile(s, [50, 99, 99.9]) / 1e3
        return {"count": int(self.count), "p50_us": float(p50), "p99_us": float(p99), "p999_us": float(p999),
                "max_us": float(s.max() / 1e3)}


class Runtime:
    """An engine between a feed and a venue, on the running asyncio loop."""

    def __init__(self, engine: Engine, feed: Feed | None, venue: Venue, config: RuntimeConfig) -> None:
        if engine.lockstep != config.lockstep:
            raise ValueError("the engine and the runtime must agree on lockstep")
        self.engine = engine
        self.feed = feed
        self.venue = venue
        self.config = config
        self.latency = LatencyRecorder(config.latency_samples)
        """Tick to order: a market-data message received to the order it caused sent."""
        self.reaction = LatencyRecorder(config.latency_samples)
        """The same from any other input (a report, a timer): how fast the engine reacts to its venue."""
        self.clock = None
        if not config.lockstep:
            from live.clock import LiveClock

            self.clock = LiveClock(self._timer_fired)
        self._timer = records(1, EVENT_DTYPE)
        self.alerts: Counter[str] = Counter()
        """Risk alerts (orders ``step`` refused) by reason."""
        self._alert_log = Rejects("engine", event="order refused by risk")
        self._failure: BaseException | None = None
        self._stop = asyncio.Event()
        self.ended_by = ""
        self.event_loop = ""
        """The package of the loop the session ran on ("uvloop" or "asyncio"), once it runs."""
        self.fast_path = None
        """The ``live.fastpath.FastPath`` in use, if any (compiled here, before anything trades)."""
        self._fast = self._fast_taker()

    # -- inputs to commands ---------------------------------------------------------------------

    def _market(self, events: np.ndarray, t_received: int) -> None:
        self._input(events, Origin.MARKET_DATA, t_received)

    def _reports(self, events: np.ndarray, t_received: int) -> None:
        self._input(events, Origin.VENUE, t_received)

    def _timer_fired(self, timer_id: int, at_ns: int) -> None:
        ev = self._timer
        ev[0] = 0
        ev["kind"] = EventKind.TIMER
        ev["ts_event"] = at_ns
        ev["timer_id"] = timer_id
        self._input(ev, Origin.CLOCK, time.perf_counter_ns())

    def _input(self, events: np.ndarray, origin: Origin, t_received: int) -> None:
        try:
            if self.config.lockstep:
                for i in range(len(events)):  # the server waits for one answer per input
                    self.venue.send(self.engine.process(events[i:i + 1], origin))
            else:
                commands = self.engine.process(events, origin, self.clock.now_ns())
                if len(commands):
                    self._dispatch(commands, t_received,
                                   self.latency if origin == Origin.MARKET_DATA else self.reaction)
        except CommandBacklogFull as exc:
            self._fail(exc, "the venue stopped acknowledging commands")

    def _fast_taker(self):
        """The fast path's poller, when this runtime can use one (``RuntimeConfig.fast_path``)."""
        from live import libzmq
        from live.links import ZmqFeed, ZmqVenue

        if self.config.lockstep or not self.config.fast_path:
            return None
        if not (isinstance(self.feed, ZmqFeed) and isinstance(self.venue, ZmqVenue)):
            return None
        if not libzmq.AVAILABLE:
            log.warning("no fast path, market data takes the layered path", why=libzmq.UNAVAILABLE_BECAUSE)
            return None
        from live.fastpath import FastPath, Outcome

        self.fast_path = path = FastPath(self.engine, self.feed.subscriber, self.venue.sender)

        def poll(budget_ns: int) -> bool:
            try:
                outcome = path.poll(budget_ns)
            except CommandBacklogFull as exc:
                self._fail(exc, "the venue stopped acknowledging commands")
                return False  # nothing was read, and the session is stopping
            if outcome != Outcome.TAKEN:
                return outcome == Outcome.HANDED
            if path.sent_orders:
                self.latency.record(path.tick_to_order_ns)
            others = path.others
            if len(others):
                self._dispatch(others, path.received_ns)  # timers and alerts: no order to time
            return True

        return poll

    def _dispatch(self, commands: np.ndarray, t_received: int, latency: LatencyRecorder | None = None) -> None:
        """Orders to the venue (then ``latency`` takes a sample), timers to the clock, alerts to the log.

        The few commands of one input are sorted with plain Python: numpy's reductions
        cost a microsecond each on arrays this small."""
        kinds = commands["kind"].tolist()
        to_venue = [k in VENUE_COMMAND_KINDS for k in kinds]
        n_venue = sum(to_venue)
        if n_venue:
            self.venue.send(commands if n_venue == len(kinds) else raw_copy(commands, np.array(to_venue)))
            if latency is not None:
                latency.record(time.perf_counter_ns() - t_received)
        if n_venue == len(kinds):
            return
        for i, kind in enumerate(kinds):
            if kind == CommandKind.SET_TIMER:
                c = commands[i]
                self.clock.set_timer(int(c["client_order_id"]), int(c["expire_ts"]))
            elif kind == CommandKind.ALERT:
                self._alert(commands[i])

    def _alert(self, c: np.void) -> None:
        """Count a risk alert by reason; log the first few of each reason per second."""
        reason = _REASONS.get(int(c["reason"]), str(int(c["reason"])))
        self.alerts[reason] += 1
        self._alert_log.reject(reason, f"client_order_id={int(c['client_order_id'])} "
                                       f"instrument_id={int(c['instrument_id'])}", b"")

    def _fail(self, exc: BaseException, why: str) -> None:
        if self._failure is None:
            log.error("runtime failing", why=why, error=str(exc))
            self._failure = exc
        self._stop.set()

    # -- running ----------------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event | None = None) -> dict:
        """Run until ``stop`` is set, the duration passes, or (lockstep) the session ends;
        then stop cleanly and return a summary. Raises what made a part of it fail."""
        self.event_loop = type(asyncio.get_running_loop()).__module__.split(".")[0]
        tasks: dict[str, asyncio.Task] = {"venue": asyncio.create_task(self.venue.run(self._reports))}
        if self.feed is not None:
            fast = self._fast
            feeding = self.feed.run(self._market, fast) if fast is not None else self.feed.run(self._market)
            tasks["feed"] = asyncio.create_task(feeding)
        tasks["journal"] = asyncio.create_task(self._journal_writer())
        waiters = [asyncio.create_task(self._stop.wait())]
        if stop is not None:
            waiters.append(asyncio.create_task(stop.wait()))
        streams = [t for name, t in tasks.items() if name in ("venue", "feed")]
        started = time.monotonic()
        try:
            while not self._stop.is_set() and not (stop is not None and stop.is_set()):
                timeout = None
                if self.config.duration_s is not None:
                    timeout = max(0.0, self.config.duration_s - (time.monotonic() - started))
                done, _ = await asyncio.wait([*waiters, *streams], timeout=timeout,
                                             return_when=asyncio.FIRST_COMPLETED)
                if not done:
                    self.ended_by = "duration"
                    break
                for t in done:
                    if t in streams and t.exception() is not None:
                        self._fail(t.exception(), "a stream failed")
                if self.config.lockstep and all(t.done() for t in streams):
                    self.ended_by = "session end"
                    break
                streams = [t for t in streams if not t.done()]
                if not streams and not self.config.lockstep:
                    self.ended_by = "streams ended"
                    break
            self.ended_by = self.ended_by or ("failure" if self._failure else "stop")
            if not self.config.lockstep and self._failure is None:
                await self._cancel_open_orders()
        finally:
            for t in [*tasks.values(), *waiters]:
                t.cancel()
            for t in [*tasks.values(), *waiters]:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await t
            if self.clock is not None:
                self.clock.cancel_all()
            journal_hash = self.engine.close_journal()
        if self._failure is not None:
            raise self._failure
        return self.summary(journal_hash)

    async def _cancel_open_orders(self) -> None:
        """Kill switch through ``step``; wait for the venue to confirm every cancel."""
        commands = self.engine.kill_switch(self.clock.now_ns())
        if len(commands):
            self._dispatch(commands, time.perf_counter_ns())
        deadline = time.monotonic() + self.config.shutdown_timeout_s
        while self.engine.open_orders and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        if self.engine.open_orders:
            log.error("orders still open at shutdown", open_orders=self.engine.open_orders,
                      waited_s=self.config.shutdown_timeout_s)

    async def _journal_writer(self) -> None:
        last_sync = time.monotonic()
        while True:
            await asyncio.sleep(self.config.journal_flush_s)
            self.engine.flush_journal()
            if self.engine.journal is not None and time.monotonic() - last_sync >= self.config.journal_sync_s:
                self.engine.journal.sync()
                last_sync = time.monotonic()

    def summary(self, journal_hash: str | None) -> dict:
        """What the session did: engine counters, latency, how it ended, the journal's hash."""
        return {
            "ended_by": self.ended_by,
            "engine": dict(self.engine.counters),
            "open_orders": self.engine.open_orders,
            "alerts": dict(self.alerts),
            "tick_to_order": self.latency.summary(),
            "reaction_to_order": self.reaction.summary(),
            "fast_path_frames": self.fast_path.taken if self.fast_path is not None else 0,
            "event_loop": self.event_loop,
            "journal_hash": journal_hash,
        }
