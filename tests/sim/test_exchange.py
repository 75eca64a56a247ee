"""Simulated exchange scenarios, each driven end to end through the compiled backtest loop.

Every test runs the scripted strategy (``scripted.py``) over a few hand-made events with
constant latencies feed = 10 ns, order = 20 ns, response = 30 ns (unless it says
otherwise), so every time below can be checked by hand:

* a market-data row with ``ts_event`` t reaches the strategy at t + 10;
* an order decided at d (the ``ts_recv`` of the input it was decided on) reaches the
  exchange at d + 20, and the reports it causes there reach the strategy 30 ns later.

Times are written as offsets from ``T0``; prices and sizes in whole units (``fx`` converts
to fixed point, 1e9 units per whole unit).
"""

from __future__ import annotations

import numpy as np
import pytest
from scripted import (
    T0,
    cancel,
    make_bars,
    make_control,
    make_quotes,
    make_trades,
    market,
    merge,
    modify,
    run_script,
    signed_fill_qty,
    submit,
)

from framework.events import (
    INSTRUMENT_RECORD_BYTES,
    CommandKind,
    ControlCode,
    EventKind,
    Liquidity,
    OrderFlag,
    OrderType,
    RejectReason,
    Side,
    TimeInForce,
    to_fixed,
)
from framework.order_state import OrderStatus
from framework.state import Counter
from sim.exchange import EX_MARKET_DTYPE
from sim.models import FillModel, LatencyModel

LAT = (10, 20, 30)
K = EventKind
BUY, SELL = Side.BUY, Side.SELL


def fx(x: float) -> int:
    return to_fixed(x)


def t(offset: int) -> int:
    return T0 + offset


def fills_of(run, coid: int) -> list[tuple[int, int, int, int]]:
    """(exchange time offset, price, size, liquidity) of each fill of ``coid``."""
    f = run.fills[run.fills["client_order_id"] == coid]
    return [(int(r["ts_event"]) - T0, int(r["price"]), int(r["size"]), int(r["liquidity"])) for r in f]


def assert_consistent(run) -> None:
    """Invariants every scenario must keep: position = signed sum of fills, nothing working at the end
    that the exchange does not know, and the fills buffer agrees with the fill reports."""
    assert run.p.positions[0]["qty"] == signed_fill_qty(run.fills)
    reps = run.reports()
    fill_reps = reps[(reps["kind"] == K.FILLED) | (reps["kind"] == K.PARTIALLY_FILLED)]
    assert len(fill_reps) == len(run.fills)
    np.testing.assert_array_equal(fill_reps["price"], run.fills["price"])
    np.testing.assert_array_equal(fill_reps["size"], run.fills["size"])
    np.testing.assert_array_equal(fill_reps["fee"], run.fills["fee"])
    assert run.p.counters[Counter.OUT_OF_ORDER] == 0


# --------------------------------------------------------------------------- market orders


def test_market_buy_takes_the_ask_capped_by_its_size_and_expires_the_rest():
    # quote at 1000: bid 99 x 5, ask 101 x 3. Market buy 5 decided on the quote (seen at 1010),
    # at the exchange at 1030: takes 3 @ 101 (all the ask shows), the other 2 expire.
    ev = make_quotes([(t(1000), 99, 5, 101, 3)])
    run = run_script(ev, [market(BUY, 5, at=0)], latency=LAT)
    coid = run.coids[0]
    assert coid == 1
    assert run.report_kinds(coid) == [K.ACCEPTED, K.PARTIALLY_FILLED, K.EXPIRED]
    assert fills_of(run, coid) == [(1030, fx(101), fx(3), Liquidity.TAKER)]
    fill = run.reports(coid)[1]
    assert fill["leaves_qty"] == fx(2)
    o = run.order(coid)
    assert o["status"] == OrderStatus.EXPIRED
    assert o["filled"] == fx(3) and o["leaves"] == 0
    assert run.p.positions[0]["qty"] == fx(3)
    assert run.p.positions[0]["open_buy"] == 0
    assert run.p.exec_state[0]["n_open"] == 0
    assert_consistent(run)


def test_market_sell_takes_the_bid():
    # bid 99 x 5: a market sell of 2 takes 2 @ 99.
    ev = make_quotes([(t(1000), 99, 5, 101, 3)])
    run = run_script(ev, [market(SELL, 2, at=0)], latency=LAT)
    coid = run.coids[0]
    assert run.report_kinds(coid) == [K.ACCEPTED, K.FILLED]
    assert fills_of(run, coid) == [(1030, fx(99), fx(2), Liquidity.TAKER)]
    assert run.p.positions[0]["qty"] == -fx(2)
    assert_consistent(run)


def test_market_order_on_trades_only_history_takes_the_next_print_capped_by_its_size():
    # Trades only: 100 x 1 at 1000 (seen at 1010, the decision), 102 x 4 at 2000, 103 x 10 at 3000.
    # The market buy of 5 reaches the exchange at 1030 with no quote to take, waits for the next
    # print (2000), takes 4 @ 102 (the print's size), and the remaining 1 expires; the print at
    # 3000 does not fill it.
    ev = make_trades([(t(1000), 100, 1), (t(2000), 102, 4), (t(3000), 103, 10)])
    run = run_script(ev, [market(BUY, 5, at=0)], latency=LAT)
    coid = run.coids[0]
    assert run.report_kinds(coid) == [K.ACCEPTED, K.PARTIALLY_FILLED, K.EXPIRED]
    assert fills_of(run, coid) == [(2000, fx(102), fx(4), Liquidity.TAKER)]
    reps = run.reports(coid)
    assert list(reps["ts_event"] - T0) == [1030, 2000, 2000]
    assert list(reps["ts_recv"] - T0) == [1060, 2030, 2030]
    assert run.order(coid)["status"] == OrderStatus.EXPIRED
    assert run.p.positions[0]["qty"] == fx(4)
    assert_consistent(run)


