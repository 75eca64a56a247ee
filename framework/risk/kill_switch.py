"""What the kill switch does once engaged: cancel every working order in scope, and
optionally close every position.

From then on ``check_order`` denies every new order in scope; cancels always go out.
The closing orders are reduce-only market orders (priced by slippage protection where
configured), split into pieces no larger than the instrument's order size limit and
flagged FLATTEN, which exempts them from the kill switch and the breaker but from no
other check. They are sized on the position alone: the working orders being canceled
may still fill in the race, which is why the venue's own reduce-only flag rides along.
"""

from __future__ import annotations

from numba import njit

from framework.events import CommandKind, OrderFlag, OrderType, Side, TimeInForce
from framework.execution import cancel, submit_checked
from framework.jit import KERNEL
from framework.order_state import OrderAction, is_open, next_status
from framework.risk.records import KillScope


@njit(**KERNEL)
def cancel_in_scope(p, out, n_out: int, scope: int, venue_id: int) -> int:
    """Cancel every working order the scope covers (a venue's, or all of this pipeline's)."""
    orders = p.orders
    intent = p.intents[0]
    for slot in range(orders.shape[0]):
        o = orders[slot]
        if not is_open(o.status) or next_status(o.status, OrderAction.CANCEL_REQUEST) < 0:
            continue
        if scope == KillScope.VENUE and o.venue_id != venue_id:
            continue
        intent.client_order_id = o.client_order_id
        n_out = cancel(p, intent, out, n_out)
    return n_out


@njit(**KERNEL)
def flatten(p, out, n_out: int, venue_id: int) -> int:
    """Send reduce-only market orders that close every open position."""
    es = p.exec_state[0]
    intent = p.intents[0]
    for i in range(p.positions.shape[0]):
        qty = p.positions[i].qty
        piece_limit = p.risk_limits[i].max_order_size
        remaining = abs(qty)
        while remaining > 0 and piece_limit > 0 and n_out < out.shape[0]:
            piece = min(piece_limit, remaining)
            intent.ts_event = es.now
            intent.kind = CommandKind.SUBMIT
            intent.instrument_id = i
            intent.side = Side.SELL if qty > 0 else Side.BUY
            intent.order_type = OrderType.MARKET
            intent.tif = TimeInForce.IOC
            intent.flags = OrderFlag.REDUCE_ONLY | OrderFlag.FLATTEN
            intent.venue_id = venue_id
            intent.price = 0
            intent.size = piece
            intent.trigger_price = 0
            intent.expire_ts = 0
            intent.client_order_id = es.next_client_order_id
            es.next_client_order_id += 1
            n_out = submit_checked(p, intent, out, n_out)
            remaining -= piece
    return n_out
