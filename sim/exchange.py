"""The simulated exchange on L1 data: what an order would really have got from this market.

The exchange sees market data at ``ts_event`` (venue time), before the strategy does,
and orders when they arrive after the order latency. It never invents liquidity:

* An aggressive order (market, or a limit priced through the touch) takes the opposite
  touch at the touch's price, capped by the size shown there and not yet taken by our
  own earlier orders on that quote. With no quote yet (a trades-only or bars-only
  history), it waits for the first print (or bar open, or quote) and takes it at that
  price, capped by its size; then IOC, FOK and market orders expire the rest and a GTC
  order rests the remainder at its limit.
* A resting order fills at its own price when a later print or quote reaches it (see
  the fill rule in ``sim.models``), capped by that print's or quote's size, which all
  our resting orders share in time priority.
* IOC takes what is there and expires the rest; FOK fills completely at once or
  expires; post-only is rejected if it would take; market orders are IOC.
* Bars count as a print range: a resting order fills if the bar's range reaches it,
  capped by the bar's volume; a waiting aggressive order fills at the bar's open.
* Stop and stop-limit orders wait, accepted, until the market reaches their trigger:
  a buy stop when a print is at or above it (or the ask, on quotes; the bar's high, on
  bars), a sell stop at or below it. Then a stop becomes a market order and a
  stop-limit a limit order at its price, and both meet the liquidity of the row that
  triggered them as an aggressive order (a bar fills a triggered stop at its trigger
  or its open, whichever is worse). A stop already triggered on arrival acts at once.
* GTD orders expire at their ``expire_ts``: the exchange expires them when it next
  sees that instrument's data (before matching, so they never fill after it) and
  reports EXPIRED at that moment.
* L2 book records do not move the exchange in this model (queue position on L2 data
  is a separate model); they still reach the strategy.

Venues: the exchange runs one book per venue and instrument. A row moves the book of
its ``venue_id``; an order rests and fills on the book of its own ``venue_id``, with that
venue's fees and latencies (row ``venue_id`` of the parameters, ``sim.models``). Venues
are numbered 0 .. n-1; an order for a venue that does not exist is rejected as invalid.

Reports (ACCEPTED, fills, CANCELED, EXPIRED, MODIFIED, REJECTED for an order refused,
CANCEL_REJECTED for a cancel or modify refused, the order unchanged) travel back through
the response channel, FIFO, and every fill is also written to the fills buffer.

Order ids and faults, as a real venue's order entry has them:

* Each accepted order gets a venue order id, from a counter per venue (1, 2, ...), so
  ids are deterministic; every report that is not a fill carries it.
* A SUBMIT whose client order id the exchange already holds (working, or finished and
  still in its slot) is a duplicate: no second order, only a status report of the one
  it has. That is what makes re-sending an order under its own id safe.
* QUERY asks for an order's state: a status report (``ReportFlag.STATUS``) of kind
  ACCEPTED while it works, else of how it ended, or REJECTED with UNKNOWN_ORDER for an
  id the exchange never got.
* Injected faults (``sim.models``): an arriving SUBMIT or MODIFY refused with
  VENUE_BUSY (nothing of it kept), a SUBMIT lost on the way in, the first
  acknowledgement of an order lost on the way out. Status reports are never lost.
"""

from __future__ import annotations

from collections import namedtuple

import numpy as np
from numba import njit

from framework.events import (
    EVENT_DTYPE,
    FILL_DTYPE,
    CommandKind,
    EventKind,
    Liquidity,
    OrderFlag,
    OrderType,
    RejectReason,
    ReportFlag,
    Side,
    TimeInForce,
    padded,
    records,
)
from framework.jit import HOT, KERNEL
from sim.models import FAULT_STREAM, Channel, fault, fee_fixed, latency_ns, rests_filled

EX_MARKET_DTYPE = padded(np.dtype(
    [
        ("bid_price", "<i8"), ("bid_size", "<i8"), ("ask_price", "<i8"), ("ask_size", "<i8"),
        ("bid_left", "<i8"), ("ask_left", "<i8"), ("last_price", "<i8"), ("has_quote", "<i8"),
        ("n_conditional", "<i8"),
    ],
    align=True,
))
"""The exchange's view of one instrument; ``*_left`` is touch size our orders have not
taken; ``n_conditional`` counts its resting stops and GTD orders, so that the trigger
and expiry pass runs only where there is one."""

