"""The simulated exchange's order ids, duplicate and query handling, and injected faults.

The first tests drive the exchange directly, command by command with no latency, and read
the reports it queues; the property at the end runs whole backtests with random fault
rates and execution limits and checks that recovery never breaks what must hold: no
client order id is ever live twice at the exchange, the position is the sum of the
fills, no order takes an illegal transition, and the same seeds give the same journal.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from numba import njit
from scripted import T0, make_quotes, make_trades, merge, run_script, sim_params, submit
from test_backtest_properties import (
    build_script,
    build_stream,
    check_time,
    run_mm,
    run_options,
    run_random_script,
    run_sma,
    script_knobs,
    stream_knobs,
)

from framework.events import (
    COMMAND_DTYPE,
    EVENT_DTYPE,
    CommandKind,
    EventKind,
    OrderFlag,
    OrderType,
    RejectReason,
    ReportFlag,
    Side,
    TimeInForce,
    kernel_view,
    to_fixed,
)
from framework.order_state import OrderStatus, is_open
from framework.state import Counter
from sim.exchange import RQ_HEAD, RQ_TAIL, Fault, allocate_exchange, on_command, on_market
from sim.models import FAULT_STREAM, LatencyModel, latency_streams

K = EventKind
C = CommandKind
R = RejectReason
STATUS = ReportFlag.STATUS
BUY, SELL = Side.BUY, Side.SELL


def fx(x: float) -> int:
    return to_fixed(x)


@njit
def _command_at(ex, t, cmds, i):
    on_command(ex, t, cmds[i])


@njit
def _market_at(ex, events, i):
    on_market(ex, events[i])


class Venue:
    """The exchange alone: commands in, the reports it queues out (latency 0)."""

    def __init__(self, faults=(0.0, 0.0, 0.0), fault_seed: int = 0, capacity: int = 16, n_venues: int = 1):
        self.ex = allocate_exchange(1, capacity, sim_params(faults=faults, n_venues=n_venues),
                                    latency_streams(0, fault_seed))
        self.market(make_quotes([(T0, 99, 5, 101, 5)]))

    def market(self, events: np.ndarray) -> None:
        events = kernel_view(events.copy())
        for i in range(len(events)):
            _market_at(self.ex, events, i)

    def send(self, kind: int, coid: int, *, side: int = BUY, price: float = 99.0, size: float = 1.0,
             venue_id: int = 0, order_type: int = OrderType.LIMIT, tif: int = TimeInForce.GTC, flags: int = 0,
             t: int = T0 + 10) -> np.ndarray:
        """Send one command; return the reports it caused."""
        cmd = kernel_view(np.zeros(1, COMMAND_DTYPE))
        cmd["kind"], cmd["client_order_id"], cmd["side"], cmd["venue_id"] = kind, coid, side, venue_id
        cmd["price"], cmd["size"], cmd["order_type"], cmd["tif"], cmd["flags"] = (
            fx(price), fx(size), order_type, tif, flags)
        _command_at(self.ex, t, cmd, 0)
        return self.reports()

    def reports(self) -> np.ndarray:
        rq = self.ex.rq
        cap = len(self.ex.reports)
        got = self.ex.reports[np.arange(rq[RQ_HEAD], rq[RQ_TAIL]) % cap].copy()
        assert got.dtype == EVENT_DTYPE
        rq[RQ_HEAD] = rq[RQ_TAIL]
        return got

    def set_rates(self, busy: float = 0.0, ack_lost: float = 0.0, submit_lost: float = 0.0) -> None:
        prm = self.ex.prm
        prm["transient_reject_rate"], prm["ack_loss_rate"], prm["submit_loss_rate"] = busy, ack_lost, submit_lost


def kinds(reports: np.ndarray) -> list[tuple[int, int]]:
    return [(int(r["kind"]), int(r["flags"])) for r in reports]


# --------------------------------------------------------------------------- ids, duplicates, queries


def test_venue_order_ids_count_per_venue_and_ride_on_every_report_but_fills():
    v = Venue(n_venues=2)
    a = v.send(C.SUBMIT, 1, venue_id=0)
    b = v.send(C.SUBMIT, 2, venue_id=1)
    c = v.send(C.SUBMIT, 3, venue_id=0, price=101.0)  # takes the ask: ACCEPTED, FILLED
    assert [int(r["venue_order_id"]) for r in (a[0], b[0], c[0])] == [1, 1, 2]
    assert c[1]["kind"] == K.FILLED and c[1]["fee"] == 0  # a fill's last bytes are its fee
    canceled = v.send(C.CANCEL, 2, venue_id=1)
    assert kinds(canceled) == [(K.CANCELED, 0)] and canceled[0]["venue_order_id"] == 1
    assert list(v.ex.venue_seq[:2]) == [2, 1]


def test_a_duplicate_submit_of_a_working_order_makes_no_second_order():
    v = Venue()
    v.send(C.SUBMIT, 5, price=99.0, size=2.0)
    dup = v.send(C.SUBMIT, 5, price=98.0, size=3.0)  # the same id, whatever it now says
    assert kinds(dup) == [(K.ACCEPTED, STATUS)]
    r = dup[0]
    assert (r["price"], r["size"], r["leaves_qty"], r["venue_order_id"]) == (fx(99), 0, fx(2), 1)
    assert v.ex.n_active[0, 0] == 1 and v.ex.venue_seq[0] == 1
    assert v.ex.orders[5]["size"] == fx(2)


def test_a_duplicate_submit_of_a_finished_order_says_how_it_ended():
    v = Venue()
    assert [k for k, _ in kinds(v.send(C.SUBMIT, 1, price=101.0))] == [K.ACCEPTED, K.FILLED]
    dup = v.send(C.SUBMIT, 1, price=101.0)
    assert kinds(dup) == [(K.FILLED, STATUS)]
    assert (dup[0]["size"], dup[0]["leaves_qty"], dup[0]["venue_order_id"]) == (fx(1), 0, 1)
    refused = v.send(C.SUBMIT, 2, price=101.0, flags=OrderFlag.POST_ONLY)
    assert kinds(refused) == [(K.REJECTED, R.POST_ONLY_WOULD_TAKE)]
    assert kinds(v.send(C.SUBMIT, 2, price=100.0)) == [(K.REJECTED, STATUS | R.POST_ONLY_WOULD_TAKE)]
    assert v.ex.venue_seq[0] == 1 and len(v.ex.fills[: v.ex.n_fills[0]]) == 1


def test_a_query_tells_the_state_filled_size_and_leaves_or_that_the_order_is_unknown():
    v = Venue()
    v.send(C.SUBMIT, 3, price=99.0, size=3.0)
    v.market(make_trades([(T0 + 20, 99, 1)]))
    assert kinds(v.reports()) == [(K.PARTIALLY_FILLED, 1)]
    working = v.send(C.QUERY, 3)
    assert kinds(working) == [(K.ACCEPTED, STATUS)]
    assert (working[0]["size"], working[0]["leaves_qty"], working[0]["venue_order_id"]) == (fx(1), fx(2), 1)
    v.send(C.CANCEL, 3)
    gone = v.send(C.QUERY, 3)
    assert kinds(gone) == [(K.CANCELED, STATUS)] and gone[0]["size"] == fx(1)
    assert kinds(v.send(C.QUERY, 4)) == [(K.REJECTED, STATUS | R.UNKNOWN_ORDER)]
    assert v.ex.venue_seq[0] == 1


# --------------------------------------------------------------------------- injected faults


def test_a_busy_venue_keeps_nothing_of_the_refused_order():
    v = Venue(faults=(1.0, 0.0, 0.0))
    assert kinds(v.send(C.SUBMIT, 7)) == [(K.REJECTED, R.VENUE_BUSY)]
    assert v.ex.orders[7]["state"] == 0 and v.ex.venue_seq[0] == 0
    assert kinds(v.send(C.QUERY, 7)) == [(K.REJECTED, STATUS | R.UNKNOWN_ORDER)]
    v.set_rates()
    again = v.send(C.SUBMIT, 7)  # the same id, sent again: a new order, not a duplicate
    assert kinds(again) == [(K.ACCEPTED, 0)] and again[0]["venue_order_id"] == 1
    assert v.ex.faults[Fault.VENUE_BUSY] == 1


def test_a_busy_modify_is_refused_and_the_order_stays_as_it_was():
    v = Venue()
    v.send(C.SUBMIT, 2, price=99.0, size=1.0)
    v.set_rates(busy=1.0)
    refused = v.send(C.MODIFY, 2, price=99.5, size=2.0)
    assert kinds(refused) == [(K.CANCEL_REJECTED, R.VENUE_BUSY)] and refused[0]["venue_order_id"] == 1
    o = v.ex.orders[2]
    assert (o["price"], o["size"], o["leaves"], o["active"]) == (fx(99), fx(1), fx(1), 1)


def test_a_lost_acknowledgement_leaves_the_order_working():
    v = Venue(faults=(0.0, 1.0, 0.0))
    assert len(v.send(C.SUBMIT, 1, price=99.0)) == 0
    assert v.ex.orders[1]["active"] == 1 and v.ex.faults[Fault.ACK_LOST] == 1
    assert kinds(v.send(C.QUERY, 1)) == [(K.ACCEPTED, STATUS)]  # status reports are never lost
    taken = v.send(C.SUBMIT, 2, price=101.0)  # aggressive: its fill still comes
    assert kinds(taken) == [(K.FILLED, 2)]


def test_a_lost_submit_leaves_no_trace():
    v = Venue(faults=(0.0, 0.0, 1.0))
    assert len(v.send(C.SUBMIT, 1)) == 0
    assert v.ex.orders[1]["state"] == 0 and v.ex.faults[Fault.SUBMIT_LOST] == 1
    assert kinds(v.send(C.QUERY, 1)) == [(K.REJECTED, STATUS | R.UNKNOWN_ORDER)]
    assert kinds(v.send(C.CANCEL, 1)) == [(K.CANCEL_REJECTED, R.UNKNOWN_ORDER)]


def test_fault_draws_leave_the_latency_streams_alone():
    # Random latency, the same seed: with faults the market data reaches the strategy at the
    # same times as without, and a run without faults never touches the fault stream.
    ev = merge(make_quotes([(T0 + 100 * k, 99, 5, 101, 5) for k in range(40)]),
               make_trades([(T0 + 100 * k + 50, 100, 1) for k in range(40)]))
    script = [submit(BUY if k % 2 else SELL, 1, 100, ts=T0 + 300 * k) for k in range(12)]
    kw = {"latency": (10, 20, 30), "jitter": (30.0, 50.0, 20.0), "latency_model": LatencyModel.RANDOM, "seed": 5,
          "execution": {"max_attempts": 3, "backoff_base_ns": 40, "ack_timeout_ns": 400}}
    clean = run_script(ev, script, **kw)
    faulty = run_script(ev, script, faults=(0.4, 0.4, 0.4), fault_seed=9, **kw)
    data = [(e["kind"] == K.QUOTE) | (e["kind"] == K.TRADE) for e in (clean.events, faulty.events)]
    np.testing.assert_array_equal(clean.events[data[0]]["ts_recv"], faulty.events[data[1]]["ts_recv"])
    assert clean.ex.rng[FAULT_STREAM] == latency_streams(5, 0)[FAULT_STREAM]
    assert faulty.ex.rng[FAULT_STREAM] != latency_streams(5, 9)[FAULT_STREAM]
    assert faulty.p.counters[Counter.RETRIES] > 0


def test_faults_need_a_fault_stream():
    with pytest.raises(ValueError, match="none for faults"):
        allocate_exchange(1, 8, sim_params(faults=(0.1, 0.0, 0.0)), np.zeros(3, np.int64))


# --------------------------------------------------------------------------- the property

CAPACITY = 1024
"""Larger than any run's number of orders, so no slot of the exchange is reused."""

