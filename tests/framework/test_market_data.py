"""Market-data stage: L1 from trades, quotes and bars; the fixed-capacity L2 book."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numba import njit

from framework.events import (
    EVENT_DTYPE,
    BookFlag,
    EventKind,
    Side,
    concat_events,
    to_fixed,
)
from framework.market_data import (
    apply_bar,
    apply_book,
    apply_quote,
    apply_trade,
    mid_price,
    reference_price,
    set_level,
)
from framework.state import MARKET_DTYPE


def fx(x: float) -> int:
    return to_fixed(x)


@njit
def _apply_all(market, book, book_depth, events, kept):
    """Apply each record with the kernel for its kind (records are passed as the loop does)."""
    for i in range(events.shape[0]):
        ev = events[i]
        if ev.kind == EventKind.TRADE:
            apply_trade(market, ev.instrument_id, ev)
        elif ev.kind == EventKind.QUOTE:
            apply_quote(market, ev.instrument_id, ev)
        elif ev.kind == EventKind.BAR:
            apply_bar(market, ev.instrument_id, ev)
        else:
            kept[i] = apply_book(market, book, book_depth, ev)


def feed(events, n_instruments=1, levels=8):
    market = np.zeros(n_instruments, MARKET_DTYPE)
    book = np.zeros((n_instruments, 2, levels, 2), np.int64)
    depth = np.zeros((n_instruments, 2), np.int64)
    kept = np.ones(len(events), np.bool_)
    _apply_all(market, book, depth, events, kept)
    return market, book, depth, kept


def ev_array(*rows: dict) -> np.ndarray:
    ev = np.zeros(len(rows), EVENT_DTYPE)
    for k, row in enumerate(rows):
        for name, value in row.items():
            ev[k][name] = value
    return ev


def test_trade_quote_and_bar_update_l1():
    ev = ev_array(
        {"ts_event": 1, "ts_recv": 5, "kind": EventKind.QUOTE, "bid_price": fx(99), "bid_size": fx(2),
         "ask_price": fx(101), "ask_size": fx(3)},
        {"ts_event": 2, "ts_recv": 6, "kind": EventKind.TRADE, "price": fx(100.5), "size": fx(0.25)},
        {"ts_event": 3, "ts_recv": 7, "kind": EventKind.TRADE, "price": fx(100.25), "size": fx(1), "instrument_id": 1},
        {"ts_event": 4, "ts_recv": 8, "kind": EventKind.BAR, "open": fx(1), "high": fx(4), "low": fx(0.5),
         "close": fx(2), "volume": fx(10), "instrument_id": 1},
    )
    m, _, _, _ = feed(ev, n_instruments=2)
    m0, m1 = m[0], m[1]
    assert (m0["bid_price"], m0["bid_size"], m0["ask_price"], m0["ask_size"]) == (fx(99), fx(2), fx(101), fx(3))
    assert (m0["last_price"], m0["last_size"], m0["ts_trade"], m0["ts_quote"], m0["ts_last"]) == (
        fx(100.5), fx(0.25), 6, 5, 6)
    # The bar's close becomes instrument 1's last price; the trade before it set last_size.
    assert (m1["bar_open"], m1["bar_high"], m1["bar_low"], m1["bar_close"], m1["bar_volume"]) == (
        fx(1), fx(4), fx(0.5), fx(2), fx(10))
    assert (m1["last_price"], m1["last_size"], m1["ts_bar"], m1["ts_last"]) == (fx(2), fx(1), 8, 8)
    assert mid_price(m, 0) == fx(100)
    assert reference_price(m, 0) == fx(100)  # quoted: the mid
    assert mid_price(m, 1) == 0
    assert reference_price(m, 1) == fx(2)  # not quoted: the last price


def test_reference_price_falls_back_to_last_trade_when_one_side_is_missing():
    ev = ev_array(
        {"ts_recv": 1, "kind": EventKind.TRADE, "price": fx(50), "size": fx(1)},
        {"ts_recv": 2, "kind": EventKind.QUOTE, "bid_price": fx(49), "bid_size": fx(1), "ask_price": fx(51),
         "ask_size": 0},
    )
    m, _, _, _ = feed(ev)
    assert mid_price(m, 0) == 0
    assert reference_price(m, 0) == fx(50)
    assert reference_price(np.zeros(1, MARKET_DTYPE), 0) == 0


def book_row(side, price, size, flags=0, ts=1):
    return {"ts_event": ts, "ts_recv": ts, "kind": EventKind.BOOK_DELTA, "side": side, "price": fx(price),
            "size": fx(size), "flags": flags}


def test_book_snapshot_and_deltas_refresh_l1_only_at_the_last_record():
    ev = ev_array(
        book_row(Side.BUY, 99, 1, BookFlag.CLEAR),
        book_row(Side.BUY, 98, 2),
        book_row(Side.SELL, 101, 3, BookFlag.CLEAR),
        book_row(Side.SELL, 102, 4, BookFlag.LAST),
    )
    m, book, depth, kept = feed(ev)
    assert kept.all()
    assert list(depth[0]) == [2, 2]
    assert book[0, 0, :2].tolist() == [[fx(99), fx(1)], [fx(98), fx(2)]]
    assert book[0, 1, :2].tolist() == [[fx(101), fx(3)], [fx(102), fx(4)]]
    assert (m[0]["bid_price"], m[0]["bid_size"], m[0]["ask_price"], m[0]["ask_size"]) == (
        fx(99), fx(1), fx(101), fx(3))
    before_last, _, _, _ = feed(ev[:3])  # the same records but the LAST one: L1 untouched
    assert (before_last[0]["bid_size"], before_last[0]["ask_size"], before_last[0]["ts_quote"]) == (0, 0, 0)
    # A delta that removes the best bid without LAST: L1 is not refreshed yet (book inconsistent).
    m2, _, _, _ = feed(_join(ev, ev_array(book_row(Side.BUY, 99, 0))))
    assert m2[0]["bid_price"] == fx(99)
    m3, _, _, _ = feed(_join(ev, ev_array(book_row(Side.BUY, 99, 0, BookFlag.LAST))))
    assert (m3[0]["bid_price"], m3[0]["bid_size"]) == (fx(98), fx(2))
    # Emptying a side clears that side of L1.
    m4, _, d4, _ = feed(_join(ev, ev_array(book_row(Side.SELL, 101, 0), book_row(Side.SELL, 102, 0, BookFlag.LAST))))
    assert d4[0, 1] == 0
    assert (m4[0]["ask_price"], m4[0]["ask_size"]) == (0, 0)
    # CLEAR on a new snapshot drops the old levels of that side.
    m5, b5, d5, _ = feed(_join(ev, ev_array(book_row(Side.BUY, 97, 5, BookFlag.CLEAR | BookFlag.LAST))))
    assert d5[0, 0] == 1 and b5[0, 0, 0].tolist() == [fx(97), fx(5)]
    assert m5[0]["bid_price"] == fx(97)


def _join(a, b):
    return concat_events([a, b])


def test_book_levels_beyond_capacity_are_dropped_and_reported():
    rows = [book_row(Side.SELL, 100 + k, 1) for k in range(5)]
    rows[-1]["flags"] = BookFlag.LAST
    _, book, depth, kept = feed(ev_array(*rows), levels=3)
    assert depth[0, 1] == 3
    assert book[0, 1, :, 0].tolist() == [fx(100), fx(101), fx(102)]
    assert kept.tolist() == [True, True, True, False, False]


# --------------------------------------------------------------------------- L2 book property


class ReferenceBook:
    """A dict per side, trimmed to ``capacity`` best levels; what ``set_level`` must agree with."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.sides: list[dict[int, int]] = [{}, {}]

    def ordered(self, side_index: int) -> list[tuple[int, int]]:
        levels = self.sides[side_index]
        return sorted(levels.items(), key=lambda kv: -kv[0] if side_index == 0 else kv[0])

    def set(self, side_index: int, price: int, size: int) -> bool:
        levels = self.sides[side_index]
        if size == 0:
            levels.pop(price, None)
            return True
        if price in levels:
            levels[price] = size
            return True
        levels[price] = size
        if len(levels) > self.capacity:
            worst = self.ordered(side_index)[-1][0]
            del levels[worst]
            return False  # the new level itself, or the farthest one it displaced, fell off
        return True


