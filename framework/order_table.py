"""The order table's primitives, shared by the execution stage and its recovery.

An order lives in slot ``client_order_id % capacity`` of ``Pipeline.orders``. Every
status change goes through ``set_status``, which keeps the count of orders waiting on a
deadline (``EXEC_STATE_DTYPE.n_waiting``) exact: that count is what lets the execution
stage skip its timer entirely while nothing waits. Working size per side
(``open_buy``/``open_sell``, which risk bounds) changes only through ``add_working`` and
``close_order``.
"""

from __future__ import annotations

from numba import njit

from framework.events import CommandKind, Side
from framework.jit import HOT, KERNEL
from framework.order_state import OrderStatus


@njit(**HOT)
def is_venue_command(kind: int) -> bool:
    """Whether a command of ``kind`` goes to a venue (SUBMIT, CANCEL, MODIFY, QUERY) rather
    than to the clock (SET_TIMER) or the operator (ALERT)."""
    return (kind == CommandKind.SUBMIT or kind == CommandKind.CANCEL or kind == CommandKind.MODIFY
            or kind == CommandKind.QUERY)


@njit(**HOT)
def find_order(orders, client_order_id: int) -> int:
    """Return the slot of ``client_order_id`` in the order table, or -1 if it is not there."""
    if client_order_id <= 0:
        return -1
    slot = client_order_id % orders.shape[0]
    if orders[slot].client_order_id == client_order_id and orders[slot].status != OrderStatus.FREE:
        return slot
    return -1


@njit(**KERNEL)
def find_by_venue_order_id(orders, venue_id: int, venue_order_id: int) -> int:
    """Return the slot of the order the venue ``venue_id`` knows as ``venue_order_id``, or -1.

    A scan of the table: only a report that does not name our client order id needs it.
    """
    if venue_order_id <= 0:
        return -1
    for slot in range(orders.shape[0]):
        o = orders[slot]
        if o.venue_order_id == venue_order_id and o.venue_id == venue_id and o.status != OrderStatus.FREE:
            return slot
    return -1


@njit(**HOT)
def add_working(p, instrument_id: int, side: int, size: int) -> None:
    """Add ``size`` (negative: remove) to the instrument's working size on ``side``."""
    pos = p.positions[instrument_id]
    if side == Side.BUY:
        pos.open_buy += size
    else:
        pos.open_sell += size


@njit(**HOT)
def close_order(p, o) -> None:
    """An order stops working: release its working size and its open-order counts."""
    add_working(p, o.instrument_id, o.side, -(o.leaves + o.reserved))
    o.leaves = 0
    o.reserved = 0
    p.exec_state[0].n_open -= 1
    p.risk_instruments[o.instrument_id].n_open -= 1


@njit(**HOT)
def waits(p, status: int) -> bool:
    """Whether an order in ``status`` waits on a deadline: its backoff (RETRY_WAIT), or its
    acknowledgement (SUBMITTED, QUERYING) when acknowledgements are timed."""
    if status == OrderStatus.RETRY_WAIT:
        return True
    if status == OrderStatus.SUBMITTED or status == OrderStatus.QUERYING:
        return p.exec_limits[0].ack_timeout_ns > 0
    return False


@njit(**HOT)
def set_status(p, o, status: int) -> None:
    """Move ``o`` to ``status`` (already checked against the transition table)."""
    was = waits(p, o.status)
    now = waits(p, status)
    if was != now:
        p.exec_state[0].n_waiting += 1 if now else -1
    o.status = status


@njit(**HOT)
def emit(out, n_out: int, now: int, kind: int, o, reason: int) -> int:
    """Write a command of ``kind`` about order ``o`` to ``out[n_out]``; return ``n_out + 1``."""
    c = out[n_out]
    c.ts_event = now
    c.kind = kind
    c.side = o.side
    c.flags = o.flags
    c.venue_id = o.venue_id
    c.instrument_id = o.instrument_id
    c.order_type = o.order_type
    c.tif = o.tif
    c.reason = reason
    c.client_order_id = o.client_order_id
    c.price = o.price
    c.size = o.size
    c.trigger_price = o.trigger_price
    c.expire_ts = o.expire_ts
    return n_out + 1