SIM_ORDER_DTYPE = np.dtype(
    [
        ("client_order_id", "<i8"), ("price", "<i8"), ("size", "<i8"), ("leaves", "<i8"),
        ("trigger_price", "<i8"), ("expire_ts", "<i8"),
        ("instrument_id", "<i4"), ("venue_id", "u1"), ("side", "i1"), ("order_type", "u1"), ("tif", "u1"),
        ("flags", "u1"), ("active", "u1"), ("aggressive", "u1"), ("stop", "u1"), ("triggered", "u1"),
        ("state", "u1"), ("reject_reason", "u1"),
    ],
    align=True,
)
"""An order at the exchange, 64 bytes (one cache line; the filled size is ``size -
leaves``). ``stop`` marks a stop order still waiting for its trigger; ``triggered`` one
that has just been triggered and meets its first liquidity. ``state`` is the kind of the
order's last lifecycle report (ACCEPTED while it works, else how it ended; 0 for a slot
never used), with ``reject_reason`` when REJECTED: what a status report tells."""

Exchange = namedtuple(
    "Exchange",
    ["market", "orders", "active", "n_active", "reports", "rq", "report_last", "fills", "n_fills", "prm", "rng",
     "venue_order_ids", "filled", "venue_seq", "faults"],
)
"""Exchange state. ``market[v, i]`` is venue ``v``'s book of instrument ``i`` and
``active[v, i, :n_active[v, i]]`` the order slots resting on it in time priority;
``reports`` is the response channel's ring buffer, kept in arrival order, with
``rq = [head, tail, -, overflow]`` and ``report_last[v]`` the last arrival time from
venue ``v`` (each venue's channel is FIFO); ``fills[:n_fills[0]]`` are the fills made.
``venue_order_ids[slot]`` is the venue order id of the order in ``slot`` and ``filled[slot]``
how much of it has filled (``leaves`` is zeroed when an order ends, whatever filled),
``venue_seq[venue_id]`` the last id that venue gave, and ``faults`` counts the injected
faults by ``Fault``."""

RQ_HEAD, RQ_TAIL, RQ_OVERFLOW = 0, 1, 3
Fault = namedtuple("Fault", "VENUE_BUSY SUBMIT_LOST ACK_LOST")(0, 1, 2)
N_VENUES = 256


def allocate_exchange(n_instruments: int, order_capacity: int, prm: np.ndarray, rng: np.ndarray,
                      report_capacity: int = 1 << 14, fill_capacity: int = 1 << 16) -> Exchange:
    """Allocate an empty exchange; ``prm`` and ``rng`` (``sim.models.latency_streams``) are shared with the loop."""
    n_venues = len(prm)
    if not 1 <= n_venues <= N_VENUES:
        raise ValueError(f"the exchange runs 1 to {N_VENUES} venues, not {n_venues} (one row of prm each)")
    faulty = any(float(prm[name][0]) > 0.0 for name in ("transient_reject_rate", "ack_loss_rate", "submit_loss_rate"))
    if faulty and len(rng) <= FAULT_STREAM:
        raise ValueError(f"rng holds {len(rng)} random streams, none for faults; build it with "
                         "sim.models.latency_streams")
    return Exchange(
        market=records(n_venues * n_instruments, EX_MARKET_DTYPE).reshape(n_venues, n_instruments),
        orders=records(order_capacity, SIM_ORDER_DTYPE),
        active=np.zeros((n_venues, n_instruments, order_capacity), np.int64),
        n_active=np.zeros((n_venues, n_instruments), np.int64),
        reports=records(report_capacity, EVENT_DTYPE),
        rq=np.zeros(4, np.int64),
        report_last=np.zeros(N_VENUES, np.int64),
        fills=records(fill_capacity, FILL_DTYPE),
        n_fills=np.zeros(1, np.int64),
        prm=prm,
        rng=rng,
        venue_order_ids=np.zeros(order_capacity, np.int64),
        filled=np.zeros(order_capacity, np.int64),
        venue_seq=np.zeros(N_VENUES, np.int64),
        faults=np.zeros(len(Fault), np.int64),
    )


@njit(**KERNEL)
def _make_room(reports, head: int, tail: int, arrival: int) -> int:
    """Shift the reports arriving after ``arrival`` one place back (a faster venue's report
    overtakes a slower venue's); return the free place, in arrival order. Rare: only with
    venues of different latencies."""
    cap = reports.shape[0]
    pos = tail
    while pos > head and reports[(pos - 1) % cap].ts_recv > arrival:
        reports[pos % cap] = reports[(pos - 1) % cap]
        pos -= 1
    return pos


