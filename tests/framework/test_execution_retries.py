"""Retries of transient refusals, unknown outcomes and venue order ids (framework/recovery.py).

Scenarios run end to end through the compiled backtest loop with the scripted strategy
(tests/sim/scripted.py) and constant latencies feed = 10 ns, order = 20 ns, response =
30 ns, so every time can be checked by hand:

* a row with ``ts_event`` t reaches the strategy at t + 10;
* a command decided at d reaches the exchange at d + 20, its answer the strategy at d + 50.

Unless a test says otherwise the execution stage sends an order at most 4 times, waits
1000 ns before the first re-send and twice as long before each further one (no jitter),
and queries an order unacknowledged for 5000 ns. Faults are injected by the simulated
exchange from its seeded fault stream; ``fault_seed`` picks a seed whose first draws
strike or spare the first messages exactly as a scenario needs. Times are offsets from
``T0``; prices and sizes whole units. A few tests feed ``step`` by hand instead, where a
venue's reports must be written exactly (a report naming only the venue order id,
status reports crossing each other).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "sim"))

from scripted import (
    T0,
    cancel,
    make_control,
    make_quotes,
    make_trades,
    merge,
    modify,
    run_script,
    submit,
    timer,
)
from test_step import Driver, report

from framework.events import (
    EVENT_DTYPE,
    EXEC_TIMER_ID,
    TS_MAX,
    CommandKind,
    ControlCode,
    EventKind,
    RejectReason,
    ReportFlag,
    Side,
    TimeInForce,
    to_fixed,
)
from framework.order_state import OrderStatus
from framework.recovery import backoff_ns, jitter_unit
from framework.risk.records import KillScope
from framework.state import EXEC_LIMITS_DTYPE, Counter, PipelineSpec, allocate
from sim.models import fault, latency_streams

LAT = (10, 20, 30)
K = EventKind
C = CommandKind
S = OrderStatus
R = RejectReason
BUY, SELL = Side.BUY, Side.SELL
EXEC = {"max_attempts": 4, "backoff_base_ns": 1000, "backoff_multiplier": 2.0, "ack_timeout_ns": 5000}
BUSY = (1.0, 0.0, 0.0)
ACK_LOST = (0.0, 1.0, 0.0)


def fx(x: float) -> int:
    return to_fixed(x)


def fault_seed(pattern: list[bool], rate: float = 0.5) -> int:
    """The first fault seed whose first draws at ``rate`` strike (True) or spare (False) as ``pattern`` says."""
    for seed in range(10_000):
        rng = latency_streams(0, seed)
        if [bool(fault(rng, rate)) for _ in pattern] == pattern:
            return seed
    raise AssertionError(f"no seed below 10000 draws {pattern}")


def book(*extra_ts: int) -> np.ndarray:
    """A quote at 1000 (bid 99 x 5, ask 101 x 5) and the same quote again at each of ``extra_ts``,
    so the loop runs on past the scenario's timers (timers after the last data are dropped)."""
    return make_quotes([(T0 + ts, 99, 5, 101, 5) for ts in (1000, *extra_ts)])


def commands(run, *kinds: int) -> list[tuple]:
    """(decision time, kind, client order id, timer expiry or reason) of each command of ``kinds``."""
    out = []
    for c in run.cmds():
        if kinds and c["kind"] not in kinds:
            continue
        if c["kind"] == C.SET_TIMER:
            extra = "never" if c["expire_ts"] == TS_MAX else int(c["expire_ts"]) - T0
        else:
            extra = int(c["reason"])
        out.append((int(c["ts_event"]) - T0, int(c["kind"]), int(c["client_order_id"]), extra))
    return out


def reports(run, coid: int) -> list[tuple[int, int, int]]:
    """(arrival time, kind, flags) of each report of ``coid``."""
    return [(int(r["ts_recv"]) - T0, int(r["kind"]), int(r["flags"])) for r in run.reports(coid)]


def assert_nothing_working(run) -> None:
    p = run.p
    assert p.positions[0]["open_buy"] == 0 and p.positions[0]["open_sell"] == 0
    assert p.exec_state[0]["n_open"] == 0
    assert p.exec_state[0]["n_waiting"] == 0
    assert p.counters[Counter.ILLEGAL_TRANSITIONS] == 0


