"""``step`` on its own: one event at a time through the five stages, no loop, no exchange.

Reports are written by hand here, as a venue would send them, so the execution stage's
bookkeeping (order table, working sizes, positions) can be checked report by report.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numba import njit

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "sim"))

import scripted  # noqa: E402
from scripted import make_control, make_quotes, make_script, make_trades, market, new_state, submit  # noqa: E402

from framework.events import (  # noqa: E402
    COMMAND_DTYPE,
    EVENT_DTYPE,
    CommandKind,
    ControlCode,
    EventKind,
    Liquidity,
    RejectReason,
    Side,
    to_fixed,
)
from framework.order_state import OrderStatus  # noqa: E402
from framework.risk.breaker import watch  # noqa: E402
from framework.risk.checks import track_band  # noqa: E402
from framework.state import MAX_INTENTS, Counter, Pipeline, PipelineSpec, allocate, events_stepped  # noqa: E402
from framework.step import step  # noqa: E402

BUY, SELL = Side.BUY, Side.SELL
K = EventKind


def fx(x: float) -> int:
    return to_fixed(x)


@njit
def _step_at(p, events, i, out, on_event, params, state):
    return step(p, events[i], out, on_event, params, state)


class Driver:
    """Feeds events to ``step`` one by one with the scripted strategy; keeps every command."""

    def __init__(self, script, *, max_order_size=100.0, max_position=100.0, collar=0.5, capacity=256):
        self.p = allocate(PipelineSpec(order_capacity=capacity, max_order_size=(fx(max_order_size),),
                                       max_position=(fx(max_position),), price_collar=(collar,)))
        self.params = make_script(script)
        self.state = new_state(len(self.params))
        self.out = np.zeros(len(self.p.orders) + len(self.p.intents), COMMAND_DTYPE)
        self.commands: list[np.ndarray] = []

    def feed(self, events: np.ndarray) -> np.ndarray:
        """Step every event (``ts_recv`` is taken as given); return the commands they produced."""
        got = []
        for i in range(len(events)):
            n = _step_at(self.p, events, i, self.out, scripted.on_event, self.params, self.state)
            got.append(self.out[:n].copy())
        cmds = np.concatenate(got) if got else np.zeros(0, COMMAND_DTYPE)
        self.commands.append(cmds)
        return cmds

    @property
    def coids(self):
        return self.state[1]

    def order(self, coid):
        return self.p.orders[coid % len(self.p.orders)]


def report(ts, kind, coid, side=BUY, price=0.0, size=0.0, leaves=0.0, fee=0, flags=0, instrument_id=0):
    ev = np.zeros(1, EVENT_DTYPE)
    r = ev[0]
    r["ts_event"], r["ts_recv"], r["kind"], r["side"], r["flags"] = ts, ts, kind, side, flags
    r["instrument_id"], r["client_order_id"] = instrument_id, coid
    r["price"], r["size"], r["leaves_qty"], r["fee"] = fx(price), fx(size), fx(leaves), fee
    return ev


def test_market_data_then_strategy_then_command():
    d = Driver([submit(BUY, 2, 99.5, at=0)])
    cmds = d.feed(make_quotes([(1000, 99, 5, 101, 5)]))
    assert len(cmds) == 1
    c = cmds[0]
    assert (c["kind"], c["ts_event"], c["client_order_id"], c["side"], c["price"], c["size"]) == (
        CommandKind.SUBMIT, 1000, 1, BUY, fx(99.5), fx(2))
    o = d.order(1)
    assert (o["status"], o["leaves"], o["ts_created"]) == (OrderStatus.SUBMITTED, fx(2), 1000)
    assert d.p.positions[0]["open_buy"] == fx(2)
    assert d.p.exec_state[0]["n_open"] == 1
    assert d.p.exec_state[0]["next_client_order_id"] == 2
    assert d.p.counters[Counter.QUOTES] == 1 and d.p.counters[Counter.ORDERS_SUBMITTED] == 1
    # The strategy saw the quote already applied: risk used the mid 100 for the collar.
    assert d.p.market[0]["bid_price"] == fx(99)


def test_reports_drive_the_order_and_the_position():
    d = Driver([submit(BUY, 3, 99.5, at=0)])
    d.feed(make_quotes([(1000, 99, 5, 101, 5)]))
    d.feed(report(1060, K.ACCEPTED, 1, price=99.5, leaves=3))
    assert d.order(1)["status"] == OrderStatus.ACCEPTED
    d.feed(report(1070, K.PARTIALLY_FILLED, 1, price=99.5, size=1, leaves=2, fee=fx(0.01), flags=Liquidity.MAKER))
    o = d.order(1)
    assert (o["status"], o["filled"], o["leaves"]) == (OrderStatus.PARTIALLY_FILLED, fx(1), fx(2))
    assert d.p.positions[0]["qty"] == fx(1)
    assert d.p.positions[0]["open_buy"] == fx(2)
    d.feed(report(1080, K.FILLED, 1, price=99, size=2, leaves=0, flags=Liquidity.MAKER))
    o = d.order(1)
    assert (o["status"], o["filled"], o["leaves"]) == (OrderStatus.FILLED, fx(3), 0)
    assert o["avg_fill_price"] == pytest.approx((99.5 + 2 * 99) / 3 * 1e9)
    assert d.p.positions[0]["qty"] == fx(3)
    assert d.p.positions[0]["open_buy"] == 0
    assert d.p.positions[0]["fees"] == pytest.approx(0.01)
    assert d.p.exec_state[0]["n_open"] == 0
    assert d.p.counters[Counter.FILLS] == 2
    # A duplicated fill after the end is illegal: counted, ignored, the position does not move.
    d.feed(report(1090, K.FILLED, 1, price=99, size=2))
    assert d.p.counters[Counter.ILLEGAL_TRANSITIONS] == 1
    assert d.p.positions[0]["qty"] == fx(3)


def test_unknown_order_fill_still_moves_the_position():
    d = Driver([])
    d.feed(make_trades([(1000, 100, 1)]))
    d.feed(report(1100, K.FILLED, 77, side=SELL, price=100, size=2))
    assert d.p.positions[0]["qty"] == -fx(2)
    assert d.p.counters[Counter.UNKNOWN_ORDER_REPORTS] == 1
    # Non-fill reports of unknown orders change nothing; a fill for an unknown instrument
    # is refused before any stage sees it.
    d.feed(report(1200, K.CANCELED, 78))
    d.feed(report(1300, K.FILLED, 79, price=100, size=1, instrument_id=5))
    assert d.p.positions[0]["qty"] == -fx(2)
    assert d.p.counters[Counter.UNKNOWN_ORDER_REPORTS] == 2
    assert d.p.counters[Counter.UNKNOWN_INSTRUMENT] == 1


def test_out_of_order_event_is_refused():
    d = Driver([market(BUY, 1, at=1)])
    d.feed(make_quotes([(2000, 99, 5, 101, 5)]))
    cmds = d.feed(make_quotes([(1000, 50, 5, 51, 5)]))  # older than the last input
    assert len(cmds) == 0
    assert d.p.counters[Counter.OUT_OF_ORDER] == 1
    assert d.p.market[0]["bid_price"] == fx(99)  # not applied
    assert d.state[0][0]["n_inputs"] == 1  # the strategy never saw it
    assert d.p.exec_state[0]["now"] == 2000
    # An event at the same time is fine.
    cmds = d.feed(make_quotes([(2000, 98, 5, 102, 5)]))
    assert len(cmds) == 1 and cmds[0]["kind"] == CommandKind.SUBMIT


def _snapshot(p) -> list[bytes]:
    return [np.asarray(a).tobytes() for a in p]


@settings(max_examples=60, deadline=None)
@given(kind=st.sampled_from([K.TRADE, K.QUOTE, K.BAR, K.BOOK_DELTA, K.FILLED, K.CANCELED, K.TIMER, K.CONTROL]),
       instrument_id=st.one_of(st.integers(-(2**31), -1), st.integers(1, 2**31 - 1)),
       price=st.integers(1, 10**6), size=st.integers(1, 10**6))
def test_an_event_for_an_unknown_instrument_changes_nothing_but_its_counter(kind, instrument_id, price, size):
    """Ids are checked before ``step``; ``step`` still refuses one out of range, negative
    included, rather than index past (or, unsigned, far past) the books."""
    d = Driver([market(BUY, 1, at=1)])
    d.feed(make_quotes([(1000, 99, 5, 101, 5)]))  # instrument 0, the pipeline's only one
    before = _snapshot(d.p)
    ev = report(2000, kind, 1, price=price, size=size, instrument_id=instrument_id)
    ev[0]["price"], ev[0]["size"], ev[0]["bid_price"], ev[0]["close"] = price, size, price, price
    assert len(d.feed(ev)) == 0
    after = _snapshot(d.p)
    counters = list(Pipeline._fields).index("counters")
    assert [a == b for a, b in zip(before, after, strict=True)].count(False) == 1 and before[counters] != after[counters]
    assert d.p.counters[Counter.UNKNOWN_INSTRUMENT] == 1
    assert d.state[0][0]["n_inputs"] == 1  # the strategy never saw it


KIND_COUNTERS = {
    K.TRADE: Counter.TRADES, K.QUOTE: Counter.QUOTES, K.BOOK_DELTA: Counter.BOOK, K.BOOK_SNAPSHOT: Counter.BOOK,
    K.BAR: Counter.BARS, K.CONTROL: Counter.CONTROLS,
    **{kind: Counter.REPORTS for kind in range(K.ACCEPTED, K.CANCEL_REJECTED + 1)},
}


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([*K, 0, 6, 9, 19, 25, 255]), st.integers(-1, 1), st.integers(-1, 1),
                          st.integers(-2, 2)), min_size=1, max_size=40))
def test_every_event_step_takes_is_counted_once_under_its_kind(inputs):
    """No counter counts all events (an increment per event cost the SMA some 2%):
    ``events_stepped``, the per-kind counters' sum, must still equal the events ``step``
    took, whatever their kinds (unknown ones too), times and instruments."""
    d = Driver([market(BUY, 1, at=10**9)])
    expected = np.zeros(len(Counter), np.int64)
    seen_by_strategy = 0
    now, ts = 0, 1000  # the pipeline starts at time 0
    for kind, instrument_id, timer_sign, dt in inputs:
        ts += dt * 100
        ev = report(ts, kind, 0, instrument_id=instrument_id)
        ev[0]["timer_id"] = timer_sign  # also an unknown order's id on a report
        d.feed(ev)
        if ts < now:
            expected[Counter.OUT_OF_ORDER] += 1
            continue
        if instrument_id != 0:
            expected[Counter.UNKNOWN_INSTRUMENT] += 1
            continue
        now = ts
        if kind == K.TIMER:
            expected[Counter.EXEC_TIMERS if timer_sign < 0 else Counter.TIMERS] += 1
            seen_by_strategy += timer_sign >= 0
            continue
        expected[KIND_COUNTERS.get(kind, Counter.OTHER_KINDS)] += 1
        seen_by_strategy += 1
    counted = [Counter.OUT_OF_ORDER, Counter.UNKNOWN_INSTRUMENT, *range(Counter.OUT_OF_ORDER)]
    assert d.p.counters[counted].tolist() == expected[counted].tolist()
    assert events_stepped(d.p.counters) == int(expected[: Counter.OUT_OF_ORDER].sum())
    assert d.state[0][0]["n_inputs"] == seen_by_strategy


@njit
def _step_then_every_check(p, events, i, out, on_event, params, state):
    """``step``, then the risk work it once ran after every market-data event: the band's
    window and the day's end, and the loss and drawdown triggers."""
    n = step(p, events[i], out, on_event, params, state)
    ev = events[i]
    track_band(p, ev.instrument_id, ev.ts_recv)
    watch(p.risk_state, p.portfolio_limits, p.portfolio, ev.ts_recv)
    return n