def test_market_order_uses_market_data_that_reaches_the_exchange_at_the_same_time():
    # Tie-break rule 1 before 2: the ask moves to 102 at 1030, exactly when the market buy
    # (decided at 1010) reaches the exchange; market data at the exchange goes first, so the
    # order takes 102, not 101.
    ev = make_quotes([(t(1000), 99, 5, 101, 3), (t(1030), 99, 5, 102, 3)])
    run = run_script(ev, [market(BUY, 1, at=0)], latency=LAT)
    assert fills_of(run, run.coids[0]) == [(1030, fx(102), fx(1), Liquidity.TAKER)]


def test_own_orders_share_the_touch_size():
    # Two market buys of 2 on an ask of 101 x 3: the first takes 2, the second only the 1 left.
    ev = make_quotes([(t(1000), 99, 5, 101, 3)])
    run = run_script(ev, [market(BUY, 2, at=0), market(BUY, 2, at=0)], latency=LAT)
    a, b = run.coids
    assert fills_of(run, a) == [(1030, fx(101), fx(2), Liquidity.TAKER)]
    assert fills_of(run, b) == [(1030, fx(101), fx(1), Liquidity.TAKER)]
    assert run.report_kinds(b) == [K.ACCEPTED, K.PARTIALLY_FILLED, K.EXPIRED]
    assert_consistent(run)


# --------------------------------------------------------------------------- resting limit orders


@pytest.mark.parametrize(
    ("fill_model", "expected_fill_time"),
    [(FillModel.TOUCH, 2000), (FillModel.THROUGH, 3000)],
)
def test_gtc_limit_buy_rests_and_fills_at_its_own_price(fill_model, expected_fill_time):
    # Last trade 100 (reference price). Limit buy 2 @ 99 GTC is not marketable: it rests.
    # Print 99 x 5 at 2000 is AT the limit: fills under TOUCH only.
    # Print 98.5 x 5 at 3000 is THROUGH the limit: fills under THROUGH too, at 99 (the limit), not 98.5.
    ev = make_trades([(t(1000), 100, 1), (t(2000), 99, 5), (t(3000), 98.5, 5)])
    run = run_script(ev, [submit(BUY, 2, 99, at=0)], latency=LAT, fill_model=fill_model)
    coid = run.coids[0]
    assert run.report_kinds(coid) == [K.ACCEPTED, K.FILLED]
    assert fills_of(run, coid) == [(expected_fill_time, fx(99), fx(2), Liquidity.MAKER)]
    assert run.order(coid)["status"] == OrderStatus.FILLED
    assert_consistent(run)


def test_gtc_limit_sell_rests_and_fills_at_its_own_price_through_model():
    # Mirror image for a sell @ 101 under THROUGH: print at 101 does not fill, print at 101.5 does, at 101.
    ev = make_trades([(t(1000), 100, 1), (t(2000), 101, 5), (t(3000), 101.5, 5)])
    run = run_script(ev, [submit(SELL, 2, 101, at=0)], latency=LAT, fill_model=FillModel.THROUGH)
    assert fills_of(run, run.coids[0]) == [(3000, fx(101), fx(2), Liquidity.MAKER)]
    assert run.p.positions[0]["qty"] == -fx(2)


@pytest.mark.parametrize(
    ("fill_model", "expected"),
    [
        # TOUCH: ask 100 x 1 at 2000 touches the bid at 100: 1 fills; ask 99.5 x 4 at 3000: the other 1.
        (FillModel.TOUCH, [(2000, fx(100), fx(1), Liquidity.MAKER), (3000, fx(100), fx(1), Liquidity.MAKER)]),
        # THROUGH: only the ask at 99.5 (strictly through 100) fills it, both units, at 100.
        (FillModel.THROUGH, [(3000, fx(100), fx(2), Liquidity.MAKER)]),
    ],
)
def test_resting_order_fills_against_a_quote_that_reaches_it(fill_model, expected):
    ev = make_quotes([(t(1000), 99, 5, 101, 5), (t(2000), 99, 5, 100, 1), (t(3000), 98, 5, 99.5, 4)])
    run = run_script(ev, [submit(BUY, 2, 100, at=0)], latency=LAT, fill_model=fill_model)
    assert fills_of(run, run.coids[0]) == expected
    assert run.order(run.coids[0])["status"] == OrderStatus.FILLED
    assert_consistent(run)


