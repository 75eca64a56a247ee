"""Each check and breaker trigger in a backtest: a runaway strategy, duplicates, stale
data, the price band, slippage protection, the reject rate and the fill rate.

Backtests run the scripted strategy (tests/sim/scripted.py) with constant latencies
feed 10, order 20, response 30 ns; times are offsets from ``T0``.
"""

from __future__ import annotations

import numpy as np
from risk_cases import BUY, LAT, SELL, R, alerts
from scripted import T0, make_quotes, make_trades, market, merge, run_script, submit

from app.risk_config import limits_summary
from framework.events import CommandKind, OrderType, TimeInForce, to_fixed
from framework.report import format_summary
from framework.risk.records import BreakerState, Trip

MS = 1_000_000
S = 1_000_000_000


def test_a_runaway_strategy_sends_no_more_than_the_throttle_allows_and_trips_the_breaker():
    # Quotes every 10 ms for 3 s; the strategy submits a passive buy on every one of them.
    quotes = make_quotes([(T0 + k * 10 * MS, 99, 5, 101, 5) for k in range(300)])
    script = [submit(BUY, 0.001, 90 + (k % 5), ts=T0 + k * 10 * MS) for k in range(300)]
    run = run_script(quotes, script, latency=LAT, collar=0.5, order_capacity=1024,
                     instrument_limits={"max_messages_per_s": (5,)})
    submits = run.cmds(CommandKind.SUBMIT)
    assert len(submits) == 5  # then a sixth within the second is throttled, which halts trading
    rs = run.p.risk_state[0]
    assert rs["breaker"] == BreakerState.HALTED and rs["trip"] == Trip.THROTTLE
    refused = dict(alerts(run))
    assert list(refused.values()).count(R.THROTTLE) == 1
    assert all(r in (R.THROTTLE, R.BREAKER_HALTED) for r in refused.values())
    summary = format_summary({"meta": {"risk": limits_summary(run.p)}})
    assert "risk" in summary and "halted (tripped by throttle, 1 trips)" in summary


def test_the_throttle_is_a_sliding_window_when_it_only_rejects():
    # 3 per second, breaker left ACTIVE: any 1 s window holds at most 3 orders, and orders
    # flow again as the window slides.
    quotes = make_quotes([(T0 + k * 100 * MS, 99, 5, 101, 5) for k in range(40)])
    script = [submit(BUY, 0.001, 95, ts=T0 + k * 100 * MS) for k in range(40)]
    run = run_script(quotes, script, latency=LAT, collar=0.5, instrument_limits={"max_messages_per_s": (3,)},
                     portfolio_limits={"on_throttle": BreakerState.ACTIVE})
    ts = run.cmds(CommandKind.SUBMIT)["ts_event"]
    assert len(ts) >= 10
    for k in range(len(ts) - 3):
        assert ts[k + 3] - ts[k] >= S
    assert run.p.risk_state[0]["breaker"] == BreakerState.ACTIVE


def test_a_duplicate_within_the_window_is_refused():
    quotes = make_quotes([(T0 + k * MS, 99, 5, 101, 5) for k in range(5)])
    run = run_script(quotes, [submit(BUY, 1, 99, ts=T0), submit(BUY, 1, 99, ts=T0 + MS),
                              submit(BUY, 2, 99, ts=T0 + MS), submit(BUY, 1, 99, ts=T0 + 4 * MS)],
                     latency=LAT, instrument_limits={"duplicate_window_ns": (3 * MS,)})
    a, dup, other, later = run.coids
    assert alerts(run) == [(dup, R.DUPLICATE_ORDER)]
    assert set(run.cmds(CommandKind.SUBMIT)["client_order_id"]) == {a, other, later}


