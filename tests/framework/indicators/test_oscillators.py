"""RSI and MACD: streaming equals batch bit for bit, both follow the formula through gaps, TA-Lib agrees."""

from __future__ import annotations

import numpy as np
import pytest
import talib
from hypothesis import given, settings
from hypothesis import strategies as st
from indicator_cases import (
    assert_close,
    binance_trades,
    check_streaming_equals_batch,
    lean_trades,
    macd_ref,
    rsi_ref,
    scale_of,
    series,
    synthetic,
    windows,
    with_gaps,
)

from framework.indicators.oscillators import (
    macd_1d_nb,
    macd_state_nb,
    macd_update_nb,
    rsi_1d_nb,
    rsi_state_nb,
    rsi_update_nb,
)

RSI_ATOL = 1e-9
"""RSI points (0..100): the averages' relative rounding error, times 100."""
RTOL = 1e-12
"""MACD agreement, relative to the largest magnitude in the input."""
TALIB_ZERO = 1e-8
"""TA-Lib's RSI returns 0 when avg_gain + avg_loss is below this (TA_IS_ZERO); ours does not."""

macd_params = st.tuples(st.integers(1, 15), st.integers(1, 20), st.integers(1, 12)).map(
    lambda p: (p[0], p[0] + p[1], p[2])
)


@settings(max_examples=100, deadline=None)
@given(x=series(positive=False), n=windows)
def test_rsi_streaming_equals_batch_and_follows_wilder_through_gaps(x, n):
    out = check_streaming_equals_batch(rsi_state_nb, rsi_update_nb, rsi_1d_nb, (n,), x)
    assert_close(out, with_gaps(lambda v: rsi_ref(v, n)[0], np.isfinite(x), x), RSI_ATOL)
    assert ((out[~np.isnan(out)] >= 0) & (out[~np.isnan(out)] <= 100)).all()


@settings(max_examples=100, deadline=None)
@given(x=series(positive=False), params=macd_params)
def test_macd_streaming_equals_batch_and_follows_the_formula_through_gaps(x, params):
    out = check_streaming_equals_batch(macd_state_nb, macd_update_nb, macd_1d_nb, params, x)
    expected = with_gaps(lambda v: macd_ref(v, *params), np.isfinite(x), x)
    for got, want, label in zip(out, expected, ("macd", "signal", "hist"), strict=True):
        assert_close(got, want, RTOL * scale_of(x), label=label)


@settings(max_examples=50, deadline=None)
@given(c=st.floats(-1e9, 1e9), n=windows, params=macd_params, extra=st.integers(0, 30))
def test_a_flat_series_gives_rsi_50_and_macd_0(c, n, params, extra):
    rsi = rsi_1d_nb(np.full(n + 1 + extra, c), n)
    assert np.isnan(rsi[:n]).all() and (rsi[n:] == 50.0).all()
    fast, slow, signal = params
    line, sig, hist = macd_1d_nb(np.full(slow + signal + extra, c), fast, slow, signal)
    assert np.isnan(line[: slow - 1]).all() and (line[slow - 1 :] == 0.0).all()
    warm = slow + signal - 2
    assert np.isnan(sig[:warm]).all() and (sig[warm:] == 0.0).all() and (hist[warm:] == 0.0).all()


def test_macd_refuses_a_fast_period_not_below_the_slow_one():
    with pytest.raises(ValueError, match="fast < slow"):
        macd_state_nb(26, 26, 9)


def check_talib(x: np.ndarray) -> None:
    for n in (2, 14, 50):
        ours = rsi_1d_nb(x, n)
        defined = rsi_ref(x, n)[1] >= TALIB_ZERO
        assert_close(ours, talib.RSI(x, n), RSI_ATOL, where=defined, label=f"rsi({n})")
    for fast, slow, signal in ((12, 26, 9), (5, 35, 5), (2, 3, 2)):
        ours = macd_1d_nb(x, fast, slow, signal)
        theirs = talib.MACD(x, fast, slow, signal)
        warm = slow + signal - 2
        assert not np.isnan(ours[0][slow - 1 :]).any()  # the line is out before TA-Lib shows it
        for got, want, label in zip(ours, theirs, ("macd", "signal", "hist"), strict=True):
            assert_close(got[warm:], want[warm:], RTOL * scale_of(x), label=f"{label}({fast},{slow},{signal})")


def test_talib_agrees_on_synthetic_trades():
    check_talib(synthetic()["trade"]["price"])


def test_talib_agrees_on_real_trades(shared_data):
    check_talib(binance_trades(shared_data)["price"])
    check_talib(lean_trades(shared_data)["price"])