@njit(**HOT)
def _send_report(ex, t: int, kind: int, side: int, venue_id: int, instrument_id: int, client_order_id: int,
                 leaves: int, price: int, size: int, fee: int, flags: int, venue_order_id: int) -> None:
    """Queue one report on venue ``venue_id``'s response channel; flag an overflow if the
    ring is full.

    Each venue's channel is FIFO (a report never overtakes an earlier one from the same
    venue); reports from venues with different latencies interleave by arrival time,
    ties in the order they were sent. A fill carries its ``fee``; any other report,
    status reports included, the ``venue_order_id`` in the same bytes."""
    rq = ex.rq
    cap = ex.reports.shape[0]
    if rq[RQ_TAIL] - rq[RQ_HEAD] >= cap:
        rq[RQ_OVERFLOW] = 1
        return
    v = venue_id if venue_id < ex.prm.shape[0] else 0
    arrival = t + latency_ns(ex.prm[v], ex.rng, Channel.RESPONSE)
    if arrival < ex.report_last[venue_id]:
        arrival = ex.report_last[venue_id]
    ex.report_last[venue_id] = arrival
    pos = rq[RQ_TAIL]
    if pos > rq[RQ_HEAD] and ex.reports[(pos - 1) % cap].ts_recv > arrival:
        pos = _make_room(ex.reports, rq[RQ_HEAD], pos, arrival)
    r = ex.reports[pos % cap]
    rq[RQ_TAIL] += 1
    r.ts_event = t
    r.ts_recv = arrival
    r.kind = kind
    r.side = side
    r.flags = flags
    r.venue_id = venue_id
    r.instrument_id = instrument_id
    r.price = price
    r.size = size
    r.client_order_id = client_order_id
    r.leaves_qty = leaves
    if (kind == EventKind.FILLED or kind == EventKind.PARTIALLY_FILLED) and flags & ReportFlag.STATUS == 0:
        r.fee = fee
    else:
        r.venue_order_id = venue_order_id


@njit(**HOT)
def _report(ex, t: int, kind: int, o, price: int, size: int, fee: int, flags: int) -> None:
    """Report on order ``o`` (its side, ids and unfilled size), and remember how it stands."""
    if (kind == EventKind.ACCEPTED or kind == EventKind.FILLED or kind == EventKind.CANCELED
            or kind == EventKind.EXPIRED or kind == EventKind.REJECTED):
        o.state = kind
        o.reject_reason = flags & ReportFlag.REASON_MASK if kind == EventKind.REJECTED else 0
    voi = ex.venue_order_ids[o.client_order_id % ex.orders.shape[0]]
    _send_report(ex, t, kind, o.side, o.venue_id, o.instrument_id, o.client_order_id, o.leaves, price, size, fee,
                 flags, voi)


@njit(**KERNEL)
def _reject_unknown(ex, t: int, cmd) -> None:
    """Refuse a cancel or modify for an order that is not resting (filled, canceled or never seen)."""
    _send_report(ex, t, EventKind.CANCEL_REJECTED, cmd.side, cmd.venue_id, cmd.instrument_id, cmd.client_order_id, 0,
                 cmd.price, 0, 0, RejectReason.UNKNOWN_ORDER, 0)


@njit(**KERNEL)
def _refuse_command(ex, t: int, cmd, kind: int, reason: int) -> None:
    """Refuse a command without touching any order: a REJECTED or CANCEL_REJECTED about ``cmd`` itself."""
    _send_report(ex, t, kind, cmd.side, cmd.venue_id, cmd.instrument_id, cmd.client_order_id, 0, cmd.price, 0, 0,
                 reason, 0)


@njit(**KERNEL)
def _holds(ex, slot: int, client_order_id: int) -> bool:
    """Whether the exchange knows ``client_order_id`` (working, or finished and still in its slot)."""
    o = ex.orders[slot]
    return o.client_order_id == client_order_id and o.state != 0


@njit(**KERNEL)
def _status_report(ex, t: int, o) -> None:
    """Tell how order ``o`` stands: its state as the kind, its filled size, flagged STATUS."""
    reason = o.reject_reason if o.state == EventKind.REJECTED else 0
    filled = ex.filled[o.client_order_id % ex.orders.shape[0]]
    _report(ex, t, o.state, o, o.price, filled, 0, ReportFlag.STATUS | reason)


