"""Volatility: Bollinger bands, average true range (Wilder) and realized volatility.

Standard deviations are population ones (ddof 0, as TA-Lib's ``STDDEV`` and
``BBANDS``), from the exact-resync moments window of ``framework.indicators.window``:
a window of identical values has exactly zero deviation. An event with any
non-finite input is a gap: skipped, outputs unchanged.
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
from framework.jit import HOT

# ----------------------------------------------------------------------------- Bollinger bands

_BB_K = 3
_BB_WINDOW = 4


@njit(cache=True)
def bbands_state_nb(window: int, k: float) -> np.ndarray:
    """Allocate the state of Bollinger bands: SMA(window) plus and minus ``k`` standard deviations.

    Layout: ``[middle, upper, lower, k | moments window]``.
    """
    check_window(window)
    state = np.empty(_BB_WINDOW + MOMENTS_HEADER + window)
    state[:3] = np.nan
    state[_BB_K] = k
    moments_init(state[_BB_WINDOW:], window)
    return state


@njit(**HOT)
def bbands_update_nb(state: np.ndarray, x: float) -> tuple[float, float, float]:
    """Fold ``x`` into the bands and return ``(middle, upper, lower)``.

    NaN until ``window`` values; on a flat window all three equal the price. TA-Lib
    computes the variance as ``E[x^2] - E[x]^2``, which loses about
    ``log10(mean^2 / var)`` digits; this window does not, so the two agree only to
    that precision.
    """
    if math.isfinite(x):
        w = state[_BB_WINDOW:]
        if moments_push(w, x):
            mid = moments_mean(w)
            dev = math.sqrt(moments_var(w)) * state[_BB_K]
            state[0] = mid
            state[1] = mid + dev
            state[2] = mid - dev
    return state[0], state[1], state[2]


@njit(cache=True)
def bbands_1d_nb(x: np.ndarray, window: int, k: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return the bands ``(middle, upper, lower)`` after each element of ``x``."""
    state = bbands_state_nb(window, k)
    n = x.shape[0]
    mid = np.empty(n)
    upper = np.empty(n)
    lower = np.empty(n)
    for t in range(n):
        mid[t], upper[t], lower[t] = bbands_update_nb(state, x[t])
    return mid, upper, lower


# ----------------------------------------------------------------------------- ATR

_ATR_N, _ATR_COUNT, _ATR_CLOSE, _ATR_SUM = 1, 2, 3, 4
_ATR_SIZE = 5


@njit(cache=True)
def atr_state_nb(window: int) -> np.ndarray:
    """Allocate the state of Wilder's average true range over ``window`` bars.

    Layout: ``[value, n, count, previous close, sum of the first true ranges]``.
    """
    check_window(window)
    state = np.zeros(_ATR_SIZE)
    state[0] = np.nan
    state[_ATR_N] = window
    return state


@njit(**HOT)
def atr_update_nb(state: np.ndarray, high: float, low: float, close: float) -> float:
    """Fold one bar into the ATR and return it.

    True range ``max(high - low, |close_prev - high|, |low - close_prev|)`` needs the
    previous valid bar's close, so the first bar only sets it. The ATR starts as the
    mean of the first ``window`` true ranges (first output at bar ``window + 1``) and
    then follows ``atr = (atr * (n - 1) + tr) / n``: TA-Lib's ``ATR``, operation for
    operation. A flat market (high = low = close, unchanged) gives exactly 0. Fed
    trades (high = low = close = price) it is the smoothed absolute price change.
    """
    if not (math.isfinite(high) and math.isfinite(low) and math.isfinite(close)):
        return state[0]
    count = state[_ATR_COUNT]
    state[_ATR_COUNT] = count + 1.0
    prev_close = state[_ATR_CLOSE]
    state[_ATR_CLOSE] = close
    if count == 0.0:
        return state[0]
    tr = high - low
    up = abs(prev_close - high)
    if up > tr:
        tr = up
    down = abs(low - prev_close)
    if down > tr:
        tr = down
    n = state[_ATR_N]
    if count > n:
        state[0] = (state[0] * (n - 1.0) + tr) / n
    else:
        state[_ATR_SUM] += tr
        if count == n:
            state[0] = state[_ATR_SUM] / n
    return state[0]


@njit(cache=True)
def atr_1d_nb(high: np.ndarray, low: np.ndarray, close: np.ndarray, window: int) -> np.ndarray:
    """Return the ATR after each bar (the streaming update in a loop)."""
    state = atr_state_nb(window)
    out = np.empty(close.shape[0])
    for t in range(close.shape[0]):
        out[t] = atr_update_nb(state, high[t], low[t], close[t])
    return out


# ----------------------------------------------------------------------------- realized volatility

_RV_PREV = 1
_RV_WINDOW = 2


@njit(cache=True)
def realized_vol_state_nb(window: int) -> np.ndarray:
    """Allocate the state of realized volatility over ``window`` log returns.

    Layout: ``[value, previous price | moments window of log returns]``.
    """
    check_window(window)
    state = np.empty(_RV_WINDOW + MOMENTS_HEADER + window)
    state[0] = np.nan
    state[_RV_PREV] = np.nan
    moments_init(state[_RV_WINDOW:], window)
    return state


@njit(**HOT)
def realized_vol_update_nb(state: np.ndarray, price: float) -> float:
    """Fold ``price`` in and return the population std of the last ``window`` log returns.

    Returns are ``log(p_t / p_prev)`` between consecutive valid prices, so the first
    output comes at the ``window + 1``-th price. Per observation, not annualized;
    prices must be positive (a non-positive price is a gap). A flat market gives
    exactly 0.
    """
    if not (math.isfinite(price) and price > 0.0):
        return state[0]
    prev = state[_RV_PREV]
    state[_RV_PREV] = price
    if math.isnan(prev):
        return state[0]
    w = state[_RV_WINDOW:]
    if moments_push(w, math.log(price / prev)):
        state[0] = math.sqrt(moments_var(w))
    return state[0]


@njit(cache=True)
def realized_vol_1d_nb(price: np.ndarray, window: int) -> np.ndarray:
    """Return the realized volatility after each element of ``price``."""
    state = realized_vol_state_nb(window)
    out = np.empty(price.shape[0])
    for t in range(price.shape[0]):
        out[t] = realized_vol_update_nb(state, price[t])
    return out