@settings(max_examples=200, deadline=None)
@given(
    capacity=st.sampled_from([1, 2, 3, 5]),
    ops=st.lists(
        st.tuples(st.sampled_from([0, 1]), st.integers(1, 12), st.integers(0, 4)),
        max_size=60,
    ),
)
def test_set_level_matches_a_reference_book(capacity, ops):
    book = np.zeros((2, 2, capacity, 2), np.int64)
    depth = np.zeros((2, 2), np.int64)
    ref = ReferenceBook(capacity)
    for side_index, price, size in ops:
        kept = set_level(book, depth, 1, side_index, price, size)
        assert bool(kept) == ref.set(side_index, price, size)
        for s in (0, 1):
            expected = ref.ordered(s)
            assert depth[1, s] == len(expected) <= capacity
            assert [tuple(x) for x in book[1, s, : depth[1, s]].tolist()] == expected
    assert np.all(depth[0] == 0)  # the other instrument is untouched
    assert np.all(book[0] == 0)


@pytest.mark.parametrize("side", [Side.BUY, Side.SELL])
def test_set_level_updates_and_deletes_in_place(side):
    si = 0 if side == Side.BUY else 1
    book = np.zeros((1, 2, 4, 2), np.int64)
    depth = np.zeros((1, 2), np.int64)
    for price in (10, 12, 11):
        assert set_level(book, depth, 0, si, price, 1)
    assert set_level(book, depth, 0, si, 11, 7)
    prices = book[0, si, :3, 0].tolist()
    assert prices == ([12, 11, 10] if si == 0 else [10, 11, 12])
    assert book[0, si, prices.index(11), 1] == 7
    assert set_level(book, depth, 0, si, 99, 0)  # deleting an absent level: a no-op
    assert depth[0, si] == 3
    assert set_level(book, depth, 0, si, 11, 0)
    assert book[0, si, :2, 0].tolist() == ([12, 10] if si == 0 else [10, 12])
    assert depth[0, si] == 2