@njit(**HOT)
def _busy(ex) -> bool:
    """Whether the venue refuses this SUBMIT or MODIFY for a passing reason (an injected fault)."""
    if fault(ex.rng, ex.prm[0].transient_reject_rate):
        ex.faults[Fault.VENUE_BUSY] += 1
        return True
    return False


@njit(**HOT)
def _acknowledge(ex, t: int, slot: int) -> None:
    """Accept order ``slot``: give it the venue's next order id and report ACCEPTED, unless
    the acknowledgement is lost on the way (an injected fault; the order works all the same)."""
    o = ex.orders[slot]
    seq = ex.venue_seq[o.venue_id] + 1
    ex.venue_seq[o.venue_id] = seq
    ex.venue_order_ids[slot] = seq
    if fault(ex.rng, ex.prm[0].ack_loss_rate):
        ex.faults[Fault.ACK_LOST] += 1
        o.state = EventKind.ACCEPTED
        o.reject_reason = 0
        return
    _report(ex, t, EventKind.ACCEPTED, o, o.price, 0, 0, 0)


@njit(**HOT)
def _fill(ex, t: int, o, price: int, size: int, liquidity: int) -> None:
    """Fill ``size`` of order ``o`` at ``price``: charge the fee, report the fill and record it.

    Inlined, like ``_take_first``: a call passes the exchange's arrays word by word, and
    as calls the two cost the market maker 5.5% of its time and the SMA 2.1%
    (``bench/paired_ab.py``)."""
    prm = ex.prm[o.venue_id]
    rate = prm.maker_fee_rate if liquidity == Liquidity.MAKER else prm.taker_fee_rate
    fee = fee_fixed(price, size, rate)
    o.leaves -= size
    ex.filled[o.client_order_id % ex.orders.shape[0]] += size
    kind = EventKind.FILLED if o.leaves == 0 else EventKind.PARTIALLY_FILLED
    _report(ex, t, kind, o, price, size, fee, liquidity)
    k = ex.n_fills[0]
    if k < ex.fills.shape[0]:
        f = ex.fills[k]
        f.ts_event = t
        f.client_order_id = o.client_order_id
        f.price = price
        f.size = size
        f.fee = fee
        f.instrument_id = o.instrument_id
        f.venue_id = o.venue_id
        f.side = o.side
        f.liquidity = liquidity
        f.order_type = o.order_type
        ex.n_fills[0] = k + 1


@njit(**HOT)
def _conditional(o) -> bool:
    return o.stop != 0 or (o.tif == TimeInForce.GTD and o.expire_ts > 0)


@njit(**HOT)
def _deactivate(ex, slot: int) -> None:
    o = ex.orders[slot]
    o.active = 0
    v = o.venue_id
    i = o.instrument_id
    if _conditional(o):
        ex.market[v, i].n_conditional -= 1
    n = ex.n_active[v, i]
    row = ex.active[v, i]
    for k in range(n):
        if row[k] == slot:
            for j in range(k, n - 1):
                row[j] = row[j + 1]
            ex.n_active[v, i] = n - 1
            return


@njit(**HOT)
def _activate(ex, slot: int) -> None:
    o = ex.orders[slot]
    o.active = 1
    v = o.venue_id
    i = o.instrument_id
    if _conditional(o):
        ex.market[v, i].n_conditional += 1
    ex.active[v, i, ex.n_active[v, i]] = slot
    ex.n_active[v, i] += 1


@njit(**KERNEL)
def _touch(m, side: int) -> tuple[int, int]:
    """Opposite touch price and size still available to an order of ``side``."""
    if side == Side.BUY:
        return m.ask_price, m.ask_left
    return m.bid_price, m.bid_left


@njit(**KERNEL)
def _take_touch(m, side: int, size: int) -> None:
    if side == Side.BUY:
        m.ask_left -= size
    else:
        m.bid_left -= size


@njit(**KERNEL)
def _crosses_touch(m, o) -> bool:
    if m.has_quote == 0:
        return False
    if o.order_type == OrderType.MARKET:
        return True
    if o.side == Side.BUY:
        return m.ask_size > 0 and o.price >= m.ask_price
    return m.bid_size > 0 and o.price <= m.bid_price


@njit(**KERNEL)
def _is_marketable(m, o) -> bool:
    if o.order_type == OrderType.MARKET:
        return True
    if m.has_quote != 0:
        return _crosses_touch(m, o)
    if m.last_price > 0:
        return o.price >= m.last_price if o.side == Side.BUY else o.price <= m.last_price
    return False


