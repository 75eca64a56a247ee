"""What a strategy kernel may call: read the market, its positions and orders; state intents.

A strategy never sends anything itself. Each call below appends an intent to the
pipeline's intent buffer and returns at once; after the strategy returns, ``step``
passes every intent through risk and execution, in the order stated. Client order
ids are assigned here, from the pipeline's counter, so the strategy can follow an
order (``order_status``) from the moment it asks for it. An intent beyond the
buffer's capacity is dropped and counted, and its call returns 0.

A strategy kernel is ``on_event(p, params, state, ev)``, compiled with
``@njit(cache=True)``: it inherits ``framework.jit.HOT`` from ``step``, which inlines
it into the loop and compiles it without reference counting, so it must not allocate
arrays (see ``framework.jit``). These calls are inlined into it as well.
"""

from __future__ import annotations

from numba import njit

from framework.events import CommandKind, OrderType, TimeInForce
from framework.execution import find_order
from framework.jit import HOT
from framework.market_data import mid_price
from framework.order_state import OrderStatus
from framework.routing import id_stride
from framework.state import Counter


@njit(**HOT)
def _intent(p, kind: int):
    es = p.exec_state[0]
    if es.n_intents >= p.intents.shape[0]:
        p.counters[Counter.INTENTS_DROPPED] += 1
        return -1
    k = es.n_intents
    es.n_intents = k + 1
    it = p.intents[k]
    it.ts_event = es.now
    it.kind = kind
    it.flags = 0
    it.venue_id = 0
    it.order_type = 0
    it.tif = 0
    it.reason = 0
    it.price = 0
    it.size = 0
    it.trigger_price = 0
    it.expire_ts = 0
    return k


@njit(**HOT)
def submit_order(
    p, instrument_id: int, side: int, order_type: int, price: int, size: int, tif: int, flags: int,
    trigger_price: int = 0, expire_ts: int = 0,
) -> int:
    """State an intent to send a new order; return its client order id (0 if dropped).

    ``trigger_price`` is a stop's trigger (STOP, STOP_LIMIT); ``expire_ts`` a GTD order's
    expiry in event time.
    """
    k = _intent(p, CommandKind.SUBMIT)
    if k < 0:
        return 0
    es = p.exec_state[0]
    coid = es.next_client_order_id
    es.next_client_order_id = coid + id_stride(p)  # the router's legs take the ids after it
    it = p.intents[k]
    it.instrument_id = instrument_id
    it.side = side
    it.order_type = order_type
    it.price = price
    it.size = size
    it.tif = tif
    it.flags = flags
    it.trigger_price = trigger_price
    it.expire_ts = expire_ts
    it.client_order_id = coid
    return coid


@njit(**HOT)
def stop_order(p, instrument_id: int, side: int, trigger_price: int, size: int, flags: int) -> int:
    """State a stop: a market order sent once the market reaches ``trigger_price``."""
    return submit_order(p, instrument_id, side, OrderType.STOP, 0, size, TimeInForce.GTC, flags, trigger_price, 0)


@njit(**HOT)
def stop_limit_order(p, instrument_id: int, side: int, trigger_price: int, price: int, size: int,
                     flags: int) -> int:
    """State a stop-limit: a limit order at ``price`` placed once the market reaches ``trigger_price``."""
    return submit_order(p, instrument_id, side, OrderType.STOP_LIMIT, price, size, TimeInForce.GTC, flags,
                        trigger_price, 0)


@njit(**HOT)
def market_order(p, instrument_id: int, side: int, size: int) -> int:
    """State an intent to trade ``size`` at the best available price now."""
    return submit_order(p, instrument_id, side, OrderType.MARKET, 0, size, TimeInForce.IOC, 0)


@njit(**HOT)
def limit_order(p, instrument_id: int, side: int, price: int, size: int, tif: int, flags: int) -> int:
    """State an intent to rest or take at ``price`` or better."""
    return submit_order(p, instrument_id, side, OrderType.LIMIT, price, size, tif, flags)


@njit(**HOT)
def cancel_order(p, client_order_id: int) -> None:
    """State an intent to cancel an order (ignored if it is no longer working)."""
    k = _intent(p, CommandKind.CANCEL)
    if k >= 0:
        p.intents[k].client_order_id = client_order_id


@njit(**HOT)
def modify_order(p, client_order_id: int, price: int, size: int) -> None:
    """State an intent to change an order's price and total size."""
    k = _intent(p, CommandKind.MODIFY)
    if k >= 0:
        it = p.intents[k]
        it.client_order_id = client_order_id
        it.price = price
        it.size = size


@njit(**HOT)
def set_timer(p, fire_ts: int, timer_id: int) -> None:
    """Ask for a TIMER event carrying ``timer_id`` at event time ``fire_ts``."""
    k = _intent(p, CommandKind.SET_TIMER)
    if k >= 0:
        p.intents[k].expire_ts = fire_ts
        p.intents[k].client_order_id = timer_id


@njit(**HOT)
def order_status(p, client_order_id: int) -> int:
    """Return the OrderStatus of an order, FREE if unknown (or its slot was reused)."""
    slot = find_order(p.orders, client_order_id)
    if slot < 0:
        return OrderStatus.FREE
    return p.orders[slot].status


@njit(**HOT)
def order_price(p, client_order_id: int) -> int:
    """Return an order's working price, 0 if unknown."""
    slot = find_order(p.orders, client_order_id)
    return p.orders[slot].price if slot >= 0 else 0


@njit(**HOT)
def position_qty(p, instrument_id: int) -> int:
    """Return the signed position in fixed point."""
    return p.positions[instrument_id].qty


@njit(**HOT)
def now_ns(p) -> int:
    """Return the pipeline's time: the ``ts_recv`` of the event being processed."""
    return p.exec_state[0].now


@njit(**HOT)
def mid(p, instrument_id: int) -> int:
    """Return the mid price in fixed point, 0 when not quoted on both sides."""
    return mid_price(p.market, instrument_id)