def test_partial_fills_are_capped_by_each_print():
    # Limit buy 5 @ 99 (TOUCH). Prints: 99 x 2 at 2000, 99 x 1 at 3000, 98 x 4 at 4000.
    # Fills 2, 1, then the remaining 2, all @ 99; leaves 3, 2, 0.
    ev = make_trades([(t(1000), 100, 1), (t(2000), 99, 2), (t(3000), 99, 1), (t(4000), 98, 4)])
    run = run_script(ev, [submit(BUY, 5, 99, at=0)], latency=LAT)
    coid = run.coids[0]
    assert fills_of(run, coid) == [
        (2000, fx(99), fx(2), Liquidity.MAKER),
        (3000, fx(99), fx(1), Liquidity.MAKER),
        (4000, fx(99), fx(2), Liquidity.MAKER),
    ]
    reps = run.reports(coid)
    assert list(reps["kind"]) == [K.ACCEPTED, K.PARTIALLY_FILLED, K.PARTIALLY_FILLED, K.FILLED]
    assert list(reps["leaves_qty"][1:]) == [fx(3), fx(2), 0]
    o = run.order(coid)
    assert o["status"] == OrderStatus.FILLED
    assert o["filled"] == fx(5)
    assert o["avg_fill_price"] == pytest.approx(fx(99))
    assert run.p.positions[0]["open_buy"] == 0
    assert_consistent(run)


def test_resting_orders_share_a_print_in_time_priority():
    # A = buy 2 @ 99, then B = buy 2 @ 99. Print 99 x 3: A (first) gets 2, B gets 1.
    ev = make_trades([(t(1000), 100, 1), (t(2000), 99, 3)])
    run = run_script(ev, [submit(BUY, 2, 99, at=0), submit(BUY, 2, 99, at=0)], latency=LAT)
    a, b = run.coids
    assert fills_of(run, a) == [(2000, fx(99), fx(2), Liquidity.MAKER)]
    assert fills_of(run, b) == [(2000, fx(99), fx(1), Liquidity.MAKER)]
    assert run.order(b)["status"] == OrderStatus.PARTIALLY_FILLED
    assert run.p.positions[0]["open_buy"] == fx(1)
    assert_consistent(run)


def test_marketable_gtc_limit_on_trades_only_history_takes_the_next_print():
    # Last trade 100. A GTC buy 2 @ 102 is priced through it: aggressive. Module doc: with no quote
    # it waits for the next print and takes it at the print's price. Print 101 x 5 at 2000:
    # expected fill 2 @ 101 TAKER. Actual: 2 @ 102 MAKER.
    ev = make_trades([(t(1000), 100, 1), (t(2000), 101, 5)])
    run = run_script(ev, [submit(BUY, 2, 102, at=0)], latency=LAT)
    assert fills_of(run, run.coids[0]) == [(2000, fx(101), fx(2), Liquidity.TAKER)]


# --------------------------------------------------------------------------- bars


@pytest.mark.parametrize(
    ("fill_model", "expected"),
    [
        # TOUCH: the bar at 2000 (low 99) reaches the buy @ 99: 2 of the bar's volume 2; then 1 more at 3000.
        (FillModel.TOUCH, [(2000, fx(99), fx(2), Liquidity.MAKER), (3000, fx(99), fx(1), Liquidity.MAKER)]),
        # THROUGH: only the bar at 3000 (low 98.5) is through 99: all 3 (volume 10).
        (FillModel.THROUGH, [(3000, fx(99), fx(3), Liquidity.MAKER)]),
    ],
)
def test_resting_order_fills_on_a_bar_range_capped_by_volume(fill_model, expected):
    # Bars (open, high, low, close, volume): close 100 at 1000; 99.5/100/99/99.5 vol 2 at 2000;
    # 99/99.5/98.5/99 vol 10 at 3000. Buy 3 @ 99 decided on the first bar.
    ev = make_bars([(t(1000), 100, 100.5, 99.5, 100, 10), (t(2000), 99.5, 100, 99, 99.5, 2),
                    (t(3000), 99, 99.5, 98.5, 99, 10)])
    run = run_script(ev, [submit(BUY, 3, 99, at=0)], latency=LAT, fill_model=fill_model)
    assert fills_of(run, run.coids[0]) == expected
    assert_consistent(run)


def test_market_order_on_bars_only_history_gets_one_bar_then_expires():
    # Market buy 5 decided on the bar at 1000 (seen 1010), at the exchange at 1030: no quote, so it
    # waits. The bar at 2000 (open 100, volume 2) fills 2 @ 100 (the open); the rest must expire.
    ev = make_bars([(t(1000), 100, 101, 99, 100, 10), (t(2000), 100, 101, 99, 100.5, 2),
                    (t(3000), 101, 102, 100, 101, 10)])
    run = run_script(ev, [market(BUY, 5, at=0)], latency=LAT)
    coid = run.coids[0]
    assert fills_of(run, coid) == [(2000, fx(100), fx(2), Liquidity.TAKER)]
    assert run.report_kinds(coid) == [K.ACCEPTED, K.PARTIALLY_FILLED, K.EXPIRED]


# --------------------------------------------------------------------------- IOC, FOK, post-only


def test_ioc_takes_what_is_there_and_expires_the_rest():
    # Ask 101 x 3. IOC buy 5 @ 102 takes 3 at the touch price 101 (not its limit), 2 expire.
    # IOC buy 1 @ 100 is not marketable (ask 101): accepted, then expired, no fill.
    ev = make_quotes([(t(1000), 99, 5, 101, 3)])
    run = run_script(
        ev,
        [submit(BUY, 5, 102, at=0, tif=TimeInForce.IOC), submit(BUY, 1, 100, at=0, tif=TimeInForce.IOC)],
        latency=LAT,
    )
    a, b = run.coids
    assert run.report_kinds(a) == [K.ACCEPTED, K.PARTIALLY_FILLED, K.EXPIRED]
    assert fills_of(run, a) == [(1030, fx(101), fx(3), Liquidity.TAKER)]
    assert run.report_kinds(b) == [K.ACCEPTED, K.EXPIRED]
    assert fills_of(run, b) == []
    assert run.order(a)["status"] == OrderStatus.EXPIRED
    assert run.order(b)["status"] == OrderStatus.EXPIRED
    assert run.p.positions[0]["qty"] == fx(3)
    assert run.p.positions[0]["open_buy"] == 0
    assert_consistent(run)


