"""Binance's order, trade and position JSON read into exact fixed-point records, and fixed point written as text.

Prices and sizes go to ccxt as exact decimal text (``format_fixed``) and come back
through ``parse_fixed`` from the venue's raw answer (ccxt's ``info``), never through
float. Reading is pure: a missing or ill-typed field raises ``Rejected`` with one of
``Reason``'s codes, so the adapter can count and log the answer and go on.
"""

from __future__ import annotations

from collections.abc import Container, Mapping
from dataclasses import dataclass
from typing import Any

from framework.events import PRICE_SCALE, EventKind, OrderType, Side
from live.venues.binance.messages import Reason, Rejected, parse_fixed

_I64_MAX = (1 << 63) - 1


def format_fixed(value: int) -> str:
    """Write int64 fixed point as the shortest exact decimal text (``1_250_000_000`` -> ``"1.25"``)."""
    whole, frac = divmod(abs(int(value)), PRICE_SCALE)
    sign = "-" if value < 0 else ""
    if frac == 0:
        return f"{sign}{whole}"
    return f"{sign}{whole}.{frac:09d}".rstrip("0")


@dataclass(frozen=True, slots=True)
class VenueOrder:
    """An order as the venue describes it (matching engine or Algo Service), in fixed point."""

    order_id: int
    client_text: str
    symbol: str
    status: str
    side: int
    type: str
    price: int
    qty: int
    executed: int
    update_ms: int
    algo: bool = False
    actual_order_id: int = 0


@dataclass(frozen=True, slots=True)
class VenueTrade:
    """One fill of one of the account's orders, in fixed point."""

    trade_id: int
    order_id: int
    symbol: str
    side: int
    price: int
    qty: int
    commission: int
    commission_asset: str
    maker: bool
    time_ms: int


@dataclass(frozen=True, slots=True)
class VenuePosition:
    """A futures position as the venue describes it, in fixed point; a flat one has entry price and time 0."""

    symbol: str
    amount: int  # signed: negative is short
    entry_price: int
    update_ms: int


_WORKING = frozenset({"NEW", "PARTIALLY_FILLED", "PENDING_NEW", "PENDING_CANCEL", "TRIGGERING"})
FINAL_KIND = {
    "FILLED": EventKind.FILLED, "CANCELED": EventKind.CANCELED, "EXPIRED": EventKind.EXPIRED,
    "EXPIRED_IN_MATCH": EventKind.EXPIRED, "REJECTED": EventKind.REJECTED,
}
"""The EventKind of each status in which an order has ended."""
TRIGGERED = frozenset({"TRIGGERED", "FINISHED"})
"""The statuses of an algo order that became a matching-engine order."""
_STATUSES = _WORKING | FINAL_KIND.keys() | TRIGGERED


def _get(obj: Mapping[str, Any], key: str) -> Any:
    try:
        return obj[key]
    except KeyError:
        raise Rejected(Reason.MISSING_FIELD, f"no field {key!r}") from None


def _text(obj: Mapping[str, Any], key: str) -> str:
    value = _get(obj, key)
    if not isinstance(value, str):
        raise Rejected(Reason.BAD_FIELD, f"field {key!r} must be a string, got {value!r:.60}")
    return value


def _whole(obj: Mapping[str, Any], key: str) -> int:
    """A non-negative integer sent as a JSON number or as digits (Binance does both)."""
    value = _get(obj, key)
    if isinstance(value, str) and value.isdigit() and len(value) <= 19:
        value = int(value)
    if type(value) is not int or not 0 <= value <= _I64_MAX:
        raise Rejected(Reason.BAD_FIELD, f"field {key!r} must be a non-negative integer, got {value!r:.60}")
    return value


def _amount(obj: Mapping[str, Any], key: str) -> int:
    value = parse_fixed(_get(obj, key))
    if value < 0:
        raise Rejected(Reason.BAD_NUMBER, f"field {key!r} must not be negative, got {obj[key]!r}")
    return value


def _side(text: object) -> int:
    side = {"BUY": Side.BUY, "SELL": Side.SELL}.get(text) if isinstance(text, str) else None
    if side is None:
        raise Rejected(Reason.BAD_FIELD, f"side must be BUY or SELL, got {text!r:.60}")
    return side


def _object(info: object, what: str) -> Mapping[str, Any]:
    if not isinstance(info, Mapping):
        raise Rejected(Reason.NOT_OBJECT, f"{what} must be a JSON object, got {info!r:.80}")
    return info


