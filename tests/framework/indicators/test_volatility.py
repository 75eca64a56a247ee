"""Bollinger bands, ATR and realized volatility: streaming equals batch bit for bit, the formulas hold
through gaps, and TA-Lib agrees (to its own precision for BBANDS)."""

from __future__ import annotations

import numpy as np
import pytest
import talib
from hypothesis import given, settings
from hypothesis import strategies as st
from indicator_cases import (
    assert_close,
    atr_ref,
    bbands_ref,
    binance_trades,
    check_streaming_equals_batch,
    lean_daily,
    lean_trades,
    log_returns,
    realized_var_ref,
    scale_of,
    series,
    synthetic,
    var_ref,
    windows,
    with_gaps,
)

from framework.indicators.volatility import (
    atr_1d_nb,
    atr_state_nb,
    atr_update_nb,
    bbands_1d_nb,
    bbands_state_nb,
    bbands_update_nb,
    realized_vol_1d_nb,
    realized_vol_state_nb,
    realized_vol_update_nb,
)

RTOL = 1e-12
"""Agreement of levels (bands' middle, ATR) with the references, relative to the largest input."""
VAR_RTOL = 1e-12
"""Agreement of variances, relative to the square of the largest input: a standard deviation
near zero is ill-conditioned (its error is the square root of the variance's), so bands and
volatilities are compared as variances."""
TALIB_VAR_RTOL = 1e-13
"""TA-Lib's BBANDS variance is E[x^2] - E[x]^2: its error is about n * eps * max(x)^2."""


def _var_of_bands(mid: np.ndarray, upper: np.ndarray, k: float) -> np.ndarray:
    return ((upper - mid) / k) ** 2


@settings(max_examples=100, deadline=None)
@given(x=series(positive=False), n=windows, k=st.floats(0.1, 4.0))
def test_bbands_streaming_equals_batch_and_follow_the_formula_through_gaps(x, n, k):
    mid, upper, lower = check_streaming_equals_batch(bbands_state_nb, bbands_update_nb, bbands_1d_nb, (n, k), x)
    valid = np.isfinite(x)
    scale = scale_of(x)
    assert_close(mid, with_gaps(lambda v: bbands_ref(v, n, k)[0], valid, x), RTOL * scale, label="middle")
    expected_var = with_gaps(lambda v: var_ref(v, n), valid, x)
    assert_close(_var_of_bands(mid, upper, k), expected_var, VAR_RTOL * scale**2, label="upper")
    assert_close(_var_of_bands(mid, lower, -k), expected_var, VAR_RTOL * scale**2, label="lower")


@st.composite
def bars(draw):
    """Bars around a drawn close series, with gaps in high, low or close alone too."""
    close = draw(series())
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    spread = np.abs(rng.normal(0, 0.01, close.shape)) * np.where(rng.random(close.shape) < 0.2, 0.0, 1.0)
    high, low = close * (1 + spread), close * (1 - spread)
    for a in (high, low, close):
        a[rng.random(a.shape) < 0.03] = np.nan
    return high, low, close


@settings(max_examples=100, deadline=None)
@given(hlc=bars(), n=windows)
def test_atr_streaming_equals_batch_and_follows_wilder_through_gaps(hlc, n):
    out = check_streaming_equals_batch(atr_state_nb, atr_update_nb, atr_1d_nb, (n,), *hlc)
    valid = np.isfinite(hlc[0]) & np.isfinite(hlc[1]) & np.isfinite(hlc[2])
    assert_close(out, with_gaps(lambda h, lo, c: atr_ref(h, lo, c, n), valid, *hlc), RTOL * scale_of(hlc[2]))


