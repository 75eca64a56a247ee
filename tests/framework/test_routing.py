"""Smart order routing across simulated venues: where each order goes, and how it splits.

Scenario tests run the scripted strategy through the whole backtest with two or three
venues (each its own book, fees and latency in the simulated exchange); the property
tests call the router's planner directly on random venue quotes.
"""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from framework.events import EventKind, OrderFlag, OrderType, RejectReason, Side, TimeInForce, to_fixed
from framework.order_state import OrderStatus
from framework.routing import leg_route, plan
from framework.state import PipelineSpec, allocate
from scripted import T0, cancel, make_control, make_quotes, make_trades, merge, run_script, submit

BUY, SELL = Side.BUY, Side.SELL
MS = 1_000_000


def two_venue_quotes(v0: tuple, v1: tuple, ts: int = T0) -> np.ndarray:
    """One quote ``(bid, bid_size, ask, ask_size)`` per venue at ``ts``."""
    return merge(make_quotes([(ts, *v0)], venue_id=0), make_quotes([(ts, *v1)], venue_id=1))


def later_trades(n: int = 3, venue_id: int = 0, price: float = 1000.0) -> np.ndarray:
    """Prints far above any order (no buy is reached), so that time moves on and reports arrive."""
    return make_trades([(T0 + (k + 1) * 100 * MS, price, 0.001) for k in range(n)], venue_id=venue_id)


def legs_of(run) -> list[tuple[int, int, float]]:
    """``(client_order_id, venue_id, size)`` of every SUBMIT the pipeline sent, in order."""
    subs = run.commands["command"][run.commands["command"]["kind"] == 40]
    return [(int(c["client_order_id"]), int(c["venue_id"]), c["size"] / 1e9) for c in subs]


def fills_by_venue(run) -> dict[int, float]:
    out: dict[int, float] = {}
    for f in run.result.fills:
        out[int(f["venue_id"])] = out.get(int(f["venue_id"]), 0.0) + f["size"] / 1e9
    return out


# --------------------------------------------------------------------------- where an order goes


def test_a_buy_goes_to_the_venue_with_the_best_ask_after_fees():
    # Venue 0 shows the lower ask, but its taker fee makes it dearer: 100.00 * 1.001 > 100.05.
    events = merge(two_venue_quotes((99.9, 10, 100.00, 10), (99.9, 10, 100.05, 10)), later_trades())
    venues = [{"taker": 0.001}, {"taker": 0.0}]
    run = run_script(events, [submit(BUY, 2, 100.10, at=1, tif=TimeInForce.IOC)], venues=venues)
    assert legs_of(run) == [(1, 1, 2.0)]
    assert fills_by_venue(run) == {1: 2.0}
    assert run.result.fills["price"][0] == to_fixed(100.05)


def test_with_equal_fees_a_buy_takes_the_lower_ask_and_a_sell_the_higher_bid():
    events = merge(two_venue_quotes((99.95, 10, 100.02, 10), (99.98, 10, 100.01, 10)), later_trades())
    run = run_script(events, [submit(BUY, 1, 0, at=1, order_type=OrderType.MARKET, tif=TimeInForce.IOC),
                              submit(SELL, 1, 0, at=1, order_type=OrderType.MARKET, tif=TimeInForce.IOC)],
                     venues=[{}, {}])
    assert [(venue, size) for _, venue, size in legs_of(run)] == [(1, 1.0), (1, 1.0)]
    assert sorted(run.result.fills["price"].tolist()) == [to_fixed(99.98), to_fixed(100.01)]


def test_an_order_larger_than_the_best_venue_shows_is_split_and_every_leg_fills():
    events = merge(two_venue_quotes((99.9, 10, 100.00, 3), (99.9, 10, 100.01, 10)), later_trades())
    run = run_script(events, [submit(BUY, 5, 100.05, at=1, tif=TimeInForce.IOC)], venues=[{}, {}])
    assert legs_of(run) == [(1, 0, 3.0), (2, 1, 2.0)]  # best first; the leg takes the next id
    assert fills_by_venue(run) == {0: 3.0, 1: 2.0}
    assert run.p.positions[0]["qty"] == to_fixed(5)
    assert run.p.orders[1]["legs"] == 2 and run.p.orders[2]["legs"] == 0


def test_a_venue_beyond_the_limit_gets_nothing_and_the_rest_rests_at_the_lowest_maker_fee():
    # Venue 1's ask is above the limit; 3 take venue 0; the other 4 rest on venue 2, whose maker
    # fee (a rebate) is the lowest.
    events = merge(
        make_quotes([(T0, 99.9, 10, 100.00, 3)], venue_id=0),
        make_quotes([(T0, 99.9, 10, 100.10, 10)], venue_id=1),
        make_quotes([(T0, 99.8, 10, 100.20, 10)], venue_id=2),
        later_trades(),
    )
    venues = [{"maker": 0.0002}, {"maker": 0.0001}, {"maker": -0.0001}]
    run = run_script(events, [submit(BUY, 7, 100.05, at=2)], venues=venues)
    assert legs_of(run) == [(1, 0, 3.0), (2, 2, 4.0)]
    assert fills_by_venue(run) == {0: 3.0}
    assert run.p.orders[2]["status"] == OrderStatus.ACCEPTED and run.p.orders[2]["venue_id"] == 2


