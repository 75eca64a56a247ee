"""Log returns over k observations: streaming equals batch bit for bit, the formula holds through
gaps and non-positive prices, and horizons add up."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from indicator_cases import (
    assert_close,
    binance_trades,
    check_streaming_equals_batch,
    lean_trades,
    log_return_ref,
    series,
    synthetic,
    with_gaps,
)

from framework.indicators.returns import log_return_1d_nb, log_return_state_nb, log_return_update_nb

ULPS = 4 * np.finfo(np.float64).eps
"""Agreement with numpy, relative: the same division, and ``math.log`` and ``np.log`` may
differ in the last bit."""

horizons = st.integers(1, 50)


@settings(max_examples=100, deadline=None)
@given(x=series(), k=horizons, flips=st.integers(0, 2**32 - 1))
def test_streaming_equals_batch_and_skips_gaps_and_non_positive_prices(x, k, flips):
    x = x * np.where(np.random.default_rng(flips).random(x.shape) < 0.05, -1.0, 1.0)
    out = check_streaming_equals_batch(log_return_state_nb, log_return_update_nb, log_return_1d_nb, (k,), x)
    expected = with_gaps(lambda v: log_return_ref(v, k), np.isfinite(x) & (x > 0), x)
    assert_close(out, expected, ULPS * np.abs(expected))


@settings(max_examples=50, deadline=None)
@given(c=st.floats(1e-6, 1e9), k=horizons, extra=st.integers(0, 30))
def test_an_unchanged_price_has_exactly_zero_return(c, k, extra):
    out = log_return_1d_nb(np.full(k + 1 + extra, c), k)
    assert np.isnan(out[:k]).all() and (out[k:] == 0.0).all()


def test_a_horizon_below_one_is_refused():
    with pytest.raises(ValueError, match="at least 1"):
        log_return_state_nb(0)


def check_horizons_add_up(price: np.ndarray) -> None:
    one = log_return_1d_nb(price, 1)
    for k in (10, 100):
        summed = np.convolve(np.nan_to_num(one), np.ones(k))[: len(price)]
        assert_close(log_return_1d_nb(price, k)[k:], summed[k:], 1e-12)
        assert_close(log_return_1d_nb(price, k), log_return_ref(price, k), ULPS * np.abs(log_return_ref(price, k)))


def test_horizons_add_up_on_synthetic_trades():
    check_horizons_add_up(synthetic()["trade"]["price"])


def test_horizons_add_up_on_real_trades(shared_data):
    check_horizons_add_up(binance_trades(shared_data)["price"])
    check_horizons_add_up(lean_trades(shared_data)["price"])