# --------------------------------------------------------------------------- backoff


def _splitmix_reference(x: int) -> int:
    """splitmix64's finalizer on Python integers: an independent check of ``jitter_unit``."""
    m = (1 << 64) - 1
    z = (x + 0x9E3779B97F4A7C15) & m
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & m
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & m
    return z ^ (z >> 31)


def _limits(**values) -> np.void:
    spec = PipelineSpec(execution=values)
    return allocate(spec).exec_limits[0]


def test_backoff_grows_by_the_multiplier_up_to_its_cap():
    lim = _limits(backoff_base_ns=1000, backoff_multiplier=3.0, backoff_max_ns=20_000)
    assert [backoff_ns(lim, 7, n) for n in range(1, 6)] == [1000, 3000, 9000, 20_000, 20_000]
    uncapped = _limits(backoff_base_ns=1000, backoff_multiplier=2.0)
    assert backoff_ns(uncapped, 7, 11) == 1024 * 1000


def test_jitter_is_a_hash_of_the_order_and_the_attempt():
    for coid, attempt in [(1, 1), (1, 2), (2, 1), (123456789, 7)]:
        h = _splitmix_reference((coid * 0x9E3779B97F4A7C15 + attempt) & ((1 << 64) - 1))
        assert jitter_unit(coid, attempt) == (h >> 11) / 2.0**53
    lim = _limits(backoff_base_ns=1_000_000, jitter=0.5)
    delays = [backoff_ns(lim, coid, 1) for coid in range(1, 200)]
    assert all(500_000 < d <= 1_000_000 for d in delays)
    assert len(set(delays)) > 150  # orders refused together are spread out
    assert delays == [backoff_ns(lim, coid, 1) for coid in range(1, 200)]  # and the same every time
    full = _limits(backoff_base_ns=1_000_000, jitter=1.0)
    assert all(0 <= backoff_ns(full, coid, 3) <= 1_000_000 for coid in range(1, 50))


@pytest.mark.parametrize("bad, match", [
    ({"max_retries": 3}, "not one of"),
    ({"jitter": 1.5}, "jitter"),
    ({"backoff_multiplier": 0.5}, "at least 1"),
    ({"ack_timeout_ns": -1}, ">= 0"),
    ({"max_attempts": 300}, "at most 255"),
])
def test_bad_execution_limits_are_refused_at_allocation(bad, match):
    with pytest.raises(ValueError, match=match):
        allocate(PipelineSpec(execution=bad))


def test_without_execution_limits_nothing_is_retried_or_timed():
    p = allocate(PipelineSpec())
    lim = p.exec_limits[0]
    assert lim["max_attempts"] == 0 and lim["ack_timeout_ns"] == 0 and lim["backoff_multiplier"] == 1.0
    assert EXEC_LIMITS_DTYPE.names == (
        "max_attempts", "backoff_base_ns", "backoff_multiplier", "backoff_max_ns", "jitter", "ack_timeout_ns")


# --------------------------------------------------------------------------- transient refusals


def test_a_busy_refusal_is_sent_again_after_the_backoff_under_the_same_id():
    # Buy 1 @ 100 decided at 1010 reaches the exchange at 1030: VENUE_BUSY, back at 1060. The
    # order waits 1000 ns (RETRY_WAIT; the timer is set for 2060), goes out again at 2060 under
    # client order id 1, is accepted at 2080 and acknowledged at 2110 with venue order id 1.
    seed = fault_seed([True, False])
    run = run_script(book(50_000), [submit(BUY, 1, 100, at=0)], latency=LAT,
                     execution={**EXEC, "ack_timeout_ns": 0}, faults=(0.5, 0.0, 0.0), fault_seed=seed)
    assert reports(run, 1) == [(1060, K.REJECTED, R.VENUE_BUSY), (2110, K.ACCEPTED, 0)]
    assert commands(run) == [(1010, C.SUBMIT, 1, 0), (1060, C.SET_TIMER, EXEC_TIMER_ID, 2060),
                             (2060, C.SUBMIT, 1, 0)]
    o = run.order(1)
    assert (o["status"], o["attempts"], o["venue_order_id"]) == (S.ACCEPTED, 2, 1)
    assert run.p.positions[0]["open_buy"] == fx(1)  # reserved all along, never twice
    c = run.p.counters
    assert (c[Counter.TRANSIENT_REJECTS], c[Counter.RETRIES], c[Counter.EXEC_TIMERS]) == (1, 1, 1)
    assert c[Counter.REJECTS_VENUE] == 0  # a refusal that is retried is not a rejection
    assert c[Counter.TIMERS] == 0 and run.state[0][0]["n_inputs"] == 4  # the strategy never saw the timer
    assert run.ex.venue_seq[0] == 1 and run.ex.faults[0] == 1


