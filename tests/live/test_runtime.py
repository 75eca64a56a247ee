"""The runtime between a feed and a venue: orders out, timers served, clean stops, lockstep.

The feed and the venue are hand-written fakes with the runtime's two-method shape; the
pipeline is the real one with the scripted strategy.
"""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest
from scripted import T0, make_quotes, make_script, new_state, on_event, submit, timer
from structlog.testing import capture_logs

from framework.events import EVENT_DTYPE, CommandKind, ControlCode, EventKind, Side, concat_events, to_fixed
from framework.journal import JournalWriter, read_journal
from framework.state import Counter, PipelineSpec, allocate
from framework.stepper import Stepper
from live.clock import LiveClock
from live.engine import Engine
from live.runtime import Runtime, RuntimeConfig
from live.transport import CommandBacklogFull

BUY = Side.BUY
pytestmark = pytest.mark.asyncio


class FakeFeed:
    """Delivers the given batches, one per loop turn, then ends (or idles, ``then_idle``)."""

    def __init__(self, batches: list[np.ndarray], then_idle: bool = False) -> None:
        self.batches = batches
        self.then_idle = then_idle

    async def run(self, deliver) -> None:
        for batch in self.batches:
            deliver(batch, time.perf_counter_ns())
            await asyncio.sleep(0)
        if self.then_idle:
            await asyncio.Event().wait()


class FakeVenue:
    """Acknowledges every order and cancel at once, unless told to stay silent on cancels."""

    def __init__(self, answer_cancels: bool = True, backlog_after: int | None = None) -> None:
        self.sent: list[np.ndarray] = []
        self.answer_cancels = answer_cancels
        self.backlog_after = backlog_after
        self._deliver = None

    def send(self, commands: np.ndarray) -> None:
        if self.backlog_after is not None and len(self.sent) >= self.backlog_after:
            raise CommandBacklogFull("the gateway is gone")
        self.sent.append(commands.copy())
        reports = []
        for c in commands:
            kind = {CommandKind.SUBMIT: EventKind.ACCEPTED, CommandKind.CANCEL: EventKind.CANCELED}.get(int(c["kind"]))
            if kind is None or (kind == EventKind.CANCELED and not self.answer_cancels):
                continue
            r = np.zeros(1, EVENT_DTYPE)
            r["kind"], r["client_order_id"], r["side"] = kind, c["client_order_id"], c["side"]
            r["price"], r["leaves_qty"], r["ts_event"] = c["price"], c["size"], time.time_ns()
            reports.append(r)
        if reports:
            asyncio.get_running_loop().call_soon(self._deliver, concat_events(reports), time.perf_counter_ns())

    async def run(self, deliver) -> None:
        self._deliver = deliver
        await asyncio.Event().wait()

    def kinds(self) -> list[int]:
        return [int(k) for batch in self.sent for k in batch["kind"]]


def engine_for(script, tmp_path=None, lockstep: bool = False) -> Engine:
    plan = make_script(script)
    p = allocate(PipelineSpec(max_order_size=(to_fixed(10),), max_position=(to_fixed(10),), price_collar=(0.5,)))
    journal = JournalWriter(tmp_path / "journal.bin", {"test": True}, in_place=True) if tmp_path else None
    return Engine(Stepper(p, on_event, plan, new_state(len(plan))), n_venues=1, journal=journal, lockstep=lockstep)


def live_quotes(n: int) -> list[np.ndarray]:
    now = time.time_ns()
    return [make_quotes([(now + k, 99.0, 1.0, 101.0, 1.0)]) for k in range(n)]


async def test_orders_go_out_and_a_stop_cancels_them_through_the_kill_switch(tmp_path):
    engine = engine_for([submit(BUY, 1, 100, at=1), submit(BUY, 1, 99, at=2)], tmp_path)
    venue = FakeVenue()
    runtime = Runtime(engine, FakeFeed(live_quotes(3), then_idle=True), venue, RuntimeConfig(journal_flush_s=0.01))
    stop = asyncio.Event()
    task = asyncio.create_task(runtime.run(stop))
    for _ in range(200):  # wait for both orders to be working
        if engine.open_orders == 2 and engine.counters["inputs"] >= 5:
            break
        await asyncio.sleep(0.005)
    stop.set()
    summary = await asyncio.wait_for(task, 5)
    assert venue.kinds().count(CommandKind.SUBMIT) == 2 and venue.kinds().count(CommandKind.CANCEL) == 2
    assert summary["ended_by"] == "stop" and summary["open_orders"] == 0
    assert summary["tick_to_order"]["count"] + summary["reaction_to_order"]["count"] == 2  # the two submits
    assert summary["tick_to_order"]["p50_us"] > 0
    _, events, commands = read_journal(tmp_path / "journal.bin")
    control = events[events["kind"] == EventKind.CONTROL]
    assert len(control) == 1 and control[0]["control"] == ControlCode.KILL_SWITCH_ON
    assert summary["journal_hash"]


