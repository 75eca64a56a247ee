"""Pre-trade checks: every new order and every modify passes ``check_order``, in every mode.

Nothing reaches a venue except through these checks, so a backtest obeys exactly the
limits production does. Checks look at the worst case: position limits count the
unfilled size of every working order on the same side, in flight included, and the
gross exposure counts every working order on both sides. Cancels are never checked:
taking risk off must always be possible.

The checks run in a fixed order and the first failure is the reason reported, so a
rejection always names one cause (``RejectReason``):

    invalid order, kill switch, instrument halted, breaker (HALTED; REDUCING unless the
    order reduces exposure), reduce-only, order size, stale data, no market, order
    notional, price collar, price band, long/short position, gross exposure, open
    orders (instrument, portfolio), duplicate order, message throttle (instrument,
    portfolio).

``check_order`` decides; ``record_acceptance`` and ``record_rejection`` then update
what the checks remember (throttle windows, recent orders, the reject rate), and may
trip the circuit breaker.
"""

from __future__ import annotations

from numba import njit

from framework.events import OrderFlag, OrderType, RejectReason, Side
from framework.jit import HOT, KERNEL
from framework.market_data import mid_price, reference_price
from framework.risk.breaker import trip
from framework.risk.records import FILLS, MESSAGES, RECENT, BreakerState, Reference, Trip
from framework.risk.windows import record_decision, reject_rate, window_add, window_full


@njit(**HOT)
def limit_reference(p, instrument_id: int) -> int:
    """The instrument's reference price as its limits choose it (fixed point, 0 if none)."""
    choice = p.risk_limits[instrument_id].collar_reference
    if choice == Reference.LAST:
        return p.market[instrument_id].last_price
    if choice == Reference.MID:
        return mid_price(p.market, instrument_id)
    return reference_price(p.market, instrument_id)


@njit(**HOT)
def killed(p, venue_id: int) -> bool:
    """Whether the kill switch covers orders for ``venue_id`` from this pipeline's strategy."""
    rs = p.risk_state[0]
    return rs.kill_all != 0 or rs.kill_strategy != 0 or (rs.kill_venues >> venue_id) & 1 != 0


@njit(**HOT)
def reduces_exposure(p, instrument_id: int, side: int, added_size: int) -> bool:
    """Whether an order only reduces the position, with the working orders on its side."""
    pos = p.positions[instrument_id]
    if side == Side.BUY:
        return pos.qty < 0 and pos.open_buy + added_size <= -pos.qty
    return pos.qty > 0 and pos.open_sell + added_size <= pos.qty


@njit(**HOT)
def _order_price(order_type: int, price: int, trigger_price: int, ref: int) -> int:
    """The price an order's notional and collar are measured at."""
    if order_type == OrderType.MARKET:
        return ref
    if order_type == OrderType.STOP:
        return trigger_price
    return price


@njit(**KERNEL)
def gross_exposure(p, instrument_id: int, added_size: int, added_price: int) -> float:
    """Positions plus every working order, in quote currency, plus an order being added."""
    total = added_size * 1e-9 * (added_price * 1e-9)
    for i in range(p.positions.shape[0]):
        pos = p.positions[i]
        units = abs(pos.qty) + pos.open_buy + pos.open_sell
        if units == 0:
            continue
        ref = reference_price(p.market, i)
        mark = ref * 1e-9 if ref > 0 else pos.mark
        total += units * 1e-9 * mark
    return total


@njit(**KERNEL)
def _duplicate(p, instrument_id: int, side: int, price: int, size: int, now: int, window: int) -> bool:
    for k in range(RECENT):
        r = p.risk_recent[k]
        if (r.size == size and r.price == price and r.side == side and r.instrument_id == instrument_id
                and r.ts > 0 and now - r.ts < window):
            return True
    return False


