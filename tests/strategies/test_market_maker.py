"""Market maker: quote prices (tick grid, never through the touch, skewed against inventory)
and its order handling in a backtest."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numba import njit

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "sim"))

from scripted import T0, make_quotes, make_trades, merge, run_strategy  # noqa: E402

import strategies.market_maker as mm  # noqa: E402
from framework.events import CommandKind, OrderFlag, OrderType, Side, TimeInForce, to_fixed  # noqa: E402
from framework.order_state import OrderStatus  # noqa: E402

LAT = (10, 20, 30)
TICK = to_fixed(0.01)


def fx(x: float) -> int:
    return to_fixed(x)


@njit
def _quote(bid, ask, qty, params):
    return mm.quote_prices(bid, ask, qty, params[0])


def make_params(**kw):
    base = {"instrument": "X", "tick_size": 0.01, "half_spread_ticks": 2, "order_size": 1.0, "max_inventory": 5.0,
            "skew_ticks": 1.0, "requote_ticks": 1}
    base.update(kw)
    return mm.make(mm.Params(**base), {"X": 0})


def test_quote_prices_by_hand():
    params, _ = make_params()
    # Touch 99.98 / 100.02, mid 100, half spread 2 ticks, skew 1 tick per lot of inventory.
    assert _quote(fx(99.98), fx(100.02), 0, params) == (fx(99.98), fx(100.02))
    # Long 2 lots: reservation 100 - 0.02 = 99.98 -> 99.96 / 100.00.
    assert _quote(fx(99.98), fx(100.02), fx(2), params) == (fx(99.96), fx(100.00))
    # Short 3 lots: reservation 100.03 -> bid 100.01 (exactly ask - tick, allowed) / ask 100.05.
    assert _quote(fx(99.98), fx(100.02), -fx(3), params) == (fx(100.01), fx(100.05))
    # Short 5 lots: the bid would be 100.03, through the ask: held at ask - tick = 100.01.
    assert _quote(fx(99.98), fx(100.02), -fx(5), params) == (fx(100.01), fx(100.07))
    # Long 5 lots: the ask would be 99.97, through the bid: held at bid + tick = 99.99.
    assert _quote(fx(99.98), fx(100.02), fx(5), params) == (fx(99.93), fx(99.99))


@settings(max_examples=300, deadline=None)
@given(
    bid_ticks=st.integers(100, 1_000_000),
    spread_ticks=st.integers(1, 50),
    lots=st.integers(-20, 20),
    half_spread=st.integers(1, 6),
    skew=st.sampled_from([0.0, 0.5, 1.0, 2.5]),
)
def test_quotes_never_cross_the_touch_and_skew_against_inventory(bid_ticks, spread_ticks, lots, half_spread, skew):
    params, _ = make_params(half_spread_ticks=half_spread, skew_ticks=skew, order_size=0.5, max_inventory=10.0)
    bid, ask = bid_ticks * TICK, (bid_ticks + spread_ticks) * TICK
    qty = lots * fx(0.5)
    want_bid, want_ask = _quote(bid, ask, qty, params)
    # Never through the touch: a post-only order at these prices would not take.
    assert want_bid < ask and want_ask > bid
    assert want_bid <= ask - TICK and want_ask >= bid + TICK
    # On the tick grid, and not tighter than the market's own spread around the reservation.
    assert want_bid % TICK == 0 and want_ask % TICK == 0
    assert want_bid < want_ask
    # Flat: at least half_spread ticks either side of the mid.
    b0, a0 = _quote(bid, ask, 0, params)
    mid2 = bid + ask  # twice the mid, to stay in integers
    assert 2 * b0 <= mid2 - 2 * half_spread * TICK
    assert 2 * a0 >= mid2 + 2 * half_spread * TICK
    # Skewed against inventory: long -> both quotes no higher than flat; short -> no lower; and
    # monotone in the inventory.
    b1, a1 = _quote(bid, ask, qty + fx(0.5), params)
    assert b1 <= want_bid and a1 <= want_ask
    if lots > 0:
        assert want_bid <= b0 and want_ask <= a0
    if lots < 0:
        assert want_bid >= b0 and want_ask >= a0
    if skew > 0 and lots >= 2 * 4 * half_spread:
        # Long enough to matter: the bid is strictly lower than flat.
        assert want_bid < b0


def mm_run(events, **kw):
    params, state = make_params(**kw)
    run = run_strategy(mm.on_event, params, state, events, latency=LAT, max_order_size=10, max_position=10)
    return run, state


def test_posts_post_only_gtc_quotes_then_requotes_after_a_fill():
    # Quote 99.98 x 5 / 100.02 x 5 at 1000 (seen 1010): bid 1 @ 99.98 and ask 1 @ 100.02, post-only GTC.
    # Both ACCEPTED at 1030 (seen 1060). A print at 99.98 at 2000 fills the bid (TOUCH), report at
    # 2030. On it, inventory 1 lot: reservation 99.99 -> wants 99.97 / 100.01: a new bid at 99.97
    # (the old one is done) and the ask, 1 tick off, is modified to 100.01.
    ev = merge(make_quotes([(T0 + 1000, 99.98, 5, 100.02, 5)]), make_trades([(T0 + 2000, 99.98, 1)]))
    run, state = mm_run(ev)
    cmds = run.cmds()
    got = [(int(c["ts_event"]) - T0, int(c["kind"]), int(c["side"]), int(c["price"])) for c in cmds]
    assert got == [
        (1010, CommandKind.SUBMIT, Side.BUY, fx(99.98)),
        (1010, CommandKind.SUBMIT, Side.SELL, fx(100.02)),
        (2030, CommandKind.SUBMIT, Side.BUY, fx(99.97)),
        (2030, CommandKind.MODIFY, Side.SELL, fx(100.01)),
    ]
    subs = run.cmds(CommandKind.SUBMIT)
    assert np.all(subs["flags"] == OrderFlag.POST_ONLY)
    assert np.all(subs["tif"] == TimeInForce.GTC)
    assert np.all(subs["order_type"] == OrderType.LIMIT)
    assert np.all(subs["size"] == fx(1))
    assert run.p.positions[0]["qty"] == fx(1)
    s = state[0]
    assert (s["bid_id"], s["ask_id"]) == (3, 2)
    assert run.order(2)["price"] == fx(100.01)
    assert run.order(3)["status"] == OrderStatus.ACCEPTED


def test_pulls_the_side_that_would_exceed_max_inventory():
    # max inventory 1: after the bid fills (inventory 1) no new bid is posted; the ask still works.
    ev = merge(make_quotes([(T0 + 1000, 99.98, 5, 100.02, 5)]), make_trades([(T0 + 2000, 99.98, 1)]),
               make_quotes([(T0 + 3000, 99.98, 5, 100.02, 5)]))
    run, state = mm_run(ev, max_inventory=1.0)
    subs = run.cmds(CommandKind.SUBMIT)
    assert [int(s) for s in subs["side"]] == [Side.BUY, Side.SELL]
    assert state[0]["bid_id"] == 0
    assert run.p.positions[0]["qty"] == fx(1)
    assert run.p.positions[0]["open_buy"] == 0


def test_cancels_a_working_quote_that_is_no_longer_allowed():
    # max inventory 1.2, order size 1. A print of 0.5 @ 99.98 at 2000 fills half the bid (report at
    # 2030): inventory 0.5, so another bid fill could reach 1.5 > 1.2 and the working bid is
    # cancelled. The ask is still allowed (0.5 - 1 >= -1.2) and wanted at ceil(99.995 + 0.02) =
    # 100.02, where it already is: left alone.
    ev = merge(make_quotes([(T0 + 1000, 99.98, 5, 100.02, 5)]), make_trades([(T0 + 2000, 99.98, 0.5)]))
    run, state = mm_run(ev, max_inventory=1.2)
    got = [(int(c["ts_event"]) - T0, int(c["kind"]), int(c["client_order_id"])) for c in run.cmds()]
    assert got == [(1010, CommandKind.SUBMIT, 1), (1010, CommandKind.SUBMIT, 2), (2030, CommandKind.CANCEL, 1)]
    assert run.order(1)["status"] == OrderStatus.CANCELED
    assert run.order(2)["status"] == OrderStatus.ACCEPTED
    assert run.p.positions[0]["qty"] == fx(0.5)
    assert run.p.positions[0]["open_buy"] == 0
    assert state[0]["bid_id"] == 1  # still names the order until the venue confirms the cancel


def test_ignores_crossed_or_one_sided_books_and_other_instruments():
    ev = merge(
        make_quotes([(T0 + 1000, 100.02, 5, 99.98, 5)]),  # crossed
        make_quotes([(T0 + 2000, 99.98, 0, 100.02, 5)]),  # no bid
        make_quotes([(T0 + 3000, 100, 5, 100, 5)]),  # locked
        make_trades([(T0 + 4000, 100, 5)]),  # a trade is not a requote trigger
    )
    run, state = mm_run(ev)
    assert len(run.cmds()) == 0
    assert state[0]["n_quotes"] == 0


@pytest.mark.parametrize("bad", [{"tick_size": 0}, {"half_spread_ticks": 0}, {"order_size": 0},
                                 {"order_size": 6.0}, {"requote_ticks": 0}])
def test_params_are_validated(bad):
    with pytest.raises(ValueError):
        make_params(**bad)
