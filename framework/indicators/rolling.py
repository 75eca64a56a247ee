"""Rolling statistics of one series: minimum, maximum and z-score over the last ``n`` valid values.

Minimum and maximum use the van Herk / Gil-Werman split: the stream is cut into
blocks of ``n`` values; the window ending now is the tail of the previous block plus
the head of the current one, so its extreme is the larger of the previous block's
suffix extreme (computed once, when that block completed) and the current block's
running prefix extreme. That is two comparisons per value and one O(n) pass per
``n`` values, with no rescan when the extreme leaves and no data-dependent loop.
The output is one of the inputs, so it equals TA-Lib's ``MIN``/``MAX`` exactly. A
non-finite value is a gap: skipped, output unchanged.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from framework.indicators.window import (
    MOMENTS_HEADER,
    check_window,
    moments_init,
    moments_mean,
    moments_push,
    moments_var,
)
from framework.jit import HOT, KERNEL

# ----------------------------------------------------------------------------- min / max

_EXT_N, _EXT_SIGN, _EXT_COUNT, _EXT_HEAD, _EXT_PREFIX = 1, 2, 3, 4, 5
_EXT_RING = 6


@njit(cache=True)
def _extreme_state(window: int, sign: float) -> np.ndarray:
    """Layout: ``[value, n, sign, count, head, prefix | block of n | suffix extremes of the last block, n]``.

    Values are stored times ``sign`` (+1 maximum, -1 minimum; negation is exact), so
    both are a maximum inside.
    """
    check_window(window)
    state = np.zeros(_EXT_RING + 2 * window)
    state[0] = np.nan
    state[_EXT_N] = window
    state[_EXT_SIGN] = sign
    state[_EXT_PREFIX] = -np.inf
    state[_EXT_RING + window :] = -np.inf
    return state


@njit(cache=True)
def rolling_min_state_nb(window: int) -> np.ndarray:
    """Allocate the state of the minimum of the last ``window`` valid values."""
    return _extreme_state(window, -1.0)


@njit(cache=True)
def rolling_max_state_nb(window: int) -> np.ndarray:
    """Allocate the state of the maximum of the last ``window`` valid values."""
    return _extreme_state(window, 1.0)


@njit(**KERNEL)
def _suffix_extremes(block: np.ndarray, suffix: np.ndarray, n: int) -> None:
    """Fill ``suffix[i]`` with the maximum of ``block[i:]``."""
    best = -np.inf
    for i in range(n - 1, -1, -1):
        if block[i] > best:
            best = block[i]
        suffix[i] = best


@njit(**HOT)
def rolling_extreme_update_nb(state: np.ndarray, x: float) -> float:
    """Fold ``x`` into a rolling minimum or maximum (the state says which) and return it.

    NaN until ``window`` values (as TA-Lib).
    """
    if not math.isfinite(x):
        return state[0]
    n = state[_EXT_N]
    size = int(n)
    sign = state[_EXT_SIGN]
    head = state[_EXT_HEAD]
    slot = int(head)
    block = state[_EXT_RING : _EXT_RING + size]
    suffix = state[_EXT_RING + size : _EXT_RING + 2 * size]
    v = sign * x
    prefix = state[_EXT_PREFIX]
    if v > prefix:
        prefix = v
    block[slot] = v
    best = prefix
    if slot + 1 < size and suffix[slot + 1] > best:
        best = suffix[slot + 1]
    head += 1.0
    if head == n:
        head = 0.0
        prefix = -np.inf
        _suffix_extremes(block, suffix, size)
    state[_EXT_HEAD] = head
    state[_EXT_PREFIX] = prefix
    count = state[_EXT_COUNT] + 1.0
    state[_EXT_COUNT] = count
    if count >= n:
        state[0] = sign * best
    return state[0]


rolling_min_update_nb = rolling_extreme_update_nb
"""Fold a value into a rolling minimum and return it (``rolling_extreme_update_nb``)."""
rolling_max_update_nb = rolling_extreme_update_nb
"""Fold a value into a rolling maximum and return it (``rolling_extreme_update_nb``)."""


@njit(cache=True)
def rolling_min_1d_nb(x: np.ndarray, window: int) -> np.ndarray:
    """Return the rolling minimum after each element of ``x``."""
    state = rolling_min_state_nb(window)
    out = np.empty(x.shape[0])
    for t in range(x.shape[0]):
        out[t] = rolling_extreme_update_nb(state, x[t])
    return out


@njit(cache=True)
def rolling_max_1d_nb(x: np.ndarray, window: int) -> np.ndarray:
    """Return the rolling maximum after each element of ``x``."""
    state = rolling_max_state_nb(window)
    out = np.empty(x.shape[0])
    for t in range(x.shape[0]):
        out[t] = rolling_extreme_update_nb(state, x[t])
    return out


# ----------------------------------------------------------------------------- z-score

_Z_WINDOW = 1


@njit(cache=True)
def zscore_state_nb(window: int) -> np.ndarray:
    """Allocate the state of the z-score of the latest value within the last ``window`` valid values.

    Layout: ``[value | moments window]``.
    """
    check_window(window)
    state = np.empty(_Z_WINDOW + MOMENTS_HEADER + window)
    state[0] = np.nan
    moments_init(state[_Z_WINDOW:], window)
    return state


@njit(**HOT)
def zscore_update_nb(state: np.ndarray, x: float) -> float:
    """Fold ``x`` in and return ``(x - mean) / std`` over the window that includes ``x``.

    Population std (ddof 0); NaN until ``window`` values. A window with zero deviation
    (all values identical, so ``x`` is the mean) gives 0, not a division by zero.
    When the deviation is tiny next to the values the z-score is ill-conditioned:
    its error grows like ``|x| / std`` times the rounding error.
    """
    if math.isfinite(x):
        w = state[_Z_WINDOW:]
        if moments_push(w, x):
            std = math.sqrt(moments_var(w))
            state[0] = (x - moments_mean(w)) / std if std > 0.0 else 0.0
    return state[0]


@njit(cache=True)
def zscore_1d_nb(x: np.ndarray, window: int) -> np.ndarray:
    """Return the z-score after each element of ``x``."""
    state = zscore_state_nb(window)
    out = np.empty(x.shape[0])
    for t in range(x.shape[0]):
        out[t] = zscore_update_nb(state, x[t])
    return out