def test_fok_fills_completely_or_expires_without_a_fill():
    # Ask 101 x 3. FOK buy 5 @ 101 cannot fill completely: accepted, expired, nothing taken.
    # FOK buy 3 @ 101 right after: the whole 3 are still there, so it fills completely.
    ev = make_quotes([(t(1000), 99, 5, 101, 3)])
    run = run_script(
        ev,
        [submit(BUY, 5, 101, at=0, tif=TimeInForce.FOK), submit(BUY, 3, 101, at=0, tif=TimeInForce.FOK)],
        latency=LAT,
    )
    a, b = run.coids
    assert run.report_kinds(a) == [K.ACCEPTED, K.EXPIRED]
    assert fills_of(run, a) == []
    assert run.order(a)["status"] == OrderStatus.EXPIRED
    assert run.report_kinds(b) == [K.ACCEPTED, K.FILLED]
    assert fills_of(run, b) == [(1030, fx(101), fx(3), Liquidity.TAKER)]
    assert run.order(b)["status"] == OrderStatus.FILLED
    assert_consistent(run)


def test_fok_on_trades_only_history_never_fills_partially():
    # Trades only, last 100. FOK buy 5 @ 100 is marketable against the last trade, so it waits for
    # the next print. The print at 2000 is 100 x 2: too small to fill 5 at once.
    # Expected: no partial fill at all; the order ends EXPIRED with filled 0 (or FILLED with 5 at once).
    ev = make_trades([(t(1000), 100, 1), (t(2000), 100, 2), (t(3000), 100, 10)])
    run = run_script(ev, [submit(BUY, 5, 100, at=0, tif=TimeInForce.FOK)], latency=LAT)
    coid = run.coids[0]
    sizes = [f[2] for f in fills_of(run, coid)]
    assert sizes in ([], [fx(5)])
    assert K.PARTIALLY_FILLED not in run.report_kinds(coid)


def test_ioc_on_trades_only_history_gets_one_print_then_expires():
    # Trades only, last 100. IOC buy 5 @ 100 waits for the next print (module doc: "an IOC waiting
    # on a trades-only history gets one print, then expires"). The print at 2000 is at 101, beyond
    # its limit: nothing fills, and the IOC must expire there. Actual: it keeps waiting and fills
    # 5 @ 99 at 3000, a whole print later.
    ev = make_trades([(t(1000), 100, 1), (t(2000), 101, 2), (t(3000), 99, 10)])
    run = run_script(ev, [submit(BUY, 5, 100, at=0, tif=TimeInForce.IOC)], latency=LAT)
    coid = run.coids[0]
    assert fills_of(run, coid) == []
    assert run.report_kinds(coid) == [K.ACCEPTED, K.EXPIRED]


def test_post_only_that_would_take_is_rejected():
    # Ask 101. A post-only buy @ 101 would take: REJECTED with POST_ONLY_WOULD_TAKE.
    # A post-only buy @ 100 would not: accepted, and it rests.
    ev = make_quotes([(t(1000), 99, 5, 101, 3)])
    run = run_script(
        ev,
        [
            submit(BUY, 1, 101, at=0, flags=OrderFlag.POST_ONLY),
            submit(BUY, 1, 100, at=0, flags=OrderFlag.POST_ONLY),
        ],
        latency=LAT,
    )
    a, b = run.coids
    reps = run.reports(a)
    assert list(reps["kind"]) == [K.REJECTED]
    assert reps[0]["flags"] == RejectReason.POST_ONLY_WOULD_TAKE
    assert reps[0]["ts_event"] - T0 == 1030 and reps[0]["ts_recv"] - T0 == 1060
    oa = run.order(a)
    assert oa["status"] == OrderStatus.REJECTED
    assert oa["reject_reason"] == RejectReason.POST_ONLY_WOULD_TAKE
    assert run.report_kinds(b) == [K.ACCEPTED]
    assert run.order(b)["status"] == OrderStatus.ACCEPTED
    assert len(run.fills) == 0
    assert run.p.positions[0]["open_buy"] == fx(1)  # only b is working
    assert run.p.counters[Counter.REJECTS_VENUE] == 1
    assert run.p.exec_state[0]["n_open"] == 1


def test_post_only_sell_that_would_take_on_trades_only_history_is_rejected():
    # No quote; last trade 100. A post-only sell @ 99.5 is marketable against the last trade.
    ev = make_trades([(t(1000), 100, 1)])
    run = run_script(ev, [submit(SELL, 1, 99.5, at=0, flags=OrderFlag.POST_ONLY)], latency=LAT)
    reps = run.reports(run.coids[0])
    assert list(reps["kind"]) == [K.REJECTED]
    assert reps[0]["flags"] == RejectReason.POST_ONLY_WOULD_TAKE


# --------------------------------------------------------------------------- cancel


