"""Execution stage: turn approved intents into commands and venue reports into order state.

Every order lives in the order table (``Pipeline.orders``, ``framework.order_table``)
under a client order id assigned from a counter in the pipeline state, so ids are
unique within a run and identical between runs; the venue's own id for it arrives with
its acknowledgement and is kept beside it. Status changes go through
``order_state.next_status`` only: a report that would be an illegal transition is
counted and ignored. The stage also keeps each instrument's working size per side
(``open_buy``/``open_sell``) that the risk stage bounds.

Retries of transient refusals and queries for unacknowledged orders are the stage's
recovery (``framework.recovery``); this module routes the reports that start them.
"""

from __future__ import annotations

from numba import njit

from framework.events import CommandKind, EventKind, OrderFlag, OrderType, RejectReason, ReportFlag, Side, TimeInForce
from framework.jit import HOT, KERNEL
from framework.order_state import OrderAction, OrderStatus, is_open, next_status
from framework.order_table import (
    add_working,
    close_order,
    emit,
    find_by_venue_order_id,
    find_order,
    set_status,
    waits,
)
from framework.positions import apply_fill
from framework.recovery import apply_status, expect, on_refused
from framework.routing import leg_route, plan, routing_on
from framework.risk.checks import (
    check_order,
    killed,
    limit_reference,
    record_acceptance,
    record_fill,
    record_rejection,
    record_venue_rejection,
)
from framework.state import Counter

__all__ = ["apply_report", "cancel", "cancel_order_and_legs", "find_order", "modify", "submit", "submit_checked"]


@njit(**KERNEL)
def _protect(p, o) -> None:
    """Slippage protection: send a market order as an IOC limit at most ``max_slippage``
    from the reference price, so a thin book cannot fill it anywhere."""
    slip = p.risk_limits[o.instrument_id].max_slippage
    if o.order_type != OrderType.MARKET or slip <= 0.0:
        return
    ref = limit_reference(p, o.instrument_id)
    o.order_type = OrderType.LIMIT
    o.tif = TimeInForce.IOC
    if o.side == Side.BUY:
        o.price = ref + int(ref * slip)
    else:
        o.price = ref - int(ref * slip)


@njit(**HOT)
def submit(p, intent, out, n_out: int) -> int:
    """Risk-check a strategy's new order; record it and emit SUBMIT (one per venue leg when
    orders are routed, ``framework.routing``), or record the rejection and emit ALERT.
    The FLATTEN flag is the kill switch's alone: stripped here."""
    intent.flags = intent.flags & (0xFF ^ OrderFlag.FLATTEN)
    if routing_on(p):
        return _submit_routed(p, intent, out, n_out)
    return submit_checked(p, intent, out, n_out)


@njit(**HOT)
def submit_checked(p, intent, out, n_out: int) -> int:
    """``submit`` without stripping FLATTEN or routing: the kill switch's own closing orders
    come here, to the venue they name."""
    now = p.exec_state[0].now
    slot = intent.client_order_id % p.orders.shape[0]
    reason = _admit(p, intent, slot, now)
    if reason != RejectReason.NONE:
        return _refuse(p, intent, slot, reason, out, n_out, now)
    record_acceptance(p, intent.instrument_id, intent.side, intent.price, intent.size, True)
    o = p.orders[slot]
    _write_order(o, intent, now)
    _protect(p, o)
    return _open(p, o, out, n_out, now)


@njit(**HOT)
def _admit(p, intent, slot: int, now: int) -> int:
    """The first reason a new order may not go out, or NONE."""
    if is_open(p.orders[slot].status):
        return RejectReason.ORDER_TABLE_FULL
    if intent.tif == TimeInForce.GTD and intent.expire_ts <= now:
        return RejectReason.INVALID_ORDER
    return check_order(
        p, intent.instrument_id, intent.side, intent.order_type, intent.price, intent.trigger_price,
        intent.size, intent.size, intent.flags, intent.venue_id, True,
    )


@njit(**HOT)
def _refuse(p, intent, slot: int, reason: int, out, n_out: int, now: int) -> int:
    """Record a refused order (in its slot, unless that holds another open order) and emit ALERT."""
    record_rejection(p, reason)
    p.counters[Counter.REJECTS_RISK] += 1
    if reason != RejectReason.ORDER_TABLE_FULL:
        o = p.orders[slot]
        _write_order(o, intent, now)
        set_status(p, o, OrderStatus.REJECTED)
        o.reject_reason = reason
        o.leaves = 0
    return emit(out, n_out, now, CommandKind.ALERT, intent, reason)