@njit(**HOT)
def _invalid(p, instrument_id: int, side: int, order_type: int, price: int, trigger_price: int, size: int) -> bool:
    if instrument_id < 0 or instrument_id >= p.risk_limits.shape[0]:
        return True
    if size <= 0 or (side != Side.BUY and side != Side.SELL):
        return True
    if order_type == OrderType.LIMIT or order_type == OrderType.STOP_LIMIT:
        if price <= 0:
            return True
    elif order_type != OrderType.MARKET and order_type != OrderType.STOP:
        return True
    return (order_type == OrderType.STOP or order_type == OrderType.STOP_LIMIT) and trigger_price <= 0


@njit(**HOT)
def check_order(p, instrument_id: int, side: int, order_type: int, price: int, trigger_price: int, size: int,
                added_size: int, flags: int, venue_id: int, is_new: bool) -> int:
    """Return RejectReason.NONE if an order may go out, else the first reason that stops it.

    ``added_size`` is how much the order adds to working size on its side: the full size
    for a new order, the growth in unfilled size for a modify (``is_new`` False, which
    skips the checks that only concern new orders: open orders and duplicates).
    """
    rs = p.risk_state[0]
    rs.n_checked += 1
    now = p.exec_state[0].now
    if _invalid(p, instrument_id, side, order_type, price, trigger_price, size):
        return RejectReason.INVALID_ORDER
    flatten = flags & OrderFlag.FLATTEN != 0  # the kill switch's own closing orders
    if not flatten and killed(p, venue_id):
        return RejectReason.KILL_SWITCH
    if p.risk_instruments[instrument_id].halted != 0:
        return RejectReason.INSTRUMENT_HALTED
    reducing = flatten or reduces_exposure(p, instrument_id, side, added_size)
    if not flatten and rs.breaker == BreakerState.HALTED:
        return RejectReason.BREAKER_HALTED
    if rs.breaker == BreakerState.REDUCING and not reducing:
        return RejectReason.BREAKER_REDUCING
    if flags & OrderFlag.REDUCE_ONLY and not reducing:
        return RejectReason.REDUCE_ONLY
    lim = p.risk_limits[instrument_id]
    if size > lim.max_order_size:
        return RejectReason.MAX_ORDER_SIZE
    market = p.market[instrument_id]
    if lim.max_data_age_ns > 0 and (market.ts_last == 0 or now - market.ts_last > lim.max_data_age_ns):
        return RejectReason.STALE_DATA
    ref = limit_reference(p, instrument_id)
    if ref <= 0:
        return RejectReason.NO_MARKET
    px = _order_price(order_type, price, trigger_price, ref)
    if lim.max_order_notional > 0.0 and size * 1e-9 * (px * 1e-9) > lim.max_order_notional:
        return RejectReason.MAX_ORDER_NOTIONAL
    if order_type != OrderType.MARKET:
        if lim.price_collar > 0.0 and abs(px - ref) > lim.price_collar * ref:
            return RejectReason.PRICE_COLLAR
        band = p.risk_instruments[instrument_id]
        if lim.price_band > 0.0 and band.band_anchor > 0 and abs(px - band.band_anchor) > lim.price_band * band.band_anchor:
            return RejectReason.PRICE_BAND
    pos = p.positions[instrument_id]
    if side == Side.BUY:
        if pos.qty + pos.open_buy + added_size > lim.max_long:
            return RejectReason.MAX_POSITION
    elif -(pos.qty - pos.open_sell - added_size) > lim.max_short:
        return RejectReason.MAX_POSITION
    plim = p.portfolio_limits[0]
    if plim.max_gross_exposure > 0.0 and not reducing:
        if gross_exposure(p, instrument_id, added_size, px) > plim.max_gross_exposure:
            return RejectReason.MAX_GROSS_EXPOSURE
    if is_new:
        if lim.max_open_orders > 0 and p.risk_instruments[instrument_id].n_open >= lim.max_open_orders:
            return RejectReason.MAX_OPEN_ORDERS
        if plim.max_open_orders > 0 and p.exec_state[0].n_open >= plim.max_open_orders:
            return RejectReason.MAX_OPEN_ORDERS
        if lim.duplicate_window_ns > 0 and _duplicate(p, instrument_id, side, price, size, now,
                                                      lim.duplicate_window_ns):
            return RejectReason.DUPLICATE_ORDER
    n = p.risk_limits.shape[0]
    if window_full(p.risk_windows, instrument_id, MESSAGES, lim.max_messages_per_s, now):
        return RejectReason.THROTTLE
    if window_full(p.risk_windows, n, MESSAGES, plim.max_messages_per_s, now):
        return RejectReason.THROTTLE
    return RejectReason.NONE