def test_cancel_of_a_resting_order():
    # Buy 1 @ 99 accepted at 1030 (report seen at 1060); the cancel is decided on that report
    # (1060), reaches the exchange at 1080, CANCELED comes back at 1110.
    ev = make_trades([(t(1000), 100, 1), (t(2000), 99, 5)])
    run = run_script(ev, [submit(BUY, 1, 99, at=0), cancel(0, ts=t(1060))], latency=LAT)
    coid = run.coids[0]
    cancels = run.cmds(CommandKind.CANCEL)
    assert len(cancels) == 1 and cancels[0]["client_order_id"] == coid
    assert cancels[0]["ts_event"] - T0 == 1060
    reps = run.reports(coid)
    assert list(reps["kind"]) == [K.ACCEPTED, K.CANCELED]
    assert reps[1]["ts_event"] - T0 == 1080 and reps[1]["ts_recv"] - T0 == 1110
    assert run.order(coid)["status"] == OrderStatus.CANCELED
    assert len(run.fills) == 0  # the print at 2000 comes after the cancel
    assert run.p.positions[0]["open_buy"] == 0
    assert run.p.exec_state[0]["n_open"] == 0


def test_cancel_after_fill_is_rejected_and_order_stays_filled():
    # Buy 1 @ 99 rests (accepted at 1030). Print 99 x 5 at 2000 fills it at the exchange; the fill
    # report reaches the strategy at 2030. The strategy sees the print at 2010 and cancels (its
    # order is still ACCEPTED there -> PENDING_CANCEL). The cancel reaches the exchange at 2030
    # (order commands go before reports at equal times): the order is gone, CANCEL_REJECTED
    # UNKNOWN_ORDER, back at 2060. The fill (2030) makes the order FILLED; the late refusal is
    # the expected end of that race and leaves the order FILLED, not an anomaly to count.
    ev = make_trades([(t(1000), 100, 1), (t(2000), 99, 5)])
    run = run_script(ev, [submit(BUY, 1, 99, at=0), cancel(0, ts=t(2010))], latency=LAT)
    coid = run.coids[0]
    reps = run.reports(coid)
    assert list(reps["kind"]) == [K.ACCEPTED, K.FILLED, K.CANCEL_REJECTED]
    assert list(reps["ts_recv"] - T0) == [1060, 2030, 2060]
    assert reps[2]["flags"] == RejectReason.UNKNOWN_ORDER
    o = run.order(coid)
    assert o["status"] == OrderStatus.FILLED
    assert o["filled"] == fx(1)
    assert run.p.counters[Counter.ILLEGAL_TRANSITIONS] == 0
    assert run.p.positions[0]["qty"] == fx(1)
    assert run.p.positions[0]["open_buy"] == 0
    assert run.p.exec_state[0]["n_open"] == 0
    assert_consistent(run)


def test_cancel_before_acknowledgement_of_a_resting_order():
    # Submit and cancel on the same input: both reach the exchange at 1030 in that order.
    ev = make_trades([(t(1000), 100, 1)])
    run = run_script(ev, [submit(BUY, 1, 99, at=0), cancel(0, at=0)], latency=LAT)
    coid = run.coids[0]
    assert run.report_kinds(coid) == [K.ACCEPTED, K.CANCELED]
    assert run.order(coid)["status"] == OrderStatus.CANCELED
    assert run.p.positions[0]["open_buy"] == 0
    assert run.p.exec_state[0]["n_open"] == 0


def test_rejected_order_with_cancel_in_flight_ends_rejected():
    # Post-only buy @ 101 against ask 101, cancelled on the same input (before any ack).
    # Exchange at 1030: the order is REJECTED (POST_ONLY_WOULD_TAKE, flags 6), then the cancel is
    # REJECTED (UNKNOWN_ORDER, flags 8). Expected: the order ends REJECTED, with nothing working.
    # Actual: PENDING_CANCEL + REJECTED -> ACCEPTED, and the second REJECTED is illegal from
    # ACCEPTED, so the order stays ACCEPTED with open_buy = 1 (risk counts it forever).
    ev = make_quotes([(t(1000), 99, 5, 101, 3)])
    run = run_script(
        ev, [submit(BUY, 1, 101, at=0, flags=OrderFlag.POST_ONLY), cancel(0, at=0)], latency=LAT
    )
    coid = run.coids[0]
    assert [int(f) for f in run.reports(coid)["flags"]] == [RejectReason.POST_ONLY_WOULD_TAKE,
                                                             RejectReason.UNKNOWN_ORDER]
    assert run.order(coid)["status"] == OrderStatus.REJECTED
    assert run.p.positions[0]["open_buy"] == 0
    assert run.p.exec_state[0]["n_open"] == 0


# --------------------------------------------------------------------------- modify