@pytest.mark.parametrize("cap, sends", [(0, [1010, 2060, 4110, 8160]), (3000, [1010, 2060, 4110, 7160])])
def test_attempts_exhausted_end_the_order_rejected_with_an_alert(cap, sends):
    # Every SUBMIT is refused. Waits 1000, 2000, then 4000 (or the 3000 cap) ns after each
    # refusal (back 50 ns after each send); the fourth refusal is final: REJECTED, and an ALERT.
    run = run_script(book(50_000), [submit(BUY, 1, 100, at=0)], latency=LAT,
                     execution={**EXEC, "backoff_max_ns": cap, "ack_timeout_ns": 0}, faults=BUSY)
    assert [ts for ts, kind, _, _ in commands(run, C.SUBMIT)] == sends
    assert reports(run, 1) == [(ts + 50, K.REJECTED, R.VENUE_BUSY) for ts in sends]
    assert commands(run, C.ALERT) == [(sends[-1] + 50, C.ALERT, 1, R.VENUE_BUSY)]
    o = run.order(1)
    assert (o["status"], o["attempts"], o["reject_reason"]) == (S.REJECTED, 4, R.VENUE_BUSY)
    c = run.p.counters
    assert (c[Counter.TRANSIENT_REJECTS], c[Counter.RETRIES], c[Counter.RETRIES_EXHAUSTED]) == (3, 3, 1)
    assert c[Counter.REJECTS_VENUE] == 1
    assert_nothing_working(run)


def test_with_one_attempt_a_busy_refusal_is_final_at_once():
    run = run_script(book(50_000), [submit(BUY, 1, 100, at=0)], latency=LAT,
                     execution={"max_attempts": 1}, faults=BUSY)
    assert commands(run) == [(1010, C.SUBMIT, 1, 0), (1060, C.ALERT, 1, R.VENUE_BUSY)]
    assert run.order(1)["status"] == S.REJECTED
    assert_nothing_working(run)


def test_the_kill_switch_stops_an_order_waiting_to_be_sent_again():
    # Refused at 1030 (seen 1060), due again at 2060; the kill switch, seen at 1510, cancels it
    # here (it is not at the venue: nothing is sent) and takes the timer back.
    ev = merge(book(50_000), make_control(T0 + 1500, ControlCode.KILL_SWITCH_ON, KillScope.ALL))
    run = run_script(ev, [submit(BUY, 1, 100, at=0)], latency=LAT, execution={**EXEC, "ack_timeout_ns": 0},
                     faults=BUSY)
    assert commands(run) == [(1010, C.SUBMIT, 1, 0), (1060, C.SET_TIMER, EXEC_TIMER_ID, 2060),
                             (1510, C.SET_TIMER, EXEC_TIMER_ID, "never")]
    assert run.order(1)["status"] == S.CANCELED
    assert run.p.counters[Counter.EXEC_TIMERS] == 0
    assert_nothing_working(run)


def test_a_strategy_cancel_of_an_order_waiting_to_be_sent_again_ends_it_here():
    run = run_script(book(1500, 50_000), [submit(BUY, 1, 100, at=0), cancel(0, ts=T0 + 1510)], latency=LAT,
                     execution={**EXEC, "ack_timeout_ns": 0}, faults=BUSY)
    assert [k for _, k, _, _ in commands(run)] == [C.SUBMIT, C.SET_TIMER, C.SET_TIMER]  # no CANCEL sent
    assert run.order(1)["status"] == S.CANCELED
    assert_nothing_working(run)


