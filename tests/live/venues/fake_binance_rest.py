"""A loopback stand-in for Binance USD-M futures REST: the endpoints ccxt's binanceusdm calls for order entry.

It is a real aiohttp server on 127.0.0.1 (port 0, see ``port`` / ``base_url``), so the
adapter's production path runs end to end: ccxt builds and signs the requests, this
server checks them as Binance would and answers in Binance's JSON, and ccxt's own error
mapping turns the answers into exceptions.

What it implements (paths as ccxt 4.5 calls them):

* public: ``GET /fapi/v1/exchangeInfo`` (``load_markets``), ``GET /fapi/v1/time`` (time sync);
* signed (``X-MBX-APIKEY`` and an HMAC-SHA256 ``signature`` over the query or body,
  ``timestamp`` within ``recvWindow``): ``POST|GET|PUT|DELETE /fapi/v1/order``,
  ``GET /fapi/v1/openOrders``, ``GET /fapi/v1/userTrades``, ``GET /fapi/v3/positionRisk``,
  ``GET /fapi/v1/leverageBracket`` (``fetch_positions`` loads it once), and the Algo
  Service that Binance requires for stop orders since December 2025:
  ``POST|GET|DELETE /fapi/v1/algoOrder``, ``GET /fapi/v1/openAlgoOrders``.

The book is tiny and deterministic: orders rest as NEW; a limit or market order that
crosses ``mark_price`` fills at once as taker (a post-only one is refused with -5022, an
unfillable FOK with -5021, an IOC that does not cross expires). Test hooks move the
state the way the venue would: ``fill`` (a userTrade), ``trigger`` (a stop becomes a
matching-engine order), ``cancel_by_venue`` / ``expire``, and fault injection for the
next matching request (``rate_limit``, ``timeout``, ``malformed``, ``fail``). Any other
path answers 404 and is recorded in ``unexpected``, so a test can assert that ccxt made
no call this fake does not know.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from urllib.parse import parse_qsl

from aiohttp import web

ErrorBody = tuple[int, dict]
"""An HTTP status and a Binance error object ``{"code": ..., "msg": ...}``."""

MAKER_RATE = Decimal("0.0002")
TAKER_RATE = Decimal("0.0005")
_COMMISSION_STEP = Decimal("0.00000001")
_OPEN = ("NEW", "PARTIALLY_FILLED")
_ALGO_OPEN = ("NEW", "TRIGGERING")
_PUBLIC = frozenset({("GET", "/fapi/v1/exchangeInfo"), ("GET", "/fapi/v1/time")})


class BinanceError(Exception):
    """Answer the request with Binance's error JSON and ``status``."""

    def __init__(self, code: int, msg: str, status: int = 400) -> None:
        super().__init__(msg)
        self.code = code
        self.msg = msg
        self.status = status


@dataclass(frozen=True)
class Market:
    """One USD-M perpetual as exchangeInfo describes it."""

    symbol: str
    base: str
    quote: str = "USDT"
    tick: str = "0.10"
    step: str = "0.001"
    price_decimals: int = 2
    qty_decimals: int = 3

    def info(self) -> dict:
        return {
            "symbol": self.symbol, "pair": self.symbol, "contractType": "PERPETUAL",
            "deliveryDate": 4133404800000, "onboardDate": 1569398400000, "status": "TRADING",
            "maintMarginPercent": "2.5000", "requiredMarginPercent": "5.0000",
            "baseAsset": self.base, "quoteAsset": self.quote, "marginAsset": self.quote,
            "pricePrecision": self.price_decimals, "quantityPrecision": self.qty_decimals,
            "baseAssetPrecision": 8, "quotePrecision": 8, "underlyingType": "COIN",
            "underlyingSubType": [], "settlePlan": 0, "triggerProtect": "0.0500",
            "liquidationFee": "0.012500", "marketTakeBound": "0.05", "maxMoveOrderLimit": 10000,
            "filters": [
                {"filterType": "PRICE_FILTER", "minPrice": "0.10", "maxPrice": "4529764", "tickSize": self.tick},
                {"filterType": "LOT_SIZE", "minQty": self.step, "maxQty": "1000", "stepSize": self.step},
                {"filterType": "MARKET_LOT_SIZE", "minQty": self.step, "maxQty": "120", "stepSize": self.step},
                {"filterType": "MAX_NUM_ORDERS", "limit": 200},
                {"filterType": "MAX_NUM_ALGO_ORDERS", "limit": 10},
                {"filterType": "MIN_NOTIONAL", "notional": "5"},
                {"filterType": "PERCENT_PRICE", "multiplierUp": "1.0500", "multiplierDown": "0.9500",
                 "multiplierDecimal": "4"},
            ],
            "orderTypes": ["LIMIT", "MARKET", "STOP", "STOP_MARKET", "TAKE_PROFIT", "TAKE_PROFIT_MARKET",
                           "TRAILING_STOP_MARKET"],
            "timeInForce": ["GTC", "IOC", "FOK", "GTX", "GTD"],
        }

    def price(self, value: Decimal) -> str:
        return f"{value:.{self.price_decimals}f}"

    def qty(self, value: Decimal) -> str:
        return f"{value:.{self.qty_decimals}f}"