def test_modify_reprices_and_resizes_a_resting_order():
    # Buy 2 @ 99.5 rests (bid 99 / ask 101). On its ACCEPTED (seen at 1060) modify to 3 @ 100:
    # at the exchange at 1080, MODIFIED (price 100, leaves 3) back at 1110.
    ev = make_quotes([(t(1000), 99, 5, 101, 5)])
    run = run_script(ev, [submit(BUY, 2, 99.5, at=0), modify(0, 100, 3, ts=t(1060))], latency=LAT)
    coid = run.coids[0]
    mods = run.cmds(CommandKind.MODIFY)
    assert len(mods) == 1
    assert (mods[0]["price"], mods[0]["size"], mods[0]["ts_event"] - T0) == (fx(100), fx(3), 1060)
    reps = run.reports(coid)
    assert list(reps["kind"]) == [K.ACCEPTED, K.MODIFIED]
    assert (reps[1]["price"], reps[1]["leaves_qty"]) == (fx(100), fx(3))
    assert (reps[1]["ts_event"] - T0, reps[1]["ts_recv"] - T0) == (1080, 1110)
    o = run.order(coid)
    assert o["status"] == OrderStatus.ACCEPTED
    assert (o["price"], o["size"], o["leaves"]) == (fx(100), fx(3), fx(3))
    assert run.p.positions[0]["open_buy"] == fx(3)
    assert o["reserved"] == 0


def test_modify_loses_time_priority():
    # A = buy 2 @ 99 then B = buy 2 @ 99, both resting. A is modified to the same 2 @ 99 on its
    # ACCEPTED (1060; exchange 1080): it goes behind B. Print 99 x 3 at 2000: B fills 2, A only 1.
    ev = make_trades([(t(1000), 100, 1), (t(2000), 99, 3)])
    run = run_script(
        ev, [submit(BUY, 2, 99, at=0), submit(BUY, 2, 99, at=0), modify(0, 99, 2, ts=t(1060))], latency=LAT
    )
    a, b = run.coids[:2]
    assert run.report_kinds(a)[:2] == [K.ACCEPTED, K.MODIFIED]
    assert fills_of(run, b) == [(2000, fx(99), fx(2), Liquidity.MAKER)]
    assert fills_of(run, a) == [(2000, fx(99), fx(1), Liquidity.MAKER)]
    assert_consistent(run)


def test_marketable_modify_fills():
    # Buy 2 @ 100 rests under ask 101 x 5; modified to 2 @ 101 it crosses: MODIFIED then a taker
    # fill of 2 @ 101 at 1080.
    ev = make_quotes([(t(1000), 99, 5, 101, 5)])
    run = run_script(ev, [submit(BUY, 2, 100, at=0), modify(0, 101, 2, ts=t(1060))], latency=LAT)
    coid = run.coids[0]
    assert run.report_kinds(coid) == [K.ACCEPTED, K.MODIFIED, K.FILLED]
    assert fills_of(run, coid) == [(1080, fx(101), fx(2), Liquidity.TAKER)]
    assert run.order(coid)["status"] == OrderStatus.FILLED
    assert run.p.positions[0]["open_buy"] == 0
    assert_consistent(run)


def test_post_only_modify_that_would_take_is_rejected_and_order_keeps_working():
    # Post-only buy 1 @ 100 rests; the modify to 101 would take: REJECTED (POST_ONLY_WOULD_TAKE),
    # the order keeps resting at 100 and is ACCEPTED again in the pipeline.
    ev = make_quotes([(t(1000), 99, 5, 101, 5)])
    run = run_script(
        ev, [submit(BUY, 1, 100, at=0, flags=OrderFlag.POST_ONLY), modify(0, 101, 1, ts=t(1060))], latency=LAT
    )
    coid = run.coids[0]
    reps = run.reports(coid)
    assert list(reps["kind"]) == [K.ACCEPTED, K.CANCEL_REJECTED]
    assert reps[1]["flags"] == RejectReason.POST_ONLY_WOULD_TAKE
    o = run.order(coid)
    assert o["status"] == OrderStatus.ACCEPTED
    assert o["price"] == fx(100)
    assert run.p.positions[0]["open_buy"] == fx(1)


def test_modify_of_a_filled_order_is_rejected_unknown():
    # Buy 1 @ 99 fills on the print at 2000 (report at 2030); a modify decided at 2010 (order still
    # ACCEPTED in the pipeline) reaches the exchange at 2030 and is refused as UNKNOWN_ORDER.
    ev = make_trades([(t(1000), 100, 1), (t(2000), 99, 5)])
    run = run_script(ev, [submit(BUY, 1, 99, at=0), modify(0, 98, 1, ts=t(2010))], latency=LAT)
    coid = run.coids[0]
    reps = run.reports(coid)
    assert list(reps["kind"]) == [K.ACCEPTED, K.FILLED, K.CANCEL_REJECTED]
    assert reps[2]["flags"] == RejectReason.UNKNOWN_ORDER
    assert run.order(coid)["status"] == OrderStatus.FILLED
    assert run.p.positions[0]["open_buy"] == 0


def test_modify_of_partially_filled_order_stays_partially_filled():
    # Buy 3 @ 99; print 99 x 1 at 2000 fills 1 (report 2030). Modify to 3 @ 98 on that report:
    # MODIFIED back at 2080 (leaves 2). The order has filled 1 of 3: PARTIALLY_FILLED expected.
    ev = make_trades([(t(1000), 100, 1), (t(2000), 99, 1)])
    run = run_script(ev, [submit(BUY, 3, 99, at=0), modify(0, 98, 3, ts=t(2030))], latency=LAT)
    coid = run.coids[0]
    assert run.report_kinds(coid) == [K.ACCEPTED, K.PARTIALLY_FILLED, K.MODIFIED]
    o = run.order(coid)
    assert (o["filled"], o["leaves"], o["price"]) == (fx(1), fx(2), fx(98))
    assert o["status"] == OrderStatus.PARTIALLY_FILLED