market_moves = st.lists(
    st.tuples(st.integers(0, 1), st.sampled_from([K.TRADE, K.QUOTE]),
              st.sampled_from([0, 1, 400_000_000, 1_000_000_000, 6 * 3600 * 10**9]), st.integers(-30, 30)),
    min_size=1, max_size=60)


@settings(max_examples=60, deadline=None)
@given(moves=market_moves)
def test_risk_checks_on_market_data_miss_nothing_a_check_after_every_event_would_do(moves):
    """``step`` checks the loss triggers only when equity moved and the band and the day at
    the instrument's ``due_ts``; running every check after every event as well must find
    nothing left to do: the breaker, the day and the bands stay exactly as ``step`` left them."""
    spec = PipelineSpec(n_instruments=2, initial_capital=1000.0, max_order_size=(fx(10),), max_position=(fx(10),),
                        instrument_limits={"price_band": (0.02, 0.0), "band_window_ns": (10**9, 10**9)},
                        portfolio_limits={"daily_loss_limit": 5.0, "max_drawdown": 0.004})
    gated, checked = allocate(spec), allocate(spec)
    for p in (gated, checked):
        p.positions["qty"] = (fx(3), -fx(2))  # held, so every new price moves equity
        p.positions["avg_price"] = 100.0
    params = make_script([market(BUY, 1, at=10**6)])  # a strategy that never acts here
    states = new_state(1), new_state(1)
    out = np.zeros(len(gated.orders) + len(gated.intents), COMMAND_DTYPE)
    ts, prices = 20_000 * 86_400 * 10**9, [100.0, 100.0]
    for instrument, kind, dt, move in moves:
        ts += dt
        prices[instrument] = max(1.0, prices[instrument] + move * 0.05)
        px = prices[instrument]
        ev = (make_trades([(ts, px, 1)], instrument) if kind == K.TRADE
              else make_quotes([(ts, px - 0.05, 1, px + 0.05, 1)], instrument))
        _step_at(gated, ev, 0, out, scripted.on_event, params, states[0])
        _step_then_every_check(checked, ev, 0, out, scripted.on_event, params, states[1])
        assert gated.risk_state.tobytes() == checked.risk_state.tobytes()
        for field in ("band_anchor", "band_end_ts"):
            assert list(gated.risk_instruments[field]) == list(checked.risk_instruments[field])
    assert gated.portfolio.tobytes() == checked.portfolio.tobytes()