@njit(**HOT)
def record_acceptance(p, instrument_id: int, side: int, price: int, size: int, is_new: bool) -> None:
    """Remember an order that passed: it counts towards the throttles and the duplicate check."""
    now = p.exec_state[0].now
    n = p.risk_limits.shape[0]
    window_add(p.risk_windows, instrument_id, MESSAGES, p.risk_limits[instrument_id].max_messages_per_s, now)
    window_add(p.risk_windows, n, MESSAGES, p.portfolio_limits[0].max_messages_per_s, now)
    if is_new:
        rs = p.risk_state[0]
        r = p.risk_recent[rs.recent_head % RECENT]
        r.ts = now
        r.price = price
        r.size = size
        r.instrument_id = instrument_id
        r.side = side
        rs.recent_head += 1
    _decide(p, False)


@njit(**KERNEL)
def record_rejection(p, reason: int) -> None:
    """Count a rejection by reason, and trip the breaker where the reason calls for it."""
    rs = p.risk_state[0]
    rs.n_rejected += 1
    p.reject_counts[reason] += 1
    now = p.exec_state[0].now
    plim = p.portfolio_limits[0]
    if reason == RejectReason.THROTTLE:
        trip(p.risk_state, plim.on_throttle, Trip.THROTTLE, now)
    elif reason == RejectReason.STALE_DATA:
        trip(p.risk_state, plim.on_stale_data, Trip.STALE_DATA, now)
    _decide(p, True)


@njit(**HOT)
def record_venue_rejection(p) -> None:
    """Count a venue's refusal of an order towards the reject rate."""
    _decide(p, True)


@njit(**HOT)
def _decide(p, rejected: bool) -> None:
    plim = p.portfolio_limits[0]
    if plim.max_reject_rate <= 0.0:
        return
    record_decision(p.risk_state, p.risk_windows, plim.reject_window, rejected)
    if rejected and reject_rate(p.risk_state, plim.reject_window) > plim.max_reject_rate:
        trip(p.risk_state, plim.on_reject_rate, Trip.REJECT_RATE, p.exec_state[0].now)


@njit(**HOT)
def record_fill(p, instrument_id: int) -> None:
    """Count a fill towards the repeated-execution throttle; trip the breaker when it is exceeded."""
    limit = p.risk_limits[instrument_id].max_fills_per_s
    if limit <= 0:
        return
    now = p.exec_state[0].now
    if window_full(p.risk_windows, instrument_id, FILLS, limit, now):
        trip(p.risk_state, p.portfolio_limits[0].on_fill_rate, Trip.FILL_RATE, now)
    window_add(p.risk_windows, instrument_id, FILLS, limit, now)


@njit(**HOT)
def track_band(p, instrument_id: int, now: int) -> None:
    """Re-anchor the instrument's price band when its window has ended (a market-data event).

    The band is a static band per window, as venues run them: prices must stay within
    ``price_band`` of the reference at the window's first event.
    """
    lim = p.risk_limits[instrument_id]
    if lim.price_band <= 0.0:
        return
    ri = p.risk_instruments[instrument_id]
    if now >= ri.band_end_ts:
        ref = limit_reference(p, instrument_id)
        if ref > 0:
            ri.band_anchor = ref
            ri.band_end_ts = now + lim.band_window_ns