exec_knobs = st.fixed_dictionaries({
    "max_attempts": st.sampled_from([1, 2, 4]),
    "backoff_base_ns": st.sampled_from([0, 7, 50]),
    "backoff_multiplier": st.sampled_from([1.0, 2.0]),
    "jitter": st.sampled_from([0.0, 0.5, 1.0]),
    "ack_timeout_ns": st.sampled_from([0, 15, 60, 400]),  # some shorter than a round trip
})
fault_rates = st.tuples(*[st.sampled_from([0.0, 0.2, 0.5, 1.0])] * 3)
WAITING = (OrderStatus.SUBMITTED, OrderStatus.QUERYING, OrderStatus.RETRY_WAIT)


def check_no_order_live_twice(run) -> None:
    """Each accepted order took one venue order id; a client order id accepted twice would hold two."""
    ex = run.ex
    assert ex.venue_seq[0] == int(np.sum(ex.venue_order_ids > 0))
    reps = run.reports()
    fill = (reps["kind"] == K.FILLED) | (reps["kind"] == K.PARTIALLY_FILLED)
    named = reps[~fill & (reps["venue_order_id"] > 0)]
    for coid in np.unique(named["client_order_id"]):
        assert len(np.unique(named[named["client_order_id"] == coid]["venue_order_id"])) == 1, coid
    sizes: dict[int, int] = {}
    for c in run.cmds():
        if c["kind"] in (C.SUBMIT, C.MODIFY):
            sizes[int(c["client_order_id"])] = max(sizes.get(int(c["client_order_id"]), 0), int(c["size"]))
    for coid in np.unique(run.fills["client_order_id"]):
        assert int(np.sum(run.fills[run.fills["client_order_id"] == coid]["size"])) <= sizes[int(coid)]