@njit(**KERNEL)
def _take(ex, t: int, o) -> None:
    """Fill an aggressive order against the quoted touch as far as the shown size allows."""
    m = ex.market[o.venue_id, o.instrument_id]
    price, avail = _touch(m, o.side)
    if avail <= 0 or price <= 0:
        return
    if o.order_type != OrderType.MARKET and not _crosses_touch(m, o):
        return
    q = o.leaves if o.leaves < avail else avail
    _take_touch(m, o.side, q)
    _fill(ex, t, o, price, q, Liquidity.TAKER)


@njit(**KERNEL)
def _is_immediate(o) -> bool:
    """Whether an order's unfilled rest expires instead of resting (IOC, FOK, market)."""
    return o.tif == TimeInForce.IOC or o.tif == TimeInForce.FOK or o.order_type == OrderType.MARKET


@njit(**KERNEL)
def _finish_immediate(ex, t: int, slot: int) -> None:
    """After a marketable order took the touch: expire an immediate rest, or rest the remainder.

    With no quote yet (a trades-only or bars-only history) there was no touch to take: the
    order waits, marked aggressive, for the first print, bar or quote (``_take_first``).
    """
    o = ex.orders[slot]
    if o.leaves == 0:
        return
    if ex.market[o.venue_id, o.instrument_id].has_quote == 0:
        o.aggressive = 1
    elif _is_immediate(o):
        _report(ex, t, EventKind.EXPIRED, o, o.price, 0, 0, 0)
        o.leaves = 0
        return
    _activate(ex, slot)


@njit(**HOT)
def _take_first(ex, t: int, o, price: int, avail: int) -> int:
    """A waiting aggressive order meets the first liquidity after it arrived; return the size taken.

    It takes ``avail`` at ``price`` as taker if the price is within its limit: FOK all or
    nothing, others as much as is there. Then IOC, FOK and market orders expire whatever
    is left, and a GTC order rests the remainder at its limit as a passive order.
    """
    o.aggressive = 0
    o.triggered = 0
    within = o.order_type == OrderType.MARKET or (o.side == Side.BUY and price <= o.price) or (
        o.side == Side.SELL and price >= o.price
    )
    q = 0
    if within and price > 0 and avail > 0 and not (o.tif == TimeInForce.FOK and avail < o.leaves):
        q = o.leaves if o.leaves < avail else avail
        _fill(ex, t, o, price, q, Liquidity.TAKER)
    if o.leaves > 0 and _is_immediate(o):
        _report(ex, t, EventKind.EXPIRED, o, o.price, 0, 0, 0)
        o.leaves = 0
    return q


@njit(**KERNEL)
def _stop_reached(o, buy_ref: int, sell_ref: int) -> bool:
    """Whether the market has reached a waiting stop's trigger (a reference of 0 never does)."""
    if o.side == Side.BUY:
        return buy_ref > 0 and buy_ref >= o.trigger_price
    return sell_ref > 0 and sell_ref <= o.trigger_price


@njit(**KERNEL)
def _trigger(o) -> None:
    """A stop becomes the order it stands for: market, or limit at its price."""
    o.stop = 0
    o.triggered = 1
    o.order_type = OrderType.MARKET if o.order_type == OrderType.STOP else OrderType.LIMIT


@njit(**KERNEL)
def _take_quoted(ex, t: int, o) -> None:
    """A triggered stop on a quoted market: take the touch, then expire an immediate rest."""
    o.aggressive = 0
    o.triggered = 0
    _take(ex, t, o)
    if o.leaves > 0 and _is_immediate(o):
        _report(ex, t, EventKind.EXPIRED, o, o.price, 0, 0, 0)
        o.leaves = 0


@njit(**KERNEL)
def _expire_and_trigger(ex, t: int, v: int, i: int, buy_ref: int, sell_ref: int) -> None:
    """Before a row is matched: expire GTD orders whose time has come, and turn stops the
    row reaches into aggressive orders that meet this very row."""
    row = ex.active[v, i]
    k = 0
    while k < ex.n_active[v, i]:
        slot = row[k]
        o = ex.orders[slot]
        if o.expire_ts > 0 and o.expire_ts <= t:
            _deactivate(ex, slot)
            _report(ex, t, EventKind.EXPIRED, o, o.price, 0, 0, 0)
            o.leaves = 0
            continue
        if o.stop != 0 and _stop_reached(o, buy_ref, sell_ref):
            _trigger(o)
            if not _conditional(o):
                ex.market[v, i].n_conditional -= 1
            o.aggressive = 1
        k += 1


