"""Volume-weighted indicators of trades: rolling and session VWAP, trade-flow imbalance.

Inputs are float64 whole units (``price * INV_PRICE_SCALE``, ``size * INV_PRICE_SCALE``
from the fixed-point events). A trade is valid when its price is finite and its size
finite and positive: a print of no size says nothing about where volume traded, and
skipping it means no window can have zero volume to divide by. Invalid trades are
gaps: skipped, outputs unchanged.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from framework.indicators.window import PAIR_HEADER, check_window, extend_run, pair_init, pair_push, pair_sums
from framework.jit import HOT

DAY_NS = 86_400_000_000_000

# ----------------------------------------------------------------------------- rolling VWAP

_VWAP_RUN, _VWAP_LAST = 1, 2
_VWAP_WINDOW = 3


@njit(cache=True)
def vwap_state_nb(window: int) -> np.ndarray:
    """Allocate the state of the VWAP of the last ``window`` valid trades.

    Layout: ``[value, run of identical prices, last price | pair window (price * size, size)]``.
    """
    check_window(window)
    state = np.zeros(_VWAP_WINDOW + PAIR_HEADER + 2 * window)
    state[0] = np.nan
    pair_init(state[_VWAP_WINDOW:], window)
    return state


@njit(**HOT)
def vwap_update_nb(state: np.ndarray, price: float, size: float) -> float:
    """Fold one trade in and return ``sum(price * size) / sum(size)`` over the last ``window`` trades.

    NaN until ``window`` valid trades. When all of them traded at one price the VWAP
    is exactly that price.
    """
    if not (math.isfinite(price) and math.isfinite(size) and size > 0.0):
        return state[0]
    w = state[_VWAP_WINDOW:]
    n = w[0]
    state[_VWAP_RUN] = extend_run(state[_VWAP_RUN], w[1] > 0.0 and price == state[_VWAP_LAST], n)
    state[_VWAP_LAST] = price
    if pair_push(w, price * size, size):
        notional, volume = pair_sums(w)
        if state[_VWAP_RUN] >= n:
            state[0] = price
        elif volume > 0.0:  # always, as every size is positive and the sums are compensated
            state[0] = notional / volume
    return state[0]


@njit(cache=True)
def vwap_1d_nb(price: np.ndarray, size: np.ndarray, window: int) -> np.ndarray:
    """Return the rolling VWAP after each trade."""
    state = vwap_state_nb(window)
    out = np.empty(price.shape[0])
    for t in range(price.shape[0]):
        out[t] = vwap_update_nb(state, price[t], size[t])
    return out


# ----------------------------------------------------------------------------- session VWAP

_SV_START, _SV_SESSION, _SV_NOTIONAL, _SV_VOLUME, _SV_FLAT, _SV_LAST = 1, 2, 3, 4, 5, 6
_SV_SIZE = 7


@njit(cache=True)
def vwap_session_state_nb(session_start_ns: int) -> np.ndarray:
    """Allocate the state of the cumulative VWAP since the session's start.

    Sessions are UTC days shifted by ``session_start_ns`` (0 = midnight UTC;
    ``13 * 3600e9 + 30 * 60e9`` = 13:30 UTC). Layout: ``[value, session start, session
    number, sum(price * size), sum(size), all prices equal (1/0), last price]``.
    """
    if not 0 <= session_start_ns < DAY_NS:
        raise ValueError("vwap_session: need 0 <= session_start_ns < one day")
    state = np.zeros(_SV_SIZE)
    state[0] = np.nan
    state[_SV_START] = session_start_ns
    state[_SV_SESSION] = np.nan
    return state


@njit(**HOT)
def vwap_session_update_nb(state: np.ndarray, ts_ns: int, price: float, size: float) -> float:
    """Fold one trade at ``ts_ns`` (int64 ns since the epoch) in and return the session's VWAP.

    The sums restart with the first valid trade of a new session, so until then the
    previous session's VWAP is carried (a gap carries the last value, always). Defined
    from the session's first trade; exactly the price when the session has traded at
    one price only. Sums are plain running sums: no window, nothing to resync.
    """
    if not (math.isfinite(price) and math.isfinite(size) and size > 0.0):
        return state[0]
    session = (ts_ns - np.int64(state[_SV_START])) // DAY_NS
    if session != state[_SV_SESSION]:
        state[_SV_SESSION] = session
        state[_SV_NOTIONAL] = 0.0
        state[_SV_VOLUME] = 0.0
        state[_SV_FLAT] = 1.0
    elif price != state[_SV_LAST]:
        state[_SV_FLAT] = 0.0
    state[_SV_LAST] = price
    state[_SV_NOTIONAL] += price * size
    state[_SV_VOLUME] += size
    state[0] = price if state[_SV_FLAT] == 1.0 else state[_SV_NOTIONAL] / state[_SV_VOLUME]
    return state[0]


@njit(cache=True)
def vwap_session_1d_nb(ts_ns: np.ndarray, price: np.ndarray, size: np.ndarray, session_start_ns: int) -> np.ndarray:
    """Return the session VWAP after each trade."""
    state = vwap_session_state_nb(session_start_ns)
    out = np.empty(price.shape[0])
    for t in range(price.shape[0]):
        out[t] = vwap_session_update_nb(state, ts_ns[t], price[t], size[t])
    return out


# ----------------------------------------------------------------------------- trade-flow imbalance

_TF_WINDOW = 2


@njit(cache=True)
def trade_flow_state_nb(window: int) -> np.ndarray:
    """Allocate the state of the trade-flow imbalance of the last ``window`` valid trades.

    Layout: ``[flow, imbalance | pair window (side * size, size)]``.
    """
    check_window(window)
    state = np.zeros(_TF_WINDOW + PAIR_HEADER + 2 * window)
    state[:2] = np.nan
    pair_init(state[_TF_WINDOW:], window)
    return state


@njit(**HOT)
def trade_flow_update_nb(state: np.ndarray, size: float, side: float) -> tuple[float, float]:
    """Fold one trade in and return ``(flow, imbalance)`` over the last ``window`` trades.

    ``side`` is the aggressor: +1 buy, -1 sell, 0 unknown (``framework.events.Side``).
    ``flow = sum(side * size)`` is the signed volume, ``imbalance = flow / sum(size)``
    in [-1, 1]; trades of unknown side dilute it. NaN until ``window`` trades.
    """
    if math.isfinite(size) and math.isfinite(side) and size > 0.0:
        w = state[_TF_WINDOW:]
        if pair_push(w, side * size, size):
            flow, volume = pair_sums(w)
            if volume > 0.0:  # always, as every size is positive and the sums are compensated
                state[0] = flow
                state[1] = flow / volume
    return state[0], state[1]


@njit(cache=True)
def trade_flow_1d_nb(size: np.ndarray, side: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(flow, imbalance)`` after each trade."""
    state = trade_flow_state_nb(window)
    n = size.shape[0]
    flow = np.empty(n)
    imbalance = np.empty(n)
    for t in range(n):
        flow[t], imbalance[t] = trade_flow_update_nb(state, size[t], side[t])
    return flow, imbalance
