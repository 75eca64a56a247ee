"""Orders: bring the order table to the venue's view of each order, or say why it cannot.

For every order of ours the venue's new fills are booked as fills of that order; an
order we think is working that the venue no longer has is closed, but only when its
fills are known to be complete (an order that vanished because it filled must produce
the fill, not a cancel). An order whose fills do not add up is left exactly as it is
and its instrument breaks: a correction is made only where it fully explains the
venue's view, which is also what makes a second reconciliation change nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np

from framework.events import EventKind, Liquidity, TimeInForce, raw_copy
from framework.execution import find_order
from framework.order_state import N_STATUS, OrderStatus, is_open
from framework.reconciliation.fills import FillSet, canonical
from framework.reconciliation.ledger import Correction, Ledger, Phase, qty, side_name
from framework.reconciliation.reports import VENUE_ORDER_DTYPE, VenueSnapshot
from framework.reconciliation.verdicts import BreakReason

_ORDER_SORT = ("instrument_id", "client_order_id", "venue_order_id", "side", "price", "size", "filled", "leaves")
"""Canonical order of an open-orders report."""


@cache
def _open_statuses() -> np.ndarray:
    return np.array([bool(is_open(s)) for s in range(N_STATUS)])


@dataclass(frozen=True)
class _Order:
    """The fields of one order-table slot that reconciliation reads."""

    coid: int
    status: int
    instrument_id: int
    side: int
    price: int
    size: int
    filled: int
    leaves: int
    ts_created: int
    tif: int
    expire_ts: int

    @classmethod
    def read(cls, orders: np.ndarray, slot: int) -> _Order:
        o = orders[slot]
        return cls(int(o["client_order_id"]), int(o["status"]), int(o["instrument_id"]), int(o["side"]),
                   int(o["price"]), int(o["size"]), int(o["filled"]), int(o["leaves"]), int(o["ts_created"]),
                   int(o["tif"]), int(o["expire_ts"]))


@dataclass(frozen=True)
class _Context:
    snapshot: VenueSnapshot
    fills: FillSet
    ledger: Ledger


def _own_slot(orders: np.ndarray, record: np.void, ledger: Ledger) -> int:
    """Return the table slot of the order a venue record names, or -1 if it is not one of ours.

    A record whose client order id is ours but whose instrument or side is not is
    someone else's order under a colliding id: it is treated as external.
    """
    coid = int(record["client_order_id"])
    slot = find_order(orders, coid) if coid > 0 else -1
    if slot < 0:
        return -1
    o = orders[slot]
    if o["instrument_id"] != record["instrument_id"] or o["side"] != record["side"]:
        ledger.note(f"the venue's client order {coid} is a {side_name(record['side'])} on instrument "
                    f"{record['instrument_id']}, ours a {side_name(o['side'])} on instrument {o['instrument_id']}: "
                    f"treated as someone else's")
        return -1
    return slot


def _match_open_orders(orders: np.ndarray, venue_orders: np.ndarray,
                       ledger: Ledger) -> tuple[dict[int, np.void], np.ndarray]:
    """Pair the venue's open orders with our working orders; return the pairs and the rest."""
    listed: dict[int, np.void] = {}
    external: list[int] = []
    for i, v in enumerate(venue_orders):
        slot = _own_slot(orders, v, ledger)
        if slot >= 0 and _open_statuses()[orders[slot]["status"]] and slot not in listed:
            listed[slot] = v
        else:
            external.append(i)
    return listed, raw_copy(venue_orders, np.array(external, np.int64))


def _flag_external_orders(external: np.ndarray, n_instruments: int, ledger: Ledger) -> None:
    for v in external:
        what = (f"venue order {v['venue_order_id']} (client order {v['client_order_id']}), "
                f"{side_name(v['side'])} {qty(v['leaves'])} @ {qty(v['price'])}, is open at the venue but not "
                f"working here")
        if 0 <= v["instrument_id"] < n_instruments:
            ledger.flag(int(v["instrument_id"]), BreakReason.UNKNOWN_ORDER, what)
        else:
            ledger.note(f"{what} (instrument {v['instrument_id']} is not one we trade)")