def test_intents_beyond_the_buffer_are_dropped_and_counted():
    d = Driver([submit(BUY, 0.001, 100, at=0) for _ in range(MAX_INTENTS + 1)])
    cmds = d.feed(make_quotes([(1000, 99, 5, 101, 5)]))
    assert len(cmds) == MAX_INTENTS
    assert list(d.coids[:MAX_INTENTS]) == list(range(1, MAX_INTENTS + 1))
    assert d.coids[MAX_INTENTS] == 0
    assert d.p.counters[Counter.INTENTS_DROPPED] == 1
    # The next call starts with an empty buffer again.
    d2 = Driver([submit(BUY, 0.001, 100, at=k) for k in range(3)])
    for k in range(3):
        assert len(d2.feed(make_quotes([(1000 + k, 99, 5, 101, 5)]))) == 1


def test_order_table_full_is_refused_without_touching_the_working_order():
    # Capacity 2: order ids 1 and 3 share slot 1. While 1 works, 3 is refused (ORDER_TABLE_FULL).
    d = Driver([submit(BUY, 1, 100, at=0), submit(BUY, 1, 100, at=0), submit(BUY, 1, 100, at=0)], capacity=2)
    cmds = d.feed(make_quotes([(1000, 99, 5, 101, 5)]))
    assert [(int(c["kind"]), int(c["client_order_id"])) for c in cmds] == [
        (CommandKind.SUBMIT, 1), (CommandKind.SUBMIT, 2), (CommandKind.ALERT, 3)]
    assert cmds[2]["reason"] == RejectReason.ORDER_TABLE_FULL
    o = d.order(1)
    assert (o["client_order_id"], o["status"]) == (1, OrderStatus.SUBMITTED)
    assert d.p.reject_counts[RejectReason.ORDER_TABLE_FULL] == 1


