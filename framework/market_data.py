"""Market-data stage: keep each instrument's L1 book, L2 book, last trade and last bar.

Kernels take the pipeline's arrays and one event record and update them in place;
the L1 kernels also take the event's instrument ``i`` as ``step`` checked it (in range
and unsigned: see ``framework.step``).
The L2 book is a fixed-capacity sorted array per side (bids descending, asks
ascending) keyed by exact fixed-point prices; levels beyond the capacity, which are
far from the touch, are dropped and counted rather than grown into.
"""

from __future__ import annotations

from numba import njit

from framework.events import BookFlag, Side
from framework.jit import HOT, KERNEL


@njit(**HOT)
def apply_trade(market, i, ev) -> None:
    """Record a print as the instrument's last trade and fold it into the running bar."""
    m = market[i]
    m.last_price = ev.price
    m.last_size = ev.size
    m.ts_trade = ev.ts_recv
    m.ts_last = ev.ts_recv


@njit(**HOT)
def apply_quote(market, i, ev) -> None:
    """Replace the instrument's best bid and offer."""
    m = market[i]
    m.bid_price = ev.bid_price
    m.bid_size = ev.bid_size
    m.ask_price = ev.ask_price
    m.ask_size = ev.ask_size
    m.ts_quote = ev.ts_recv
    m.ts_last = ev.ts_recv


@njit(**HOT)
def apply_bar(market, i, ev) -> None:
    """Record a completed bar; its close also serves as the last price."""
    m = market[i]
    m.bar_open = ev.open
    m.bar_high = ev.high
    m.bar_low = ev.low
    m.bar_close = ev.close
    m.bar_volume = ev.volume
    m.ts_bar = ev.ts_recv
    m.last_price = ev.close
    m.ts_last = ev.ts_recv


@njit(**KERNEL)
def _find_level(levels, depth: int, price: int, descending: bool) -> int:
    """Binary search: index of ``price`` or of where it would be inserted."""
    lo = 0
    hi = depth
    while lo < hi:
        mid = (lo + hi) >> 1
        p = levels[mid, 0]
        before = p > price if descending else p < price
        if before:
            lo = mid + 1
        else:
            hi = mid
    return lo


@njit(**KERNEL)
def set_level(book, book_depth, instrument_id: int, side_index: int, price: int, size: int) -> bool:
    """Set the size at one price level (0 deletes it); return False if a level was dropped
    because the side is full (the new level itself, or the farthest one it displaced)."""
    levels = book[instrument_id, side_index]
    depth = book_depth[instrument_id, side_index]
    capacity = levels.shape[0]
    i = _find_level(levels, depth, price, side_index == 0)
    exists = i < depth and levels[i, 0] == price
    if size == 0:
        if exists:
            for j in range(i, depth - 1):
                levels[j, 0] = levels[j + 1, 0]
                levels[j, 1] = levels[j + 1, 1]
            book_depth[instrument_id, side_index] = depth - 1
        return True
    if exists:
        levels[i, 1] = size
        return True
    if i >= capacity:
        return False
    last = depth if depth < capacity else capacity - 1
    for j in range(last, i, -1):
        levels[j, 0] = levels[j - 1, 0]
        levels[j, 1] = levels[j - 1, 1]
    levels[i, 0] = price
    levels[i, 1] = size
    if depth < capacity:
        book_depth[instrument_id, side_index] = depth + 1
    return depth < capacity  # False: the book was full and its farthest level fell off


@njit(**KERNEL)
def apply_book(market, book, book_depth, ev) -> bool:
    """Apply one L2 level record; at a message's last record refresh L1 from the book.

    Returns False when the level fell outside the book's capacity and was dropped.
    """
    i = ev.instrument_id
    side_index = 0 if ev.side == Side.BUY else 1
    if ev.flags & BookFlag.CLEAR:
        book_depth[i, side_index] = 0
    kept = set_level(book, book_depth, i, side_index, ev.price, ev.size)
    m = market[i]
    m.ts_last = ev.ts_recv
    if ev.flags & BookFlag.LAST:
        if book_depth[i, 0] > 0:
            m.bid_price = book[i, 0, 0, 0]
            m.bid_size = book[i, 0, 0, 1]
        else:
            m.bid_price = 0
            m.bid_size = 0
        if book_depth[i, 1] > 0:
            m.ask_price = book[i, 1, 0, 0]
            m.ask_size = book[i, 1, 0, 1]
        else:
            m.ask_price = 0
            m.ask_size = 0
        m.ts_quote = ev.ts_recv
    return kept


@njit(**HOT)
def mid_of(m) -> int:
    """Mid of the best bid and offer of one instrument's record ``m`` (``market[i]``) in
    fixed point, or 0 when either side is missing."""
    if m.bid_size > 0 and m.ask_size > 0:
        return (m.bid_price + m.ask_price) >> 1
    return 0


@njit(**HOT)
def mid_price(market, instrument_id: int) -> int:
    """``mid_of`` instrument ``instrument_id``."""
    return mid_of(market[instrument_id])


@njit(**HOT)
def reference_of(m) -> int:
    """The price risk and marking use, of one instrument's record ``m`` (``market[i]``):
    the mid when quoted, else the last trade, else 0."""
    mid = mid_of(m)
    if mid > 0:
        return mid
    return m.last_price


@njit(**HOT)
def reference_price(market, instrument_id: int) -> int:
    """``reference_of`` instrument ``instrument_id``."""
    return reference_of(market[instrument_id])
