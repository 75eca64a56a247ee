"""The rolling windows: exact sums that survive a huge value leaving, exact flat windows."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pandas as pd
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from numba import njit
from numpy.lib.stride_tricks import sliding_window_view

from framework.indicators.window import (
    MOMENTS_HEADER,
    PAIR_HEADER,
    moments_init,
    moments_mean,
    moments_push,
    moments_var,
    pair_init,
    pair_push,
    pair_sums,
)

EPS = np.finfo(np.float64).eps


@njit(cache=True)
def _moments(x, n):
    w = np.empty(MOMENTS_HEADER + n)
    moments_init(w, n)
    mean = np.full(x.shape[0], np.nan)
    var = np.full(x.shape[0], np.nan)
    for t in range(x.shape[0]):
        if moments_push(w, x[t]):
            mean[t] = moments_mean(w)
            var[t] = moments_var(w)
    return mean, var


@njit(cache=True)
def _pairs(a, b, n):
    w = np.empty(PAIR_HEADER + 2 * n)
    pair_init(w, n)
    out = np.full((a.shape[0], 2), np.nan)
    for t in range(a.shape[0]):
        if pair_push(w, a[t], b[t]):
            out[t, 0], out[t, 1] = pair_sums(w)
    return out


@st.composite
def spiky(draw):
    """Values near a level, with huge outliers (up to 1e12 times the level) now and then."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    size = draw(st.integers(1, 400))
    level = draw(st.sampled_from([1e-3, 1.0, 6e4]))
    x = level * (1 + rng.normal(0, draw(st.sampled_from([1e-9, 1e-4, 1e-2])), size))
    spikes = rng.random(size) < 0.03
    x[spikes] *= 10.0 ** rng.uniform(3, 12, spikes.sum())
    return x


def _local_range(x: np.ndarray, span: int) -> np.ndarray:
    """Range (max - min) of the last ``span`` values at each point."""
    s = pd.Series(x)
    return (s.rolling(span, min_periods=1).max() - s.rolling(span, min_periods=1).min()).to_numpy()


def _exact_moments(x: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean and population variance of each full window, in exact rational arithmetic."""
    mean = np.full(x.shape[0], np.nan)
    var = np.full(x.shape[0], np.nan)
    for t, w in enumerate(sliding_window_view(x, n) if x.size >= n else [], start=n - 1):
        values = [Fraction(v) for v in w]
        mu = sum(values) / n
        mean[t] = float(mu)
        var[t] = float(sum((v - mu) ** 2 for v in values) / n)
    return mean, var


@settings(max_examples=100, deadline=None)
@given(x=spiky(), n=st.integers(1, 40))
def test_mean_and_variance_are_accurate_relative_to_the_window_itself_after_a_spike_leaves(x, n):
    mean, var = _moments(x, n)
    want_mean, want_var = _exact_moments(x, n)
    # The error is set by the values of the window and of the one before (the shift is
    # the previous window's mean), not by a spike that has left both.
    local = _local_range(x, 2 * n)
    full = ~np.isnan(want_var)
    assert np.all(np.abs(var[full] - want_var[full]) <= (8 * EPS * local**2)[full])
    assert np.all(np.abs(mean[full] - want_mean[full]) <= (4 * EPS * (local + np.abs(want_mean)))[full])


@settings(max_examples=100, deadline=None)
@given(x=spiky(), n=st.integers(1, 40), seed=st.integers(0, 2**32 - 1))
def test_pair_sums_are_accurate_relative_to_what_is_in_the_window(x, n, seed):
    assume(x.size >= n)
    signed = x * np.random.default_rng(seed).choice([-1.0, 1.0], x.shape)
    sums = _pairs(signed, x, n)[n - 1 :]
    exact_a = np.array([float(sum(map(Fraction, w))) for w in sliding_window_view(signed, n)])
    exact_b = np.array([float(sum(map(Fraction, w))) for w in sliding_window_view(x, n)])
    magnitude = sliding_window_view(x, n).sum(axis=1)  # the window's own magnitude, not the stream's
    assert np.all(np.abs(sums[:, 0] - exact_a) <= 4 * EPS * magnitude)
    assert np.all(np.abs(sums[:, 1] - exact_b) <= 4 * EPS * magnitude)


@settings(max_examples=50, deadline=None)
@given(c=st.floats(-1e300, 1e300), n=st.integers(1, 40), extra=st.integers(0, 100))
def test_a_window_of_identical_values_has_exactly_their_mean_and_zero_variance(c, n, extra):
    x = np.concatenate([np.linspace(-1.0, 1.0, 7), np.full(n + extra, c)])
    mean, var = _moments(x, n)
    assert (mean[7 + n - 1 :] == c).all() and (var[7 + n - 1 :] == 0.0).all()