def test_a_resend_passes_the_risk_checks_again():
    # The instrument is halted at 1500 (seen 1510) while the order waits: at 2060 the re-send is
    # refused by risk (INSTRUMENT_HALTED), the order ends REJECTED and an ALERT says why.
    ev = merge(book(50_000), make_control(T0 + 1500, ControlCode.HALT_INSTRUMENT, 0, 0))
    run = run_script(ev, [submit(BUY, 1, 100, at=0)], latency=LAT, execution={**EXEC, "ack_timeout_ns": 0},
                     faults=BUSY)
    assert commands(run) == [(1010, C.SUBMIT, 1, 0), (1060, C.SET_TIMER, EXEC_TIMER_ID, 2060),
                             (2060, C.ALERT, 1, R.INSTRUMENT_HALTED)]
    o = run.order(1)
    assert (o["status"], o["reject_reason"], o["attempts"]) == (S.REJECTED, R.INSTRUMENT_HALTED, 1)
    assert run.p.reject_counts[R.INSTRUMENT_HALTED] == 1
    assert_nothing_working(run)


def test_a_gtd_order_whose_time_passes_while_it_waits_expires_unsent():
    run = run_script(book(50_000), [submit(BUY, 1, 100, at=0, tif=TimeInForce.GTD, expire_ts=T0 + 1800)],
                     latency=LAT, execution={**EXEC, "ack_timeout_ns": 0}, faults=BUSY)
    assert [k for _, k, _, _ in commands(run)] == [C.SUBMIT, C.SET_TIMER]
    assert run.order(1)["status"] == S.EXPIRED
    assert_nothing_working(run)


def test_a_refused_modify_leaves_the_order_working_as_it_was():
    # The modify (decided at 1060, on the acknowledgement) is refused VENUE_BUSY; the order keeps
    # its price and size and the reservation for the growth is released. Modifies are not
    # retried: the strategy decides again on fresher data.
    seed = fault_seed([False, True])
    run = run_script(book(50_000), [submit(BUY, 1, 99.5, at=0), modify(0, 99.8, 2, at=1)],
                     latency=LAT, execution=EXEC, faults=(0.5, 0.0, 0.0), fault_seed=seed)
    assert reports(run, 1) == [(1060, K.ACCEPTED, 0), (1110, K.CANCEL_REJECTED, R.VENUE_BUSY)]
    o = run.order(1)
    assert (o["status"], o["price"], o["size"], o["reserved"]) == (S.ACCEPTED, fx(99.5), fx(1), 0)
    assert run.p.positions[0]["open_buy"] == fx(1)
    assert run.p.counters[Counter.RETRIES] == 0


# --------------------------------------------------------------------------- unknown outcomes


def test_a_lost_acknowledgement_is_queried_and_the_order_recovered_without_a_second_order():
    # Accepted at 1030, its ACCEPTED lost. No answer by 1010 + 5000: QUERY at 6010, at the exchange
    # at 6030, its status report (ACCEPTED, venue order id 1) back at 6060. The order is working
    # again here; a print at 7000 fills it, once.
    ev = merge(book(50_000), make_trades([(T0 + 7000, 99, 5)]))
    run = run_script(ev, [submit(BUY, 1, 100, at=0)], latency=LAT, execution=EXEC, faults=ACK_LOST)
    assert commands(run) == [(1010, C.SUBMIT, 1, 0), (1010, C.SET_TIMER, EXEC_TIMER_ID, 6010),
                             (6010, C.QUERY, 1, 0), (6010, C.SET_TIMER, EXEC_TIMER_ID, 11010),
                             (6060, C.SET_TIMER, EXEC_TIMER_ID, "never")]
    assert reports(run, 1) == [(6060, K.ACCEPTED, ReportFlag.STATUS), (7030, K.FILLED, 1)]
    status = run.reports(1)[0]
    assert status["venue_order_id"] == 1 and status["leaves_qty"] == fx(1)
    o = run.order(1)
    assert (o["status"], o["filled"], o["venue_order_id"], o["attempts"], o["queries"]) == (S.FILLED, fx(1), 1, 1, 0)
    assert run.ex.venue_seq[0] == 1  # one order at the exchange, ever
    assert run.p.positions[0]["qty"] == fx(1) and len(run.fills) == 1
    assert run.p.counters[Counter.QUERIES] == 1 and run.p.counters[Counter.RETRIES] == 0
    assert_nothing_working(run)