@njit(**HOT)
def _open(p, o, out, n_out: int, now: int) -> int:
    """An approved order (written to its slot) starts working: emit its SUBMIT."""
    set_status(p, o, next_status(OrderStatus.INITIALIZED, OrderAction.SUBMIT))
    o.attempts = 1
    add_working(p, o.instrument_id, o.side, o.size)
    p.exec_state[0].n_open += 1
    p.risk_instruments[o.instrument_id].n_open += 1
    p.counters[Counter.ORDERS_SUBMITTED] += 1
    if waits(p, o.status):
        expect(p, now + p.exec_limits[0].ack_timeout_ns)
    return emit(out, n_out, now, CommandKind.SUBMIT, o, 0)


@njit(**KERNEL)
def _submit_routed(p, intent, out, n_out: int) -> int:
    """A new order with several venues configured: check it once as stated, split it over
    the venues (``routing.plan``) and send each leg as an order of its own.

    The legs take the client order ids from the strategy's id on, which the strategy API
    reserved; the order is refused whole if a leg's venue is under the kill switch or a
    leg's slot still holds an open order."""
    now = p.exec_state[0].now
    orders = p.orders
    cap = orders.shape[0]
    coid = intent.client_order_id
    slot = coid % cap
    reason = _admit(p, intent, slot, now)
    if reason != RejectReason.NONE:
        return _refuse(p, intent, slot, reason, out, n_out, now)
    first = orders[slot]
    _write_order(first, intent, now)
    _protect(p, first)
    n_legs = plan(p, first.side, first.order_type, first.tif, first.flags, first.price, first.size,
                  first.instrument_id)
    for rank in range(1, n_legs + 1):
        venue = p.routes[leg_route(p, rank)].venue_id
        if killed(p, venue) and first.flags & OrderFlag.FLATTEN == 0:
            reason = RejectReason.KILL_SWITCH
        elif rank > 1 and is_open(orders[(coid + rank - 1) % cap].status):
            reason = RejectReason.ORDER_TABLE_FULL
    if reason != RejectReason.NONE:
        return _refuse(p, intent, slot, reason, out, n_out, now)
    record_acceptance(p, intent.instrument_id, intent.side, intent.price, intent.size, True)
    for rank in range(1, n_legs + 1):
        rt = p.routes[leg_route(p, rank)]
        o = orders[(coid + rank - 1) % cap]
        if rank > 1:
            _write_order(o, intent, now)
            o.client_order_id = coid + rank - 1
            o.order_type = first.order_type  # as slippage protection made the first
            o.tif = first.tif
            o.price = first.price
        o.venue_id = rt.venue_id
        o.size = rt.leg_size
        o.leaves = rt.leg_size
        o.legs = n_legs if rank == 1 else 0
    for rank in range(1, n_legs + 1):
        n_out = _open(p, orders[(coid + rank - 1) % cap], out, n_out, now)
    return n_out


@njit(**HOT)
def _write_order(o, intent, now: int) -> None:
    o.client_order_id = intent.client_order_id
    o.ts_created = now
    o.ts_updated = now
    o.price = intent.price
    o.size = intent.size
    o.filled = 0
    o.leaves = intent.size
    o.trigger_price = intent.trigger_price
    o.expire_ts = intent.expire_ts
    o.pending_price = 0
    o.pending_size = 0
    o.reserved = 0
    o.venue_order_id = 0
    o.avg_fill_price = 0.0
    o.instrument_id = intent.instrument_id
    o.side = intent.side
    o.order_type = intent.order_type
    o.tif = intent.tif
    o.flags = intent.flags
    o.venue_id = intent.venue_id
    o.legs = 0
    o.reject_reason = 0
    o.attempts = 0
    o.queries = 0
    o.stale_answers = 0