@dataclass
class Order:
    """A matching-engine order as the venue keeps it."""

    order_id: int
    client_id: str
    market: Market
    side: str
    type: str
    tif: str
    price: Decimal
    orig_qty: Decimal
    stop_price: Decimal = Decimal(0)
    reduce_only: bool = False
    good_till_ms: int = 0
    status: str = "NEW"
    executed: Decimal = Decimal(0)
    cum_quote: Decimal = Decimal(0)
    time_ms: int = 0
    update_ms: int = 0

    @property
    def is_open(self) -> bool:
        return self.status in _OPEN

    def to_json(self) -> dict:
        m = self.market
        avg = self.cum_quote / self.executed if self.executed else Decimal(0)
        return {
            "orderId": self.order_id, "symbol": m.symbol, "status": self.status, "clientOrderId": self.client_id,
            "price": m.price(self.price), "avgPrice": f"{avg:.5f}", "origQty": m.qty(self.orig_qty),
            "executedQty": m.qty(self.executed), "cumQty": m.qty(self.executed), "cumQuote": f"{self.cum_quote:.5f}",
            "timeInForce": self.tif, "type": self.type, "reduceOnly": self.reduce_only, "closePosition": False,
            "side": self.side, "positionSide": "BOTH", "stopPrice": m.price(self.stop_price),
            "workingType": "CONTRACT_PRICE", "priceProtect": False, "origType": self.type, "priceMatch": "NONE",
            "selfTradePreventionMode": "EXPIRE_MAKER", "goodTillDate": self.good_till_ms, "time": self.time_ms,
            "updateTime": self.update_ms,
        }


@dataclass
class AlgoOrder:
    """A conditional order held by Binance's Algo Service until its trigger price is reached."""

    algo_id: int
    client_algo_id: str
    market: Market
    side: str
    order_type: str
    tif: str
    quantity: Decimal
    price: Decimal
    trigger_price: Decimal
    reduce_only: bool = False
    status: str = "NEW"
    actual_order_id: int | None = None
    create_ms: int = 0
    update_ms: int = 0
    trigger_ms: int = 0

    @property
    def is_open(self) -> bool:
        return self.status in _ALGO_OPEN

    def to_json(self, actual: Order | None = None) -> dict:
        m = self.market
        return {
            "algoId": self.algo_id, "clientAlgoId": self.client_algo_id, "algoType": "CONDITIONAL",
            "orderType": self.order_type, "symbol": m.symbol, "side": self.side, "positionSide": "BOTH",
            "timeInForce": self.tif, "quantity": m.qty(self.quantity), "algoStatus": self.status,
            "actualOrderId": "" if self.actual_order_id is None else str(self.actual_order_id),
            "actualPrice": "" if actual is None else f"{(actual.cum_quote / actual.executed) if actual.executed else 0:.5f}",
            "executedQty": m.qty(actual.executed if actual is not None else Decimal(0)),
            "triggerPrice": m.price(self.trigger_price), "price": m.price(self.price), "icebergQuantity": None,
            "selfTradePreventionMode": "EXPIRE_MAKER", "workingType": "CONTRACT_PRICE", "priceMatch": "NONE",
            "closePosition": False, "priceProtect": False, "reduceOnly": self.reduce_only, "activatePrice": "",
            "callbackRate": "", "createTime": self.create_ms, "updateTime": self.update_ms,
            "triggerTime": self.trigger_ms, "goodTillDate": 0,
        }