def test_kill_switch_cancels_every_working_order_on_the_control_input():
    d = Driver([submit(BUY, 1, 99, at=0), submit(SELL, 1, 101, at=0), submit(BUY, 1, 99.5, at=0),
                submit(BUY, 1, 99, at=2)])
    d.feed(make_quotes([(1000, 99, 5, 101, 5)]))
    d.feed(report(1050, K.FILLED, 3, price=99.5, size=1))  # order 3 is done; 1 and 2 still work
    cmds = d.feed(make_control(1100, ControlCode.KILL_SWITCH_ON))
    kinds = [(int(c["kind"]), int(c["client_order_id"])) for c in cmds]
    # The cancels come first (inbound), then the strategy's new order refused by the switch.
    assert kinds == [(CommandKind.CANCEL, 1), (CommandKind.CANCEL, 2), (CommandKind.ALERT, 4)]
    assert cmds[2]["reason"] == RejectReason.KILL_SWITCH
    assert d.order(1)["status"] == OrderStatus.PENDING_CANCEL
    assert d.order(2)["status"] == OrderStatus.PENDING_CANCEL
    assert d.order(3)["status"] == OrderStatus.FILLED
    # A second KILL_SWITCH_ON has nothing left to cancel (pending cancels are not re-sent).
    assert len(d.feed(make_control(1200, ControlCode.KILL_SWITCH_ON))) == 0