# --------------------------------------------------------------------------- fees


def test_maker_and_taker_fees_are_exact_in_fixed_point():
    # maker rate -0.0002 (a rebate), taker rate 0.001.
    # Market buy 3 takes 3 @ 101: taker fee 0.001 * 101 * 3 = 0.303 -> 303_000_000.
    # Sell 2 @ 102 rests (bid 99) and fills on the print 102 x 2 at 2000 (TOUCH):
    # maker fee -0.0002 * 102 * 2 = -0.0408 -> -40_800_000.
    ev = merge(make_quotes([(t(1000), 99, 5, 101, 5)]), make_trades([(t(2000), 102, 2)]))
    run = run_script(ev, [market(BUY, 3, at=0), submit(SELL, 2, 102, at=0)], latency=LAT, fees=(-0.0002, 0.001))
    buy, sell = run.coids
    f = run.fills
    assert len(f) == 2
    assert (f[0]["client_order_id"], f[0]["liquidity"], f[0]["fee"]) == (buy, Liquidity.TAKER, 303_000_000)
    assert (f[1]["client_order_id"], f[1]["liquidity"], f[1]["fee"]) == (sell, Liquidity.MAKER, -40_800_000)
    pos = run.p.positions[0]
    assert pos["fees"] == pytest.approx(0.303 - 0.0408, abs=1e-12)
    # Position +3 @ 101, then sell 2 @ 102: realized 2 * (102 - 101) = 2; 1 left, marked at the mid 100.
    assert pos["qty"] == fx(1)
    assert pos["realized_pnl"] == pytest.approx(2.0)
    assert pos["unrealized_pnl"] == pytest.approx(-1.0)
    # Cash flows: -303 - 0.303 + 204 + 0.0408, plus 1 unit at 100: equity = 1e6 + 0.7378.
    assert run.p.portfolio[0]["equity"] == pytest.approx(1_000_000.7378, abs=1e-6)


@pytest.mark.parametrize(
    ("rate", "price", "size", "expected"),
    [
        (0.001, 101, 3, 303_000_000),
        (0.0004, 27_123.45, 0.013, 141_041_940),  # 0.0004 * 27123.45 * 0.013 = 0.14104194
        (0.00035, 101.37, 3.3, 117_082_350),  # 0.00035 * 101.37 * 3.3 = 0.11708235
        (-0.0001, 0.5, 7, -350_000),  # rebate: -0.0001 * 0.5 * 7 = -0.00035
    ],
)
def test_taker_fee_is_rate_times_notional(rate, price, size, expected):
    ev = make_quotes([(t(1000), price * 0.99, 100, price, 100)])
    run = run_script(ev, [market(BUY, size, at=0)], latency=LAT, fees=(0.0, rate))
    assert len(run.fills) == 1
    assert run.fills[0]["price"] == fx(price)
    assert run.fills[0]["fee"] == expected
    assert run.reports(run.coids[0])[1]["fee"] == expected


# --------------------------------------------------------------------------- latency


def test_constant_latency_on_every_channel():
    # Quotes at 1000 and 1050; buy 1 @ 100 rests (decided at 1010 on the first quote).
    # feed 10: the quotes reach the strategy at 1010 and 1060.
    # order 20: the SUBMIT (decision 1010) reaches the exchange at 1030 -> ACCEPTED ts_event 1030.
    # response 30: ACCEPTED reaches the strategy at 1060. At 1060 the report and the second quote
    # tie: reports (rule 3) go before market data reaching the strategy (rule 4).
    ev = make_quotes([(t(1000), 99, 5, 101, 5), (t(1050), 99, 5, 101, 5)])
    run = run_script(ev, [submit(BUY, 1, 100, at=0)], latency=LAT)
    ev_seen = run.events
    assert list(ev_seen["kind"]) == [K.QUOTE, K.ACCEPTED, K.QUOTE]
    assert list(ev_seen["ts_event"] - T0) == [1000, 1030, 1050]
    assert list(ev_seen["ts_recv"] - T0) == [1010, 1060, 1060]
    sub = run.cmds(CommandKind.SUBMIT)
    assert len(sub) == 1 and sub[0]["ts_event"] - T0 == 1010
    assert list(run.commands["input_index"]) == [0]


@pytest.mark.parametrize("latency", [(0, 0, 0), (7, 1_000, 250), (5_000, 3, 11)])
def test_latency_arithmetic_holds_for_every_record(latency):
    feed, order, response = latency
    ev = merge(
        make_quotes([(t(1000), 99, 5, 101, 5), (t(4000), 99, 5, 100, 5), (t(9000), 99, 5, 101, 5)]),
        make_trades([(t(2000), 100, 1), (t(6000), 99, 3)]),
    )
    run = run_script(ev, [submit(BUY, 1, 99.5, at=0), market(SELL, 1, at=1), submit(SELL, 1, 100.5, at=2)],
                     latency=latency)
    seen = run.events
    data = seen[(seen["kind"] == K.QUOTE) | (seen["kind"] == K.TRADE)]
    np.testing.assert_array_equal(data["ts_recv"], data["ts_event"] + feed)
    # Each report's exchange time is its order command's decision time + order latency (for the
    # order's first report) and it reaches the strategy response latency later.
    reps = run.reports()
    assert len(reps) > 0
    np.testing.assert_array_equal(reps["ts_recv"], reps["ts_event"] + response)
    decided = {int(c["client_order_id"]): int(c["ts_event"]) for c in run.cmds(CommandKind.SUBMIT)}
    for coid, d in decided.items():
        first = run.reports(coid)[0]
        assert first["ts_event"] == d + order
    # Each command's decision time is the ts_recv of the input it was decided on.
    for j in run.commands:
        assert j["command"]["ts_event"] == seen[j["input_index"]]["ts_recv"]
    assert np.all(np.diff(seen["ts_recv"]) >= 0)


