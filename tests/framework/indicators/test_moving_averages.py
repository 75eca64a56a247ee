"""SMA, EMA, WMA: streaming equals batch bit for bit, both follow the formula through gaps, TA-Lib agrees."""

from __future__ import annotations

import numpy as np
import pytest
import talib
from hypothesis import given, settings
from hypothesis import strategies as st
from indicator_cases import (
    assert_close,
    check_streaming_equals_batch,
    ema_ref,
    binance_trades,
    lean_trades,
    scale_of,
    series,
    sma_ref,
    synthetic,
    windows,
    with_gaps,
    wma_ref,
)

from framework.indicators.moving_averages import (
    ema_1d_nb,
    ema_state_nb,
    ema_update_nb,
    sma_1d_nb,
    sma_state_nb,
    sma_update_nb,
    wma_1d_nb,
    wma_state_nb,
    wma_update_nb,
)

KERNELS = {
    "sma": (sma_state_nb, sma_update_nb, sma_1d_nb, sma_ref, talib.SMA),
    "ema": (ema_state_nb, ema_update_nb, ema_1d_nb, ema_ref, talib.EMA),
    "wma": (wma_state_nb, wma_update_nb, wma_1d_nb, wma_ref, talib.WMA),
}
RTOL = 1e-12
"""Agreement with the references, relative to the largest magnitude in the input."""


@pytest.mark.parametrize("name", sorted(KERNELS))
@settings(max_examples=100, deadline=None)
@given(x=series(positive=False), n=windows)
def test_streaming_equals_batch_and_follows_the_formula_through_gaps(name, x, n):
    make_state, update, batch, ref, _ = KERNELS[name]
    out = check_streaming_equals_batch(make_state, update, batch, (n,), x)
    assert_close(out, with_gaps(lambda v: ref(v, n), np.isfinite(x), x), RTOL * scale_of(x))


@pytest.mark.parametrize("name", sorted(KERNELS))
@settings(max_examples=50, deadline=None)
@given(c=st.floats(-1e9, 1e9), n=windows, extra=st.integers(0, 30))
def test_an_average_of_identical_values_is_exactly_that_value(name, c, n, extra):
    out = KERNELS[name][2](np.full(n + extra, c), n)
    assert np.isnan(out[: n - 1]).all()
    assert (out[n - 1 :] == c).all()


def test_a_window_shorter_than_one_is_refused():
    for make_state, *_ in KERNELS.values():
        with pytest.raises(ValueError, match="at least 1"):
            make_state(0)


def check_talib(x: np.ndarray) -> None:
    for name, (_, _, batch, _, talib_fn) in KERNELS.items():
        for n in (1, 5, 30, 200):
            assert_close(batch(x, n), talib_fn(x, n), RTOL * scale_of(x), label=f"{name}({n})")


def test_talib_agrees_on_synthetic_trades():
    check_talib(synthetic()["trade"]["price"])


def test_talib_agrees_on_real_trades(shared_data):
    check_talib(binance_trades(shared_data)["price"])
    check_talib(lean_trades(shared_data)["price"])
