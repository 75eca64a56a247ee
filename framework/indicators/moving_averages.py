"""Moving averages of one series: SMA, EMA (SMA-seeded, as TA-Lib) and WMA.

Every indicator here has three compiled functions (see ``framework.indicators``):
``<name>_state_nb(params)`` allocates its state, ``<name>_update_nb(state, x)`` folds
in one value and returns the current output, and ``<name>_1d_nb(x, params)`` runs the
update over a whole array. A non-finite ``x`` is a gap: skipped, output unchanged.
An average of ``n`` identical values is exactly that value.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from framework.indicators.window import (
    MOMENTS_HEADER,
    check_window,
    extend_run,
    moments_init,
    moments_mean,
    moments_push,
)
from framework.jit import HOT, KERNEL

# ----------------------------------------------------------------------------- SMA


@njit(cache=True)
def sma_state_nb(window: int) -> np.ndarray:
    """Allocate the state of a simple moving average over the last ``window`` valid values.

    Layout: ``[value | moments window]``.
    """
    check_window(window)
    state = np.empty(1 + MOMENTS_HEADER + window)
    state[0] = np.nan
    moments_init(state[1:], window)
    return state


@njit(**HOT)
def sma_update_nb(state: np.ndarray, x: float) -> float:
    """Fold ``x`` into the SMA and return it: the mean of the last ``window`` valid values.

    NaN until ``window`` values have arrived (as TA-Lib's ``SMA``).
    """
    if math.isfinite(x):
        w = state[1:]
        if moments_push(w, x):
            state[0] = moments_mean(w)
    return state[0]


@njit(cache=True)
def sma_1d_nb(x: np.ndarray, window: int) -> np.ndarray:
    """Return the SMA after each element of ``x`` (the streaming update in a loop)."""
    state = sma_state_nb(window)
    out = np.empty(x.shape[0])
    for t in range(x.shape[0]):
        out[t] = sma_update_nb(state, x[t])
    return out


# ----------------------------------------------------------------------------- EMA

_EMA_N, _EMA_ALPHA, _EMA_COUNT, _EMA_SUM, _EMA_RUN, _EMA_LAST = 1, 2, 3, 4, 5, 6
EMA_STATE_SIZE = 7
"""Slots of an EMA state: value, n, alpha, count, sum, run, last (MACD embeds three)."""


@njit(**KERNEL)
def ema_init(state: np.ndarray, window: int) -> None:
    """Reset ``state`` (``EMA_STATE_SIZE`` slots) to an EMA of span ``window`` with no values yet."""
    check_window(window)
    state[:] = 0.0
    state[0] = np.nan
    state[_EMA_N] = window
    state[_EMA_ALPHA] = 2.0 / (window + 1)


@njit(cache=True)
def ema_state_nb(window: int) -> np.ndarray:
    """Allocate the state of an exponential moving average with ``alpha = 2 / (window + 1)``."""
    state = np.empty(EMA_STATE_SIZE)
    ema_init(state, window)
    return state


@njit(**HOT)
def ema_update_nb(state: np.ndarray, x: float) -> float:
    """Fold ``x`` into the EMA and return it.

    Seeded as TA-Lib does: NaN for the first ``window - 1`` values, then the mean of the
    first ``window`` values, then ``ema += (x - ema) * alpha`` in TA-Lib's operation
    order. A seed over identical values is that value exactly, so a flat series gives
    a flat EMA.
    """
    if not math.isfinite(x):
        return state[0]
    n = state[_EMA_N]
    count = state[_EMA_COUNT] + 1.0
    state[_EMA_COUNT] = count
    state[_EMA_RUN] = extend_run(state[_EMA_RUN], count > 1.0 and x == state[_EMA_LAST], n)
    state[_EMA_LAST] = x
    if count > n:
        prev = state[0]
        state[0] = ((x - prev) * state[_EMA_ALPHA]) + prev
    else:
        state[_EMA_SUM] += x
        if count == n:
            state[0] = x if state[_EMA_RUN] >= n else state[_EMA_SUM] / n
    return state[0]


@njit(cache=True)
def ema_1d_nb(x: np.ndarray, window: int) -> np.ndarray:
    """Return the EMA after each element of ``x`` (the streaming update in a loop)."""
    state = ema_state_nb(window)
    out = np.empty(x.shape[0])
    for t in range(x.shape[0]):
        out[t] = ema_update_nb(state, x[t])
    return out


# ----------------------------------------------------------------------------- WMA

_WMA_N, _WMA_COUNT, _WMA_HEAD, _WMA_SUM, _WMA_WSUM, _WMA_RUN, _WMA_LAST = 1, 2, 3, 4, 5, 6, 7
_WMA_RING = 8


@njit(cache=True)
def wma_state_nb(window: int) -> np.ndarray:
    """Allocate the state of a linearly weighted moving average over ``window`` valid values.

    Layout: ``[value, n, count, head, sum, weighted sum, run, last | ring of n]``.
    """
    check_window(window)
    state = np.zeros(_WMA_RING + window)
    state[0] = np.nan
    state[_WMA_N] = window
    return state


@njit(**KERNEL)
def _wma_resync(state: np.ndarray, ring: np.ndarray, n: int) -> None:
    """Recompute both sums from the ring (in time order when this runs)."""
    total = 0.0
    weighted = 0.0
    for i in range(n):
        total += ring[i]
        weighted += (i + 1) * ring[i]
    state[_WMA_SUM] = total
    state[_WMA_WSUM] = weighted


@njit(**HOT)
def wma_update_nb(state: np.ndarray, x: float) -> float:
    """Fold ``x`` into the WMA and return it: ``sum(i * x_i) / (n (n + 1) / 2)``, newest weight ``n``.

    NaN until ``window`` values (as TA-Lib's ``WMA``). The weighted sum moves by
    ``n x - sum`` per value; both sums are recomputed exactly every ``n`` values.
    """
    if not math.isfinite(x):
        return state[0]
    n = int(state[_WMA_N])
    count = state[_WMA_COUNT]
    head = int(state[_WMA_HEAD])
    ring = state[_WMA_RING:]
    state[_WMA_RUN] = extend_run(state[_WMA_RUN], count > 0 and x == state[_WMA_LAST], n)
    state[_WMA_LAST] = x
    if count >= n:
        total = state[_WMA_SUM]
        state[_WMA_WSUM] += n * x - total
        state[_WMA_SUM] = total + (x - ring[head])
    ring[head] = x
    head += 1
    if head == n:
        head = 0
        _wma_resync(state, ring, n)
    state[_WMA_HEAD] = head
    state[_WMA_COUNT] = count + 1
    if count + 1 >= n:
        state[0] = x if state[_WMA_RUN] >= n else state[_WMA_WSUM] / (n * (n + 1) / 2)
    return state[0]


@njit(cache=True)
def wma_1d_nb(x: np.ndarray, window: int) -> np.ndarray:
    """Return the WMA after each element of ``x`` (the streaming update in a loop)."""
    state = wma_state_nb(window)
    out = np.empty(x.shape[0])
    for t in range(x.shape[0]):
        out[t] = wma_update_nb(state, x[t])
    return out