async def test_a_venue_that_never_confirms_the_cancels_does_not_hold_the_stop_forever():
    engine = engine_for([submit(BUY, 1, 100, at=1)])
    runtime = Runtime(engine, FakeFeed(live_quotes(2), then_idle=True), FakeVenue(answer_cancels=False),
                      RuntimeConfig(shutdown_timeout_s=0.2, duration_s=0.1))
    t0 = time.monotonic()
    with capture_logs() as logs:
        summary = await runtime.run()
    assert summary["ended_by"] == "duration" and summary["open_orders"] == 1
    assert 0.25 <= time.monotonic() - t0 < 3
    assert any(e["event"] == "orders still open at shutdown" for e in logs)


async def test_timers_are_served_by_the_live_clock(tmp_path):
    fire = time.time_ns() + 30_000_000
    engine = engine_for([timer(fire, 5, at=0), submit(BUY, 1, 100, at=1)], tmp_path)
    venue = FakeVenue()
    runtime = Runtime(engine, FakeFeed(live_quotes(1), then_idle=True), venue, RuntimeConfig(duration_s=0.3))
    await runtime.run()
    _, events, _ = read_journal(tmp_path / "journal.bin")
    assert events["kind"][1] == EventKind.TIMER  # the only input after the quote: the timer it set
    assert events["timer_id"][1] == 5 and events["ts_event"][1] == fire and events["ts_recv"][1] >= fire
    assert engine.p.counters[Counter.TIMERS] == 1 and CommandKind.SUBMIT in venue.kinds()  # the strategy saw it


async def test_in_lockstep_every_input_gets_exactly_one_answer():
    engine = engine_for([submit(BUY, 1, 100, at=1)], lockstep=True)
    inputs = make_quotes([(T0 + 10 * k, 99.0, 1.0, 101.0, 1.0) for k in range(4)])
    venue = FakeVenue()
    runtime = Runtime(engine, FakeFeed([inputs[:2], inputs[2:]]), LockstepVenue(venue), RuntimeConfig(lockstep=True))
    summary = await runtime.run()
    assert summary["ended_by"] == "session end"
    assert len(venue.sent) == 4  # one frame per input, commands or not
    assert [len(f) for f in venue.sent] == [0, 1, 0, 0]
    assert venue.sent[1]["kind"][0] == CommandKind.SUBMIT


class LockstepVenue:
    """The fake venue as a lockstep server's report stream: it ends when the feed has."""

    def __init__(self, venue: FakeVenue) -> None:
        self.venue = venue

    def send(self, commands: np.ndarray) -> None:
        self.venue.sent.append(commands.copy())

    async def run(self, deliver) -> None:
        await asyncio.sleep(0.05)


async def test_a_venue_that_stops_acknowledging_fails_the_runtime():
    engine = engine_for([submit(BUY, 1, 100, at=0), submit(BUY, 1, 99, at=1)])
    runtime = Runtime(engine, FakeFeed(live_quotes(3), then_idle=True), FakeVenue(backlog_after=1), RuntimeConfig())
    with capture_logs(), pytest.raises(CommandBacklogFull):
        await asyncio.wait_for(runtime.run(), 5)


async def test_the_live_clock_serves_timers_as_the_backtest_loop_does():
    fired: list[tuple[int, int]] = []
    clock = LiveClock(lambda tid, at: fired.append((tid, at)))
    now = time.time_ns()
    clock.set_timer(3, now + 20_000_000)
    clock.set_timer(3, now + 10_000_000)  # a strategy's timers add up
    clock.set_timer(-1, now + 40_000_000)
    clock.set_timer(-1, now + 15_000_000)  # the pipeline's own replace the one pending
    clock.set_timer(-2, now + 5_000_000)
    clock.set_timer(-2, 2**63 - 1)  # TS_MAX cancels
    clock.set_timer(4, now - 1_000)  # in the past: at once
    assert clock.pending == 4
    await asyncio.sleep(0.08)
    assert fired == [(4, now - 1_000), (3, now + 10_000_000), (-1, now + 15_000_000), (3, now + 20_000_000)]
    clock.set_timer(9, now + 10**12)
    clock.cancel_all()
    assert clock.pending == 0
