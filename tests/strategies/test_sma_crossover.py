"""SMA crossover: exact streaming averages, and one market order of the right size per crossing."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numba import njit

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "sim"))

from scripted import T0, make_quotes, make_trades, merge, run_strategy, signed_fill_qty  # noqa: E402

import strategies.sma_crossover as sma  # noqa: E402
from framework.events import CommandKind, OrderType, Side, TimeInForce, to_fixed  # noqa: E402

LAT = (10, 20, 30)


def fx(x: float) -> int:
    return to_fixed(x)


@njit
def _push_all(state, window, fast, slow, prices, sums_fast, sums_slow, full):
    s = state[0]
    for i in range(prices.shape[0]):
        full[i] = sma.update_averages(s, window, fast, slow, prices[i])
        sums_fast[i] = s.sum_fast
        sums_slow[i] = s.sum_slow


@settings(max_examples=100, deadline=None)
@given(
    windows=st.tuples(st.integers(1, 12), st.integers(1, 12)).filter(lambda w: w[0] < w[1]),
    prices=st.lists(st.integers(1, 10**12), min_size=1, max_size=80),
)
def test_streaming_sums_equal_batch_rolling_sums(windows, prices):
    fast, slow = windows
    px = np.array(prices, np.int64)
    n = len(px)
    state = np.zeros(1, sma.STATE_DTYPE)
    window = np.zeros(slow, np.int64)
    sf, ss, full = np.zeros(n, np.int64), np.zeros(n, np.int64), np.zeros(n, np.bool_)
    _push_all(state, window, fast, slow, px, sf, ss, full)
    c = np.concatenate([[0], np.cumsum(px)])
    idx = np.arange(1, n + 1)
    # Exact integer sums of the last `fast` / `slow` prices (fewer at the start).
    np.testing.assert_array_equal(sf, c[idx] - c[np.maximum(idx - fast, 0)])
    np.testing.assert_array_equal(ss, c[idx] - c[np.maximum(idx - slow, 0)])
    np.testing.assert_array_equal(full, idx >= slow)
    # And the averages equal numpy's batch rolling means.
    if n >= slow:
        fast_mean = np.convolve(px.astype(np.float64), np.ones(fast), "valid") / fast
        slow_mean = np.convolve(px.astype(np.float64), np.ones(slow), "valid") / slow
        np.testing.assert_allclose(sf[fast - 1 :] / fast, fast_mean, rtol=1e-12)
        np.testing.assert_allclose(ss[slow - 1 :] / slow, slow_mean, rtol=1e-12)
    assert state[0]["n"] == n


# Prices of the crossing scenario (fast 2, slow 3), one trade every 1000 ns, size 5 each:
#  k  price  fast avg  slow avg   signal
#  1   10      -         -          0
#  2   10      10        -          0
#  3   10      10        10         0   (equal: no signal)
#  4   11      10.5      10.33     +1   crossing 1: target +1, working 0        -> BUY 1
#  5   12      11.5      11        +1   (the buy fills on this print, @ 12)
#  6   11      11.5      11.33     +1
#  7    9      10        10.67     -1   crossing 2: target -1, working +1       -> SELL 2
#  8    8       8.5       9.33     -1   (the sell fills on this print, @ 8)
#  9    9       8.5       8.67     -1
# 10   12      10.5       9.67     +1   crossing 3: target +1, working -1       -> BUY 2
# 11   12      12        11        +1   (fills @ 12)
PRICES = [10, 10, 10, 11, 12, 11, 9, 8, 9, 12, 12]


def crossing_run(allow_short: bool, with_quotes: bool = False):
    trades = make_trades([(T0 + 1000 * k, price, 5) for k, price in enumerate(PRICES, start=1)])
    ev = trades
    if with_quotes:
        # Quotes of another instrument change nothing the strategy decides.
        ev = merge(trades, make_quotes([(T0 + 1000 * k + 500, 1, 1, 2, 1) for k in range(1, 12)], instrument_id=1))
    params, state = sma.make(sma.Params(instrument="X", fast=2, slow=3, order_size=1.0, allow_short=allow_short),
                             {"X": 0})
    run = run_strategy(sma.on_event, params, state, ev, latency=LAT, max_order_size=10, max_position=10,
                       n_instruments=2)
    return run, state


@pytest.mark.parametrize("with_quotes", [False, True])
def test_one_market_order_of_the_right_size_per_crossing(with_quotes):
    run, state = crossing_run(allow_short=True, with_quotes=with_quotes)
    subs = run.cmds(CommandKind.SUBMIT)
    got = [(int(c["ts_event"]) - T0, int(c["side"]), int(c["size"])) for c in subs]
    assert got == [(4010, Side.BUY, fx(1)), (7010, Side.SELL, fx(2)), (10010, Side.BUY, fx(2))]
    assert np.all(subs["order_type"] == OrderType.MARKET)
    assert np.all(subs["tif"] == TimeInForce.IOC)
    assert np.all(subs["instrument_id"] == 0)
    assert state[0][0]["n_crossings"] == 3
    assert state[0][0]["signal"] == 1
    fills = [(int(f["side"]), int(f["price"]), int(f["size"])) for f in run.fills]
    assert fills == [(Side.BUY, fx(12), fx(1)), (Side.SELL, fx(8), fx(2)), (Side.BUY, fx(12), fx(2))]
    assert run.p.positions[0]["qty"] == fx(1) == signed_fill_qty(run.fills)


def test_long_only_goes_flat_instead_of_short():
    run, state = crossing_run(allow_short=False)
    got = [(int(c["side"]), int(c["size"])) for c in run.cmds(CommandKind.SUBMIT)]
    assert got == [(Side.BUY, fx(1)), (Side.SELL, fx(1)), (Side.BUY, fx(1))]
    assert state[0][0]["n_crossings"] == 3
    assert run.p.positions[0]["qty"] == fx(1)


def test_order_in_flight_counts_as_working():
    # Order latency 2500 ns: the BUY 1 decided at 4010 is still in flight (and unfilled) when the
    # next crossing comes. Prices: crossing up at trade 4, down at trade 5 (fast 9.5 < slow 9.67).
    prices = [10, 10, 10, 11, 8, 8]
    ev = make_trades([(T0 + 1000 * k, price, 5) for k, price in enumerate(prices, start=1)])
    params, state = sma.make(sma.Params(instrument="X", fast=2, slow=3, order_size=1.0), {"X": 0})
    run = run_strategy(sma.on_event, params, state, ev, latency=(10, 2500, 30), max_order_size=10, max_position=10)
    got = [(int(c["ts_event"]) - T0, int(c["side"]), int(c["size"])) for c in run.cmds(CommandKind.SUBMIT)]
    # At 5010 the position is 0 but 1 is working on the buy side: target -1 needs a sell of 2.
    assert got == [(4010, Side.BUY, fx(1)), (5010, Side.SELL, fx(2))]


def test_params_are_validated():
    with pytest.raises(ValueError, match="fast < slow"):
        sma.Params(fast=5, slow=5)
    with pytest.raises(ValueError, match="order_size"):
        sma.Params(order_size=0)
    with pytest.raises(ValueError, match="not in the data"):
        sma.make(sma.Params(instrument="Y"), {"X": 0})
    params, (st_rec, window) = sma.make(sma.Params(instrument="X", fast=3, slow=7, order_size=0.5), {"A": 1, "X": 2})
    assert (params[0]["instrument_id"], params[0]["fast"], params[0]["slow"], params[0]["order_size"]) == (
        2, 3, 7, fx(0.5))
    assert len(window) == 7 and st_rec[0]["n"] == 0
