"""Stop, stop-limit and GTD orders at the simulated exchange, end to end through the loop.

Latencies feed 10, order 20, response 30 ns; times are offsets from ``T0``; prices and
sizes in whole units (see tests/sim/test_exchange.py for the arithmetic).
"""

from __future__ import annotations

from scripted import T0, make_bars, make_quotes, make_trades, merge, run_script, submit
from test_exchange import assert_consistent, fills_of

from framework.events import EventKind, Liquidity, OrderType, Side, TimeInForce, to_fixed
from framework.order_state import OrderStatus

LAT = (10, 20, 30)
K = EventKind
BUY, SELL = Side.BUY, Side.SELL
STOP, STOP_LIMIT = OrderType.STOP, OrderType.STOP_LIMIT


def fx(x: float) -> int:
    return to_fixed(x)


def t(offset: int) -> int:
    return T0 + offset


def test_buy_stop_waits_for_the_market_to_reach_its_trigger_then_takes_the_book():
    # Quotes 99/101; a buy stop at 102 arrives at 1030 and waits. The print at 101.5 (2000) and
    # the quote 101/101.9 (2500) do not reach it; the print at 102 (3000) does: it becomes a
    # market order and takes the ask, 101.9 x 4 (the book, not the print).
    ev = merge(make_quotes([(t(1000), 99, 5, 101, 5), (t(2500), 101, 5, 101.9, 4)]),
               make_trades([(t(2000), 101.5, 1), (t(3000), 102, 1)]))
    run = run_script(ev, [submit(BUY, 3, 0, at=0, order_type=STOP, trigger=102)], latency=LAT, collar=0.1)
    coid = run.coids[0]
    assert run.report_kinds(coid) == [K.ACCEPTED, K.FILLED]
    assert fills_of(run, coid) == [(3000, fx(101.9), fx(3), Liquidity.TAKER)]
    assert run.order(coid)["status"] == OrderStatus.FILLED
    assert_consistent(run)


def test_sell_stop_on_trades_only_history_fills_at_the_triggering_print():
    ev = make_trades([(t(1000), 100, 1), (t(2000), 99.5, 2), (t(3000), 98.9, 2), (t(4000), 98, 5)])
    run = run_script(ev, [submit(SELL, 3, 0, at=0, order_type=STOP, trigger=99)], latency=LAT, collar=0.1)
    coid = run.coids[0]
    # 98.9 reaches the trigger: it takes that print's 2; the market order's rest expires.
    assert run.report_kinds(coid) == [K.ACCEPTED, K.PARTIALLY_FILLED, K.EXPIRED]
    assert fills_of(run, coid) == [(3000, fx(98.9), fx(2), Liquidity.TAKER)]
    assert_consistent(run)


def test_stop_limit_rests_at_its_limit_once_triggered():
    # Buy stop-limit: trigger 101, limit 101.2. The ask jumps to 101.5 (quote at 2000): triggered
    # (ask >= 101) but not marketable at 101.2, so it rests; the ask falls to 101.2 at 3000: filled
    # there as a resting order.
    ev = make_quotes([(t(1000), 99, 5, 100, 5), (t(2000), 101, 5, 101.5, 5), (t(3000), 101, 5, 101.2, 5)])
    run = run_script(ev, [submit(BUY, 2, 101.2, at=0, order_type=STOP_LIMIT, trigger=101)], latency=LAT,
                     collar=0.1)
    coid = run.coids[0]
    assert run.report_kinds(coid) == [K.ACCEPTED, K.FILLED]
    assert fills_of(run, coid) == [(3000, fx(101.2), fx(2), Liquidity.MAKER)]
    assert_consistent(run)


def test_a_quote_reaching_the_trigger_triggers_a_stop():
    ev = make_quotes([(t(1000), 99, 5, 101, 5), (t(2000), 101.5, 5, 102.5, 4)])
    run = run_script(ev, [submit(BUY, 3, 0, at=0, order_type=STOP, trigger=102)], latency=LAT, collar=0.1)
    assert fills_of(run, run.coids[0]) == [(2000, fx(102.5), fx(3), Liquidity.TAKER)]


def test_a_stop_already_triggered_on_arrival_acts_at_once():
    ev = make_quotes([(t(1000), 99, 5, 101, 5), (t(5000), 99, 5, 101, 5)])
    run = run_script(ev, [submit(SELL, 1, 0, at=0, order_type=STOP, trigger=100)], latency=LAT, collar=0.1)
    coid = run.coids[0]
    assert fills_of(run, coid) == [(1030, fx(99), fx(1), Liquidity.TAKER)]


def test_a_bar_fills_a_triggered_stop_at_the_trigger_or_a_worse_open():
    bars = make_bars([(t(1000), 100, 101, 99, 100, 10), (t(2000), 100, 104, 99, 103, 10),
                      (t(3000), 106, 107, 105, 106, 10)])
    run = run_script(bars, [submit(BUY, 1, 0, at=0, order_type=STOP, trigger=103),
                            submit(BUY, 1, 0, at=0, order_type=STOP, trigger=105)], latency=LAT, collar=0.2)
    a, b = run.coids
    assert fills_of(run, a) == [(2000, fx(103), fx(1), Liquidity.TAKER)]  # crossed inside the bar
    assert fills_of(run, b) == [(3000, fx(106), fx(1), Liquidity.TAKER)]  # gapped through: the open


def test_gtd_order_expires_at_its_time_and_never_fills_after_it():
    # A buy at 99 good till 2500: the print at 99 at 3000 would fill it, but it expired first.
    ev = make_trades([(t(1000), 100, 1), (t(2000), 99.5, 1), (t(3000), 99, 5)])
    run = run_script(ev, [submit(BUY, 1, 99, at=0, tif=TimeInForce.GTD, expire_ts=t(2500))], latency=LAT)
    coid = run.coids[0]
    assert run.report_kinds(coid) == [K.ACCEPTED, K.EXPIRED]
    expired = run.reports(coid)[1]
    assert expired["ts_event"] == t(3000)  # seen at the exchange's next row of that instrument
    assert run.order(coid)["status"] == OrderStatus.EXPIRED
    assert run.p.positions[0]["open_buy"] == 0
    assert len(run.fills) == 0


def test_gtd_order_fills_before_its_time():
    ev = make_trades([(t(1000), 100, 1), (t(2000), 99, 5), (t(3000), 98, 5)])
    run = run_script(ev, [submit(BUY, 1, 99, at=0, tif=TimeInForce.GTD, expire_ts=t(2500))], latency=LAT)
    assert fills_of(run, run.coids[0]) == [(2000, fx(99), fx(1), Liquidity.MAKER)]


def test_gtd_in_the_past_is_refused_by_the_pipeline():
    ev = make_trades([(t(1000), 100, 1), (t(2000), 99, 5)])
    run = run_script(ev, [submit(BUY, 1, 99, at=0, tif=TimeInForce.GTD, expire_ts=t(500))], latency=LAT)
    assert run.order(run.coids[0])["status"] == OrderStatus.REJECTED
