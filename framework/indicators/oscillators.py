"""Momentum oscillators of one series: RSI (Wilder) and MACD.

Both follow TA-Lib's seeding and operation order, so on gap-free data they equal
``talib.RSI`` and ``talib.MACD`` to the last bit or so; the differences (RSI of a flat
market, MACD's line before its signal is warm) are in each docstring. A non-finite
``x`` is a gap: skipped, outputs unchanged.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from framework.indicators.moving_averages import EMA_STATE_SIZE, ema_init, ema_update_nb
from framework.indicators.window import check_window
from framework.jit import HOT

# ----------------------------------------------------------------------------- RSI

_RSI_N, _RSI_COUNT, _RSI_PREV, _RSI_GAIN, _RSI_LOSS = 1, 2, 3, 4, 5
_RSI_SIZE = 6


@njit(cache=True)
def rsi_state_nb(window: int) -> np.ndarray:
    """Allocate the state of Wilder's RSI over ``window`` price changes.

    Layout: ``[value, n, count, previous x, average gain, average loss]``.
    """
    check_window(window)
    state = np.zeros(_RSI_SIZE)
    state[0] = np.nan
    state[_RSI_N] = window
    return state


@njit(**HOT)
def _rsi_value(gain: float, loss: float) -> float:
    total = gain + loss
    return 100.0 * (gain / total) if total > 0.0 else 50.0


@njit(**HOT)
def rsi_update_nb(state: np.ndarray, x: float) -> float:
    """Fold ``x`` into the RSI and return ``100 * avg_gain / (avg_gain + avg_loss)``.

    Changes are between consecutive valid values. The averages start as the plain
    means of the first ``window`` gains and losses (first output at the
    ``window + 1``-th value), then follow Wilder's smoothing
    ``avg = (avg * (n - 1) + change) / n``, as TA-Lib. With no movement at all
    (both averages exactly zero) the RSI is 50, neutral; TA-Lib returns 0 whenever
    ``avg_gain + avg_loss < 1e-8``, a threshold in price units we do not copy.
    """
    if not math.isfinite(x):
        return state[0]
    count = state[_RSI_COUNT]
    state[_RSI_COUNT] = count + 1.0
    prev = state[_RSI_PREV]
    state[_RSI_PREV] = x
    if count == 0.0:
        return state[0]
    n = state[_RSI_N]
    diff = x - prev
    gain = state[_RSI_GAIN]
    loss = state[_RSI_LOSS]
    if count > n:
        gain *= n - 1.0
        loss *= n - 1.0
    if diff < 0.0:
        loss -= diff
    else:
        gain += diff
    if count >= n:
        gain /= n
        loss /= n
        state[0] = _rsi_value(gain, loss)
    state[_RSI_GAIN] = gain
    state[_RSI_LOSS] = loss
    return state[0]


@njit(cache=True)
def rsi_1d_nb(x: np.ndarray, window: int) -> np.ndarray:
    """Return the RSI after each element of ``x`` (the streaming update in a loop)."""
    state = rsi_state_nb(window)
    out = np.empty(x.shape[0])
    for t in range(x.shape[0]):
        out[t] = rsi_update_nb(state, x[t])
    return out


# ----------------------------------------------------------------------------- MACD

_MACD_COUNT = 3
_MACD_SLOW = 4
_MACD_FAST = _MACD_SLOW + EMA_STATE_SIZE
_MACD_SIGNAL = _MACD_FAST + EMA_STATE_SIZE
_MACD_SIZE = _MACD_SIGNAL + EMA_STATE_SIZE


@njit(cache=True)
def macd_state_nb(fast: int, slow: int, signal: int) -> np.ndarray:
    """Allocate the state of MACD(fast, slow, signal).

    Layout: ``[macd, signal, hist, count | slow EMA | fast EMA | signal EMA]``.
    """
    if not 0 < fast < slow:
        raise ValueError("macd: need 0 < fast < slow")
    state = np.zeros(_MACD_SIZE)
    state[:3] = np.nan
    ema_init(state[_MACD_SLOW:_MACD_FAST], slow)
    ema_init(state[_MACD_FAST:_MACD_SIGNAL], fast)
    ema_init(state[_MACD_SIGNAL:], signal)
    return state


@njit(**HOT)
def macd_update_nb(state: np.ndarray, x: float) -> tuple[float, float, float]:
    """Fold ``x`` into MACD and return ``(macd, signal, hist)``.

    ``macd = EMA_fast - EMA_slow``, ``signal = EMA_signal(macd)``, ``hist = macd - signal``.
    As TA-Lib, the fast EMA is seeded at the same point as the slow one (with the mean
    of the ``fast`` values ending at the ``slow``-th), so both start together. The line
    is output from the ``slow``-th value, the signal and histogram from the
    ``slow + signal - 1``-th; TA-Lib withholds the line until the signal is warm too.
    A flat series gives exactly 0 for all three.
    """
    if math.isfinite(x):
        count = state[_MACD_COUNT] + 1.0
        state[_MACD_COUNT] = count
        slow_state = state[_MACD_SLOW:_MACD_FAST]
        fast_state = state[_MACD_FAST:_MACD_SIGNAL]
        slow = ema_update_nb(slow_state, x)
        if count > slow_state[1] - fast_state[1]:
            ema_update_nb(fast_state, x)
        if count >= slow_state[1]:
            line = fast_state[0] - slow
            signal = ema_update_nb(state[_MACD_SIGNAL:], line)
            state[0] = line
            state[1] = signal
            state[2] = line - signal
    return state[0], state[1], state[2]


@njit(cache=True)
def macd_1d_nb(x: np.ndarray, fast: int, slow: int, signal: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return MACD's ``(macd, signal, hist)`` after each element of ``x``."""
    state = macd_state_nb(fast, slow, signal)
    n = x.shape[0]
    line = np.empty(n)
    sig = np.empty(n)
    hist = np.empty(n)
    for t in range(n):
        line[t], sig[t], hist[t] = macd_update_nb(state, x[t])
    return line, sig, hist