def _random_latency_run(seed: int):
    ev = merge(
        make_quotes([(t(1000 * k), 99 + (k % 3), 5, 101 + (k % 3), 5) for k in range(1, 30)]),
        make_trades([(t(1000 * k + 500), 100 + (k % 3), 2) for k in range(1, 30)]),
    )
    script = [submit(BUY, 1, 100, at=k) for k in range(0, 20, 3)] + [market(SELL, 1, at=k) for k in range(1, 20, 4)]
    return run_script(
        ev, script, latency=(100, 200, 300), jitter=(2_000.0, 3_000.0, 1_000.0),
        latency_model=LatencyModel.RANDOM, seed=seed,
    )


def test_seeded_random_latency_is_deterministic_and_depends_on_the_seed():
    a1, a2, b = _random_latency_run(1), _random_latency_run(1), _random_latency_run(2)
    assert a1.journal_hash == a2.journal_hash
    np.testing.assert_array_equal(a1.events.view(np.uint8), a2.events.view(np.uint8))
    assert a1.journal_hash != b.journal_hash
    for run in (a1, b):
        seen = run.events
        data = seen[(seen["kind"] == K.QUOTE) | (seen["kind"] == K.TRADE)]
        lat = data["ts_recv"] - data["ts_event"]
        assert np.all(lat >= 100)  # base + a non-negative jitter
        assert len(np.unique(lat)) > 1  # the jitter is really random
        reps = run.reports()
        assert np.all(reps["ts_recv"] - reps["ts_event"] >= 300)
        # Every channel is FIFO: arrival times never go backwards.
        assert np.all(np.diff(data["ts_recv"]) >= 0)
        assert np.all(np.diff(reps["ts_recv"]) >= 0)
        assert np.all(np.diff(seen["ts_recv"]) >= 0)
        assert run.p.counters[Counter.OUT_OF_ORDER] == 0
    a_data = a1.events[a1.events["kind"] == K.QUOTE]["ts_recv"]
    b_data = b.events[b.events["kind"] == K.QUOTE]["ts_recv"]
    assert not np.array_equal(a_data, b_data)


def test_what_a_strategy_sends_never_changes_when_it_sees_the_market():
    # Each latency channel draws from its own seeded stream, so the random feed latency of
    # every data row is the same whether the strategy trades or stays silent: two strategies
    # compared on the same data see the same market timing, and the order in which the loop
    # serves channels at equal times cannot change any draw.
    ev = merge(
        make_quotes([(t(1000 * k), 99 + (k % 3), 5, 101 + (k % 3), 5) for k in range(1, 30)]),
        make_trades([(t(1000 * k + 500), 100 + (k % 3), 2) for k in range(1, 30)]),
    )
    kw = dict(latency=(100, 200, 300), jitter=(2_000.0, 3_000.0, 1_000.0), latency_model=LatencyModel.RANDOM, seed=5)
    trading = run_script(ev, [submit(BUY, 1, 100, at=k) for k in range(0, 20, 2)], **kw)
    silent = run_script(ev, [], **kw)
    assert len(trading.reports()) > 0 and len(silent.reports()) == 0

    def data_arrivals(run):
        seen = run.events
        return seen[(seen["kind"] == K.QUOTE) | (seen["kind"] == K.TRADE)][["ts_event", "ts_recv"]]

    np.testing.assert_array_equal(data_arrivals(trading), data_arrivals(silent))


def test_order_before_any_market_data_is_refused_by_risk_not_sent():
    # Decided on a CONTROL event with no market data before it: risk has no reference price (NO_MARKET).
    ev = merge(make_control(t(500), ControlCode.KILL_SWITCH_OFF), make_trades([(t(1000), 100, 1)]))
    run = run_script(ev, [submit(BUY, 1, 99, at=0)], latency=LAT)
    alerts = run.cmds(CommandKind.ALERT)
    assert len(alerts) == 1 and alerts[0]["reason"] == RejectReason.NO_MARKET
    assert len(run.cmds(CommandKind.SUBMIT)) == 0
    assert run.order(run.coids[0])["status"] == OrderStatus.REJECTED


def test_order_type_is_carried_to_fills():
    ev = make_quotes([(t(1000), 99, 5, 101, 5)])
    run = run_script(ev, [market(BUY, 1, at=0), submit(BUY, 1, 101, at=0, tif=TimeInForce.IOC)], latency=LAT)
    assert list(run.fills["order_type"]) == [OrderType.MARKET, OrderType.LIMIT]
    assert list(run.fills["side"]) == [BUY, BUY]


def test_the_venue_book_indexed_on_every_row_is_a_power_of_two():
    """``ex.market[v, i]`` is addressed on every data row; at 128 bytes one shift does it."""
    assert EX_MARKET_DTYPE.itemsize == INSTRUMENT_RECORD_BYTES and EX_MARKET_DTYPE.isalignedstruct