def test_an_ioc_remainder_stays_with_the_best_venue_and_expires_there():
    events = merge(two_venue_quotes((99.9, 10, 100.00, 2), (99.9, 10, 100.01, 1)), later_trades())
    run = run_script(events, [submit(BUY, 5, 100.01, at=1, tif=TimeInForce.IOC)], venues=[{}, {}])
    assert legs_of(run) == [(1, 0, 4.0), (2, 1, 1.0)]
    assert fills_by_venue(run) == {0: 2.0, 1: 1.0}
    assert run.p.orders[1]["status"] == OrderStatus.EXPIRED


def test_fok_is_never_split_it_goes_whole_to_a_venue_showing_its_size():
    events = merge(two_venue_quotes((99.9, 10, 100.00, 2), (99.9, 10, 100.01, 10)), later_trades())
    run = run_script(events, [submit(BUY, 5, 100.05, at=1, tif=TimeInForce.FOK)], venues=[{}, {}])
    assert legs_of(run) == [(1, 1, 5.0)]
    assert fills_by_venue(run) == {1: 5.0}


def test_post_only_goes_to_the_lowest_maker_fee_where_it_would_not_take():
    # At 100.00 the buy would take venue 1's ask (the rebate venue); it rests on venue 0.
    events = merge(two_venue_quotes((99.9, 10, 100.05, 10), (99.9, 10, 100.00, 10)), later_trades())
    venues = [{"maker": 0.0002}, {"maker": -0.0001}]
    run = run_script(events, [submit(BUY, 1, 100.00, at=1, flags=OrderFlag.POST_ONLY)], venues=venues)
    assert legs_of(run) == [(1, 0, 1.0)]
    assert run.p.orders[1]["status"] == OrderStatus.ACCEPTED


def test_stops_go_to_the_lowest_taker_fee():
    events = merge(two_venue_quotes((99.9, 10, 100.0, 10), (99.9, 10, 100.0, 10)), later_trades())
    venues = [{"taker": 0.0005}, {"taker": 0.0003}]
    run = run_script(events, [submit(BUY, 1, 0, at=1, order_type=OrderType.STOP, trigger=101.0)], venues=venues)
    assert legs_of(run) == [(1, 1, 1.0)]


def test_canceling_a_split_order_cancels_every_leg():
    # 2 take venue 0's ask at once; the other 3 rest on venue 1 (the lower maker fee).
    events = merge(two_venue_quotes((99.0, 10, 100.0, 2), (99.0, 10, 101.0, 10)), later_trades())
    venues = [{"maker": 0.0}, {"maker": -0.0001}]
    run = run_script(events, [submit(BUY, 5, 100.0, at=1), cancel(0, at=4)], venues=venues)
    assert legs_of(run) == [(1, 0, 2.0), (2, 1, 3.0)]
    cancels = run.commands["command"][run.commands["command"]["kind"] == 41]
    assert [int(c["client_order_id"]) for c in cancels] == [2]  # leg 1 (id 1) had filled at once
    assert run.p.orders[2]["status"] == OrderStatus.CANCELED
    assert run.p.positions[0]["open_buy"] == 0


def test_the_strategy_sees_the_consolidated_touch():
    events = merge(two_venue_quotes((99.95, 4, 100.02, 5), (99.95, 6, 100.01, 7)))
    run = run_script(events, [], venues=[{}, {}])
    m = run.p.market[0]
    assert (m["bid_price"], m["bid_size"]) == (to_fixed(99.95), to_fixed(10))  # both venues at the best bid
    assert (m["ask_price"], m["ask_size"]) == (to_fixed(100.01), to_fixed(7))


def test_each_venue_has_its_own_order_latency_and_reports_come_back_fifo_per_venue():
    events = merge(two_venue_quotes((99.9, 10, 100.00, 1), (99.9, 10, 100.00, 10)), later_trades(5))
    venues = [{"order_ns": 1 * MS, "response_ns": 1 * MS}, {"order_ns": 5 * MS, "response_ns": 5 * MS}]
    run = run_script(events, [submit(BUY, 3, 100.0, at=1, tif=TimeInForce.IOC)], venues=venues)
    fills = run.result.fills
    by_venue = {int(f["venue_id"]): int(f["ts_event"]) for f in fills}
    assert by_venue == {0: T0 + 1 * MS, 1: T0 + 5 * MS}  # each leg reached its venue after its own latency
    reports = run.events[(run.events["kind"] >= EventKind.ACCEPTED) & (run.events["kind"] <= EventKind.EXPIRED)]
    arrivals = reports["ts_recv"]
    assert np.all(np.diff(arrivals) >= 0)
    assert set(arrivals[reports["venue_id"] == 1].tolist()) == {T0 + 10 * MS}