@njit(**HOT)
def cancel(p, intent, out, n_out: int) -> int:
    """Request a cancel of a working order; a cancel of a finished or unknown order is a no-op.

    An order waiting to be sent again is not at the venue: it is canceled here, and
    nothing is sent."""
    slot = find_order(p.orders, intent.client_order_id)
    if slot < 0:
        return n_out
    o = p.orders[slot]
    nxt = next_status(o.status, OrderAction.CANCEL_REQUEST)
    if nxt < 0:
        return n_out
    o.ts_updated = p.exec_state[0].now
    if o.status == OrderStatus.RETRY_WAIT:
        close_order(p, o)
        set_status(p, o, nxt)
        return n_out
    set_status(p, o, nxt)
    p.counters[Counter.CANCELS_SENT] += 1
    return emit(out, n_out, p.exec_state[0].now, CommandKind.CANCEL, o, 0)


@njit(**HOT)
def cancel_order_and_legs(p, intent, out, n_out: int) -> int:
    """A strategy's cancel: of its order and, for an order the router split, of every leg."""
    slot = find_order(p.orders, intent.client_order_id)
    legs = p.orders[slot].legs if slot >= 0 else 0
    n_out = cancel(p, intent, out, n_out)
    coid = intent.client_order_id
    for k in range(1, legs):
        intent.client_order_id = coid + k
        n_out = cancel(p, intent, out, n_out)
    intent.client_order_id = coid
    return n_out


@njit(**HOT)
def modify(p, intent, out, n_out: int) -> int:
    """Risk-check a new price and total size for a working order and request it from the venue."""
    now = p.exec_state[0].now
    slot = find_order(p.orders, intent.client_order_id)
    if slot < 0:
        return n_out
    o = p.orders[slot]
    if next_status(o.status, OrderAction.MODIFY_REQUEST) < 0:
        return n_out
    new_leaves = intent.size - o.filled
    if new_leaves <= 0:
        return cancel(p, intent, out, n_out)
    extra = new_leaves - o.leaves
    if extra < 0:
        extra = 0
    reason = check_order(p, o.instrument_id, o.side, o.order_type, intent.price, o.trigger_price, intent.size,
                         extra, o.flags, o.venue_id, False)
    if reason != RejectReason.NONE:
        record_rejection(p, reason)
        p.counters[Counter.REJECTS_RISK] += 1
        return emit(out, n_out, now, CommandKind.ALERT, intent, reason)
    record_acceptance(p, o.instrument_id, o.side, intent.price, intent.size, False)
    set_status(p, o, OrderStatus.PENDING_MODIFY)
    o.pending_price = intent.price
    o.pending_size = intent.size
    o.reserved = extra
    add_working(p, o.instrument_id, o.side, extra)
    o.ts_updated = now
    p.counters[Counter.MODIFIES_SENT] += 1
    c_n = emit(out, n_out, now, CommandKind.MODIFY, o, 0)
    out[n_out].price = intent.price
    out[n_out].size = intent.size
    return c_n


@njit(**KERNEL)
def _report_action(kind: int) -> int:
    if kind == EventKind.ACCEPTED:
        return OrderAction.ACCEPTED
    if kind == EventKind.REJECTED:
        return OrderAction.REJECTED
    if kind == EventKind.PARTIALLY_FILLED:
        return OrderAction.PARTIALLY_FILLED
    if kind == EventKind.FILLED:
        return OrderAction.FILLED
    if kind == EventKind.CANCELED:
        return OrderAction.CANCELED
    if kind == EventKind.EXPIRED:
        return OrderAction.EXPIRED
    if kind == EventKind.CANCEL_REJECTED:
        return OrderAction.CANCEL_REJECTED
    return OrderAction.MODIFIED


@njit(**KERNEL)
def _unmatched(p, ev) -> int:
    """A report for no order of ours: map it through its venue order id, or book an external fill.

    Returns the order's slot, or -1 when the report has been dealt with here. A report
    that does not name our client order id is found by the venue's id for the order
    (non-fill reports carry it). A fill for an order the table does not know (an
    external order) still moves the position: the venue is the authority on what traded.
    """
    is_fill = ev.kind == EventKind.PARTIALLY_FILLED or ev.kind == EventKind.FILLED
    if not is_fill and ev.client_order_id <= 0:
        slot = find_by_venue_order_id(p.orders, ev.venue_id, ev.venue_order_id)
        if slot >= 0:
            return slot
    p.counters[Counter.UNKNOWN_ORDER_REPORTS] += 1
    if is_fill and ev.size > 0 and 0 <= ev.instrument_id < p.positions.shape[0]:
        apply_fill(p.positions, p.portfolio, ev.instrument_id, ev.side, ev.price, ev.size, ev.fee)
        p.counters[Counter.FILLS] += 1
        record_fill(p, ev.instrument_id)
    return -1