def _fill(ctx: _Context, i: int, kind: int, o: _Order | None, leaves: int) -> Correction:
    """The report that books fill ``i``: as a fill of ``o``, or of an external order when ``o`` is None."""
    f = ctx.fills.rows[i]
    coid, instrument_id, side = (0, int(f["instrument_id"]), int(f["side"])) if o is None else (
        o.coid, o.instrument_id, o.side)
    return Correction(Phase.FILL, i, kind, instrument_id, side, coid, int(f["price"]), int(f["size"]), leaves,
                      int(f["fee"]), int(f["liquidity"]), int(f["ts_event"]), int(ctx.fills.trade_ids[i]))


def _book_fills(ctx: _Context, o: _Order, new: list[int], target_size: int, may_finish: bool) -> None:
    """Book ``o``'s new fills; the one that leaves nothing of ``target_size`` is FILLED if ``may_finish``."""
    cum = o.filled
    for i in new:
        cum += int(ctx.fills.rows[i]["size"])
        leaves = max(target_size - cum, 0)
        kind = EventKind.FILLED if may_finish and leaves == 0 else EventKind.PARTIALLY_FILLED
        ctx.ledger.add(_fill(ctx, i, kind, o, leaves))


def _overfill(ctx: _Context, o: _Order, got: int, limit: int, what: str) -> None:
    ctx.ledger.flag(o.instrument_id, BreakReason.OVERFILL,
                    f"order {o.coid}: {qty(o.filled)} booked here plus the venue's new fills make {qty(got)}, "
                    f"more than {what} {qty(limit)}; its new fills are not booked")


def _plan_finished(ctx: _Context, o: _Order, new: list[int], got: int) -> None:
    """A fill of an order we consider finished (the cancel/fill race): book it to the position only."""
    if got > o.size:
        _overfill(ctx, o, got, o.size, "its size")
        return
    for i in new:
        ctx.ledger.add(_fill(ctx, i, EventKind.FILLED, None, 0))
    ctx.ledger.note(f"order {o.coid} is {OrderStatus._fields[o.status]} here but the venue reports "
                    f"{qty(got - o.filled)} more filled: booked to the position as external fills")


def _plan_listed(ctx: _Context, o: _Order, v: np.void, new: list[int], got: int) -> None:
    """An order both sides have working: take the venue's fills, acknowledgement, price and size."""
    if got > v["filled"]:
        _overfill(ctx, o, got, int(v["filled"]), "the venue says it filled,")
        return
    if got < v["filled"]:
        reason = BreakReason.FILL_GAP if ctx.snapshot.has_fills else BreakReason.MISSING_REPORT
        ctx.ledger.flag(o.instrument_id, reason, f"order {o.coid}: the venue says {qty(v['filled'])} filled, "
                                                 f"the fills we have explain {qty(got)}")
        return
    if o.status == OrderStatus.SUBMITTED:
        ctx.ledger.add(Correction(Phase.ACCEPT, o.coid, EventKind.ACCEPTED, o.instrument_id, o.side, o.coid,
                                  int(v["price"]), 0, int(v["leaves"]), 0, Liquidity.NONE, int(v["ts_updated"])))
    target = int(v["filled"] + v["leaves"])
    _book_fills(ctx, o, new, target, may_finish=False)
    leaves = max(target - got, 0) if new else o.leaves
    if v["price"] != o.price or v["leaves"] != leaves:
        ctx.ledger.add(Correction(Phase.AMEND, o.coid, EventKind.MODIFIED, o.instrument_id, o.side, o.coid,
                                  int(v["price"]), 0, int(v["leaves"]), 0, Liquidity.NONE, int(v["ts_updated"])))


def _close_kind(o: _Order, requested_ns: int) -> int:
    """EXPIRED for a GTD order past its expiry, else CANCELED."""
    expired = o.tif == TimeInForce.GTD and 0 < o.expire_ts <= requested_ns
    return EventKind.EXPIRED if expired else EventKind.CANCELED


