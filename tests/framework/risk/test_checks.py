"""Risk stage: the pre-trade checks, in isolation and as a backtest applies them.

Scenario tests run the scripted strategy (tests/sim/scripted.py) with constant latencies
feed 10, order 20, response 30 ns; times are offsets from ``T0``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from numba import njit

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "sim"))

from scripted import T0, cancel, make_control, make_quotes, market, merge, modify, run_script, submit

from framework.events import (
    EVENT_DTYPE,
    CommandKind,
    ControlCode,
    EventKind,
    OrderType,
    RejectReason,
    Side,
    to_fixed,
)
from framework.order_state import OrderStatus
from framework.risk.checks import check_order as _check_order
from framework.risk.checks import record_rejection
from framework.risk.control import apply_control
from framework.state import Counter, PipelineSpec, allocate

LAT = (10, 20, 30)
BUY, SELL = Side.BUY, Side.SELL
LIMIT, MARKET = OrderType.LIMIT, OrderType.MARKET
R = RejectReason


def check_order(p, instrument_id, side, order_type, price, size, added):
    """The checks for a plain order: no trigger, no flags, venue 0; new when it adds its full size."""
    return _check_order(p, instrument_id, side, order_type, price, 0, size, added, 0, 0, added == size)


def fx(x: float) -> int:
    return to_fixed(x)


def t(offset: int) -> int:
    return T0 + offset


@njit
def _control(p, events):
    for i in range(events.shape[0]):
        apply_control(p, events[i])


def pipeline(max_order_size=5.0, max_position=10.0, collar=0.05, quoted=True):
    p = allocate(PipelineSpec(n_instruments=2, order_capacity=16, max_order_size=(fx(max_order_size),),
                              max_position=(fx(max_position),), price_collar=(collar,)))
    if quoted:  # mid 100 on instrument 0
        p.market[0]["bid_price"], p.market[0]["bid_size"] = fx(99), fx(1)
        p.market[0]["ask_price"], p.market[0]["ask_size"] = fx(101), fx(1)
    return p


# --------------------------------------------------------------------------- check_order


def test_valid_orders_pass():
    p = pipeline()
    assert check_order(p, 0, BUY, LIMIT, fx(100), fx(5), fx(5)) == R.NONE
    assert check_order(p, 0, SELL, MARKET, 0, fx(1), fx(1)) == R.NONE
    assert p.risk_state[0]["n_checked"] == 2


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        ((0, BUY, LIMIT, fx(100), 0, 0), R.INVALID_ORDER),  # size 0
        ((0, BUY, LIMIT, fx(100), -fx(1), -fx(1)), R.INVALID_ORDER),
        ((0, Side.NONE, LIMIT, fx(100), fx(1), fx(1)), R.INVALID_ORDER),
        ((0, BUY, LIMIT, 0, fx(1), fx(1)), R.INVALID_ORDER),  # a limit needs a price
        ((2, BUY, LIMIT, fx(100), fx(1), fx(1)), R.INVALID_ORDER),  # no instrument 2
        ((-1, BUY, LIMIT, fx(100), fx(1), fx(1)), R.INVALID_ORDER),
        ((0, BUY, LIMIT, fx(100), fx(5) + 1, fx(5) + 1), R.MAX_ORDER_SIZE),  # one unit of 1e-9 over
        ((1, BUY, LIMIT, fx(100), fx(1), fx(1)), R.NO_MARKET),  # instrument 1 has no price
        ((0, BUY, LIMIT, fx(105) + 1, fx(1), fx(1)), R.PRICE_COLLAR),  # more than 5% above the mid
        ((0, SELL, LIMIT, fx(95) - 1, fx(1), fx(1)), R.PRICE_COLLAR),
    ],
)
def test_rejections(args, reason):
    p = pipeline()
    assert check_order(p, *args) == reason


def test_collar_boundary_and_market_orders():
    p = pipeline()
    assert check_order(p, 0, BUY, LIMIT, fx(105), fx(1), fx(1)) == R.NONE  # exactly 5%: allowed
    assert check_order(p, 0, SELL, LIMIT, fx(95), fx(1), fx(1)) == R.NONE
    assert check_order(p, 0, BUY, MARKET, 0, fx(1), fx(1)) == R.NONE  # no collar on market orders


def test_position_limit_counts_the_position_and_working_orders_on_the_side():
    p = pipeline(max_position=10.0)
    pos = p.positions[0]
    pos["qty"], pos["open_buy"], pos["open_sell"] = fx(4), fx(3), fx(2)
    # Buy: 4 + 3 working + 3 new = 10: allowed; one more unit is not.
    assert check_order(p, 0, BUY, LIMIT, fx(100), fx(3), fx(3)) == R.NONE
    assert check_order(p, 0, BUY, LIMIT, fx(100), fx(3) + 1, fx(3) + 1) == R.MAX_POSITION
    # Sell: -(4 - 2 - 12) = 10 would be allowed but the order size limit (5) is hit first;
    # with a 20 size limit: 12 allowed, 12 + 1e-9 not.
    p.risk_limits[0]["max_order_size"] = fx(20)
    assert check_order(p, 0, SELL, LIMIT, fx(100), fx(12), fx(12)) == R.NONE
    assert check_order(p, 0, SELL, LIMIT, fx(100), fx(12) + 1, fx(12) + 1) == R.MAX_POSITION
    # A modify adds only its extra working size.
    assert check_order(p, 0, BUY, LIMIT, fx(100), fx(5), fx(3)) == R.NONE


def test_kill_switch_comes_first_and_controls_change_limits():
    p = pipeline()
    ev = np.zeros(4, EVENT_DTYPE)
    ev["kind"] = EventKind.CONTROL
    ev["control"] = [ControlCode.SET_MAX_POSITION, ControlCode.SET_MAX_ORDER_SIZE, ControlCode.KILL_SWITCH_ON,
                     ControlCode.SET_MAX_POSITION]
    ev["value"] = [fx(1), fx(2), 0, fx(7)]
    ev["target"] = [0, 0, 0, 5]  # the last targets an instrument that does not exist: ignored
    _control(p, ev)
    assert p.risk_limits[0]["max_long"] == p.risk_limits[0]["max_short"] == fx(1)
    assert p.risk_limits[0]["max_order_size"] == fx(2)
    assert p.risk_limits[1]["max_long"] == fx(10)
    assert p.risk_state[0]["kill_all"] == 1
    assert check_order(p, 0, BUY, LIMIT, fx(200), fx(50), fx(50)) == R.KILL_SWITCH  # before the limits
    ev2 = ev[:1].copy()
    ev2["control"] = ControlCode.KILL_SWITCH_OFF
    _control(p, ev2)
    assert p.risk_state[0]["kill_all"] == 0
    assert check_order(p, 0, BUY, LIMIT, fx(100), fx(2), fx(2)) == R.MAX_POSITION  # new limit 1


def test_record_rejection_counts_by_reason():
    p = pipeline()
    for reason in (R.MAX_POSITION, R.MAX_POSITION, R.PRICE_COLLAR):
        record_rejection(p, reason)
    assert p.reject_counts[R.MAX_POSITION] == 2 and p.reject_counts[R.PRICE_COLLAR] == 1
    assert p.risk_state[0]["n_rejected"] == 3


# --------------------------------------------------------------------------- in a backtest

QUOTES = make_quotes([(t(1000), 99, 5, 101, 5), (t(1100), 99, 5, 101, 5), (t(1200), 99, 5, 101, 5),
                      (t(3000), 99, 5, 101, 5)])


def alerts(run):
    return [(int(c["client_order_id"]), int(c["reason"])) for c in run.cmds(CommandKind.ALERT)]


def test_max_order_size_in_a_backtest():
    run = run_script(QUOTES, [submit(BUY, 3, 100, at=0), submit(BUY, 2, 100, at=0)], latency=LAT,
                     max_order_size=2, max_position=10)
    big, ok = run.coids
    assert alerts(run) == [(big, R.MAX_ORDER_SIZE)]
    alert = run.cmds(CommandKind.ALERT)[0]
    assert (alert["size"], alert["price"], alert["side"], alert["ts_event"] - T0) == (fx(3), fx(100), BUY, 1010)
    assert list(run.cmds(CommandKind.SUBMIT)["client_order_id"]) == [ok]
    assert run.order(big)["status"] == OrderStatus.REJECTED
    assert run.order(big)["reject_reason"] == R.MAX_ORDER_SIZE
    assert len(run.reports(big)) == 0  # it never left
    assert run.p.reject_counts[R.MAX_ORDER_SIZE] == 1
    assert run.p.counters[Counter.REJECTS_RISK] == 1


def test_max_position_counts_orders_in_flight():
    # max position 3. Two buys of 2 on the same input: 0 + 2 working + 2 = 4 > 3, the second is
    # refused. A third buy of 2 on the next quote (1110), before any ack (1060 is ACCEPTED only):
    # the first is still working, refused too. A sell of 2 is fine (worst short 2).
    run = run_script(QUOTES, [submit(BUY, 2, 100, at=0), submit(BUY, 2, 100, at=0), submit(BUY, 2, 100, ts=t(1110)),
                              submit(SELL, 2, 100.5, ts=t(1110))],
                     latency=LAT, max_order_size=5, max_position=3)
    a, b, c, d = run.coids
    assert alerts(run) == [(b, R.MAX_POSITION), (c, R.MAX_POSITION)]
    assert sorted(run.cmds(CommandKind.SUBMIT)["client_order_id"]) == [a, d]
    assert run.p.positions[0]["open_buy"] == fx(2)
    assert run.p.positions[0]["open_sell"] == fx(2)
    assert run.p.reject_counts[R.MAX_POSITION] == 2


def test_cancel_frees_position_room():
    # Buy 2 rests, is cancelled (decided 1060 on its ACCEPTED, CANCELED seen at 1110); the buy of 3
    # decided at 1110 on the next quote (after the CANCELED, rule 3 before 4) then fits in 3.
    run = run_script(QUOTES, [submit(BUY, 2, 100, at=0), cancel(0, ts=t(1060)), submit(BUY, 3, 100, ts=t(1110))],
                     latency=LAT, max_order_size=5, max_position=3)
    a, _, c = run.coids
    assert alerts(run) == []
    assert run.order(a)["status"] == OrderStatus.CANCELED
    assert run.order(c)["status"] == OrderStatus.ACCEPTED


def test_modify_beyond_the_position_limit_is_refused_and_reserves_nothing():
    # Buy 2 rests; a modify to 4 (2 more working) breaches max position 3: ALERT, order unchanged.
    run = run_script(QUOTES, [submit(BUY, 2, 100, at=0), modify(0, 100, 4, ts=t(1060))],
                     latency=LAT, max_order_size=5, max_position=3)
    a = run.coids[0]
    assert alerts(run) == [(a, R.MAX_POSITION)]
    assert len(run.cmds(CommandKind.MODIFY)) == 0
    o = run.order(a)
    assert (o["status"], o["size"], o["reserved"]) == (OrderStatus.ACCEPTED, fx(2), 0)
    assert run.p.positions[0]["open_buy"] == fx(2)


def test_price_collar_in_a_backtest():
    # Mid 100, collar 5%: 105 and 95 pass, 105.01 and 94.99 do not; market orders are not collared.
    run = run_script(
        QUOTES,
        [submit(BUY, 1, 95, at=0), submit(SELL, 1, 105, at=0), submit(BUY, 1, 94.99, at=0),
         submit(SELL, 1, 105.01, at=0), market(BUY, 1, at=0)],
        latency=LAT, collar=0.05,
    )
    ok1, ok2, bad1, bad2, mkt = run.coids
    assert alerts(run) == [(bad1, R.PRICE_COLLAR), (bad2, R.PRICE_COLLAR)]
    assert list(run.cmds(CommandKind.SUBMIT)["client_order_id"]) == [ok1, ok2, mkt]
    assert run.p.reject_counts[R.PRICE_COLLAR] == 2


def test_kill_switch_cancels_working_orders_and_blocks_new_ones():
    # Buy 1 @ 99 and sell 1 @ 101.5 rest. KILL_SWITCH_ON at 2000 (seen at 2010): on that input the
    # pipeline cancels both working orders (CANCELED back at 2060) and the strategy's new order on
    # the same input is refused; so is one at 3010. KILL_SWITCH_OFF at 4000 (seen at 4010) lets a
    # new order out again.
    ev = merge(QUOTES, make_control(t(2000), ControlCode.KILL_SWITCH_ON), make_control(t(4000),
                                                                                      ControlCode.KILL_SWITCH_OFF))
    run = run_script(
        ev,
        [submit(BUY, 1, 99, at=0), submit(SELL, 1, 101.5, at=0), submit(BUY, 1, 100, ts=t(2010)),
         submit(BUY, 1, 100, ts=t(3010)), submit(BUY, 1, 100, ts=t(4010))],
        latency=LAT,
    )
    a, b, c, d, e = run.coids
    cancels = run.cmds(CommandKind.CANCEL)
    assert sorted(cancels["client_order_id"]) == [a, b]
    assert np.all(cancels["ts_event"] == t(2010))
    ctrl_index = int(np.flatnonzero(run.events["kind"] == EventKind.CONTROL)[0])
    j = run.commands[run.commands["command"]["kind"] == CommandKind.CANCEL]
    assert np.all(j["input_index"] == ctrl_index)
    assert run.order(a)["status"] == OrderStatus.CANCELED
    assert run.order(b)["status"] == OrderStatus.CANCELED
    assert alerts(run) == [(c, R.KILL_SWITCH), (d, R.KILL_SWITCH)]
    assert run.order(e)["status"] == OrderStatus.ACCEPTED
    assert run.p.reject_counts[R.KILL_SWITCH] == 2
    assert run.p.risk_state[0]["kill_all"] == 0
    assert run.p.counters[Counter.CONTROLS] == 2


def test_rejections_are_counted_by_reason():
    ev = merge(QUOTES, make_control(t(2000), ControlCode.KILL_SWITCH_ON))
    run = run_script(
        ev,
        [submit(BUY, 6, 100, at=0),  # MAX_ORDER_SIZE (5)
         submit(BUY, 4, 100, at=0),  # ok: 4 working
         submit(BUY, 4, 100, at=0),  # MAX_POSITION (4 + 4 > 6)
         submit(SELL, 1, 120, at=0),  # PRICE_COLLAR
         submit(SELL, 1, 120, at=1),  # PRICE_COLLAR again
         submit(SELL, 1, 101, ts=t(2010))],  # KILL_SWITCH
        latency=LAT, max_order_size=5, max_position=6, collar=0.05,
    )
    counts = {RejectReason._fields[k]: int(n) for k, n in enumerate(run.p.reject_counts) if n}
    assert counts == {"MAX_ORDER_SIZE": 1, "MAX_POSITION": 1, "PRICE_COLLAR": 2, "KILL_SWITCH": 1}
    assert run.p.risk_state[0]["n_rejected"] == 5
    assert run.p.counters[Counter.REJECTS_RISK] == 5
    assert sorted(r for _, r in alerts(run)) == sorted(
        [R.MAX_ORDER_SIZE, R.MAX_POSITION, R.PRICE_COLLAR, R.PRICE_COLLAR, R.KILL_SWITCH])