@dataclass
class Trade:
    """One userTrade: a fill of one of the account's orders."""

    trade_id: int
    order_id: int
    market: Market
    side: str
    price: Decimal
    qty: Decimal
    commission: Decimal
    commission_asset: str
    maker: bool
    time_ms: int

    def to_json(self) -> dict:
        m = self.market
        return {
            "buyer": self.side == "BUY", "commission": f"{self.commission:.8f}",
            "commissionAsset": self.commission_asset, "id": self.trade_id, "maker": self.maker,
            "orderId": self.order_id, "price": m.price(self.price), "qty": m.qty(self.qty),
            "quoteQty": f"{self.price * self.qty:.5f}", "realizedPnl": "0", "side": self.side,
            "positionSide": "BOTH", "symbol": m.symbol, "time": self.time_ms,
        }


@dataclass
class Position:
    qty: Decimal = Decimal(0)
    entry: Decimal = Decimal(0)
    update_ms: int = 0


@dataclass
class Fault:
    """What the next matching request gets instead of (or after) its normal answer.

    ``status``/``body`` replace the answer (``None``: keep it); ``delay_s`` holds the
    answer back that long (past the client's timeout, to make an unknown outcome);
    ``act`` lets the request take effect before the fault is applied.
    """

    method: str
    path: str
    status: int | None = None
    body: str | None = None
    delay_s: float = 0.0
    act: bool = False


@dataclass
class Counters:
    """What the fake saw, for assertions."""

    requests: list[tuple[str, str]] = field(default_factory=list)
    unexpected: list[tuple[str, str]] = field(default_factory=list)
    bad_signatures: int = 0
    orders_created: int = 0
    algo_orders_created: int = 0