def check_position_is_the_fills(run) -> None:
    p = run.p
    reps = run.reports()
    fills = reps[((reps["kind"] == K.FILLED) | (reps["kind"] == K.PARTIALLY_FILLED)) & (reps["flags"] & STATUS == 0)]
    signed = int(np.sum(run.fills["side"].astype(np.int64) * run.fills["size"]))
    assert p.positions[0]["qty"] == signed == int(np.sum(fills["side"].astype(np.int64) * fills["size"]))
    assert len(fills) == len(run.fills) == p.counters[Counter.FILLS]


def check_orders(run, execution: dict) -> None:
    """No illegal transition; the working sizes and counts add up; at the end an order works here
    if and only if it works at the exchange, except one still waiting on the execution stage
    (its timer fell after the last data, or its acknowledgement is still to be asked for)."""
    p, ex = run.p, run.ex
    assert p.counters[Counter.ILLEGAL_TRANSITIONS] == 0
    used = p.orders[p.orders["status"] != OrderStatus.FREE]
    is_working = np.array([bool(is_open(s)) for s in used["status"]], bool)
    waiting = np.isin(used["status"], WAITING if execution["ack_timeout_ns"] > 0 else (OrderStatus.RETRY_WAIT,))
    assert p.exec_state[0]["n_waiting"] == int(np.sum(waiting))
    assert p.exec_state[0]["n_open"] == int(np.sum(is_working))
    held = used["leaves"] + used["reserved"]
    assert p.positions[0]["open_buy"] == int(np.sum(held[is_working & (used["side"] == BUY)]))
    assert p.positions[0]["open_sell"] == int(np.sum(held[is_working & (used["side"] == SELL)]))
    for o, working in zip(used, is_working):
        coid = int(o["client_order_id"])
        xo = ex.orders[coid % len(ex.orders)]
        at_exchange = bool(xo["active"]) and int(xo["client_order_id"]) == coid
        if at_exchange:
            assert working, (coid, OrderStatus._fields[o["status"]])
        elif working:
            assert o["status"] in WAITING, (coid, OrderStatus._fields[o["status"]])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(knobs=stream_knobs, opts=run_options(), script=script_knobs, execution=exec_knobs, rates=fault_rates,
       fault_seed=st.integers(0, 2**31), which=st.sampled_from(["script", "script", "mm", "sma"]),
       chunk_rows=st.integers(1, 12))
def test_recovery_keeps_orders_unique_positions_true_and_runs_reproducible(knobs, opts, script, execution, rates,
                                                                           fault_seed, which, chunk_rows):
    events = build_stream(knobs)
    opts = {**opts, "execution": execution, "faults": rates, "fault_seed": fault_seed, "order_capacity": CAPACITY}
    if which == "mm":
        runs = [run_mm(events, chunk_rows=c, **opts) for c in (None, chunk_rows)]
    elif which == "sma":
        runs = [run_sma(events, chunk_rows=c, **opts) for c in (None, chunk_rows)]
    else:
        plan = build_script(script)
        runs = [run_random_script(events, plan, chunk_rows=c, **opts) for c in (None, chunk_rows)]
    run = runs[0]
    assert runs[0].journal_hash == runs[1].journal_hash
    check_no_order_live_twice(run)
    check_position_is_the_fills(run)
    check_time(run, opts["latency"])
    check_orders(run, execution)