def test_a_fill_before_the_timeout_makes_the_query_unnecessary():
    # ACCEPTED lost, but the order fills at 2000 (report at 2030): the fill is the venue's word
    # that it has the order, and the timer is taken back.
    ev = merge(book(50_000), make_trades([(T0 + 2000, 99, 5)]))
    run = run_script(ev, [submit(BUY, 1, 100, at=0)], latency=LAT, execution=EXEC, faults=ACK_LOST)
    assert commands(run) == [(1010, C.SUBMIT, 1, 0), (1010, C.SET_TIMER, EXEC_TIMER_ID, 6010),
                             (2030, C.SET_TIMER, EXEC_TIMER_ID, "never")]
    assert run.order(1)["status"] == S.FILLED
    assert run.p.counters[Counter.EXEC_TIMERS] == 0
    assert_nothing_working(run)


def test_the_answer_to_a_query_that_a_fill_overtook_is_ignored():
    # QUERY at 6010 reaches the exchange at 6030; a print at 6020 fills the order first (FILLED
    # back at 6050). The status report (FILLED) comes at 6060, after the order has moved on:
    # ignored, not an illegal transition, and the fill is booked once.
    ev = merge(book(50_000), make_trades([(T0 + 6020, 99, 5)]))
    run = run_script(ev, [submit(BUY, 1, 100, at=0)], latency=LAT, execution=EXEC, faults=ACK_LOST)
    assert reports(run, 1) == [(6050, K.FILLED, 1), (6060, K.FILLED, ReportFlag.STATUS)]
    assert run.order(1)["status"] == S.FILLED
    assert run.p.counters[Counter.STALE_STATUS_REPORTS] == 1
    assert run.p.positions[0]["qty"] == fx(1)
    assert_nothing_working(run)


def test_a_lost_submit_is_queried_then_sent_again():
    # The SUBMIT decided at 1010 never reaches the exchange. QUERY at 6010; the exchange never
    # got order 1: REJECTED (STATUS, UNKNOWN_ORDER) back at 6060. Only now is the order sent
    # again, after the first backoff: 7060, accepted at 7080, acknowledged at 7110.
    run = run_script(book(50_000), [submit(BUY, 1, 100, at=0)], latency=LAT, execution=EXEC,
                     faults=(0.0, 0.0, 0.5), fault_seed=fault_seed([True, False]))
    assert commands(run) == [(1010, C.SUBMIT, 1, 0), (1010, C.SET_TIMER, EXEC_TIMER_ID, 6010),
                             (6010, C.QUERY, 1, 0), (6010, C.SET_TIMER, EXEC_TIMER_ID, 11010),
                             (6060, C.SET_TIMER, EXEC_TIMER_ID, 7060),
                             (7060, C.SUBMIT, 1, 0), (7060, C.SET_TIMER, EXEC_TIMER_ID, 12060),
                             (7110, C.SET_TIMER, EXEC_TIMER_ID, "never")]
    assert reports(run, 1) == [(6060, K.REJECTED, ReportFlag.STATUS | R.UNKNOWN_ORDER), (7110, K.ACCEPTED, 0)]
    o = run.order(1)
    assert (o["status"], o["attempts"], o["venue_order_id"]) == (S.ACCEPTED, 2, 1)
    assert run.ex.faults[1] == 1 and run.ex.venue_seq[0] == 1


def test_a_submit_lost_every_time_ends_rejected_after_the_last_attempt():
    run = run_script(book(100_000), [submit(BUY, 1, 100, at=0)], latency=LAT, execution={**EXEC, "max_attempts": 2},
                     faults=(0.0, 0.0, 1.0))
    # 1010 sent; 6010 queried; unknown at 6060; 7060 sent again; 12060 queried; unknown at 12110: final.
    assert [(ts, k) for ts, k, _, _ in commands(run) if k != C.SET_TIMER] == [
        (1010, C.SUBMIT), (6010, C.QUERY), (7060, C.SUBMIT), (12060, C.QUERY), (12110, C.ALERT)]
    o = run.order(1)
    assert (o["status"], o["reject_reason"]) == (S.REJECTED, R.UNKNOWN_ORDER)
    assert_nothing_working(run)