@njit(**HOT)
def on_submit(ex, t: int, cmd) -> None:
    """An order arrives: reject, or accept and take what the market offers, then rest or expire."""
    slot = cmd.client_order_id % ex.orders.shape[0]
    o = ex.orders[slot]
    is_stop = cmd.order_type == OrderType.STOP or cmd.order_type == OrderType.STOP_LIMIT
    needs_price = cmd.order_type == OrderType.LIMIT or cmd.order_type == OrderType.STOP_LIMIT
    bad = cmd.size <= 0 or (needs_price and cmd.price <= 0) or (is_stop and cmd.trigger_price <= 0)
    bad = bad or (cmd.tif == TimeInForce.GTD and cmd.expire_ts <= t)
    bad = bad or cmd.instrument_id < 0 or cmd.instrument_id >= ex.market.shape[1]
    bad = bad or cmd.venue_id >= ex.market.shape[0]
    if o.active != 0 and o.client_order_id != cmd.client_order_id:
        # Another order still rests in this slot: refuse the newcomer, touch nothing.
        _refuse_command(ex, t, cmd, EventKind.REJECTED, RejectReason.ORDER_TABLE_FULL)
        return
    if _holds(ex, slot, cmd.client_order_id):
        _status_report(ex, t, o)  # a duplicate: the order it names is already here
        return
    if _busy(ex):
        _refuse_command(ex, t, cmd, EventKind.REJECTED, RejectReason.VENUE_BUSY)
        return
    ex.venue_order_ids[slot] = 0
    ex.filled[slot] = 0
    o.client_order_id = cmd.client_order_id
    o.price = cmd.price
    o.size = cmd.size
    o.leaves = cmd.size
    o.instrument_id = cmd.instrument_id if not bad else 0
    o.venue_id = cmd.venue_id if not bad else 0
    o.side = cmd.side
    o.order_type = cmd.order_type
    o.tif = cmd.tif
    o.flags = cmd.flags
    o.trigger_price = cmd.trigger_price
    o.expire_ts = cmd.expire_ts if cmd.tif == TimeInForce.GTD else 0
    o.active = 0
    o.aggressive = 0
    o.stop = 1 if is_stop else 0
    o.triggered = 0
    if bad:
        o.leaves = 0
        o.venue_id = cmd.venue_id
        _report(ex, t, EventKind.REJECTED, o, cmd.price, 0, 0, RejectReason.INVALID_ORDER)
        o.venue_id = 0
        return
    m = ex.market[o.venue_id, o.instrument_id]
    if o.stop != 0:
        buy_ref = m.ask_price if m.has_quote != 0 and m.ask_size > 0 else m.last_price
        sell_ref = m.bid_price if m.has_quote != 0 and m.bid_size > 0 else m.last_price
        if not _stop_reached(o, buy_ref, sell_ref):
            _acknowledge(ex, t, slot)
            _activate(ex, slot)
            return
        _trigger(o)
        o.triggered = 0  # triggered on arrival: it acts now, as the order it became
    marketable = _is_marketable(m, o)
    if marketable and (o.flags & OrderFlag.POST_ONLY) != 0:
        o.leaves = 0
        _report(ex, t, EventKind.REJECTED, o, o.price, 0, 0, RejectReason.POST_ONLY_WOULD_TAKE)
        return
    _acknowledge(ex, t, slot)
    if not marketable:
        if o.tif == TimeInForce.IOC or o.tif == TimeInForce.FOK:
            _report(ex, t, EventKind.EXPIRED, o, o.price, 0, 0, 0)
            o.leaves = 0
            return
        _activate(ex, slot)
        return
    if m.has_quote != 0 and o.tif == TimeInForce.FOK:
        price, avail = _touch(m, o.side)
        if avail < o.leaves:
            _report(ex, t, EventKind.EXPIRED, o, o.price, 0, 0, 0)
            o.leaves = 0
            return
    if m.has_quote != 0:
        _take(ex, t, o)
    _finish_immediate(ex, t, slot)


