"""Passive market maker: quote both sides around the mid, skewed against inventory.

On every change of its instrument's best bid or offer, and on each of its fills, the
strategy computes a reservation price ``mid - skew_ticks * tick * inventory_in_lots``
and wants a post-only bid and ask ``half_spread_ticks`` either side of it, never
crossing the touch. A working quote that has drifted by ``requote_ticks`` or more is
modified; a side whose fill would take inventory beyond ``max_inventory`` is pulled.
Orders in flight (submitted, pending cancel or modify, or in the execution stage's
retry or query) are left alone until the venue answers, so the strategy never stacks
requests on one order.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

from framework.events import EventKind, OrderFlag, Side, TimeInForce, records, to_fixed
from framework.jit import HOT
from framework.order_state import OrderStatus, is_open
from framework.strategy_api import cancel_order, limit_order, modify_order, order_price, order_status

PARAMS_DTYPE = np.dtype(
    [
        ("instrument_id", "<i8"), ("tick_size", "<i8"), ("half_spread_ticks", "<i8"), ("order_size", "<i8"),
        ("max_inventory", "<i8"), ("skew_ticks", "<f8"), ("requote_ticks", "<i8"),
    ],
    align=True,
)
STATE_DTYPE = np.dtype([("bid_id", "<i8"), ("ask_id", "<i8"), ("n_quotes", "<i8")], align=True)


@dataclass(frozen=True)
class Params:
    """Parameters of the market maker; sizes in whole units, prices in ticks."""

    instrument: str = "SYNTH"
    tick_size: float = 0.01
    half_spread_ticks: int = 2
    order_size: float = 1.0
    max_inventory: float = 5.0
    skew_ticks: float = 1.0
    requote_ticks: int = 1

    def __post_init__(self) -> None:
        if self.tick_size <= 0:
            raise ValueError(f"strategy.params.tick_size: must be positive, got {self.tick_size}")
        if self.half_spread_ticks < 1:
            raise ValueError(f"strategy.params.half_spread_ticks: must be at least 1, got {self.half_spread_ticks}")
        if self.order_size <= 0 or self.max_inventory < self.order_size:
            raise ValueError(
                f"strategy.params: need 0 < order_size <= max_inventory, got {self.order_size}, {self.max_inventory}"
            )
        if self.requote_ticks < 1:
            raise ValueError(f"strategy.params.requote_ticks: must be at least 1, got {self.requote_ticks}")


def make(params: Params, instrument_ids: dict[str, int]) -> tuple[np.ndarray, np.ndarray]:
    """Build the compiled parameter record and a fresh state for ``params``."""
    if params.instrument not in instrument_ids:
        raise ValueError(
            f"strategy.params.instrument: {params.instrument!r} is not in the data (have {sorted(instrument_ids)})"
        )
    rec = records(1, PARAMS_DTYPE)
    rec["instrument_id"] = instrument_ids[params.instrument]
    rec["tick_size"] = to_fixed(params.tick_size)
    rec["half_spread_ticks"] = params.half_spread_ticks
    rec["order_size"] = to_fixed(params.order_size)
    rec["max_inventory"] = to_fixed(params.max_inventory)
    rec["skew_ticks"] = params.skew_ticks
    rec["requote_ticks"] = params.requote_ticks
    return rec, records(1, STATE_DTYPE)


@njit(**HOT)
def quote_prices(bid: int, ask: int, qty: int, prm) -> tuple[int, int]:
    """Return the bid and ask the strategy wants, on the tick grid, never crossing the touch."""
    tick = prm.tick_size
    mid = (bid + ask) / 2.0
    inventory_lots = qty / prm.order_size
    reservation = mid - prm.skew_ticks * tick * inventory_lots
    want_bid = int(np.floor((reservation - prm.half_spread_ticks * tick) / tick)) * tick
    want_ask = int(np.ceil((reservation + prm.half_spread_ticks * tick) / tick)) * tick
    if want_bid > ask - tick:
        want_bid = ask - tick
    if want_ask < bid + tick:
        want_ask = bid + tick
    return want_bid, want_ask


@njit(**HOT)
def _work_side(p, prm, order_id: int, side: int, price: int, allowed: bool) -> int:
    """Keep one side's quote at ``price``; return the id of the order now working there."""
    status = order_status(p, order_id)
    if status == OrderStatus.ACCEPTED or status == OrderStatus.PARTIALLY_FILLED:
        if not allowed:
            cancel_order(p, order_id)
        elif abs(order_price(p, order_id) - price) >= prm.requote_ticks * prm.tick_size:
            modify_order(p, order_id, price, prm.order_size)
        return order_id
    if is_open(status):
        return order_id  # in flight: wait for the venue's answer
    if not allowed:
        return 0
    return limit_order(p, prm.instrument_id, side, price, prm.order_size, TimeInForce.GTC, OrderFlag.POST_ONLY)


@njit(**HOT)
def on_event(p, params, state, ev) -> None:
    """Requote on a new best bid/offer or on a fill of the strategy's instrument."""
    prm = params[0]
    if ev.instrument_id != prm.instrument_id:
        return
    k = ev.kind
    relevant = k == EventKind.QUOTE or k == EventKind.FILLED or k == EventKind.PARTIALLY_FILLED
    if not relevant:
        relevant = (k == EventKind.BOOK_DELTA or k == EventKind.BOOK_SNAPSHOT) and (ev.flags & 2) != 0
    if not relevant:
        return
    m = p.market[prm.instrument_id]
    if m.bid_size <= 0 or m.ask_size <= 0 or m.bid_price >= m.ask_price:
        return
    s = state[0]
    qty = p.positions[prm.instrument_id].qty
    want_bid, want_ask = quote_prices(m.bid_price, m.ask_price, qty, prm)
    s.bid_id = _work_side(p, prm, s.bid_id, Side.BUY, want_bid, qty + prm.order_size <= prm.max_inventory)
    s.ask_id = _work_side(p, prm, s.ask_id, Side.SELL, want_ask, qty - prm.order_size >= -prm.max_inventory)
    s.n_quotes += 1