def test_no_order_against_stale_data_and_the_breaker_trips():
    # Max age 1 s. Instrument 0 quotes at 0 and 5 s and trades at 2 s: an order at 2 s sees
    # fresh data; one at 3.5 s (woken by instrument 1's trade) sees data 1.5 s old and is
    # refused, which trips the breaker to REDUCING, so a buy at 5 s (fresh data again) is
    # still refused: it would add exposure.
    quotes = make_quotes([(T0, 99, 5, 101, 5), (T0 + 5 * S, 99, 5, 101, 5)])
    trades = merge(make_trades([(T0 + 2 * S, 100, 1)]), make_trades([(T0 + 3 * S + S // 2, 50, 1)], 1))
    script = [submit(BUY, 1, 99, ts=T0 + 2 * S), submit(BUY, 1, 99, ts=T0 + 3 * S + S // 2),
              submit(BUY, 1, 99, ts=T0 + 5 * S)]
    run = run_script(merge(quotes, trades), script, latency=LAT, n_instruments=2,
                     instrument_limits={"max_data_age_ns": (S,)})
    fresh, stale, after = run.coids
    assert list(run.cmds(CommandKind.SUBMIT)["client_order_id"]) == [fresh]
    assert alerts(run) == [(stale, R.STALE_DATA), (after, R.BREAKER_REDUCING)]
    rs = run.p.risk_state[0]
    assert rs["breaker"] == BreakerState.REDUCING and rs["trip"] == Trip.STALE_DATA


def test_the_price_band_holds_prices_near_the_window_start():
    # Band 2% over 1 s: the anchor is 100 (mid at the first quote); the market drifts to 103
    # within the window, and a buy at 103 is out of band although within the 5% collar.
    quotes = make_quotes([(T0, 99, 5, 101, 5), (T0 + 100 * MS, 102, 5, 104, 5), (T0 + 2 * S, 102, 5, 104, 5)])
    run = run_script(quotes, [submit(BUY, 1, 103, at=1), submit(BUY, 1, 103, at=2)], latency=LAT, collar=0.05,
                     instrument_limits={"price_band": (0.02,), "band_window_ns": (S,)})
    early, late = run.coids
    assert alerts(run) == [(early, R.PRICE_BAND)]  # the next window re-anchors at 103
    assert list(run.cmds(CommandKind.SUBMIT)["client_order_id"]) == [late]


def test_slippage_protection_sends_market_orders_as_capped_ioc_limits():
    quotes = make_quotes([(T0, 99, 1, 101, 1), (T0 + MS, 99, 1, 101, 1)])
    run = run_script(quotes, [market(BUY, 3, at=0)], latency=LAT, instrument_limits={"max_slippage": (0.015,)})
    (cmd,) = run.cmds(CommandKind.SUBMIT)
    assert cmd["order_type"] == OrderType.LIMIT and cmd["tif"] == TimeInForce.IOC
    assert cmd["price"] == to_fixed(101.5)  # mid 100 + 1.5%
    assert run.p.positions[0]["qty"] == to_fixed(1)  # only the 1 offered at 101 fills; the rest is canceled


def test_a_high_reject_rate_halts_trading():
    # Half of the orders break the size limit; with a 40% limit over 4 decisions the breaker halts.
    quotes = make_quotes([(T0 + k * MS, 99, 5, 101, 5) for k in range(10)])
    script = [submit(BUY, 9 if k % 2 else 1, 95, ts=T0 + k * MS) for k in range(8)]
    run = run_script(quotes, script, latency=LAT, max_order_size=5,
                     portfolio_limits={"max_reject_rate": 0.4, "reject_window": 4})
    rs = run.p.risk_state[0]
    assert rs["breaker"] == BreakerState.HALTED and rs["trip"] == Trip.REJECT_RATE
    assert run.p.reject_counts[R.BREAKER_HALTED] > 0


def test_too_many_fills_per_second_halt_trading():
    quotes = make_quotes([(T0 + k * MS, 99, 5, 101, 5) for k in range(10)])
    script = [market(BUY if k % 2 else SELL, 1, ts=T0 + k * MS) for k in range(8)]
    run = run_script(quotes, script, latency=LAT, instrument_limits={"max_fills_per_s": (3,)})
    rs = run.p.risk_state[0]
    assert rs["breaker"] == BreakerState.HALTED and rs["trip"] == Trip.FILL_RATE
    assert len(run.fills) == 4  # the fourth fill within a second trips; what follows is refused
    assert np.all([r == R.BREAKER_HALTED for _, r in alerts(run)])
