"""Log returns over a horizon of ``k`` observations: ``log(p_t / p_{t-k})``.

The horizon counts valid prices, not time: with trades as input, ``k = 10`` is the
return over the last ten prints. Log returns add across horizons and are symmetric
in up and down moves, which is what a model wants as an input. Prices must be finite
and positive; anything else is a gap (skipped, output unchanged). Declare one
indicator per horizon for several horizons.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from framework.indicators.window import check_window
from framework.jit import HOT

_LR_K, _LR_COUNT, _LR_HEAD = 1, 2, 3
_LR_RING = 4


@njit(cache=True)
def log_return_state_nb(horizon: int) -> np.ndarray:
    """Allocate the state of the ``horizon``-observation log return.

    Layout: ``[value, k, count, head | ring of the last k prices]``.
    """
    check_window(horizon)
    state = np.zeros(_LR_RING + horizon)
    state[0] = np.nan
    state[_LR_K] = horizon
    return state


@njit(**HOT)
def log_return_update_nb(state: np.ndarray, price: float) -> float:
    """Fold ``price`` in and return ``log(price / price k valid observations ago)``.

    NaN until ``k + 1`` valid prices; exactly 0 when the price is unchanged.
    """
    if not (math.isfinite(price) and price > 0.0):
        return state[0]
    k = int(state[_LR_K])
    count = state[_LR_COUNT]
    head = int(state[_LR_HEAD])
    ring = state[_LR_RING:]
    if count >= k:
        state[0] = math.log(price / ring[head])
    ring[head] = price
    state[_LR_HEAD] = head + 1 if head + 1 < k else 0
    state[_LR_COUNT] = count + 1.0
    return state[0]


@njit(cache=True)
def log_return_1d_nb(price: np.ndarray, horizon: int) -> np.ndarray:
    """Return the ``horizon``-observation log return after each element of ``price``."""
    state = log_return_state_nb(horizon)
    out = np.empty(price.shape[0])
    for t in range(price.shape[0]):
        out[t] = log_return_update_nb(state, price[t])
    return out
