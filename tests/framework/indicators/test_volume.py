"""Rolling and session VWAP, trade-flow imbalance: streaming equals batch bit for bit and the
formulas (pandas sums) hold through gaps, on generated, synthetic and real trades."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from indicator_cases import (
    DAY_NS,
    assert_close,
    binance_trades,
    check_streaming_equals_batch,
    lean_trades,
    scale_of,
    series,
    synthetic,
    trade_flow_ref,
    vwap_ref,
    vwap_session_ref,
    windows,
    with_gaps,
)

from framework.indicators.volume import (
    trade_flow_1d_nb,
    trade_flow_state_nb,
    trade_flow_update_nb,
    vwap_1d_nb,
    vwap_session_1d_nb,
    vwap_session_state_nb,
    vwap_session_update_nb,
    vwap_state_nb,
    vwap_update_nb,
)

RTOL = 1e-12
"""Agreement of prices and volumes with the references, relative to the largest input."""
HOUR_NS = 3_600_000_000_000


@st.composite
def trades(draw):
    """Prices with gaps, sizes spanning six decades (some zero, negative or NaN), sides in
    {-1, 0, 1} (some NaN) and timestamps over several days."""
    price = draw(series())
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    n = price.shape[0]
    size = 10.0 ** rng.uniform(-3, 3, n)
    bad = rng.random(n)
    size[bad < 0.03] = 0.0
    size[(bad >= 0.03) & (bad < 0.05)] = -1.0
    size[(bad >= 0.05) & (bad < 0.07)] = np.nan
    side = rng.integers(-1, 2, n).astype(np.float64)
    side[rng.random(n) < 0.02] = np.nan
    ts = np.cumsum(rng.integers(0, 6 * HOUR_NS, n)) + 1_700_000_000 * 1_000_000_000
    return ts, price, size, side


def _valid_trade(price: np.ndarray, size: np.ndarray) -> np.ndarray:
    return np.isfinite(price) & np.isfinite(size) & (size > 0)


@settings(max_examples=100, deadline=None)
@given(t=trades(), n=windows)
def test_vwap_streaming_equals_batch_and_follows_the_formula_through_gaps(t, n):
    _, price, size, _ = t
    out = check_streaming_equals_batch(vwap_state_nb, vwap_update_nb, vwap_1d_nb, (n,), price, size)
    expected = with_gaps(lambda p, s: vwap_ref(p, s, n), _valid_trade(price, size), price, size)
    assert_close(out, expected, RTOL * scale_of(price))


@settings(max_examples=100, deadline=None)
@given(t=trades(), start_ns=st.integers(0, DAY_NS - 1))
def test_session_vwap_streaming_equals_batch_and_restarts_each_session(t, start_ns):
    ts, price, size, _ = t
    out = check_streaming_equals_batch(
        vwap_session_state_nb, vwap_session_update_nb, vwap_session_1d_nb, (start_ns,), ts, price, size
    )
    valid = _valid_trade(price, size)
    expected = with_gaps(lambda s_ts, p, s: vwap_session_ref(s_ts, p, s, start_ns), valid, ts, price, size)
    assert_close(out, expected, RTOL * scale_of(price))


@settings(max_examples=100, deadline=None)
@given(t=trades(), n=windows)
def test_trade_flow_streaming_equals_batch_and_follows_the_formula_through_gaps(t, n):
    _, _, size, side = t
    flow, imbalance = check_streaming_equals_batch(
        trade_flow_state_nb, trade_flow_update_nb, trade_flow_1d_nb, (n,), size, side
    )
    valid = np.isfinite(size) & np.isfinite(side) & (size > 0)
    want_flow, want_imbalance = with_gaps(lambda s, d: trade_flow_ref(s, d, n), valid, size, side)
    volume = with_gaps(lambda s, d: trade_flow_ref(s, np.ones_like(d), n)[0], valid, size, side)
    assert_close(flow, want_flow, RTOL * n * scale_of(size), label="flow")
    assert_close(imbalance, want_imbalance, RTOL * n * scale_of(size) / volume, label="imbalance")
    assert (np.abs(imbalance[~np.isnan(imbalance)]) <= 1.0).all()


@settings(max_examples=50, deadline=None)
@given(c=st.floats(1e-6, 1e9), n=windows, extra=st.integers(0, 30), seed=st.integers(0, 2**32 - 1))
def test_volume_weighting_identical_prices_gives_exactly_that_price(c, n, extra, seed):
    price = np.full(n + extra, c)
    size = 10.0 ** np.random.default_rng(seed).uniform(-3, 3, n + extra)
    vwap = vwap_1d_nb(price, size, n)
    assert np.isnan(vwap[: n - 1]).all() and (vwap[n - 1 :] == c).all()
    ts = np.arange(n + extra, dtype=np.int64) * HOUR_NS
    assert (vwap_session_1d_nb(ts, price, size, 0) == c).all()


def test_session_vwap_carries_the_last_session_over_gaps_and_restarts_at_the_first_trade():
    ts = np.array([0, 1, DAY_NS, DAY_NS + 1], dtype=np.int64)
    out = vwap_session_1d_nb(ts, np.array([10.0, 20.0, 99.0, 30.0]), np.array([1.0, 3.0, np.nan, 1.0]), 0)
    np.testing.assert_array_equal(out, [10.0, 17.5, 17.5, 30.0])


def test_session_start_outside_the_day_is_refused():
    with pytest.raises(ValueError, match="session_start_ns"):
        vwap_session_state_nb(DAY_NS)


def check_references(t: dict[str, np.ndarray], start_ns: int) -> None:
    price, size, side, ts = t["price"], t["size"], t["side"], t["ts"]
    for n in (1, 50, 1000):
        assert_close(vwap_1d_nb(price, size, n), vwap_ref(price, size, n), RTOL * scale_of(price), label=f"vwap({n})")
        flow, imbalance = trade_flow_1d_nb(size, side, n)
        want_flow, want_imbalance = trade_flow_ref(size, side, n)
        assert_close(flow, want_flow, RTOL * n * scale_of(size), label=f"flow({n})")
        assert_close(imbalance, want_imbalance, RTOL * n * scale_of(size) / trade_flow_ref(size, 1.0 + 0 * side, n)[0])
    assert_close(
        vwap_session_1d_nb(ts, price, size, start_ns),
        vwap_session_ref(ts, price, size, start_ns),
        RTOL * scale_of(price),
        label="session",
    )


def test_references_agree_on_synthetic_trades():
    check_references(synthetic()["trade"], 12 * HOUR_NS)


@pytest.mark.parametrize("source", ["binance", "lean"])
def test_references_agree_on_real_trades(shared_data, source):
    if source == "binance":
        check_references(binance_trades(shared_data), 0)
    else:  # the US session opens at 13:30 UTC: the pre-market belongs to the previous session
        check_references(lean_trades(shared_data), 13 * HOUR_NS + 30 * 60 * 1_000_000_000)
