"""Order-book pressure: imbalance and microprice, from the best levels (L1) or the top ``n`` (L2).

These are instantaneous: the output depends only on the current book. They still
keep a state (their last output) so that, like every indicator, a gap carries the
last value: an L1 event is a gap when a price or size is not finite, a size is
negative, or the sizes needed are zero (a book with nothing to weigh).

L2 inputs are float64 arrays of levels, best first (bids descending, asks ascending),
as many as the caller has; the first ``levels`` of them are used. A level whose size
is not finite and positive (or whose price is not finite) is empty: pass NaN or 0
past the end of a shallow book. The pipeline's book holds fixed point
(``p.book[i, side, level] = (price, size)``, ``p.book_depth[i, side]`` levels in use):
convert ``book[i, 0, :depth, 1] * INV_PRICE_SCALE`` into a preallocated array.
Batch versions take 2-D arrays, one row per book.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from framework.indicators.window import check_window
from framework.jit import HOT

# ----------------------------------------------------------------------------- L1


@njit(cache=True)
def book_imbalance_state_nb() -> np.ndarray:
    """Allocate the state of the L1 imbalance: ``[value]``."""
    return np.full(1, np.nan)


@njit(**HOT)
def book_imbalance_update_nb(state: np.ndarray, bid_size: float, ask_size: float) -> float:
    """Return ``(bid_size - ask_size) / (bid_size + ask_size)`` in [-1, 1]: +1 all bids, -1 all asks.

    A one-sided book (one size 0) is a legitimate +-1; both sizes 0 is a gap.
    """
    if math.isfinite(bid_size) and math.isfinite(ask_size) and bid_size >= 0.0 and ask_size >= 0.0:
        total = bid_size + ask_size
        if total > 0.0:
            state[0] = (bid_size - ask_size) / total
    return state[0]


@njit(cache=True)
def book_imbalance_1d_nb(bid_size: np.ndarray, ask_size: np.ndarray) -> np.ndarray:
    """Return the L1 imbalance after each quote."""
    state = book_imbalance_state_nb()
    out = np.empty(bid_size.shape[0])
    for t in range(bid_size.shape[0]):
        out[t] = book_imbalance_update_nb(state, bid_size[t], ask_size[t])
    return out


@njit(cache=True)
def microprice_state_nb() -> np.ndarray:
    """Allocate the state of the L1 microprice: ``[value]``."""
    return np.full(1, np.nan)


@njit(**HOT)
def microprice_update_nb(
    state: np.ndarray, bid_price: float, bid_size: float, ask_price: float, ask_size: float
) -> float:
    """Return the size-weighted mid ``(bid * ask_size + ask * bid_size) / (bid_size + ask_size)``.

    It leans toward the side with less size, the one more likely to be taken out next.
    Needs both sides (both sizes positive); an equal-size book gives the mid.
    """
    if (
        math.isfinite(bid_price)
        and math.isfinite(ask_price)
        and math.isfinite(bid_size)
        and math.isfinite(ask_size)
        and bid_size > 0.0
        and ask_size > 0.0
    ):
        state[0] = (bid_price * ask_size + ask_price * bid_size) / (bid_size + ask_size)
    return state[0]


@njit(cache=True)
def microprice_1d_nb(
    bid_price: np.ndarray, bid_size: np.ndarray, ask_price: np.ndarray, ask_size: np.ndarray
) -> np.ndarray:
    """Return the L1 microprice after each quote."""
    state = microprice_state_nb()
    out = np.empty(bid_price.shape[0])
    for t in range(bid_price.shape[0]):
        out[t] = microprice_update_nb(state, bid_price[t], bid_size[t], ask_price[t], ask_size[t])
    return out


# ----------------------------------------------------------------------------- L2


@njit(**HOT)
def _side_volume(sizes: np.ndarray, levels: int) -> float:
    """Return the total size of the non-empty levels among the first ``levels``."""
    volume = 0.0
    for i in range(min(levels, sizes.shape[0])):
        s = sizes[i]
        if math.isfinite(s) and s > 0.0:
            volume += s
    return volume


@njit(**HOT)
def _side_depth(prices: np.ndarray, sizes: np.ndarray, levels: int) -> tuple[float, float]:
    """Return (total size, total price * size) of the non-empty levels among the first ``levels``."""
    volume = 0.0
    notional = 0.0
    for i in range(min(levels, sizes.shape[0])):
        s = sizes[i]
        p = prices[i]
        if math.isfinite(s) and s > 0.0 and math.isfinite(p):
            volume += s
            notional += p * s
    return volume, notional


@njit(cache=True)
def book_imbalance_l2_state_nb(levels: int) -> np.ndarray:
    """Allocate the state of the imbalance over the top ``levels`` levels: ``[value, levels]``."""
    check_window(levels)
    state = np.empty(2)
    state[0] = np.nan
    state[1] = levels
    return state


@njit(**HOT)
def book_imbalance_l2_update_nb(state: np.ndarray, bid_sizes: np.ndarray, ask_sizes: np.ndarray) -> float:
    """Return ``(B - A) / (B + A)`` with ``B``, ``A`` the total size of the top ``levels`` bids and asks.

    Equals the L1 imbalance with ``levels = 1``. An empty book is a gap.
    """
    levels = int(state[1])
    bids = _side_volume(bid_sizes, levels)
    asks = _side_volume(ask_sizes, levels)
    if bids + asks > 0.0:
        state[0] = (bids - asks) / (bids + asks)
    return state[0]


@njit(cache=True)
def book_imbalance_l2_1d_nb(bid_sizes: np.ndarray, ask_sizes: np.ndarray, levels: int) -> np.ndarray:
    """Return the L2 imbalance for each row (one book per row) of the 2-D size arrays."""
    state = book_imbalance_l2_state_nb(levels)
    out = np.empty(bid_sizes.shape[0])
    for t in range(bid_sizes.shape[0]):
        out[t] = book_imbalance_l2_update_nb(state, bid_sizes[t], ask_sizes[t])
    return out


@njit(cache=True)
def microprice_l2_state_nb(levels: int) -> np.ndarray:
    """Allocate the state of the microprice over the top ``levels`` levels: ``[value, levels]``."""
    check_window(levels)
    state = np.empty(2)
    state[0] = np.nan
    state[1] = levels
    return state


@njit(**HOT)
def microprice_l2_update_nb(
    state: np.ndarray, bid_prices: np.ndarray, bid_sizes: np.ndarray, ask_prices: np.ndarray, ask_sizes: np.ndarray
) -> float:
    """Return ``(P_b * A + P_a * B) / (A + B)`` over the top ``levels`` levels of each side.

    ``P_b`` and ``P_a`` are the size-weighted prices of the bid and ask levels, ``B``
    and ``A`` their total sizes: the L1 microprice with each side's depth in place of
    its best level (equal, up to rounding, with ``levels = 1``). Needs both sides.
    """
    levels = int(state[1])
    bids, bid_notional = _side_depth(bid_prices, bid_sizes, levels)
    asks, ask_notional = _side_depth(ask_prices, ask_sizes, levels)
    if bids > 0.0 and asks > 0.0:
        state[0] = (bid_notional / bids * asks + ask_notional / asks * bids) / (bids + asks)
    return state[0]


@njit(cache=True)
def microprice_l2_1d_nb(
    bid_prices: np.ndarray, bid_sizes: np.ndarray, ask_prices: np.ndarray, ask_sizes: np.ndarray, levels: int
) -> np.ndarray:
    """Return the L2 microprice for each row (one book per row) of the 2-D level arrays."""
    state = microprice_l2_state_nb(levels)
    out = np.empty(bid_prices.shape[0])
    for t in range(bid_prices.shape[0]):
        out[t] = microprice_l2_update_nb(state, bid_prices[t], bid_sizes[t], ask_prices[t], ask_sizes[t])
    return out
