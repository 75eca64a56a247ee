"""Risk stage: the pre-trade checks every order passes, in every mode, and the kill switch.

Nothing reaches a venue except through ``check_order``: a backtest obeys exactly the
limits production does. Checks look at the worst case, so the position limit counts
the unfilled size of every working order on the same side, in flight included.
"""

from __future__ import annotations

from numba import njit

from framework.events import ControlCode, OrderType, RejectReason, Side
from framework.jit import KERNEL
from framework.market_data import reference_price


@njit(**KERNEL)
def check_order(p, instrument_id: int, side: int, order_type: int, price: int, size: int, added_size: int) -> int:
    """Return 0 if an order may go out, else the RejectReason that stops it.

    ``added_size`` is how much the order adds to working exposure on its side: the
    full size for a new order, the change in unfilled size for a modify.
    """
    rs = p.risk_state[0]
    rs.n_checked += 1
    if rs.kill_switch != 0:
        return RejectReason.KILL_SWITCH
    if instrument_id < 0 or instrument_id >= p.risk_limits.shape[0]:
        return RejectReason.INVALID_ORDER
    if size <= 0 or (side != Side.BUY and side != Side.SELL):
        return RejectReason.INVALID_ORDER
    if order_type != OrderType.MARKET and price <= 0:
        return RejectReason.INVALID_ORDER
    limits = p.risk_limits[instrument_id]
    if size > limits.max_order_size:
        return RejectReason.MAX_ORDER_SIZE
    pos = p.positions[instrument_id]
    if side == Side.BUY:
        worst = pos.qty + pos.open_buy + added_size
    else:
        worst = -(pos.qty - pos.open_sell - added_size)
    if worst > limits.max_position:
        return RejectReason.MAX_POSITION
    ref = reference_price(p.market, instrument_id)
    if ref <= 0:
        return RejectReason.NO_MARKET
    if order_type != OrderType.MARKET:
        if abs(price - ref) > limits.price_collar * ref:
            return RejectReason.PRICE_COLLAR
    return RejectReason.NONE


@njit(**KERNEL)
def record_rejection(p, reason: int) -> None:
    """Count a rejection by reason."""
    p.risk_state[0].n_rejected += 1
    p.reject_counts[reason] += 1


@njit(**KERNEL)
def apply_control(p, ev) -> None:
    """Apply an operator's control event: kill switch and limit changes."""
    code = ev.control
    if code == ControlCode.KILL_SWITCH_ON:
        p.risk_state[0].kill_switch = 1
    elif code == ControlCode.KILL_SWITCH_OFF:
        p.risk_state[0].kill_switch = 0
    elif code == ControlCode.SET_MAX_POSITION:
        if 0 <= ev.target < p.risk_limits.shape[0]:
            p.risk_limits[ev.target].max_position = ev.value
    elif code == ControlCode.SET_MAX_ORDER_SIZE:
        if 0 <= ev.target < p.risk_limits.shape[0]:
            p.risk_limits[ev.target].max_order_size = ev.value