def test_an_order_that_would_reach_a_killed_venue_is_refused_whole():
    from framework.events import ControlCode
    from framework.risk.records import KillScope

    events = merge(two_venue_quotes((99.9, 10, 100.00, 1), (99.9, 10, 100.01, 10)),
                   make_control(T0 + 1, ControlCode.KILL_SWITCH_ON, KillScope.VENUE, 1), later_trades())
    run = run_script(events, [submit(BUY, 3, 100.05, at=2, tif=TimeInForce.IOC),
                              submit(BUY, 1, 100.05, at=3, tif=TimeInForce.IOC)], venues=[{}, {}])
    assert legs_of(run) == [(3, 0, 1.0)]  # the second order fits venue 0 alone
    assert run.p.reject_counts[RejectReason.KILL_SWITCH] == 1


def test_with_one_venue_nothing_is_routed_and_ids_count_one_by_one():
    events = merge(make_quotes([(T0, 99.9, 10, 100.0, 1)]), later_trades())
    run = run_script(events, [submit(BUY, 3, 100.0, at=1, tif=TimeInForce.IOC), submit(BUY, 1, 99.0, at=1)])
    assert legs_of(run) == [(1, 0, 3.0), (2, 0, 1.0)]


# --------------------------------------------------------------------------- the planner's invariants

venue_quote = st.tuples(st.integers(0, 20), st.integers(0, 5), st.integers(0, 20), st.integers(0, 5))
"""(bid offset in ticks below 100, bid size, ask offset in ticks above 100, ask size); size 0: absent."""


@settings(max_examples=300, deadline=None)
@given(
    quotes=st.lists(venue_quote, min_size=2, max_size=4),
    fees=st.lists(st.tuples(st.integers(-2, 10), st.integers(0, 10)), min_size=4, max_size=4),
    side=st.sampled_from([BUY, SELL]),
    size=st.integers(1, 30),
    limit_ticks=st.integers(-5, 25),
    kind=st.sampled_from(["market", "ioc", "gtc", "fok", "post_only"]),
)
def test_a_plan_adds_up_respects_the_limit_and_takes_the_best_venues_first(quotes, fees, side, size,
                                                                           limit_ticks, kind):
    n = len(quotes)
    p = allocate(PipelineSpec(routing=tuple((k, fees[k][0] * 1e-4, fees[k][1] * 1e-4) for k in range(n))))
    tick = to_fixed(0.01)
    for k, (bo, bs, ao, asz) in enumerate(quotes):
        q = p.venue_quotes[k, 0]
        q["bid_price"], q["bid_size"] = to_fixed(100) - bo * tick, to_fixed(bs)
        q["ask_price"], q["ask_size"] = to_fixed(100) + ao * tick, to_fixed(asz)
    order_type = OrderType.MARKET if kind == "market" else OrderType.LIMIT
    tif = {"ioc": TimeInForce.IOC, "market": TimeInForce.IOC, "fok": TimeInForce.FOK}.get(kind, TimeInForce.GTC)
    flags = OrderFlag.POST_ONLY if kind == "post_only" else 0
    limit = 0 if order_type == OrderType.MARKET else to_fixed(100) + side * limit_ticks * tick
    n_legs = plan(p, side, order_type, tif, flags, limit, to_fixed(size), 0)

    legs = [leg_route(p, rank) for rank in range(1, n_legs + 1)]
    assert len(set(legs)) == n_legs and all(r >= 0 for r in legs)
    assert sum(int(p.routes[r]["leg_size"]) for r in legs) == to_fixed(size)  # nothing lost, nothing invented
    assert all(int(p.routes[r]["leg_size"]) > 0 for r in legs)
    if kind in ("fok", "post_only"):
        assert n_legs == 1  # never split
        return

    def touch(r):
        q = p.venue_quotes[r, 0]
        return (int(q["ask_price"]), int(q["ask_size"])) if side == BUY else (int(q["bid_price"]), int(q["bid_size"]))

    def within(price):
        return order_type == OrderType.MARKET or (price <= limit if side == BUY else price >= limit)

    def all_in(r):
        price, _ = touch(r)
        rate = float(p.routes[r]["taker_fee_rate"])
        return price * (1 + rate) if side == BUY else -price * (1 - rate)

    taking = [r for r in range(n) if touch(r)[1] > 0 and within(touch(r)[0])]
    # The legs that take come first, in all-in order, and none takes more than its venue shows
    # unless it also carries the order's remainder.
    taken = [r for r in legs if r in taking]
    assert [all_in(r) for r in taken] == sorted(all_in(r) for r in taken)
    shown = sum(touch(r)[1] for r in taking)
    if shown >= to_fixed(size):
        assert all(int(p.routes[r]["leg_size"]) <= touch(r)[1] for r in legs)
    # A venue left out while the order still had size left is one the planner could not use.
    if shown < to_fixed(size):
        assert set(taking) <= set(legs)