class FakeBinance:
    """The fake venue: ``await start()``, point ccxt at ``base_url``, ``await close()``."""

    def __init__(
        self,
        api_key: str,
        api_secret: str,
        markets: tuple[Market, ...] = (Market("BTCUSDT", "BTC"), Market("ETHUSDT", "ETH")),
        *,
        mark_price: dict[str, str] | None = None,
        clock_ms: Callable[[], int] | None = None,
    ) -> None:
        self.api_key = api_key
        self.api_secret = api_secret
        self.markets = {m.symbol: m for m in markets}
        self.mark_price = {s: Decimal(p) for s, p in (mark_price or {"BTCUSDT": "60000", "ETHUSDT": "3000"}).items()}
        self._clock_ms = clock_ms or (lambda: time.time_ns() // 1_000_000)
        self.orders: dict[int, Order] = {}
        self.algo_orders: dict[int, AlgoOrder] = {}
        self.trades: list[Trade] = []
        self.positions: dict[str, Position] = {}
        self.counters = Counters()
        self.duplicate_trades = False
        """Every userTrades answer lists each trade twice (a venue repeating itself)."""
        self.ignore_start_time = False
        """userTrades ignores ``startTime``: old trades come back on every poll."""
        self._faults: list[Fault] = []
        self._ids = itertools.count(8_000_000_001)
        self._trade_ids = itertools.count(500_000_001)
        self._closing = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.port = 0

    # ------------------------------------------------------------------ server

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        self._closing.set()
        if self._runner is not None:
            await self._runner.cleanup()

    # ------------------------------------------------------------------ fault injection

    def inject(self, fault: Fault) -> None:
        """Apply ``fault`` to the next request for ``fault.method`` ``fault.path``."""
        self._faults.append(fault)

    def rate_limit(self, method: str, path: str) -> None:
        """The next such request is refused with -1003 (HTTP 429), as Binance does past its weight limit."""
        body = {"code": -1003, "msg": "Too many requests; current limit of IP(127.0.0.1) is 2400 requests per minute."}
        self.inject(Fault(method, path, status=429, body=json.dumps(body)))

    def timeout(self, method: str, path: str, delay_s: float, act: bool = True) -> None:
        """The next such request takes effect (if ``act``) but its answer comes ``delay_s`` late."""
        self.inject(Fault(method, path, delay_s=delay_s, act=act))

    def malformed(self, method: str, path: str, body: str, status: int = 200, act: bool = False) -> None:
        """The next such request is answered with ``body`` (garbage JSON, missing fields, ...)."""
        self.inject(Fault(method, path, status=status, body=body, act=act))

    def fail(self, method: str, path: str, code: int, msg: str, status: int = 400) -> None:
        """The next such request is refused with Binance error ``code``."""
        self.inject(Fault(method, path, status=status, body=json.dumps({"code": code, "msg": msg})))

    def _take_fault(self, method: str, path: str) -> Fault | None:
        for i, f in enumerate(self._faults):
            if f.method == method and f.path == path:
                return self._faults.pop(i)
        return None

    # ------------------------------------------------------------------ dispatch

    def _routes(self) -> dict[tuple[str, str], Callable[[dict], object]]:
        return {
            ("GET", "/fapi/v1/exchangeInfo"): self._exchange_info,
            ("GET", "/fapi/v1/time"): lambda p: {"serverTime": self._clock_ms()},
            ("POST", "/fapi/v1/order"): self._new_order,
            ("GET", "/fapi/v1/order"): self._query_order,
            ("PUT", "/fapi/v1/order"): self._modify_order,
            ("DELETE", "/fapi/v1/order"): self._cancel_order,
            ("GET", "/fapi/v1/openOrders"): self._open_orders,
            ("GET", "/fapi/v1/userTrades"): self._user_trades,
            ("GET", "/fapi/v3/positionRisk"): self._position_risk,
            ("GET", "/fapi/v1/leverageBracket"): self._leverage_bracket,
            ("POST", "/fapi/v1/algoOrder"): self._new_algo_order,
            ("GET", "/fapi/v1/algoOrder"): self._query_algo_order,
            ("DELETE", "/fapi/v1/algoOrder"): self._cancel_algo_order,
            ("GET", "/fapi/v1/openAlgoOrders"): self._open_algo_orders,
        }

    async def _dispatch(self, request: web.Request) -> web.Response:
        method, path = request.method, request.path
        self.counters.requests.append((method, path))
        handler = self._routes().get((method, path))
        if handler is None:
            self.counters.unexpected.append((method, path))
            return _json(404, {"code": -5000, "msg": f"Path {path}, Method {method} is invalid"})
        fault = self._take_fault(method, path)
        status, payload = 200, None
        if fault is None or fault.act or fault.body is None:
            status, payload = await self._answer(request, handler, (method, path) not in _PUBLIC)
        if fault is not None and fault.delay_s > 0:
            try:
                await asyncio.wait_for(self._closing.wait(), fault.delay_s)
            except TimeoutError:
                pass
        if fault is not None and fault.body is not None:
            return web.Response(status=fault.status or 200, text=fault.body, content_type="application/json")
        return _json(status, payload)

    async def _answer(self, request: web.Request, handler, signed: bool) -> tuple[int, object]:
        raw = await self._payload(request)
        try:
            params = self._verify(request, raw) if signed else dict(parse_qsl(raw, keep_blank_values=True))
            return 200, handler(params)
        except BinanceError as e:
            return e.status, {"code": e.code, "msg": e.msg}

    @staticmethod
    async def _payload(request: web.Request) -> str:
        if request.method in ("POST", "PUT"):
            return await request.text()
        _, _, query = request.raw_path.partition("?")
        return query

    def _verify(self, request: web.Request, raw: str) -> dict:
        """Check the API key, the HMAC-SHA256 signature and the timestamp, as Binance does."""
        if request.headers.get("X-MBX-APIKEY") != self.api_key:
            raise BinanceError(-2015, "Invalid API-key, IP, or permissions for action.", 401)
        payload, sep, signature = raw.rpartition("&signature=")
        expected = hmac.new(self.api_secret.encode(), payload.encode(), hashlib.sha256).hexdigest()
        if not sep or not hmac.compare_digest(signature, expected):
            self.counters.bad_signatures += 1
            raise BinanceError(-1022, "Signature for this request is not valid.")
        params = dict(parse_qsl(payload, keep_blank_values=True))
        ts = params.get("timestamp")
        if ts is None or not ts.isdigit():
            raise BinanceError(-1102, "Mandatory parameter 'timestamp' was not sent, was empty/null, or malformed.")
        if abs(self._clock_ms() - int(ts)) > int(params.get("recvWindow", "5000")):
            raise BinanceError(-1021, "Timestamp for this request is outside of the recvWindow.")
        return params

    # ------------------------------------------------------------------ helpers

    def _market(self, params: dict) -> Market:
        market = self.markets.get(params.get("symbol", ""))
        if market is None:
            raise BinanceError(-1121, "Invalid symbol.")
        return market

    @staticmethod
    def _decimal(params: dict, key: str, required: bool = True) -> Decimal:
        text = params.get(key)
        if text is None:
            if required:
                raise BinanceError(-1102, f"Mandatory parameter '{key}' was not sent, was empty/null, or malformed.")
            return Decimal(0)
        try:
            return Decimal(text)
        except ArithmeticError:
            raise BinanceError(-1100, f"Illegal characters found in parameter '{key}'.") from None

    @staticmethod
    def _on_step(value: Decimal, step: str, what: str) -> None:
        if value <= 0 or value % Decimal(step) != 0:
            code = -4014 if what == "price" else -4023
            raise BinanceError(code, f"{what} {value} is not a positive multiple of {step}.")

    def _find(self, params: dict, key_id: str = "orderId", key_client: str = "origClientOrderId") -> Order | None:
        market = self._market(params)
        if key_id in params:
            order = self.orders.get(int(params[key_id]))
            return order if order is not None and order.market is market else None
        client = params.get(key_client)
        if client is None:
            raise BinanceError(-1102, "Param 'origClientOrderId' or 'orderId' must be sent, but both were empty/null!")
        found = [o for o in self.orders.values() if o.client_id == client and o.market is market]
        return found[-1] if found else None

    def order_by_client_id(self, client_id: str) -> Order | None:
        """The latest matching-engine order with this client id, or the order a triggered stop became."""
        found = [o for o in self.orders.values() if o.client_id == client_id]
        if found:
            return found[-1]
        algo = self.algo_by_client_id(client_id)
        if algo is not None and algo.actual_order_id is not None:
            return self.orders[algo.actual_order_id]
        return None

    def algo_by_client_id(self, client_id: str) -> AlgoOrder | None:
        found = [a for a in self.algo_orders.values() if a.client_algo_id == client_id]
        return found[-1] if found else None

    def open_orders(self) -> list[Order]:
        return [o for o in self.orders.values() if o.is_open]

    # ------------------------------------------------------------------ public endpoints

    def _exchange_info(self, params: dict) -> dict:
        return {
            "timezone": "UTC", "serverTime": self._clock_ms(), "futuresType": "U_MARGINED",
            "rateLimits": [{"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 2400}],
            "exchangeFilters": [], "assets": [],
            "symbols": [m.info() for m in self.markets.values()],
        }

    # ------------------------------------------------------------------ orders

    def _new_order(self, params: dict) -> dict:
        market = self._market(params)
        side, otype = params.get("side"), params.get("type")
        if side not in ("BUY", "SELL"):
            raise BinanceError(-1117, "Invalid side.")
        if otype in ("STOP", "STOP_MARKET", "TAKE_PROFIT", "TAKE_PROFIT_MARKET", "TRAILING_STOP_MARKET"):
            raise BinanceError(-4120, "Order type not supported for this endpoint. Please use the Algo Order API "
                                      "endpoints instead.")
        if otype not in ("LIMIT", "MARKET"):
            raise BinanceError(-1116, "Invalid orderType.")
        client = params.get("newClientOrderId") or f"fake{next(self._ids)}"
        if any(o.client_id == client for o in self.open_orders()):
            raise BinanceError(-4116, "ClientOrderId is duplicated.")
        qty = self._decimal(params, "quantity")
        self._on_step(qty, market.step, "quantity")
        price = Decimal(0)
        tif = params.get("timeInForce", "GTC")
        if otype == "LIMIT":
            price = self._decimal(params, "price")
            self._on_step(price, market.tick, "price")
            if tif not in ("GTC", "IOC", "FOK", "GTX", "GTD"):
                raise BinanceError(-1115, "Invalid timeInForce.")
            if tif == "GTD" and int(params.get("goodTillDate", "0")) <= self._clock_ms():
                raise BinanceError(-5040, "The goodTillDate timestamp must be greater than the current time.")
        now = self._clock_ms()
        order = Order(next(self._ids), client, market, side, otype, tif if otype == "LIMIT" else "GTC", price, qty,
                      reduce_only=params.get("reduceOnly") == "true", good_till_ms=int(params.get("goodTillDate", "0")),
                      time_ms=now, update_ms=now)
        self._match_on_arrival(order)
        self.orders[order.order_id] = order
        self.counters.orders_created += 1
        return order.to_json()

    def _match_on_arrival(self, order: Order) -> None:
        """Cross ``mark_price`` at once (taker) or rest; IOC/FOK/GTX/market behave as on Binance."""
        mark = self.mark_price.get(order.market.symbol, Decimal(0))
        crosses = order.type == "MARKET" or (
            order.price >= mark if order.side == "BUY" else order.price <= mark
        )
        if not crosses:
            if order.tif == "IOC":
                order.status = "EXPIRED"
            elif order.tif == "FOK":
                raise BinanceError(-5021, "Due to the order could not be filled immediately, the FOK order has been "
                                          "rejected. The order will not be recorded in the order history")
            return
        if order.tif == "GTX":
            raise BinanceError(-5022, "Due to the order could not be executed as maker, the Post Only order will be "
                                      "rejected. The order will not be recorded in the order history")
        self._trade(order, order.orig_qty, mark, maker=False)

    def _query_order(self, params: dict) -> dict:
        order = self._find(params)
        if order is None:
            raise BinanceError(-2013, "Order does not exist.")
        return order.to_json()

    def _cancel_order(self, params: dict) -> dict:
        order = self._find(params)
        if order is None or not order.is_open:
            raise BinanceError(-2011, "Unknown order sent.")
        order.status = "CANCELED"
        order.update_ms = self._clock_ms()
        return order.to_json()

    def _modify_order(self, params: dict) -> dict:
        order = self._find(params)
        if order is None:
            raise BinanceError(-2013, "Order does not exist.")
        if not order.is_open:
            raise BinanceError(-5024, "Order is not in a modifiable status.")  # illustrative
        if order.type != "LIMIT":
            raise BinanceError(-5025, "Only limit order is supported.")
        qty, price = self._decimal(params, "quantity"), self._decimal(params, "price")
        self._on_step(qty, order.market.step, "quantity")
        self._on_step(price, order.market.tick, "price")
        if qty <= order.executed:
            raise BinanceError(-4003, "Quantity less than or equal to zero.")  # Binance refuses qty <= executed
        if qty == order.orig_qty and price == order.price:
            raise BinanceError(-5027, "No need to modify the order.")
        order.orig_qty, order.price = qty, price
        order.update_ms = self._clock_ms()
        return order.to_json()

    def _open_orders(self, params: dict) -> list:
        market = self._market(params) if "symbol" in params else None
        return [o.to_json() for o in self.open_orders() if market is None or o.market is market]

    # ------------------------------------------------------------------ algo orders (stops)

    def _new_algo_order(self, params: dict) -> dict:
        market = self._market(params)
        if params.get("algoType") != "CONDITIONAL":
            raise BinanceError(-1130, "Data sent for parameter 'algoType' is not valid.")
        otype = params.get("type")
        if otype not in ("STOP_MARKET", "STOP"):
            raise BinanceError(-1116, "Invalid orderType.")
        client = params.get("clientAlgoId") or f"fakealgo{next(self._ids)}"
        if any(a.client_algo_id == client and a.is_open for a in self.algo_orders.values()):
            raise BinanceError(-4116, "ClientOrderId is duplicated.")
        qty, trigger = self._decimal(params, "quantity"), self._decimal(params, "triggerPrice")
        self._on_step(qty, market.step, "quantity")
        self._on_step(trigger, market.tick, "price")
        price = self._decimal(params, "price", required=otype == "STOP")
        now = self._clock_ms()
        algo = AlgoOrder(next(self._ids), client, market, params.get("side", ""), otype,
                         params.get("timeInForce", "GTC"), qty, price, trigger,
                         reduce_only=params.get("reduceOnly") == "true", create_ms=now, update_ms=now)
        self.algo_orders[algo.algo_id] = algo
        self.counters.algo_orders_created += 1
        return algo.to_json()

    def _find_algo(self, params: dict) -> AlgoOrder | None:
        if "algoId" in params:
            return self.algo_orders.get(int(params["algoId"]))
        return self.algo_by_client_id(params.get("clientAlgoId", ""))

    def _query_algo_order(self, params: dict) -> dict:
        algo = self._find_algo(params)
        if algo is None:
            raise BinanceError(-2013, "Order does not exist.")
        return algo.to_json(self.orders.get(algo.actual_order_id))

    def _cancel_algo_order(self, params: dict) -> dict:
        algo = self._find_algo(params)
        if algo is None or not algo.is_open:
            raise BinanceError(-2011, "Unknown order sent.")
        algo.status = "CANCELED"
        algo.update_ms = self._clock_ms()
        return {"algoId": algo.algo_id, "clientAlgoId": algo.client_algo_id, "code": "200", "msg": "success"}

    def _open_algo_orders(self, params: dict) -> list:
        market = self._market(params) if "symbol" in params else None
        return [a.to_json() for a in self.algo_orders.values() if a.is_open and (market is None or a.market is market)]

    # ------------------------------------------------------------------ trades and positions

    def _user_trades(self, params: dict) -> list:
        market = self._market(params)
        trades = [t for t in self.trades if t.market is market]
        if "startTime" in params and not self.ignore_start_time:
            trades = [t for t in trades if t.time_ms >= int(params["startTime"])]
        if "endTime" in params:
            trades = [t for t in trades if t.time_ms <= int(params["endTime"])]
        trades = trades[: min(int(params.get("limit", "500")), 1000)]
        out = [t.to_json() for t in trades]
        return [x for t in out for x in (t, t)] if self.duplicate_trades else out

    def _position_risk(self, params: dict) -> list:
        out = []
        for symbol, pos in self.positions.items():
            if pos.qty == 0:
                continue
            m, mark = self.markets[symbol], self.mark_price.get(symbol, Decimal(0))
            notional = pos.qty * mark
            out.append({
                "symbol": symbol, "positionSide": "BOTH", "positionAmt": m.qty(pos.qty),
                "entryPrice": f"{pos.entry:.8f}", "breakEvenPrice": f"{pos.entry:.8f}", "markPrice": f"{mark:.8f}",
                "unRealizedProfit": f"{(mark - pos.entry) * pos.qty:.8f}", "liquidationPrice": "0",
                "isolatedMargin": "0", "notional": f"{notional:.8f}", "marginAsset": m.quote,
                "isolatedWallet": "0", "initialMargin": f"{abs(notional) / 20:.8f}",
                "maintMargin": f"{abs(notional) / 200:.8f}", "positionInitialMargin": f"{abs(notional) / 20:.8f}",
                "openOrderInitialMargin": "0", "adl": 1, "bidNotional": "0", "askNotional": "0",
                "updateTime": pos.update_ms,
            })
        return out

    def _leverage_bracket(self, params: dict) -> list:
        return [{"symbol": s, "notionalCoef": 1.0, "brackets": [
            {"bracket": 1, "initialLeverage": 125, "notionalCap": 50000, "notionalFloor": 0,
             "maintMarginRatio": 0.004, "cum": 0.0}]} for s in self.markets]

    # ------------------------------------------------------------------ test hooks (the venue acting)

    def fill(self, client_order_id: str, qty: str, price: str, maker: bool = True,
             commission: str | None = None, commission_asset: str | None = None) -> Trade:
        """Trade ``qty`` of the open order ``client_order_id`` at ``price``: a userTrade, the order and position move."""
        order = self.order_by_client_id(client_order_id)
        if order is None or not order.is_open:
            raise KeyError(f"no open order {client_order_id!r} at the fake venue")
        q = Decimal(qty)
        if q <= 0 or order.executed + q > order.orig_qty:
            raise ValueError(f"cannot fill {qty} of {client_order_id}: {order.orig_qty - order.executed} left")
        return self._trade(order, q, Decimal(price), maker, commission, commission_asset)

    def _trade(self, order: Order, qty: Decimal, price: Decimal, maker: bool,
               commission: str | None = None, commission_asset: str | None = None) -> Trade:
        now = self._clock_ms()
        fee = Decimal(commission) if commission is not None else (
            price * qty * (MAKER_RATE if maker else TAKER_RATE)).quantize(_COMMISSION_STEP, ROUND_HALF_UP)
        trade = Trade(next(self._trade_ids), order.order_id, order.market, order.side, price, qty, fee,
                      commission_asset or order.market.quote, maker, now)
        self.trades.append(trade)
        order.executed += qty
        order.cum_quote += price * qty
        order.status = "FILLED" if order.executed == order.orig_qty else "PARTIALLY_FILLED"
        order.update_ms = now
        self._move_position(order.market.symbol, qty if order.side == "BUY" else -qty, price, now)
        self._finish_algo(order)
        return trade

    def _move_position(self, symbol: str, delta: Decimal, price: Decimal, now: int) -> None:
        pos = self.positions.setdefault(symbol, Position())
        new = pos.qty + delta
        if pos.qty == 0 or (pos.qty > 0) != (new > 0) and new != 0:
            pos.entry = price
        elif abs(new) > abs(pos.qty):
            pos.entry = (pos.entry * abs(pos.qty) + price * abs(delta)) / abs(new)
        pos.qty = new
        pos.update_ms = now

    def _finish_algo(self, order: Order) -> None:
        for algo in self.algo_orders.values():
            if algo.actual_order_id == order.order_id and order.status == "FILLED":
                algo.status = "FINISHED"
                algo.update_ms = order.update_ms

    def trigger(self, client_order_id: str) -> Order:
        """The stop ``client_order_id`` reaches its trigger: the Algo Service places a matching-engine order.

        The new order's client id is the venue's own (not the stop's), as for any order the
        venue places on the account's behalf: only ``actualOrderId`` links the two.
        """
        algo = self.algo_by_client_id(client_order_id)
        if algo is None or not algo.is_open:
            raise KeyError(f"no waiting stop {client_order_id!r} at the fake venue")
        now = self._clock_ms()
        otype = "MARKET" if algo.order_type == "STOP_MARKET" else "LIMIT"
        order = Order(next(self._ids), f"algo{algo.algo_id}", algo.market, algo.side, otype, algo.tif, algo.price,
                      algo.quantity, stop_price=algo.trigger_price, reduce_only=algo.reduce_only,
                      time_ms=now, update_ms=now)
        self.orders[order.order_id] = order
        algo.status, algo.actual_order_id, algo.trigger_ms, algo.update_ms = "TRIGGERED", order.order_id, now, now
        return order

    def cancel_by_venue(self, client_order_id: str, status: str = "CANCELED") -> Order:
        """End an open order on the venue's initiative (``CANCELED``, or ``EXPIRED`` as GTD/IOC do)."""
        order = self.order_by_client_id(client_order_id)
        if order is None or not order.is_open:
            raise KeyError(f"no open order {client_order_id!r} at the fake venue")
        order.status = status
        order.update_ms = self._clock_ms()
        return order

    def set_position(self, symbol: str, qty: str, entry: str) -> None:
        """Give the account a position, as if earlier trading had left one."""
        self.positions[symbol] = Position(Decimal(qty), Decimal(entry), self._clock_ms())


def _json(status: int, payload: object) -> web.Response:
    return web.Response(status=status, text=json.dumps(payload), content_type="application/json")
