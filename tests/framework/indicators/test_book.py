"""Book imbalance and microprice, L1 and L2: streaming equals batch bit for bit, the formulas hold
through gaps and empty levels, L2 over one level is L1, on generated and real books."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from indicator_cases import (
    assert_close,
    assert_identical,
    binance_quotes,
    book_l2_ref,
    bybit_books,
    carry,
    check_streaming_equals_batch,
    scale_of,
    synthetic,
)

from framework.indicators.book import (
    book_imbalance_1d_nb,
    book_imbalance_l2_1d_nb,
    book_imbalance_l2_state_nb,
    book_imbalance_l2_update_nb,
    book_imbalance_state_nb,
    book_imbalance_update_nb,
    microprice_1d_nb,
    microprice_l2_1d_nb,
    microprice_l2_state_nb,
    microprice_l2_update_nb,
    microprice_state_nb,
    microprice_update_nb,
)

RTOL = 1e-12
"""L2 microprice agreement (sums in another order), relative to the largest price."""


@st.composite
def books(draw, max_rows: int = 120):
    """[row, level] books: prices around 100 (bids below, asks above), sizes over four decades,
    and bad entries: NaN or zero or negative sizes, NaN prices, rows past the book's depth."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    rows = draw(st.integers(1, max_rows))
    depth = draw(st.integers(1, 8))
    gaps = np.cumsum(rng.uniform(0.01, 0.1, (rows, depth)), axis=1)
    bid_px, ask_px = 100.0 - gaps, 100.0 + np.cumsum(rng.uniform(0.01, 0.1, (rows, depth)), axis=1)
    bid_sz, ask_sz = 10.0 ** rng.uniform(-2, 2, (2, rows, depth))
    for a in (bid_sz, ask_sz):
        u = rng.random(a.shape)
        a[u < 0.05] = np.nan
        a[(u >= 0.05) & (u < 0.1)] = 0.0
        a[(u >= 0.1) & (u < 0.12)] = -1.0
        a[rng.random(rows) < 0.05] = 0.0  # an empty side
    for a in (bid_px, ask_px):
        a[rng.random(a.shape) < 0.03] = np.nan
    return bid_px, bid_sz, ask_px, ask_sz


@settings(max_examples=100, deadline=None)
@given(book=books())
def test_l1_streaming_equals_batch_and_follows_the_formulas_through_gaps(book):
    bid_px, bid_sz, ask_px, ask_sz = (a[:, 0].copy() for a in book)
    imbalance = check_streaming_equals_batch(
        book_imbalance_state_nb, book_imbalance_update_nb, book_imbalance_1d_nb, (), bid_sz, ask_sz
    )
    micro = check_streaming_equals_batch(
        microprice_state_nb, microprice_update_nb, microprice_1d_nb, (), bid_px, bid_sz, ask_px, ask_sz
    )
    with np.errstate(invalid="ignore", divide="ignore"):
        ok = np.isfinite(bid_sz) & np.isfinite(ask_sz) & (bid_sz >= 0) & (ask_sz >= 0) & (bid_sz + ask_sz > 0)
        want_imbalance = carry(np.where(ok, (bid_sz - ask_sz) / (bid_sz + ask_sz), np.nan))
        both = np.isfinite(bid_px) & np.isfinite(ask_px) & ok & (bid_sz > 0) & (ask_sz > 0)
        want_micro = carry(np.where(both, (bid_px * ask_sz + ask_px * bid_sz) / (bid_sz + ask_sz), np.nan))
    assert_identical(imbalance, want_imbalance)
    assert_identical(micro, want_micro)
    assert (np.abs(imbalance[~np.isnan(imbalance)]) <= 1).all()


