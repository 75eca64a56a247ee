"""Pipeline commands as ccxt requests: COMMAND_DTYPE records as ``Command``, SUBMITs as ``create_order`` arguments.

A command Binance would refuse for its form (a missing price, a time in force the
market lacks, reduce-only on spot) is refused here with its RejectReason, before any
request is sent.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from framework.events import OrderFlag, OrderType, RejectReason, Side, TimeInForce
from live.venues.binance.venue_records import format_fixed

_MS = 1_000_000


@dataclass(frozen=True, slots=True)
class Command:
    """One COMMAND_DTYPE record as plain ints."""

    kind: int
    side: int
    flags: int
    venue_id: int
    instrument_id: int
    order_type: int
    tif: int
    client_order_id: int
    price: int
    size: int
    trigger_price: int
    expire_ts: int

    @classmethod
    def from_record(cls, rec: np.void) -> Command:
        return cls(*(int(rec[name]) for name in cls.__slots__))


class Refused(Exception):
    """A command refused before any request: ``reason`` is its RejectReason."""

    def __init__(self, reason: int, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class OrderRequest:
    """The arguments of ``create_order``; ``algo`` marks a futures stop (Binance's Algo Service)."""

    type: str
    side: str
    amount: str
    price: str | None
    params: dict
    algo: bool


_TIF = {TimeInForce.GTC: "GTC", TimeInForce.IOC: "IOC", TimeInForce.FOK: "FOK"}
_STOPS = (OrderType.STOP, OrderType.STOP_LIMIT)
_LIMITS = (OrderType.LIMIT, OrderType.STOP_LIMIT)


def order_request(cmd: Command, market: str, client_text: str) -> OrderRequest:
    """Translate a SUBMIT into ccxt's ``create_order`` arguments, or raise ``Refused``.

    Limit orders carry their time in force (GTD on futures only, ``goodTillDate`` in ms);
    post-only becomes GTX on futures and LIMIT_MAKER on spot (ccxt's ``postOnly``);
    reduce-only exists on futures only; STOP is a stop-market and STOP_LIMIT a stop-limit
    order at ``price`` once ``trigger_price`` trades (STOP_MARKET / STOP on futures,
    STOP_LOSS / STOP_LOSS_LIMIT on spot).
    """
    side = {Side.BUY: "buy", Side.SELL: "sell"}.get(cmd.side)
    if side is None:
        raise Refused(RejectReason.INVALID_ORDER, f"side {cmd.side} is neither BUY nor SELL")
    if cmd.size <= 0:
        raise Refused(RejectReason.INVALID_ORDER, f"size {cmd.size} must be positive")
    if cmd.order_type not in (OrderType.MARKET, *_LIMITS, OrderType.STOP):
        raise Refused(RejectReason.INVALID_ORDER, f"unknown order type {cmd.order_type}")
    params: dict[str, Any] = {"newClientOrderId": client_text}
    if cmd.flags & OrderFlag.REDUCE_ONLY:
        if market != "futures":
            raise Refused(RejectReason.INVALID_ORDER, "reduce-only orders exist on Binance futures only")
        params["reduceOnly"] = True
    if cmd.order_type in _STOPS:
        if cmd.trigger_price <= 0:
            raise Refused(RejectReason.INVALID_ORDER, f"a stop needs a positive trigger price, got {cmd.trigger_price}")
        params["triggerPrice"] = format_fixed(cmd.trigger_price)
    price = None
    if cmd.order_type in _LIMITS:
        if cmd.price <= 0:
            raise Refused(RejectReason.INVALID_ORDER, f"a limit order needs a positive price, got {cmd.price}")
        price = format_fixed(cmd.price)
        params.update(_time_in_force(cmd, market))
    elif cmd.flags & OrderFlag.POST_ONLY:
        raise Refused(RejectReason.INVALID_ORDER, "a market or stop-market order cannot be post-only")
    is_limit = cmd.order_type in _LIMITS
    algo = in_algo_service(market, cmd.order_type)
    return OrderRequest("limit" if is_limit else "market", side, format_fixed(cmd.size), price, params, algo)


def _time_in_force(cmd: Command, market: str) -> dict[str, Any]:
    if cmd.flags & OrderFlag.POST_ONLY:
        if cmd.order_type != OrderType.LIMIT or cmd.tif != TimeInForce.GTC:
            raise Refused(RejectReason.INVALID_ORDER, "post-only is a GTC limit order (GTX / LIMIT_MAKER) only")
        return {"postOnly": True}
    if cmd.tif in _TIF:
        return {"timeInForce": _TIF[cmd.tif]}
    if cmd.tif == TimeInForce.GTD:
        if market != "futures":
            raise Refused(RejectReason.INVALID_ORDER, "Binance spot has no good-till-date orders")
        if cmd.expire_ts <= 0:
            raise Refused(RejectReason.INVALID_ORDER, f"a GTD order needs an expiry time, got {cmd.expire_ts}")
        return {"timeInForce": "GTD", "goodTillDate": cmd.expire_ts // _MS}
    raise Refused(RejectReason.INVALID_ORDER, f"unknown time in force {cmd.tif}")


def in_algo_service(market: str, order_type: int) -> bool:
    """Whether an order of ``order_type`` lives in Binance's Algo Service: stops on futures."""
    return market == "futures" and order_type in _STOPS