@njit(**HOT)
def _recovery_report(o, ev) -> int:
    """The recovery action a report starts, or -1 for an ordinary report.

    VENUE_BUSY refuses an order for a passing reason. UNKNOWN_ORDER for the cancel of an
    order the venue never acknowledged (no venue id, no fill) means the order never
    arrived: the venue's reports on one order come in order, so had it arrived, its
    acknowledgement or its end would have come first.
    """
    kind = ev.kind
    if kind == EventKind.REJECTED and ev.flags == RejectReason.VENUE_BUSY:
        return OrderAction.TRANSIENT_REJECT
    if (kind == EventKind.CANCEL_REJECTED and ev.flags == RejectReason.UNKNOWN_ORDER
            and o.status == OrderStatus.PENDING_CANCEL and o.venue_order_id == 0 and o.filled == 0):
        return OrderAction.NOT_FOUND
    return -1


@njit(**HOT)
def apply_report(p, ev, out, n_out: int) -> int:
    """Apply a venue report to its order and, for fills, to positions; return ``n_out``.

    A report finds its order by client order id, else by venue order id (``_unmatched``,
    which also books an external order's fill). Status reports (answers to QUERY) and
    refusals worth a retry go to the recovery (``framework.recovery``), which may emit
    commands (a final refusal's ALERT); other reports never do.
    """
    slot = find_order(p.orders, ev.client_order_id)
    if slot < 0:
        slot = _unmatched(p, ev)
        if slot < 0:
            return n_out
    o = p.orders[slot]
    action = _report_action(ev.kind)
    if ev.flags & ReportFlag.STATUS != 0:
        return apply_status(p, o, ev, action, out, n_out)
    recovery = _recovery_report(o, ev)
    if recovery >= 0:
        return on_refused(p, o, ev.flags, recovery, out, n_out)
    nxt = next_status(o.status, action)
    if nxt < 0:
        p.counters[Counter.ILLEGAL_TRANSITIONS] += 1
        return n_out
    is_fill = ev.kind == EventKind.PARTIALLY_FILLED or ev.kind == EventKind.FILLED
    prev = o.status
    o.ts_updated = p.exec_state[0].now
    if is_fill and ev.size > 0:
        filled = ev.size
        total = o.filled + filled
        o.avg_fill_price = (o.avg_fill_price * o.filled + ev.price * 1.0 * filled) / total
        o.filled = total
        new_leaves = ev.leaves_qty if ev.leaves_qty >= 0 else 0
        add_working(p, o.instrument_id, o.side, new_leaves - o.leaves)
        o.leaves = new_leaves
        apply_fill(p.positions, p.portfolio, o.instrument_id, o.side, ev.price, filled, ev.fee)
        p.counters[Counter.FILLS] += 1
        record_fill(p, o.instrument_id)
    if ev.kind == EventKind.ACCEPTED:
        if ev.venue_order_id > 0:
            o.venue_order_id = ev.venue_order_id
    elif ev.kind == EventKind.MODIFIED:
        o.price = ev.price
        o.size = o.filled + ev.leaves_qty
        add_working(p, o.instrument_id, o.side, ev.leaves_qty - o.leaves - o.reserved)
        o.leaves = ev.leaves_qty
        o.reserved = 0
    elif ev.kind == EventKind.CANCEL_REJECTED:
        if prev == OrderStatus.PENDING_MODIFY:
            add_working(p, o.instrument_id, o.side, -o.reserved)
            o.reserved = 0
    elif ev.kind == EventKind.REJECTED:
        p.counters[Counter.REJECTS_VENUE] += 1
        record_venue_rejection(p)
        o.reject_reason = ev.flags
    if nxt == OrderStatus.ACCEPTED and o.filled > 0:
        nxt = OrderStatus.PARTIALLY_FILLED  # the table says "working"; fills say how far along
    if is_open(prev) and not is_open(nxt):
        close_order(p, o)
    set_status(p, o, nxt)
    return n_out
