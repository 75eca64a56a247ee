"""Rolling minimum, maximum and z-score: streaming equals batch bit for bit, the formulas hold
through gaps, and the extremes equal TA-Lib's MIN and MAX exactly."""

from __future__ import annotations

import numpy as np
import pytest
import talib
from hypothesis import given, settings
from hypothesis import strategies as st
from indicator_cases import (
    assert_close,
    assert_identical,
    binance_trades,
    check_streaming_equals_batch,
    lean_trades,
    rolling_max_ref,
    rolling_min_ref,
    scale_of,
    series,
    synthetic,
    windows,
    with_gaps,
    zscore_ref,
)

from framework.indicators.rolling import (
    rolling_max_1d_nb,
    rolling_max_state_nb,
    rolling_max_update_nb,
    rolling_min_1d_nb,
    rolling_min_state_nb,
    rolling_min_update_nb,
    zscore_1d_nb,
    zscore_state_nb,
    zscore_update_nb,
)

EXTREMES = {
    "min": (rolling_min_state_nb, rolling_min_update_nb, rolling_min_1d_nb, rolling_min_ref, talib.MIN),
    "max": (rolling_max_state_nb, rolling_max_update_nb, rolling_max_1d_nb, rolling_max_ref, talib.MAX),
}
Z_RTOL = 1e-12
"""z-score agreement, times ``(1 + |z|) (scale / std)^2``: the rounding error of the variance,
relative to the largest input squared, divided by the variance (ill-conditioned as std -> 0)."""


@pytest.mark.parametrize("name", sorted(EXTREMES))
@settings(max_examples=100, deadline=None)
@given(x=series(positive=False), n=windows)
def test_extreme_streaming_equals_batch_and_equals_pandas_exactly_through_gaps(name, x, n):
    make_state, update, batch, ref, _ = EXTREMES[name]
    out = check_streaming_equals_batch(make_state, update, batch, (n,), x)
    assert_identical(out, with_gaps(lambda v: ref(v, n), np.isfinite(x), x))


@settings(max_examples=100, deadline=None)
@given(x=series(positive=False), n=windows)
def test_zscore_streaming_equals_batch_and_follows_the_formula_through_gaps(x, n):
    out = check_streaming_equals_batch(zscore_state_nb, zscore_update_nb, zscore_1d_nb, (n,), x)
    valid = np.isfinite(x)
    z, std = with_gaps(lambda v: zscore_ref(v, n), valid, x)
    with np.errstate(divide="ignore"):
        bound = Z_RTOL * (1 + np.abs(z)) * (scale_of(x) / std) ** 2
    assert_close(out, z, np.where(std > 0, bound, 0.0))


@settings(max_examples=50, deadline=None)
@given(c=st.floats(-1e9, 1e9), n=windows, extra=st.integers(0, 30))
def test_flat_windows_give_the_value_and_a_zero_zscore(c, n, extra):
    x = np.full(n + extra, c)
    for batch in (rolling_min_1d_nb, rolling_max_1d_nb):
        out = batch(x, n)
        assert np.isnan(out[: n - 1]).all() and (out[n - 1 :] == c).all()
    z = zscore_1d_nb(x, n)
    assert np.isnan(z[: n - 1]).all() and (z[n - 1 :] == 0.0).all()


def test_a_zscore_counts_the_latest_value_in_its_window():
    np.testing.assert_array_equal(zscore_1d_nb(np.array([1.0, 3.0, 3.0, 1.0]), 2), [np.nan, 1.0, 0.0, -1.0])


def check_talib(x: np.ndarray) -> None:
    for name, (_, _, batch, _, talib_fn) in EXTREMES.items():
        for n in (2, 7, 100, 1000):
            assert_identical(batch(x, n), talib_fn(x, n))
    for n in (20, 300):
        z, std = zscore_ref(x, n)
        with np.errstate(divide="ignore"):
            bound = Z_RTOL * (1 + np.abs(z)) * (scale_of(x) / std) ** 2
        assert_close(zscore_1d_nb(x, n), z, np.where(std > 0, bound, 0.0), label=f"zscore({n})")


def test_references_agree_on_synthetic_trades():
    check_talib(synthetic()["trade"]["price"])


def test_references_agree_on_real_trades(shared_data):
    check_talib(binance_trades(shared_data)["price"])
    check_talib(lean_trades(shared_data)["price"])