@njit(**HOT)
def on_cancel(ex, t: int, cmd) -> None:
    """A cancel arrives: cancel the resting order, or reject if it is no longer there."""
    slot = cmd.client_order_id % ex.orders.shape[0]
    o = ex.orders[slot]
    if o.active == 0 or o.client_order_id != cmd.client_order_id or o.venue_id != cmd.venue_id:
        _reject_unknown(ex, t, cmd)
        return
    _deactivate(ex, slot)
    _report(ex, t, EventKind.CANCELED, o, o.price, 0, 0, 0)
    o.leaves = 0


@njit(**HOT)
def on_modify(ex, t: int, cmd) -> None:
    """A modify arrives: reprice and resize (losing time priority), or reject it."""
    slot = cmd.client_order_id % ex.orders.shape[0]
    o = ex.orders[slot]
    if o.active == 0 or o.client_order_id != cmd.client_order_id or o.venue_id != cmd.venue_id:
        _reject_unknown(ex, t, cmd)
        return
    if _busy(ex):
        _report(ex, t, EventKind.CANCEL_REJECTED, o, cmd.price, 0, 0, RejectReason.VENUE_BUSY)
        return
    new_leaves = cmd.size - (o.size - o.leaves)
    old_price = o.price
    o.price = cmd.price
    m = ex.market[o.venue_id, o.instrument_id]
    would_take = o.stop == 0 and _is_marketable(m, o)
    if new_leaves <= 0 or cmd.price <= 0 or (would_take and (o.flags & OrderFlag.POST_ONLY) != 0):
        o.price = old_price
        reason = RejectReason.POST_ONLY_WOULD_TAKE if would_take else RejectReason.INVALID_ORDER
        _report(ex, t, EventKind.CANCEL_REJECTED, o, cmd.price, 0, 0, reason)
        return
    _deactivate(ex, slot)
    o.size = cmd.size
    o.leaves = new_leaves
    _report(ex, t, EventKind.MODIFIED, o, o.price, 0, 0, 0)
    if would_take and m.has_quote != 0:
        _take(ex, t, o)
    if o.leaves > 0:
        _activate(ex, slot)


@njit(**KERNEL)
def on_query(ex, t: int, cmd) -> None:
    """A query arrives: report how the order stands, or that the exchange never got it."""
    slot = cmd.client_order_id % ex.orders.shape[0]
    if cmd.client_order_id > 0 and _holds(ex, slot, cmd.client_order_id):
        _status_report(ex, t, ex.orders[slot])
        return
    _refuse_command(ex, t, cmd, EventKind.REJECTED, ReportFlag.STATUS | RejectReason.UNKNOWN_ORDER)


@njit(**HOT)
def _submit_lost(ex) -> bool:
    """Whether this SUBMIT is lost on its way to the venue (an injected fault)."""
    if fault(ex.rng, ex.prm[0].submit_loss_rate):
        ex.faults[Fault.SUBMIT_LOST] += 1
        return True
    return False


@njit(**HOT)
def on_command(ex, t: int, cmd) -> None:
    """Dispatch an order command that has reached the venue."""
    if cmd.kind == CommandKind.SUBMIT:
        if not _submit_lost(ex):
            on_submit(ex, t, cmd)
    elif cmd.kind == CommandKind.CANCEL:
        on_cancel(ex, t, cmd)
    elif cmd.kind == CommandKind.MODIFY:
        on_modify(ex, t, cmd)
    elif cmd.kind == CommandKind.QUERY:
        on_query(ex, t, cmd)


@njit(**HOT)
def _match_print(ex, t: int, v: int, i: int, price: int, size: int) -> None:
    """Let resting orders on venue ``v``'s instrument ``i`` trade against a print of ``size`` at ``price``."""
    fill_model = ex.prm[0].fill_model
    row = ex.active[v, i]
    left = size
    k = 0
    while k < ex.n_active[v, i] and left > 0:
        slot = row[k]
        o = ex.orders[slot]
        if o.stop != 0:
            k += 1
            continue
        if o.aggressive != 0 and ex.market[v, i].has_quote != 0:
            _take_quoted(ex, t, o)  # a stop this print triggered takes the book, not the print
        elif o.aggressive != 0:
            left -= _take_first(ex, t, o, price, left)
        elif rests_filled(fill_model, o.side, o.price, price):
            q = o.leaves if o.leaves < left else left
            left -= q
            _fill(ex, t, o, o.price, q, Liquidity.MAKER)
        if o.leaves == 0:
            _deactivate(ex, slot)
        else:
            k += 1