def _plan_vanished(ctx: _Context, o: _Order, new: list[int], got: int, venue_total: int) -> None:
    """An order working here that the venue no longer has: it filled, or it was canceled."""
    snap = ctx.snapshot
    covered = snap.has_fills and snap.fills_since_ns <= o.ts_created
    if covered and got != venue_total:
        if got > venue_total:
            _overfill(ctx, o, got, venue_total, "the venue's fills for it,")
        else:
            ctx.ledger.flag(o.instrument_id, BreakReason.FILL_GAP,
                            f"order {o.coid}: the venue reports {qty(venue_total)} filled, "
                            f"{qty(got)} is booked or new here")
        return
    if got == o.size:
        _book_fills(ctx, o, new, o.size, may_finish=True)
        return
    if not covered:
        ctx.ledger.flag(o.instrument_id, BreakReason.MISSING_REPORT,
                        f"order {o.coid} is gone from the venue with {qty(got)} of {qty(o.size)} explained, and "
                        f"the fills report does not cover its life: cannot tell a fill from a cancel")
        return
    _book_fills(ctx, o, new, o.size, may_finish=True)
    kind = _close_kind(o, snap.requested_ns)
    ctx.ledger.add(Correction(Phase.CLOSE, o.coid, kind, o.instrument_id, o.side, o.coid, o.price, 0, 0, 0,
                              Liquidity.NONE, snap.received_ns))
    ctx.ledger.note(f"order {o.coid} is gone from the venue with {qty(got)} of {qty(o.size)} filled: "
                    f"{'expired' if kind == EventKind.EXPIRED else 'canceled'} here")


def _plan(ctx: _Context, o: _Order, new: list[int], venue_total: int, listed: np.void | None) -> None:
    got = o.filled + sum(int(ctx.fills.rows[i]["size"]) for i in new)
    if not _open_statuses()[o.status]:
        _plan_finished(ctx, o, new, got)
    elif listed is not None:
        _plan_listed(ctx, o, listed, new, got)
    elif got > o.size:
        _overfill(ctx, o, got, o.size, "its size")
    elif not ctx.snapshot.has_open_orders or o.ts_created >= ctx.snapshot.requested_ns:
        _book_fills(ctx, o, new, o.size, may_finish=True)  # may be in flight, or we cannot see: fills only
    else:
        _plan_vanished(ctx, o, new, got, venue_total)


def _fills_by_order(orders: np.ndarray, fills: FillSet,
                    ledger: Ledger) -> tuple[dict[int, list[int]], dict[int, int], list[int]]:
    """Split the fills: new ones per order slot, the venue's total per slot, and new external ones."""
    new: dict[int, list[int]] = {}
    total: dict[int, int] = {}
    external: list[int] = []
    for i, f in enumerate(fills.rows):
        slot = _own_slot(orders, f, ledger)
        if slot < 0:
            if fills.is_new[i]:
                external.append(i)
            continue
        total[slot] = total.get(slot, 0) + int(f["size"])
        if fills.is_new[i]:
            new.setdefault(slot, []).append(i)
    return new, total, external


def reconcile_orders(orders: np.ndarray, snapshot: VenueSnapshot, fills: FillSet, ledger: Ledger) -> np.ndarray:
    """Add the corrections that bring every order to the venue's view; return the venue's external orders.

    External open orders are not adopted: no report can create an order in the table,
    and an order we do not manage can fill behind the risk stage's back, so its
    instrument breaks and the order is handed back for an operator.
    """
    n_instruments = len(ledger.reasons)
    listed: dict[int, np.void] = {}
    external_orders = np.zeros(0, VENUE_ORDER_DTYPE)
    if snapshot.has_open_orders:
        listed, external_orders = _match_open_orders(orders, canonical(snapshot.open_orders, _ORDER_SORT), ledger)
        _flag_external_orders(external_orders, n_instruments, ledger)
    new, total, external_fills = _fills_by_order(orders, fills, ledger)
    ctx = _Context(snapshot, fills, ledger)
    slots = set(np.flatnonzero(_open_statuses()[orders["status"]]).tolist()) | set(new)
    for slot in sorted(slots, key=lambda s: int(orders[s]["client_order_id"])):
        _plan(ctx, _Order.read(orders, slot), new.get(slot, []), total.get(slot, 0), listed.get(slot))
    for i in external_fills:
        f = fills.rows[i]
        ledger.add(_fill(ctx, i, EventKind.FILLED, None, 0))
        ledger.note(f"fill {fills.trade_ids[i]} of client order {f['client_order_id']} (not ours), "
                    f"{side_name(f['side'])} {qty(f['size'])} @ {qty(f['price'])} on instrument "
                    f"{f['instrument_id']}: booked as an external fill")
    return external_orders
