import math

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from framework.events import EQUITY_DTYPE, FILL_DTYPE, PRICE_SCALE
from framework.stats import (
    annualization_basis,
    drawdown,
    fees_paid,
    fill_realized_pnl,
    format_interval,
    hit_rate,
    max_drawdown,
    open_positions,
    periods_per_year,
    sharpe_ratio,
    simple_returns,
    sortino_ratio,
    summarize,
    total_return,
    traded_notional,
    turnover,
)

MINUTE = 60 * 1_000_000_000
DAY = 24 * 60 * MINUTE


def make_fills(rows, instrument_id=1):
    """rows: (side, size, price[, fee]) in whole units, or (side, size, price, fee, instrument_id)."""
    f = np.zeros(len(rows), dtype=FILL_DTYPE)
    for i, row in enumerate(rows):
        side, size, price = row[:3]
        f[i]["ts_event"] = i
        f[i]["client_order_id"] = i + 1
        f[i]["side"] = side
        f[i]["size"] = round(size * PRICE_SCALE)
        f[i]["price"] = round(price * PRICE_SCALE)
        f[i]["fee"] = round((row[3] if len(row) > 3 else 0.0) * PRICE_SCALE)
        f[i]["instrument_id"] = row[4] if len(row) > 4 else instrument_id
        f[i]["liquidity"] = 1
    return f


EMPTY_FILLS = np.empty(0, dtype=FILL_DTYPE)

# --------------------------------------------------------------------------- hand-computed


def test_simple_returns():
    np.testing.assert_allclose(simple_returns(np.array([100.0, 110.0, 99.0])), [0.1, -0.1])
    # zero starting equity: no defined return, counted as 0
    np.testing.assert_allclose(simple_returns(np.array([0.0, 10.0, 20.0])), [0.0, 1.0])


def test_total_return():
    assert total_return(np.array([100.0, 90.0, 110.0]), 100.0) == pytest.approx(0.1)
    assert total_return(np.array([95.0]), 100.0) == pytest.approx(-0.05)
    assert math.isnan(total_return(np.array([95.0]), 0.0))


def test_sharpe_hand_computed():
    # mean 0.005, sample std sqrt(4 * 0.015**2 / 3) = 0.01732; ratio 1/(2 sqrt 3) * sqrt(252) = sqrt(21)
    r = np.array([0.02, -0.01, 0.02, -0.01])
    assert sharpe_ratio(r, 252) == pytest.approx(math.sqrt(21.0))
    assert sharpe_ratio(r, 1) == pytest.approx(0.005 / math.sqrt(0.0003))


def test_sortino_hand_computed():
    # downside deviation over all 4 periods: sqrt((0.01**2 + 0.01**2) / 4) = 0.0070711
    r = np.array([0.02, -0.01, 0.02, -0.01])
    assert sortino_ratio(r, 252) == pytest.approx(0.005 / math.sqrt(0.00005) * math.sqrt(252))
    assert sortino_ratio(r, 252) == pytest.approx(math.sqrt(126.0))


def test_ratio_degenerate_cases():
    assert sharpe_ratio(np.zeros(10), 252) == 0.0  # never moved
    assert sortino_ratio(np.zeros(10), 252) == 0.0
    assert math.isnan(sharpe_ratio(np.full(10, 0.01), 252))  # return without risk: unbounded
    assert math.isnan(sortino_ratio(np.array([0.01, 0.02, 0.0]), 252))  # no losing period
    assert sharpe_ratio(np.array([0.01]), 252) == 0.0


def test_drawdown_hand_computed():
    e = np.array([100.0, 120.0, 90.0, 120.0, 130.0, 65.0])
    np.testing.assert_allclose(drawdown(e), [0.0, 0.0, 0.25, 0.0, 0.0, 0.5])
    assert max_drawdown(e) == pytest.approx(0.5)


def test_fill_realized_pnl_average_cost():
    fills = make_fills(
        [
            (+1, 2, 10.0),  # long 2 @ 10
            (+1, 2, 12.0),  # long 4 @ 11
            (-1, 1, 15.0),  # +4, long 3 @ 11
            (-1, 5, 9.0),  # closes 3: -6, flips short 2 @ 9
            (+1, 2, 7.0),  # covers short: +4, flat
        ]
    )
    np.testing.assert_allclose(fill_realized_pnl(fills), [0.0, 0.0, 4.0, -6.0, 4.0])
    assert hit_rate(fills) == pytest.approx(2 / 3)
    assert open_positions(fills) == {1: (0.0, 0.0)}


def test_fill_realized_pnl_per_instrument_and_fees_excluded():
    fills = make_fills(
        [
            (+1, 1, 100.0, 0.5, 1),
            (-1, 3, 50.0, 0.5, 2),  # short 3 @ 50 on instrument 2
            (-1, 1, 110.0, 0.5, 1),  # +10 on instrument 1
            (+1, 1, 40.0, 0.5, 2),  # +10 on instrument 2, still short 2 @ 50
        ]
    )
    np.testing.assert_allclose(fill_realized_pnl(fills), [0.0, 0.0, 10.0, 10.0])
    assert hit_rate(fills) == 1.0
    assert open_positions(fills) == {1: (0.0, 0.0), 2: (-2.0, 50.0)}