@njit(**HOT)
def _match_quote(ex, t: int, v: int, i: int) -> None:
    """Let resting orders on venue ``v``'s instrument ``i`` fill against a quote that reached them."""
    m = ex.market[v, i]
    fill_model = ex.prm[0].fill_model
    row = ex.active[v, i]
    k = 0
    while k < ex.n_active[v, i]:
        slot = row[k]
        o = ex.orders[slot]
        if o.stop != 0:
            k += 1
            continue
        if o.aggressive != 0:
            price, avail = _touch(m, o.side)
            _take_touch(m, o.side, _take_first(ex, t, o, price, avail))
        else:
            price, avail = _touch(m, o.side)
            if avail > 0 and price > 0 and rests_filled(fill_model, o.side, o.price, price):
                q = o.leaves if o.leaves < avail else avail
                _take_touch(m, o.side, q)
                _fill(ex, t, o, o.price, q, Liquidity.MAKER)
        if o.leaves == 0:
            _deactivate(ex, slot)
        else:
            k += 1


@njit(**KERNEL)
def _conditional_pass(ex, ev, m) -> None:
    """Expiries and stop triggers for the row ``ev`` (see ``_expire_and_trigger``)."""
    kind = ev.kind
    t = ev.ts_event
    v = ev.venue_id
    if kind == EventKind.TRADE:
        _expire_and_trigger(ex, t, v, ev.instrument_id, ev.price, ev.price)
    elif kind == EventKind.QUOTE:
        buy_ref = ev.ask_price if ev.ask_size > 0 else 0
        sell_ref = ev.bid_price if ev.bid_size > 0 else 0
        _expire_and_trigger(ex, t, v, ev.instrument_id, buy_ref, sell_ref)
    elif kind == EventKind.BAR:
        _expire_and_trigger(ex, t, v, ev.instrument_id, ev.high, ev.low)
    else:
        _expire_and_trigger(ex, t, v, ev.instrument_id, 0, 0)


@njit(**HOT)
def record_row(m, ev) -> None:
    """Take one market-data row into venue book ``m`` (``ex.market[v, i]``) without matching:
    all a row does where nothing rests (no active order, hence no conditional one either)."""
    kind = ev.kind
    if kind == EventKind.TRADE:
        m.last_price = ev.price
    elif kind == EventKind.QUOTE:
        m.has_quote = 1
        m.bid_price = ev.bid_price
        m.bid_size = ev.bid_size
        m.ask_price = ev.ask_price
        m.ask_size = ev.ask_size
        m.bid_left = ev.bid_size
        m.ask_left = ev.ask_size
    elif kind == EventKind.BAR:
        m.last_price = ev.close


@njit(**HOT)
def on_market(ex, ev) -> None:
    """Update venue ``ev.venue_id``'s book with one market-data record and fill what it reaches."""
    v = ev.venue_id
    i = ev.instrument_id
    m = ex.market[v, i]
    kind = ev.kind
    t = ev.ts_event
    if m.n_conditional > 0:
        _conditional_pass(ex, ev, m)
    record_row(m, ev)
    if ex.n_active[v, i] == 0:
        return
    if kind == EventKind.TRADE:
        _match_print(ex, t, v, i, ev.price, ev.size)
    elif kind == EventKind.QUOTE:
        _match_quote(ex, t, v, i)
    elif kind == EventKind.BAR:
        # Buys are reached by the bar's low, sells by its high.
        _match_bar(ex, t, v, i, ev)


@njit(**KERNEL)
def _match_bar(ex, t: int, v: int, i: int, ev) -> None:
    fill_model = ex.prm[0].fill_model
    row = ex.active[v, i]
    left = ev.volume
    k = 0
    while k < ex.n_active[v, i] and left > 0:
        slot = row[k]
        o = ex.orders[slot]
        if o.stop != 0:
            k += 1
            continue
        if o.aggressive != 0:
            price = ev.open
            if o.triggered != 0:  # the bar crossed the trigger: at the trigger, or the open if worse
                price = max(ev.open, o.trigger_price) if o.side == Side.BUY else min(ev.open, o.trigger_price)
            left -= _take_first(ex, t, o, price, left)
        else:
            reach = ev.low if o.side == Side.BUY else ev.high
            if rests_filled(fill_model, o.side, o.price, reach):
                q = o.leaves if o.leaves < left else left
                left -= q
                _fill(ex, t, o, o.price, q, Liquidity.MAKER)
        if o.leaves == 0:
            _deactivate(ex, slot)
        else:
            k += 1