@settings(max_examples=100, deadline=None)
@given(x=series(), n=windows, flips=st.integers(0, 2**32 - 1))
def test_realized_vol_streaming_equals_batch_and_skips_gaps_and_non_positive_prices(x, n, flips):
    x = x * np.where(np.random.default_rng(flips).random(x.shape) < 0.05, -1.0, 1.0)
    x[np.random.default_rng(flips + 1).random(x.shape) < 0.02] = 0.0
    out = check_streaming_equals_batch(realized_vol_state_nb, realized_vol_update_nb, realized_vol_1d_nb, (n,), x)
    valid = np.isfinite(x) & (x > 0)
    r_scale = scale_of(log_returns(x[valid]))
    assert_close(out**2, with_gaps(lambda v: realized_var_ref(v, n), valid, x), VAR_RTOL * r_scale**2)


@settings(max_examples=50, deadline=None)
@given(c=st.floats(1e-6, 1e9), n=windows, k=st.floats(0.1, 4.0), extra=st.integers(0, 30))
def test_a_flat_market_has_exactly_zero_volatility(c, n, k, extra):
    x = np.full(n + 1 + extra, c)
    for band in bbands_1d_nb(x, n, k):
        assert np.isnan(band[: n - 1]).all() and (band[n - 1 :] == c).all()
    atr = atr_1d_nb(x, x, x, n)
    assert np.isnan(atr[:n]).all() and (atr[n:] == 0.0).all()
    vol = realized_vol_1d_nb(x, n)
    assert np.isnan(vol[:n]).all() and (vol[n:] == 0.0).all()


def test_atr_of_one_bar_is_the_true_range():
    atr = atr_1d_nb(np.array([10.0, 12.0, 9.5]), np.array([9.0, 11.0, 8.0]), np.array([9.5, 11.5, 9.0]), 1)
    np.testing.assert_array_equal(atr, [np.nan, 2.5, 3.5])


def check_talib_bbands(x: np.ndarray) -> None:
    scale = scale_of(x)
    for n, k in ((5, 2.0), (20, 2.0), (200, 1.5)):
        mid, upper, lower = bbands_1d_nb(x, n, k)
        t_upper, t_mid, t_lower = talib.BBANDS(x, n, k, k)
        assert_close(mid, t_mid, RTOL * scale, label=f"middle({n})")
        assert_close(_var_of_bands(mid, upper, k), _var_of_bands(t_mid, t_upper, k), TALIB_VAR_RTOL * n * scale**2)
        assert_close(_var_of_bands(mid, lower, -k), _var_of_bands(t_mid, t_lower, -k), TALIB_VAR_RTOL * n * scale**2)
        assert_close(_var_of_bands(mid, upper, k), var_ref(x, n), VAR_RTOL * scale**2, label=f"exact var({n})")


def check_talib_atr(high: np.ndarray, low: np.ndarray, close: np.ndarray) -> None:
    for n in (1, 14, 50):
        assert_close(atr_1d_nb(high, low, close, n), talib.ATR(high, low, close, n), RTOL * scale_of(high))


def check_realized_vol(price: np.ndarray) -> None:
    r_scale = scale_of(log_returns(price))
    for n in (20, 500):
        assert_close(realized_vol_1d_nb(price, n) ** 2, realized_var_ref(price, n), VAR_RTOL * r_scale**2)


def test_references_agree_on_synthetic_data():
    data = synthetic()
    price = data["trade"]["price"]
    check_talib_bbands(price)
    check_talib_atr(price, price, price)
    check_talib_atr(data["bar"]["high"], data["bar"]["low"], data["bar"]["close"])
    check_realized_vol(price)


@pytest.mark.parametrize("source", ["binance", "lean"])
def test_references_agree_on_real_trades(shared_data, source):
    price = (binance_trades if source == "binance" else lean_trades)(shared_data)["price"]
    check_talib_bbands(price)
    check_talib_atr(price, price, price)
    check_realized_vol(price)


@pytest.mark.parametrize("ticker", ["spy", "aapl"])
def test_talib_atr_agrees_on_real_daily_bars(shared_data, ticker):
    bars = lean_daily(shared_data, ticker)
    check_talib_atr(bars["high"], bars["low"], bars["close"])