@settings(max_examples=100, deadline=None)
@given(book=books(), levels=st.integers(1, 10))
def test_l2_streaming_equals_batch_and_follows_the_formulas_through_empty_levels(book, levels):
    bid_px, bid_sz, ask_px, ask_sz = book
    imbalance = check_streaming_equals_batch(
        book_imbalance_l2_state_nb, book_imbalance_l2_update_nb, book_imbalance_l2_1d_nb, (levels,), bid_sz, ask_sz
    )
    micro = check_streaming_equals_batch(
        microprice_l2_state_nb, microprice_l2_update_nb, microprice_l2_1d_nb, (levels,), *book
    )
    want_imbalance, want_micro = book_l2_ref(*book, levels)
    assert_close(imbalance, carry(want_imbalance), 1e-15)
    assert_close(micro, carry(want_micro), RTOL * scale_of(np.concatenate([bid_px.ravel(), ask_px.ravel()])))


@settings(max_examples=50, deadline=None)
@given(book=books())
def test_l2_over_one_level_is_l1(book):
    """For books of well-formed levels: L2 reads a NaN or negative size as an empty level, L1 as a gap."""
    with np.errstate(invalid="ignore"):
        book = tuple(np.where(np.isfinite(a) & (a >= 0), a, 0.0) if i % 2 else a for i, a in enumerate(book))
    bid_px, bid_sz, ask_px, ask_sz = book
    l1 = [a[:, 0].copy() for a in book]
    assert_identical(book_imbalance_l2_1d_nb(bid_sz, ask_sz, 1), book_imbalance_1d_nb(l1[1], l1[3]))
    assert_close(microprice_l2_1d_nb(*book, 1), microprice_1d_nb(*l1), RTOL * 100)


def test_an_equal_book_has_zero_imbalance_and_its_microprice_is_the_mid():
    assert book_imbalance_1d_nb(np.array([5.0]), np.array([5.0]))[0] == 0.0
    assert microprice_1d_nb(np.array([99.0]), np.array([5.0]), np.array([101.0]), np.array([5.0]))[0] == 100.0


def test_a_microprice_leans_toward_the_thinner_side():
    assert microprice_1d_nb(np.array([99.0]), np.array([9.0]), np.array([101.0]), np.array([1.0]))[0] == 100.8


def test_a_level_count_below_one_is_refused():
    with pytest.raises(ValueError, match="at least 1"):
        book_imbalance_l2_state_nb(0)


def check_l1(q: dict[str, np.ndarray]) -> None:
    bp, bs, ap, a_s = q["bid_price"], q["bid_size"], q["ask_price"], q["ask_size"]
    with np.errstate(invalid="ignore", divide="ignore"):
        want_imbalance = carry(np.where(bs + a_s > 0, (bs - a_s) / (bs + a_s), np.nan))
        want_micro = carry(np.where((bs > 0) & (a_s > 0), (bp * a_s + ap * bs) / (bs + a_s), np.nan))
    assert_identical(book_imbalance_1d_nb(bs, a_s), want_imbalance)
    assert_identical(microprice_1d_nb(bp, bs, ap, a_s), want_micro)
    micro = microprice_1d_nb(bp, bs, ap, a_s)
    assert ((micro >= bp) & (micro <= ap))[(bs > 0) & (a_s > 0)].all()


def test_l1_on_synthetic_quotes():
    check_l1(synthetic()["quote"])


def test_l1_on_real_quotes(shared_data):
    check_l1(binance_quotes(shared_data))


def test_l2_on_real_books(shared_data):
    b = bybit_books(shared_data)
    for levels in (1, 5, 10):
        want_imbalance, want_micro = book_l2_ref(b["bid_px"], b["bid_sz"], b["ask_px"], b["ask_sz"], levels)
        assert_close(book_imbalance_l2_1d_nb(b["bid_sz"], b["ask_sz"], levels), want_imbalance, 1e-15)
        micro = microprice_l2_1d_nb(b["bid_px"], b["bid_sz"], b["ask_px"], b["ask_sz"], levels)
        assert_close(micro, want_micro, RTOL * 2.0)
        assert ((micro > b["bid_px"][:, levels - 1]) & (micro < b["ask_px"][:, levels - 1])).all()