def test_hit_rate_no_closing_fill():
    assert hit_rate(make_fills([(+1, 1, 10.0), (+1, 1, 11.0)])) == 0.0
    # a closing fill at break-even is not a hit
    assert hit_rate(make_fills([(+1, 1, 10.0), (-1, 1, 10.0)])) == 0.0


def test_turnover_and_fees():
    fills = make_fills([(+1, 2, 10.0, 0.25), (-1, 1, 15.0, -0.05), (-1, 1, 9.0, 0.1)])
    assert traded_notional(fills) == pytest.approx(20.0 + 15.0 + 9.0)
    assert turnover(fills, 88.0) == pytest.approx(0.5)
    assert turnover(fills, 0.0) == 0.0
    assert fees_paid(fills) == pytest.approx(0.30)


def test_periods_per_year():
    assert periods_per_year(MINUTE, "24/7") == pytest.approx(525_600)
    assert periods_per_year(DAY, "24/7") == pytest.approx(365)
    assert periods_per_year(MINUTE, "equity") == pytest.approx(252 * 390)
    assert periods_per_year(60 * MINUTE, "equity") == pytest.approx(252 * 6.5)
    assert periods_per_year(DAY, "equity") == pytest.approx(252)
    assert periods_per_year(390 * MINUTE, "equity") == pytest.approx(252)
    assert periods_per_year(7 * DAY, "equity") == pytest.approx(36)
    with pytest.raises(ValueError):
        periods_per_year(MINUTE, "lunar")
    with pytest.raises(ValueError):
        periods_per_year(0, "24/7")


def test_annualization_basis():
    assert annualization_basis(MINUTE, "24/7") == "1-minute returns, 525600 periods/year, 24/7 calendar"
    assert annualization_basis(DAY, "equity").startswith("1-day returns, 252 periods/year, equity calendar")
    assert format_interval(5 * 1_000_000_000) == "5-second"
    assert format_interval(250_000_000) == "250-millisecond"
    assert format_interval(90 * 1_000_000_000) == "90-second"


def test_summarize_hand_computed():
    eq = np.zeros(4, dtype=EQUITY_DTYPE)
    eq["ts_event"] = np.arange(4) * MINUTE
    eq["equity"] = [100.0, 110.0, 99.0, 108.9]
    eq["realized_pnl"][-1] = 4.0
    eq["unrealized_pnl"][-1] = 5.4
    fills = make_fills([(+1, 2, 10.0, 0.1), (-1, 1, 14.0, 0.1)])
    m = summarize(eq, fills, 100.0, MINUTE, "24/7")
    assert set(m) >= {
        "total_return", "sharpe", "sortino", "annualization", "max_drawdown", "n_fills", "traded_notional",
        "turnover", "fees", "hit_rate", "final_equity", "realized_pnl", "unrealized_pnl",
    }
    r = np.array([0.1, -0.1, 0.1])
    assert m["total_return"] == pytest.approx(0.089)
    assert m["sharpe"] == pytest.approx(r.mean() / r.std(ddof=1) * math.sqrt(525_600))
    assert m["sortino"] == pytest.approx(r.mean() / math.sqrt(0.01 / 3) * math.sqrt(525_600))
    assert m["annualization"] == "1-minute returns, 525600 periods/year, 24/7 calendar"
    assert m["max_drawdown"] == pytest.approx(0.1)
    assert m["n_fills"] == 2
    assert m["traded_notional"] == pytest.approx(34.0)
    assert m["turnover"] == pytest.approx(34.0 / eq["equity"].mean())
    assert m["fees"] == pytest.approx(0.2)
    assert m["hit_rate"] == 1.0
    assert m["final_equity"] == pytest.approx(108.9)
    assert m["realized_pnl"] == 4.0 and m["unrealized_pnl"] == pytest.approx(5.4)


# --------------------------------------------------------------------------- empty inputs


def test_empty_inputs_are_safe():
    empty = np.empty(0)
    assert simple_returns(empty).size == 0
    assert simple_returns(np.array([5.0])).size == 0
    assert total_return(empty, 100.0) == 0.0
    assert sharpe_ratio(empty, 252) == 0.0 and sortino_ratio(empty, 252) == 0.0
    assert drawdown(empty).size == 0
    assert max_drawdown(empty) == 0.0 and max_drawdown(np.array([5.0])) == 0.0
    for fills in (EMPTY_FILLS, np.empty(0)):
        assert fill_realized_pnl(fills).size == 0
        assert hit_rate(fills) == 0.0
        assert turnover(fills, 100.0) == 0.0
        assert fees_paid(fills) == 0.0
        assert open_positions(fills) == {}