def _update_ms(obj: Mapping[str, Any]) -> int:
    for key in ("updateTime", "transactTime", "time", "createTime"):
        if key in obj:
            return _whole(obj, key)
    raise Rejected(Reason.MISSING_FIELD, "no field 'updateTime', 'transactTime' or 'time'")


def parse_order(info: object) -> VenueOrder:
    """Read an order from the venue's JSON (order, query and open-order answers, algo orders included)."""
    obj = _object(info, "an order")
    algo = "algoId" in obj
    status = _text(obj, "algoStatus" if algo else "status")
    if status not in _STATUSES:
        raise Rejected(Reason.BAD_FIELD, f"unknown order status {status!r:.40}")
    actual = obj.get("actualOrderId") if algo else None
    return VenueOrder(
        order_id=_whole(obj, "algoId" if algo else "orderId"),
        client_text=_text(obj, "clientAlgoId" if algo else "clientOrderId"),
        symbol=_text(obj, "symbol"),
        status=status,
        side=_side(_get(obj, "side")),
        type=_text(obj, "orderType" if algo else "type"),
        price=_amount(obj, "price"),
        qty=_amount(obj, "quantity" if algo else "origQty"),
        executed=_amount(obj, "executedQty") if not algo or "executedQty" in obj else 0,
        update_ms=_update_ms(obj),
        algo=algo,
        actual_order_id=_whole(obj, "actualOrderId") if actual not in (None, "") else 0,
    )


def parse_trade(info: object) -> VenueTrade:
    """Read a fill from the venue's JSON (futures ``userTrades`` or spot ``myTrades``)."""
    obj = _object(info, "a trade")
    if "side" in obj:
        side = _side(obj["side"])
    else:  # spot says isBuyer
        buyer = _get(obj, "isBuyer")
        if not isinstance(buyer, bool):
            raise Rejected(Reason.BAD_FIELD, f"field 'isBuyer' must be true or false, got {buyer!r:.40}")
        side = Side.BUY if buyer else Side.SELL
    maker = obj.get("maker", obj.get("isMaker"))
    if not isinstance(maker, bool):
        raise Rejected(Reason.BAD_FIELD, f"field 'maker' must be true or false, got {maker!r:.40}")
    price, qty = _amount(obj, "price"), _amount(obj, "qty")
    if price == 0 or qty == 0:
        raise Rejected(Reason.BAD_NUMBER, f"a fill needs a positive price and qty, got {price} and {qty}")
    return VenueTrade(
        trade_id=_whole(obj, "id"), order_id=_whole(obj, "orderId"), symbol=_text(obj, "symbol"), side=side,
        price=price, qty=qty, commission=parse_fixed(_get(obj, "commission")),
        commission_asset=_text(obj, "commissionAsset"), maker=maker, time_ms=_whole(obj, "time"),
    )


def parse_position(info: object, symbols: Container[str]) -> VenuePosition | None:
    """Read a futures position from the venue's JSON (``positionRisk``); None, unread, if not of ``symbols``."""
    obj = _object(info, "a position")
    symbol = _text(obj, "symbol")
    if symbol not in symbols:
        return None
    amount = parse_fixed(_get(obj, "positionAmt"))
    if not amount:
        return VenuePosition(symbol, amount, 0, 0)
    return VenuePosition(symbol, amount, _amount(obj, "entryPrice"), _whole(obj, "updateTime"))


_ORDER_TYPES = {
    "LIMIT": OrderType.LIMIT, "LIMIT_MAKER": OrderType.LIMIT, "MARKET": OrderType.MARKET,
    "STOP_MARKET": OrderType.STOP, "STOP_LOSS": OrderType.STOP, "TAKE_PROFIT_MARKET": OrderType.STOP,
    "STOP": OrderType.STOP_LIMIT, "STOP_LOSS_LIMIT": OrderType.STOP_LIMIT, "TAKE_PROFIT_LIMIT": OrderType.STOP_LIMIT,
}


def engine_order_type(venue: VenueOrder) -> int:
    """OrderType of an order the engine did not place (0 when there is none: trailing stops, ...)."""
    if venue.type == "TAKE_PROFIT":  # a limit order on futures, a market one on spot
        return OrderType.STOP_LIMIT if venue.price > 0 else OrderType.STOP
    return _ORDER_TYPES.get(venue.type, 0)
