"""Smart order routing: send each order where its all-in price is best, split where size is short.

With one venue configured nothing here runs: an order goes to the venue its intent
names. With several (``Pipeline.routes``, one record per venue with the fee schedule
the venue publishes), the market-data stage keeps each venue's best bid and offer
(``venue_quotes``) and shows the strategy the consolidated touch (best bid and offer
across venues, the sizes of every venue at that price added up), and every new order
of the strategy is planned here:

* A marketable order (market, or a limit at or through some venue's touch) takes the
  venues in order of all-in price: the touch plus the taker fee for a buy
  (``ask * (1 + taker)``), minus it for a sell, ties to the lower venue id. Each venue
  gets at most the size it shows; a venue whose touch is beyond the order's limit gets
  nothing.
* What is left: an IOC or market order adds it to its best venue's leg (it expires
  there, as it would on one venue); a resting limit order rests it on the venue with the
  lowest maker fee (ties: lower venue id), merged into that venue's leg if it has one.
* FOK is never split (all-or-none cannot span venues): it goes whole to the best
  all-in venue that shows its full size, else to the best all-in venue.
* Post-only orders never take: they go whole to the lowest maker fee among the venues
  where they would not cross, else to the lowest maker fee.
* Stop and stop-limit orders go whole to the lowest taker fee (they take when they
  trigger).
* With no quote on any venue (trades or bars only), marketable orders go whole to the
  lowest taker fee and resting ones to the lowest maker fee.

The legs of an order are orders of their own: the first keeps the strategy's client
order id, the others take the ids after it, which ``strategy_api`` reserved (one per
venue) when the strategy asked for the order, so ids stay deterministic and never
collide. The order passes risk once, as the strategy stated it, before it is split
(its size, notional, collar, position and exposure, duplicates, throttle): the legs
add up to it. Canceling the strategy's id cancels every leg; a modify changes the
first leg only.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from framework.events import OrderFlag, OrderType, Side, TimeInForce
from framework.jit import HOT, KERNEL

ROUTE_DTYPE = np.dtype(
    [("venue_id", "<i8"), ("maker_fee_rate", "<f8"), ("taker_fee_rate", "<f8"), ("leg_size", "<i8"),
     ("leg_rank", "<i8")],
    align=True,
)
"""One venue the router may use: its id and published fees (fractions of notional,
negative for a rebate). ``leg_size`` and ``leg_rank`` are the router's scratch space
for the order being planned (no allocation per order)."""

VENUE_QUOTE_DTYPE = np.dtype(
    [("bid_price", "<i8"), ("bid_size", "<i8"), ("ask_price", "<i8"), ("ask_size", "<i8"), ("ts_quote", "<i8")],
    align=True,
)
"""One venue's best bid and offer for one instrument."""

N_VENUE_IDS = 256
"""Venue ids are one byte."""


def allocate_routes(venues: list[tuple[int, float, float]], n_instruments: int) -> tuple[np.ndarray, ...]:
    """Allocate the routing table for ``venues`` (``(venue_id, maker_fee_rate, taker_fee_rate)``).

    Returns ``(routes, venue_quotes, route_of_venue)``. An empty list means no routing:
    one route for venue 0 with no fees, which the pipeline never consults.
    """
    if not venues:
        venues = [(0, 0.0, 0.0)]
    ids = [int(v[0]) for v in venues]
    if len(set(ids)) != len(ids):
        raise ValueError(f"routing venues: venue ids must be distinct, got {ids}")
    routes = np.zeros(len(venues), ROUTE_DTYPE)
    route_of_venue = np.full(N_VENUE_IDS, -1, np.int64)
    for r, (venue_id, maker, taker) in enumerate(venues):
        if not 0 <= int(venue_id) < N_VENUE_IDS:
            raise ValueError(f"routing venues[{r}].venue_id: {venue_id} is not in 0..{N_VENUE_IDS - 1}")
        for name, rate in (("maker_fee_rate", maker), ("taker_fee_rate", taker)):
            if not -0.01 <= float(rate) <= 0.01:
                raise ValueError(f"routing venues[{r}].{name}: {rate} is not a fee rate in [-0.01, 0.01]")
        routes[r] = (int(venue_id), float(maker), float(taker), 0, 0)
        route_of_venue[int(venue_id)] = r
    return routes, np.zeros((len(venues), n_instruments), VENUE_QUOTE_DTYPE), route_of_venue


@njit(**HOT)
def routing_on(p) -> bool:
    """Whether orders are routed (more than one venue configured)."""
    return p.routes.shape[0] > 1


@njit(**HOT)
def id_stride(p) -> int:
    """Client order ids one new order reserves: one per venue it may be split across."""
    return p.routes.shape[0]


@njit(**KERNEL)
def consolidate_quote(p, ev) -> None:
    """Record venue ``ev.venue_id``'s quote and show the consolidated touch in ``p.market``.

    A quote from a venue outside the routing table is not part of the consolidated
    touch; it still counts as market data (staleness)."""
    i = ev.instrument_id
    r = p.route_of_venue[ev.venue_id]
    if r >= 0:
        q = p.venue_quotes[r, i]
        q.bid_price = ev.bid_price
        q.bid_size = ev.bid_size
        q.ask_price = ev.ask_price
        q.ask_size = ev.ask_size
        q.ts_quote = ev.ts_recv
    bid = 0
    bid_size = 0
    ask = 0
    ask_size = 0
    for k in range(p.routes.shape[0]):
        q = p.venue_quotes[k, i]
        if q.bid_size > 0:
            if q.bid_price > bid:
                bid = q.bid_price
                bid_size = q.bid_size
            elif q.bid_price == bid:
                bid_size += q.bid_size
        if q.ask_size > 0:
            if ask == 0 or q.ask_price < ask:
                ask = q.ask_price
                ask_size = q.ask_size
            elif q.ask_price == ask:
                ask_size += q.ask_size
    m = p.market[i]
    m.bid_price = bid
    m.bid_size = bid_size
    m.ask_price = ask
    m.ask_size = ask_size
    m.ts_quote = ev.ts_recv
    m.ts_last = ev.ts_recv