def test_a_cancel_of_an_order_the_venue_never_got_ends_it():
    # SUBMIT lost; the strategy cancels at 2010 (PENDING_CANCEL, the acknowledgement timer taken
    # back). The exchange refuses the cancel (UNKNOWN_ORDER, back at 2060): the order never
    # arrived, so it is over, not working.
    run = run_script(book(2000, 50_000), [submit(BUY, 1, 100, at=0), cancel(0, ts=T0 + 2010)], latency=LAT,
                     execution=EXEC, faults=(0.0, 0.0, 1.0))
    assert commands(run) == [(1010, C.SUBMIT, 1, 0), (1010, C.SET_TIMER, EXEC_TIMER_ID, 6010),
                             (2010, C.CANCEL, 1, 0), (2010, C.SET_TIMER, EXEC_TIMER_ID, "never")]
    assert reports(run, 1) == [(2060, K.CANCEL_REJECTED, R.UNKNOWN_ORDER)]
    assert run.order(1)["status"] == S.CANCELED
    assert_nothing_working(run)


def test_an_order_acknowledged_in_time_costs_no_timer_event():
    # Two orders in flight together: one timer set when the first is sent, taken back when the
    # last acknowledgement arrives. No TIMER input at all.
    run = run_script(book(50_000), [submit(BUY, 1, 99, at=0), submit(SELL, 1, 101.5, at=0)], latency=LAT,
                     execution=EXEC)
    assert commands(run, C.SET_TIMER) == [(1010, C.SET_TIMER, EXEC_TIMER_ID, 6010),
                                          (1060, C.SET_TIMER, EXEC_TIMER_ID, "never")]
    assert not np.any(run.events["kind"] == K.TIMER)
    assert run.order(1)["venue_order_id"] == 1 and run.order(2)["venue_order_id"] == 2


def test_a_strategy_timer_with_a_negative_id_is_refused():
    run = run_script(book(50_000), [timer(T0 + 2000, EXEC_TIMER_ID, at=0), timer(T0 + 2000, 3, at=0)], latency=LAT,
                     execution=EXEC)
    assert [int(c["client_order_id"]) for c in run.cmds(C.SET_TIMER)] == [3]
    assert run.p.counters[Counter.INTENTS_DROPPED] == 1
    assert run.p.counters[Counter.TIMERS] == 1


def test_the_same_faults_give_the_same_journal():
    ev = merge(book(*range(2000, 40_000, 700)), make_trades([(T0 + ts, 99 + ts % 3, 1) for ts in range(1500, 40_000, 900)]))
    script = [submit(BUY if k % 2 else SELL, 1, 99 + k % 4, ts=T0 + 1000 + 1500 * k) for k in range(20)]
    kw = {"latency": LAT, "execution": {**EXEC, "jitter": 0.7}, "faults": (0.3, 0.3, 0.3), "fault_seed": 11}
    a, b = run_script(ev, script, **kw), run_script(ev, script, chunk_rows=7, **kw)
    assert a.journal_hash == b.journal_hash
    assert a.p.counters[Counter.RETRIES] > 0 and a.p.counters[Counter.QUERIES] > 0
    other = run_script(ev, script, **{**kw, "fault_seed": 12})
    assert other.journal_hash != a.journal_hash


# --------------------------------------------------------------------------- step by hand


class RecoveryDriver(Driver):
    """``test_step.Driver`` with the execution stage's limits set."""

    def __init__(self, script, execution: dict, **kw):
        super().__init__(script, **kw)
        self.p = allocate(PipelineSpec(order_capacity=len(self.p.orders), max_order_size=(fx(100),),
                                       max_position=(fx(100),), price_collar=(0.5,), execution=execution))


def exec_timer(ts: int) -> np.ndarray:
    ev = np.zeros(1, EVENT_DTYPE)
    ev[0]["ts_event"], ev[0]["ts_recv"], ev[0]["kind"], ev[0]["timer_id"] = ts, ts, K.TIMER, EXEC_TIMER_ID
    return ev


def order_report(ts, kind, coid, venue_order_id, flags=0, leaves=0.0, venue_id=0):
    ev = report(ts, kind, coid, price=99, leaves=leaves, flags=flags)
    ev[0]["venue_order_id"] = venue_order_id
    ev[0]["venue_id"] = venue_id
    return ev