def test_pending_modify_reserves_the_extra_size_until_answered():
    d = Driver([submit(BUY, 2, 99, at=0), scripted.modify(0, 99.5, 5, at=2), scripted.modify(0, 99.5, 4, at=4)])
    d.feed(make_quotes([(1000, 99, 5, 101, 5)]))
    d.feed(report(1060, K.ACCEPTED, 1, price=99, leaves=2))
    cmds = d.feed(make_quotes([(1100, 99, 5, 101, 5)]))  # input 2: modify to 5
    assert len(cmds) == 1 and cmds[0]["kind"] == CommandKind.MODIFY
    assert (cmds[0]["price"], cmds[0]["size"]) == (fx(99.5), fx(5))
    o = d.order(1)
    assert (o["status"], o["reserved"], o["pending_size"]) == (OrderStatus.PENDING_MODIFY, fx(3), fx(5))
    assert d.p.positions[0]["open_buy"] == fx(5)  # 2 working + 3 reserved
    # The venue refuses it: back to ACCEPTED, the reservation released.
    d.feed(report(1150, K.CANCEL_REJECTED, 1, price=99.5, flags=RejectReason.UNKNOWN_ORDER))
    o = d.order(1)
    assert (o["status"], o["reserved"], o["price"]) == (OrderStatus.ACCEPTED, 0, fx(99))
    assert d.p.positions[0]["open_buy"] == fx(2)
    assert o["reject_reason"] == 0
    # Input 4: modify to 4; confirmed with leaves 4.
    d.feed(make_quotes([(1200, 99, 5, 101, 5)]))
    assert d.p.positions[0]["open_buy"] == fx(4)
    d.feed(report(1250, K.MODIFIED, 1, price=99.5, leaves=4))
    o = d.order(1)
    assert (o["status"], o["price"], o["size"], o["leaves"], o["reserved"]) == (
        OrderStatus.ACCEPTED, fx(99.5), fx(4), fx(4), 0)
    assert d.p.positions[0]["open_buy"] == fx(4)