@njit(**KERNEL)
def _touch(q, side: int) -> tuple[int, int]:
    """The opposite touch a ``side`` order would take on one venue: (price, size)."""
    if side == Side.BUY:
        return q.ask_price, q.ask_size
    return q.bid_price, q.bid_size


@njit(**KERNEL)
def _within(side: int, order_type: int, limit: int, price: int) -> bool:
    """Whether a touch at ``price`` is within the order's limit."""
    if order_type == OrderType.MARKET:
        return True
    return price <= limit if side == Side.BUY else price >= limit


@njit(**KERNEL)
def _all_in(side: int, price: int, fee_rate: float) -> float:
    """What one unit costs (buy) or yields (sell, negated so that lower is better) with the fee."""
    if side == Side.BUY:
        return price * (1.0 + fee_rate)
    return -price * (1.0 - fee_rate)


@njit(**KERNEL)
def _lowest_fee(p, maker: bool, side: int, limit: int, avoid_crossing: bool, i: int) -> int:
    """Route with the lowest maker (or taker) fee; with ``avoid_crossing``, among those where
    a post-only order at ``limit`` would not take, if any. Ties to the lower venue id."""
    best = -1
    best_rate = 0.0
    best_venue = 0
    for pass_ in range(2 if avoid_crossing else 1):
        for r in range(p.routes.shape[0]):
            if avoid_crossing and pass_ == 0:
                price, size = _touch(p.venue_quotes[r, i], side)
                if size > 0 and price > 0 and _within(side, OrderType.LIMIT, limit, price):
                    continue
            rt = p.routes[r]
            rate = rt.maker_fee_rate if maker else rt.taker_fee_rate
            if best < 0 or rate < best_rate or (rate == best_rate and rt.venue_id < best_venue):
                best = r
                best_rate = rate
                best_venue = rt.venue_id
        if best >= 0:
            return best
    return best


@njit(**KERNEL)
def _best_taking(p, side: int, order_type: int, limit: int, i: int, min_size: int) -> int:
    """The untaken route with the best all-in touch within the limit, showing at least
    ``min_size`` (ties to the lower venue id), or -1."""
    best = -1
    best_cost = 0.0
    for r in range(p.routes.shape[0]):
        rt = p.routes[r]
        if rt.leg_rank > 0:
            continue
        price, size = _touch(p.venue_quotes[r, i], side)
        if size <= 0 or price <= 0 or size < min_size or not _within(side, order_type, limit, price):
            continue
        cost = _all_in(side, price, rt.taker_fee_rate)
        if best < 0 or cost < best_cost or (cost == best_cost and rt.venue_id < p.routes[best].venue_id):
            best = r
            best_cost = cost
    return best


@njit(**KERNEL)
def _add_leg(p, r: int, size: int, n_legs: int) -> int:
    """Give route ``r`` ``size`` more; return the number of legs."""
    rt = p.routes[r]
    if rt.leg_rank == 0:
        n_legs += 1
        rt.leg_rank = n_legs
    rt.leg_size += size
    return n_legs


@njit(**KERNEL)
def plan(p, side: int, order_type: int, tif: int, flags: int, price: int, size: int, i: int) -> int:
    """Split an order over the routes (module docstring); return the number of legs.

    Afterwards ``routes[r].leg_rank`` is the leg's place (1 first, 0 unused) and
    ``leg_size`` its size; the sizes add up to ``size``.
    """
    for r in range(p.routes.shape[0]):
        p.routes[r].leg_size = 0
        p.routes[r].leg_rank = 0
    if order_type == OrderType.STOP or order_type == OrderType.STOP_LIMIT:
        return _add_leg(p, _lowest_fee(p, False, side, price, False, i), size, 0)
    if flags & OrderFlag.POST_ONLY:
        return _add_leg(p, _lowest_fee(p, True, side, price, True, i), size, 0)
    if tif == TimeInForce.FOK:
        r = _best_taking(p, side, order_type, price, i, size)
        if r < 0:
            r = _best_taking(p, side, order_type, price, i, 1)
        if r < 0:
            r = _lowest_fee(p, False, side, price, False, i)
        return _add_leg(p, r, size, 0)
    n_legs = 0
    first = -1
    left = size
    while left > 0:
        r = _best_taking(p, side, order_type, price, i, 1)
        if r < 0:
            break
        shown = _touch(p.venue_quotes[r, i], side)[1]
        take = left if left < shown else shown
        n_legs = _add_leg(p, r, take, n_legs)
        if first < 0:
            first = r
        left -= take
    if left > 0:
        immediate = order_type == OrderType.MARKET or tif == TimeInForce.IOC
        if immediate:
            r = first if first >= 0 else _lowest_fee(p, False, side, price, False, i)
        else:
            r = _lowest_fee(p, True, side, price, False, i)
        n_legs = _add_leg(p, r, left, n_legs)
    return n_legs


@njit(**KERNEL)
def leg_route(p, rank: int) -> int:
    """The route of leg ``rank`` (1-based) of the last plan."""
    for r in range(p.routes.shape[0]):
        if p.routes[r].leg_rank == rank:
            return r
    return -1