def test_a_report_naming_only_the_venue_order_id_maps_back_to_its_order():
    d = RecoveryDriver([submit(BUY, 1, 99, at=0), submit(BUY, 2, 98, at=0)], {})
    d.feed(make_quotes([(1000, 99, 5, 101, 5)]))
    d.feed(order_report(1060, K.ACCEPTED, 1, 501, leaves=1))
    d.feed(order_report(1060, K.ACCEPTED, 2, 502, leaves=2))
    assert (d.order(1)["venue_order_id"], d.order(2)["venue_order_id"]) == (501, 502)
    d.feed(order_report(2000, K.CANCELED, 0, 502))  # the venue canceled it and names only its own id
    assert d.order(2)["status"] == S.CANCELED and d.order(1)["status"] == S.ACCEPTED
    assert d.p.positions[0]["open_buy"] == fx(1)
    d.feed(order_report(2100, K.CANCELED, 0, 501, venue_id=3))  # another venue's 501: not ours
    assert d.order(1)["status"] == S.ACCEPTED
    assert d.p.counters[Counter.UNKNOWN_ORDER_REPORTS] == 1


def test_only_the_answer_to_the_latest_query_counts():
    # Timeout 100: the order is queried at 1100 and again at 1200 (no answer yet). The first
    # answer, "unknown order", was true when it was given but is not the latest: ignored. The
    # second, "accepted", is the order's state.
    d = RecoveryDriver([submit(BUY, 1, 99, at=0)], {"max_attempts": 3, "ack_timeout_ns": 100,
                                                      "backoff_base_ns": 10})
    assert [c["kind"] for c in d.feed(make_quotes([(1000, 99, 5, 101, 5)]))] == [C.SUBMIT, C.SET_TIMER]
    assert [(c["kind"], c["expire_ts"]) for c in d.feed(exec_timer(1100))] == [(C.QUERY, 0), (C.SET_TIMER, 1200)]
    assert [(c["kind"], c["expire_ts"]) for c in d.feed(exec_timer(1200))] == [(C.QUERY, 0), (C.SET_TIMER, 1300)]
    assert (d.order(1)["status"], d.order(1)["queries"]) == (S.QUERYING, 2)
    unknown = order_report(1210, K.REJECTED, 1, 0, flags=ReportFlag.STATUS | R.UNKNOWN_ORDER)
    assert len(d.feed(unknown)) == 0
    assert d.order(1)["status"] == S.QUERYING and d.p.counters[Counter.STALE_STATUS_REPORTS] == 1
    cmds = d.feed(order_report(1250, K.ACCEPTED, 1, 77, flags=ReportFlag.STATUS, leaves=1))
    assert [(c["kind"], c["expire_ts"]) for c in cmds] == [(C.SET_TIMER, TS_MAX)]
    o = d.order(1)
    assert (o["status"], o["venue_order_id"], o["queries"], o["attempts"]) == (S.ACCEPTED, 77, 0, 1)
    assert d.p.exec_state[0]["n_waiting"] == 0


def test_a_finished_status_is_ignored_until_its_fills_have_arrived():
    # The venue says FILLED (2 filled) while no fill has reached us: nothing is booked from a
    # status report, so the order is left alone until the fills arrive or the next query.
    d = RecoveryDriver([submit(BUY, 2, 99, at=0)], {"ack_timeout_ns": 100})
    d.feed(make_quotes([(1000, 99, 5, 101, 5)]))
    d.feed(exec_timer(1100))
    filled = order_report(1150, K.FILLED, 1, 9, flags=ReportFlag.STATUS)
    filled[0]["size"] = fx(2)
    d.feed(filled)
    assert d.order(1)["status"] == S.QUERYING and d.p.positions[0]["qty"] == 0
    assert d.p.counters[Counter.STALE_STATUS_REPORTS] == 1


def test_an_early_exec_timer_only_moves_the_timer():
    # A timer event before any deadline (a clock that does not replace timers) acts on nothing.
    d = RecoveryDriver([submit(BUY, 1, 99, at=0)], {"ack_timeout_ns": 100})
    d.feed(make_quotes([(1000, 99, 5, 101, 5)]))
    assert len(d.feed(exec_timer(1050))) == 0  # still set for 1100: nothing to move
    assert d.order(1)["status"] == S.SUBMITTED and d.p.exec_state[0]["timer_ts"] == 1100