@pytest.mark.parametrize("n", [0, 1])
def test_summarize_short_runs(n):
    eq = np.zeros(n, dtype=EQUITY_DTYPE)
    eq["equity"] = 100.0
    m = summarize(eq, EMPTY_FILLS, 100.0, MINUTE, "equity")
    assert m["total_return"] == 0.0
    assert m["sharpe"] == 0.0 and m["sortino"] == 0.0
    assert m["max_drawdown"] == 0.0
    assert m["n_fills"] == 0 and m["hit_rate"] == 0.0 and m["turnover"] == 0.0 and m["fees"] == 0.0
    assert m["final_equity"] == 100.0


# --------------------------------------------------------------------------- properties

fill_rows = st.lists(
    st.tuples(
        st.sampled_from([1, -1]),
        st.integers(1, 10_000_000_000),  # size, fixed point: up to 10 units
        st.integers(1_000_000, 1_000_000_000_000),  # price, fixed point: 0.001 .. 1000
        st.sampled_from([1, 2]),  # instrument
    ),
    max_size=40,
)


def _fills_from(rows):
    f = np.zeros(len(rows), dtype=FILL_DTYPE)
    if rows:
        side, size, price, inst = map(np.array, zip(*rows))
        f["side"], f["size"], f["price"], f["instrument_id"] = side, size, price, inst
    return f


@settings(max_examples=200, deadline=None)
@given(fill_rows, st.integers(1_000_000, 1_000_000_000_000), st.integers(1_000_000, 1_000_000_000_000))
def test_pnl_adds_up(rows, last1, last2):
    """realized + mark-to-market of open positions == cash flows + position value."""
    fills = _fills_from(rows)
    last = {1: last1 / PRICE_SCALE, 2: last2 / PRICE_SCALE}
    realized = fill_realized_pnl(fills).sum()
    positions = open_positions(fills)
    mtm = sum((last[k] - avg) * qty for k, (qty, avg) in positions.items())
    px = fills["price"] / PRICE_SCALE
    qty = fills["side"] * (fills["size"] / PRICE_SCALE)
    cash = float(np.sum(-qty * px))
    value = 0.0
    for k in (1, 2):
        pos = float(qty[fills["instrument_id"] == k].sum())
        assert positions.get(k, (0.0, 0.0))[0] == pytest.approx(pos, abs=1e-9)
        value += pos * last[k]
    scale = float(np.sum(np.abs(qty) * px)) + sum(abs(q) * last[k] for k, (q, _) in positions.items()) + 1.0
    assert realized + mtm == pytest.approx(cash + value, abs=1e-9 * scale)


@settings(max_examples=200, deadline=None)
@given(fill_rows)
def test_flat_position_realizes_all_cash(rows):
    """Closing every position at the last fill price makes realized PnL equal net cash flow."""
    fills = _fills_from(rows)
    closing = []
    for k, (qty, _) in open_positions(fills).items():
        q = round(qty * PRICE_SCALE)
        if q:
            closing.append((-1 if q > 0 else 1, abs(q), 5_000_000_000, k))
    allf = _fills_from(rows + closing)
    assert all(q == 0.0 for q, _ in open_positions(allf).values())
    cash = float(np.sum(-allf["side"] * (allf["size"] / PRICE_SCALE) * (allf["price"] / PRICE_SCALE)))
    scale = float(np.sum(allf["size"] / PRICE_SCALE * allf["price"] / PRICE_SCALE)) + 1.0
    assert fill_realized_pnl(allf).sum() == pytest.approx(cash, abs=1e-9 * scale)


positive_equity = st.lists(st.floats(1e-3, 1e9, allow_nan=False), min_size=0, max_size=60).map(np.array)


@given(positive_equity)
def test_max_drawdown_bounded_for_positive_equity(e):
    mdd = max_drawdown(e)
    assert 0.0 <= mdd <= 1.0
    dd = drawdown(e)
    assert dd.shape == e.shape and np.all((dd >= 0.0) & (dd <= 1.0))


@given(positive_equity)
def test_max_drawdown_zero_for_monotone(e):
    assert max_drawdown(np.sort(e)) == 0.0
    assert max_drawdown(np.maximum.accumulate(e)) == 0.0


@settings(max_examples=200)
@given(
    st.lists(st.floats(-0.1, 0.1, allow_nan=False), min_size=2, max_size=60).map(np.array),
    st.floats(1e-3, 1e3),
    st.sampled_from([1.0, 252.0, 525_600.0]),
)
def test_sharpe_invariant_to_scaling(r, c, ppy):
    scale = np.max(np.abs(r))
    assume(scale > 1e-12 and np.std(r, ddof=1) > 1e-6 * scale)
    assert sharpe_ratio(c * r, ppy) == pytest.approx(sharpe_ratio(r, ppy), rel=1e-9, abs=1e-12)
    assert sortino_ratio(c * r, ppy) == pytest.approx(sortino_ratio(r, ppy), rel=1e-9, abs=1e-12, nan_ok=True)


@given(st.lists(st.floats(1.0, 1e6), max_size=5).map(np.array), st.floats(1.0, 1e6))
def test_small_inputs_never_raise(e, capital):
    r = simple_returns(e)
    assert r.size == max(e.size - 1, 0)
    for x in (total_return(e, capital), sharpe_ratio(r, 252), sortino_ratio(r, 252), max_drawdown(e)):
        assert isinstance(x, float)
