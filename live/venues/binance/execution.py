"""Order entry on Binance through ccxt: pipeline commands in, execution reports out.

``BinanceExecution`` takes ``COMMAND_DTYPE`` records (SUBMIT, CANCEL, MODIFY, QUERY) and
hands ``EVENT_DTYPE`` execution reports to a sink, with the field conventions of the
simulated exchange (``sim/exchange.py``), so the pipeline cannot tell the two apart:

* ccxt does the signing, the REST calls, its rate limiter and the first error mapping
  (``binanceusdm`` for USD-M futures, ``binance`` for spot); this module decides what
  each answer means for the order. Beside it, ``order_requests`` turns a SUBMIT into
  ccxt's arguments, ``venue_records`` reads the venue's answers, ``errors`` classifies
  failed calls and ``order_tracking`` remembers the orders.
* Every SUBMIT carries ``newClientOrderId = prefix + client_order_id``: Binance refuses
  a second open order with the same id, and the refusal becomes a status report of the
  order it has, so a re-sent SUBMIT never makes a second order.
* A SUBMIT whose answer was lost (timeout, dropped connection, 5xx, an unreadable
  answer) has an unknown outcome: no report goes out, and the pipeline's acknowledgement
  timeout sends a QUERY, never a blind re-send (docs/concepts/execution.md).
* Fills are polled (``fetch_my_trades`` since the last trade seen, deduplicated by the
  venue's trade id) and reported per order until its leaves reach 0; a final CANCELED or
  EXPIRED waits until the fills the venue says the order had have been reported. The
  orders in flight are polled too, to see what the venue did on its own: expiries,
  cancels, modifications, stops that triggered.
* Stop orders on futures live in Binance's Algo Service (``/fapi/v1/algoOrder``), which
  ccxt uses for them: the venue order id is the ``algoId``, and once the stop triggers
  its fills carry the ``actualOrderId`` of the order it became, learnt by polling.

Malformed answers are refused, counted and logged (rate-limited) and the adapter goes on;
nothing the venue sends can end the polling task. The API key and secret never appear in
a log line, an exception message or the counters (``Credentials.redact`` runs over every
text that came from outside, including ccxt's own debug log).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import urlsplit

import ccxt.async_support as ccxt
import numpy as np

from framework.events import (
    EVENT_DTYPE,
    PRICE_SCALE,
    VENUE_COMMAND_KINDS,
    CommandKind,
    EventKind,
    Liquidity,
    OrderType,
    RejectReason,
    ReportFlag,
    Side,
)
from framework.reconciliation.reports import (
    VENUE_FILL_DTYPE,
    VENUE_ORDER_DTYPE,
    VENUE_POSITION_DTYPE,
    VenueOrderStatus,
    VenueSnapshot,
)
from live.deadline import within
from live.venues.binance.credentials import Credentials
from live.venues.binance.errors import Failure, Outcome, cancel_reason, classify
from live.venues.binance.feed import require_tls
from live.venues.binance.messages import Reason, Rejected, parse_fixed
from live.venues.binance.order_requests import Command, OrderRequest, Refused, in_algo_service, order_request
from live.venues.binance.order_tracking import Instrument, TrackedOrder, TrackedOrders
from live.venues.binance.venue_records import (
    FINAL_KIND,
    TRIGGERED,
    VenueOrder,
    VenueTrade,
    engine_order_type,
    format_fixed,
    parse_order,
    parse_position,
    parse_trade,
)

log = logging.getLogger(__name__)
ccxt_log = logging.getLogger(f"{__name__}.ccxt")
"""ccxt's own logger for our exchange instances (its DEBUG lines hold request headers: redacted)."""

Sink = Callable[[np.ndarray], None]
"""Where report arrays go: ``sink(records)``, one EVENT_DTYPE array per venue answer."""

_MS = 1_000_000
_I64_MAX = (1 << 63) - 1
_PREFIX = re.compile(r"[A-Za-z0-9_-]{1,16}")  # Binance allows [.A-Z:/a-z0-9_-]{1,36} (futures), [A-Za-z0-9_-] (spot)
_TRADE_WINDOW_MS = 7 * 24 * 3600 * 1000 - 1  # Binance: at most 7 days between startTime and endTime
_TRADE_HISTORY_MS = 180 * 24 * 3600 * 1000  # Binance answers trades of the last 6 months only
_LOG_FIRST = 20  # occurrences of one kind of failure logged in full, then one in _LOG_EVERY
_LOG_EVERY = 1000
_CCXT_CLASS = {"futures": "binanceusdm", "spot": "binance"}
_NAMES = {
    "kind": {v: k for k, v in EventKind._asdict().items()},
    "reason": {v: k for k, v in RejectReason._asdict().items()},
}


# =========================================================================== configuration


@dataclass(frozen=True)
class BinanceExecutionConfig:
    """Which instruments to trade where, and how patiently; validated on construction.

    ``symbols`` maps each instrument id to its ccxt unified symbol (``BTC/USDT:USDT`` on
    futures, ``BTC/USDT`` on spot). ``testnet`` uses Binance's test environment: spot's
    testnet (ccxt sandbox mode), or, for futures, Binance's demo trading, which replaced
    the futures testnet (ccxt refuses the old one). ``rest_url`` replaces the host of
    every REST endpoint (tests point it at a loopback fake); it must be https unless the
    host is loopback. ``client_id_prefix`` starts every client order id sent, and only
    ids with it map back to the engine's orders. Times are seconds unless named ``_ms``.
    ``fill_wait_s`` is how long a finished order's CANCELED/EXPIRED may wait for fills the
    venue says it had; ``fills_lookback_s`` how far before ``start`` the first fill poll
    looks (clock skew); ``max_finished_orders`` how many finished orders are remembered
    to answer a re-sent SUBMIT locally.
    """

    symbols: Mapping[int, str]
    venue_id: int = 0
    market: str = "futures"
    testnet: bool = False
    rest_url: str | None = None
    client_id_prefix: str = "pt"
    poll_interval_s: float = 0.5
    request_timeout_s: float = 10.0
    recv_window_ms: int = 5000
    sync_time: bool = True
    trades_page_limit: int = 1000
    fill_wait_s: float = 10.0
    fills_lookback_s: float = 60.0
    max_finished_orders: int = 10_000

    def __post_init__(self) -> None:
        if self.market not in _CCXT_CLASS:
            raise ValueError(f"market={self.market!r} must be 'futures' or 'spot'")
        if self.rest_url is not None:
            require_tls("rest_url", self.rest_url, "https", "http")
        if not self.symbols:
            raise ValueError("symbols must map at least one instrument id to a ccxt symbol")
        for iid, symbol in self.symbols.items():
            if isinstance(iid, bool) or not isinstance(iid, int) or not 0 <= iid < 2**31:
                raise ValueError(f"symbols: instrument id {iid!r} must be an int in 0..2**31-1")
            if not isinstance(symbol, str) or "/" not in symbol:
                raise ValueError(f"symbols[{iid}]={symbol!r} must be a ccxt unified symbol such as 'BTC/USDT:USDT'")
        if len(set(self.symbols.values())) != len(self.symbols):
            raise ValueError(f"symbols={dict(self.symbols)!r} names a symbol twice")
        if not 0 <= self.venue_id < 256:
            raise ValueError(f"venue_id={self.venue_id!r} must be in 0..255")
        if not isinstance(self.client_id_prefix, str) or not _PREFIX.fullmatch(self.client_id_prefix):
            raise ValueError(f"client_id_prefix={self.client_id_prefix!r} must be 1-16 characters of A-Z a-z 0-9 _ -")
        for name in ("poll_interval_s", "request_timeout_s", "fill_wait_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name}={getattr(self, name)!r} must be > 0 seconds")
        if not self.fills_lookback_s >= 0:
            raise ValueError(f"fills_lookback_s={self.fills_lookback_s!r} must be >= 0 seconds")
        if not 1 <= self.recv_window_ms <= 60_000:
            raise ValueError(f"recv_window_ms={self.recv_window_ms!r} must be in 1..60000 (Binance's limit)")
        if not 2 <= self.trades_page_limit <= 1000:
            raise ValueError(f"trades_page_limit={self.trades_page_limit!r} must be in 2..1000")
        if self.max_finished_orders < 1:
            raise ValueError(f"max_finished_orders={self.max_finished_orders!r} must be at least 1")


# =========================================================================== counters


@dataclass
class ExecutionCounters:
    """What the adapter did; every field only grows.

    ``requests`` sent, ``request_failures`` by Outcome; ``reports`` sent by EventKind name,
    ``rejects`` / ``cancel_rejects`` by RejectReason name; ``local_rejects`` commands refused
    before any request; ``unknown_outcomes`` SUBMITs whose answer was lost (no report);
    ``duplicate_submits`` SUBMITs answered with a status report of the order the venue
    had; ``repeated_trades`` trades the venue returned again (not reported twice);
    ``foreign_trades`` fills of orders the adapter does not track; ``late_fills`` fills of
    an order already reported finished, ``overfills`` fills beyond an order's size (both
    left to reconciliation); ``unconverted_fees`` fees in an asset that is neither the
    base nor the quote (reported as 0); ``malformed`` unreadable answers by request;
    ``venue_modifies`` changes the venue made that were seen by polling;
    ``finals_without_fills`` finals sent after ``fill_wait_s`` without all their fills.
    """

    commands: int = 0
    ignored_commands: int = 0
    submits: int = 0
    cancels: int = 0
    modifies: int = 0
    queries: int = 0
    requests: int = 0
    request_failures: dict[str, int] = field(default_factory=dict)
    reports: dict[str, int] = field(default_factory=dict)
    rejects: dict[str, int] = field(default_factory=dict)
    cancel_rejects: dict[str, int] = field(default_factory=dict)
    local_rejects: int = 0
    status_reports: int = 0
    unknown_outcomes: int = 0
    duplicate_submits: int = 0
    fills: int = 0
    repeated_trades: int = 0
    foreign_trades: int = 0
    late_fills: int = 0
    overfills: int = 0
    unconverted_fees: int = 0
    malformed: dict[str, int] = field(default_factory=dict)
    venue_modifies: int = 0
    finals_without_fills: int = 0
    polls: int = 0
    poll_errors: int = 0


def _bump(counts: dict[str, int], key: str) -> int:
    counts[key] = counts.get(key, 0) + 1
    return counts[key]


class _Redactor(logging.Filter):
    """Blank the credentials out of every record of ccxt's logger (its DEBUG lines hold headers)."""

    def __init__(self, credentials: Credentials) -> None:
        super().__init__()
        self._credentials = credentials

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = self._credentials.redact(record.getMessage())
        record.args = None
        return True


# =========================================================================== the adapter


class BinanceExecution:
    """Binance order entry for the pipeline: ``start``, ``send`` commands, ``snapshot``, ``close``."""

    def __init__(self, config: BinanceExecutionConfig, credentials: Credentials, sink: Sink) -> None:
        """Reports go to ``sink`` (a plain callable, called from the event loop)."""
        self.config = config
        self._credentials = credentials
        self._sink = sink
        self.counters = ExecutionCounters()
        self._exchange: Any = None
        self._redactor = _Redactor(credentials)
        self._instruments: dict[int, Instrument] = {}
        self._by_market_id: dict[str, Instrument] = {}
        self._orders = TrackedOrders(config.max_finished_orders)
        self._foreign: OrderedDict[int, int] = OrderedDict()  # order ids known not to be ours
        self._seen_trades: OrderedDict[int, None] = OrderedDict()
        self._trades_since_ms: dict[int, int] = {}
        self._log_counts: dict[str, int] = {}
        self._wake = asyncio.Event()
        self._poller: asyncio.Task | None = None

    def __repr__(self) -> str:
        return f"BinanceExecution(market={self.config.market!r}, symbols={dict(self.config.symbols)!r})"

    # ------------------------------------------------------------------ life cycle

    async def start(self) -> None:
        """Create the ccxt client, load the markets, check the symbols, start polling."""
        if self._exchange is not None:
            raise RuntimeError("BinanceExecution.start() was already called")
        ccxt_log.addFilter(self._redactor)
        self._exchange = self._make_exchange()
        try:
            await self._exchange.load_markets()
            self._bind_markets()
        except BaseException:
            await self.close()
            raise
        since = (time.time_ns() // _MS) - int(self.config.fills_lookback_s * 1000)
        self._trades_since_ms = dict.fromkeys(self._instruments, since)
        self._poller = asyncio.create_task(self._poll_loop(), name="binance-execution-poll")

    async def close(self) -> None:
        """Stop polling and close the client's connections (safe to call twice)."""
        if self._poller is not None:
            self._poller.cancel()
            try:
                await self._poller
            except asyncio.CancelledError:
                if not self._poller.cancelled():
                    raise
            self._poller = None
        if self._exchange is not None:
            await self._exchange.close()
            self._exchange = None
        ccxt_log.removeFilter(self._redactor)

    def stats(self) -> dict:
        """Every counter as plain data (for logs and metrics); holds no credentials."""
        return asdict(self.counters)

    def _make_exchange(self) -> Any:
        cfg = self.config
        linear = cfg.market == "futures"
        exchange = getattr(ccxt, _CCXT_CLASS[cfg.market])({
            "apiKey": self._credentials.api_key,
            "secret": self._credentials.api_secret,
            "enableRateLimit": True,
            "timeout": int(cfg.request_timeout_s * 1000),
            "logger": ccxt_log,
            "options": {
                "defaultType": "swap" if linear else "spot",
                "fetchMarkets": {"types": ["linear" if linear else "spot"]},
                "fetchCurrencies": False,  # a private sapi call ccxt makes at load_markets: not needed to trade
                "fetchMargins": False,
                "adjustForTimeDifference": cfg.sync_time,
                "recvWindow": cfg.recv_window_ms,
            },
        })
        if cfg.testnet:
            if linear:
                exchange.enable_demo_trading(True)
            else:
                exchange.set_sandbox_mode(True)
        if cfg.rest_url is not None:
            base = cfg.rest_url.rstrip("/")
            api = exchange.urls["api"]
            for key, url in list(api.items()):
                if isinstance(url, str):
                    api[key] = base + urlsplit(url).path
        return exchange

    def _bind_markets(self) -> None:
        markets = self._exchange.markets
        for iid, symbol in self.config.symbols.items():
            market = markets.get(symbol)
            wanted = market is not None and (market["spot"] if self.config.market == "spot" else market["linear"])
            if not wanted:
                raise ValueError(f"symbols[{iid}]={symbol!r} is not a Binance {self.config.market} market "
                                 f"({len(markets)} markets loaded)")
            inst = Instrument(iid, symbol, market["id"], market["base"], market["quote"])
            self._instruments[iid] = inst
            self._by_market_id[inst.market_id] = inst

    def _client_text(self, client_order_id: int) -> str:
        return f"{self.config.client_id_prefix}{client_order_id}"

    def client_order_id(self, text: object) -> int:
        """The engine's id behind a venue client order id, or 0 for an order the engine did not place."""
        prefix = self.config.client_id_prefix
        if not isinstance(text, str) or not text.startswith(prefix):
            return 0
        digits = text[len(prefix):]
        if not digits.isdigit() or str(int(digits)) != digits or not 0 < int(digits) <= _I64_MAX:
            return 0
        return int(digits)

    # ------------------------------------------------------------------ commands

    async def send(self, commands: np.ndarray) -> None:
        """Act on SUBMIT, CANCEL, MODIFY and QUERY records (others are counted and ignored).

        Commands about one order run in their given order; different orders run
        concurrently. Return once every command has its answer (or an unknown outcome).
        """
        if self._exchange is None:
            raise RuntimeError("call BinanceExecution.start() before send()")
        groups: dict[int, list[Command]] = {}
        for rec in commands:
            self.counters.commands += 1
            if int(rec["kind"]) not in VENUE_COMMAND_KINDS:
                self.counters.ignored_commands += 1
                continue
            cmd = Command.from_record(rec)
            groups.setdefault(cmd.client_order_id, []).append(cmd)
        await asyncio.gather(*(self._run(group) for group in groups.values()))

    async def _run(self, commands: list[Command]) -> None:
        handlers: dict[int, Callable[[Command], Awaitable[None]]] = {
            CommandKind.SUBMIT: self._submit, CommandKind.CANCEL: self._cancel,
            CommandKind.MODIFY: self._modify, CommandKind.QUERY: self._query,
        }
        for cmd in commands:
            await handlers[cmd.kind](cmd)

    def _instrument(self, cmd: Command) -> Instrument | None:
        if cmd.venue_id != self.config.venue_id:
            return None
        return self._instruments.get(cmd.instrument_id)

    async def _submit(self, cmd: Command) -> None:
        self.counters.submits += 1
        order = self._orders.get(cmd.client_order_id)
        if order is not None and (order.accepted or order.done):
            self.counters.duplicate_submits += 1  # Binance checks open orders only: answer from the venue's record
            await self._answer_status(cmd, order)
            return
        inst = self._instrument(cmd)
        try:
            if inst is None or cmd.client_order_id <= 0:
                raise Refused(RejectReason.INVALID_ORDER, f"no instrument {cmd.instrument_id} on venue {cmd.venue_id}"
                              if inst is None else f"client order id {cmd.client_order_id} must be positive")
            request = order_request(cmd, self.config.market, self._client_text(cmd.client_order_id))
            self._check_precision(inst, request)
        except Refused as refused:
            self.counters.local_rejects += 1
            self._warn("refused", "binance: refused order %s before sending: %s", cmd.client_order_id, refused)
            self._emit(self._refusal(cmd, EventKind.REJECTED, refused.reason))
            return
        if order is None:  # else a re-send of an order whose first answer was lost: the same record goes on
            order = TrackedOrder(cmd.client_order_id, inst, cmd.side, cmd.order_type, cmd.size, cmd.price, request.algo)
            self._orders.track(order)
        await self._place(cmd, order, request)

    def _check_precision(self, inst: Instrument, request: OrderRequest) -> None:
        """Refuse a size or price off the market's step or tick (ccxt would silently round it)."""
        ex = self._exchange
        checks = [("size", request.amount, ex.amount_to_precision)]
        if request.price is not None:
            checks.append(("price", request.price, ex.price_to_precision))
        if "triggerPrice" in request.params:
            checks.append(("trigger price", request.params["triggerPrice"], ex.price_to_precision))
        for what, text, to_precision in checks:
            try:
                ok = parse_fixed(to_precision(inst.symbol, text)) == parse_fixed(text)
            except (ccxt.BaseError, Rejected):
                ok = False
            if not ok:
                raise Refused(RejectReason.INVALID_ORDER, f"{what} {text} is not on the precision of {inst.symbol}")

    async def _place(self, cmd: Command, order: TrackedOrder, request: OrderRequest) -> None:
        order.busy += 1
        try:
            answer = await self._request("create_order", self._exchange.create_order(
                order.instrument.symbol, request.type, request.side, request.amount, request.price, request.params))
            ts_recv = time.time_ns()
            venue = self._read(parse_order, answer, "create_order")
        except Failure as failure:
            await self._submit_failed(cmd, order, failure)
            return
        finally:
            order.busy -= 1
        if venue is None or venue.client_text != self._client_text(order.client_order_id):
            self.counters.unknown_outcomes += 1  # unreadable: the order may be live, the pipeline will ask
            return
        self._acknowledge(order, venue, ts_recv)

    async def _submit_failed(self, cmd: Command, order: TrackedOrder, failure: Failure) -> None:
        if failure.outcome in (Outcome.UNKNOWN, Outcome.MALFORMED):
            self.counters.unknown_outcomes += 1  # no report: the ack timeout queries
            return
        if failure.outcome == Outcome.DUPLICATE:
            self.counters.duplicate_submits += 1
            await self._answer_status(cmd, order)
            return
        self._orders.untrack(order)
        reason = RejectReason.INVALID_ORDER if failure.outcome == Outcome.NOT_FOUND else failure.reason
        self._emit(self._refusal(cmd, EventKind.REJECTED, reason))

    def _acknowledge(self, order: TrackedOrder, venue: VenueOrder, ts_recv: int) -> None:
        """The venue has the order: ACCEPTED, then a final report if it already ended without us."""
        if venue.status == "REJECTED":
            self._orders.untrack(order)
            self._emit(self._report(EventKind.REJECTED, order, venue.update_ms * _MS, ts_recv, order.price,
                                    flags=RejectReason.INVALID_ORDER, leaves=0))
            return
        self._orders.learn_ids(order, venue)
        order.accepted = True
        order.acked_ns = ts_recv
        order.venue_update_ms = venue.update_ms
        self._emit(self._report(EventKind.ACCEPTED, order, venue.update_ms * _MS, ts_recv, order.price))
        kind = FINAL_KIND.get(venue.status)
        if kind is not None:  # filled, or ended (IOC, FOK) at once: finished when its fills are reported
            self._finish(order, kind, venue.executed, venue.update_ms * _MS)
        elif venue.executed > order.filled:
            self._wake.set()  # fills to fetch

    async def _cancel(self, cmd: Command) -> None:
        self.counters.cancels += 1
        order = self._orders.get(cmd.client_order_id)
        inst = order.instrument if order is not None else self._instrument(cmd)
        if inst is None or (order is not None and order.done):
            self._emit(self._cancel_refusal(cmd, order, RejectReason.UNKNOWN_ORDER))
            return
        algo = order.waiting_trigger if order is not None else self._is_algo(cmd)
        if order is not None:
            order.busy += 1
        try:
            answer = await self._request("cancel_order", self._exchange.cancel_order(
                *self._order_ref(cmd.client_order_id, order, inst, algo)))
            ts_recv = time.time_ns()
            venue = None if algo else self._read(parse_order, answer, "cancel_order")
        except Failure as failure:
            self._emit(self._cancel_refusal(cmd, order, cancel_reason(failure)))
            return
        finally:
            if order is not None:
                order.busy -= 1
        self._canceled(cmd, order, venue, ts_recv)

    def _canceled(self, cmd: Command, order: TrackedOrder | None, venue: VenueOrder | None, ts_recv: int) -> None:
        """The venue canceled the order: CANCELED, once the fills it had are reported."""
        ts_event = venue.update_ms * _MS if venue is not None else ts_recv
        if order is None:
            self._emit(self._refusal(cmd, EventKind.CANCELED, 0, ts_event=ts_event, ts_recv=ts_recv))
            return
        executed = venue.executed if venue is not None else 0
        self._finish(order, EventKind.CANCELED, max(executed, order.filled), ts_event)

    def _is_algo(self, cmd: Command) -> bool:
        return in_algo_service(self.config.market, cmd.order_type)

    def _order_ref(self, client_order_id: int, order: TrackedOrder | None, inst: Instrument,
                   algo: bool) -> tuple[str | None, str, dict]:
        """(id, symbol, params) naming an order to ccxt: a stop waiting in the Algo Service (``algo``) by its
        client id there, else by engine id when known (a triggered stop: the order it became), else by client id."""
        if algo:
            return None, inst.symbol, {"trigger": True, "clientAlgoId": self._client_text(client_order_id)}
        if order is not None and order.order_id:
            return str(order.order_id), inst.symbol, {}
        return None, inst.symbol, {"origClientOrderId": self._client_text(client_order_id)}

    async def _modify(self, cmd: Command) -> None:
        self.counters.modifies += 1
        order = self._orders.get(cmd.client_order_id)
        if order is None or order.done or self._instrument(cmd) is not order.instrument:
            self._emit(self._cancel_refusal(cmd, order, RejectReason.UNKNOWN_ORDER))
            return
        try:
            request = self._modify_request(cmd, order)
        except Refused as refused:
            self.counters.local_rejects += 1
            self._warn("refused", "binance: refused to modify order %s: %s", cmd.client_order_id, refused)
            self._emit(self._cancel_refusal(cmd, order, refused.reason))
            return
        order.busy += 1
        try:
            if order.order_id == 0:
                await self._fetch_status(order.client_order_id, order, order.instrument, False)
            if order.order_id == 0:
                raise Failure(Outcome.NOT_FOUND, RejectReason.UNKNOWN_ORDER, "the venue does not know the order")
            answer = await self._request("edit_order", self._exchange.edit_order(
                str(order.order_id), order.instrument.symbol, "limit", request.side, request.amount, request.price))
            ts_recv = time.time_ns()
            venue = self._read(parse_order, answer, "edit_order")
        except Failure as failure:
            self._emit(self._cancel_refusal(cmd, order, cancel_reason(failure)))
            return
        finally:
            order.busy -= 1
        if venue is None:
            self._emit(self._cancel_refusal(cmd, order, RejectReason.VENUE_BUSY))  # polling will see what happened
            return
        self._modified(order, venue, ts_recv)

    def _modify_request(self, cmd: Command, order: TrackedOrder) -> OrderRequest:
        if self.config.market != "futures" or order.algo or order.order_type != OrderType.LIMIT:
            raise Refused(RejectReason.INVALID_ORDER, "only futures limit orders can be modified in place on Binance")
        if cmd.price <= 0 or cmd.size <= order.filled:
            raise Refused(RejectReason.INVALID_ORDER, f"new price {cmd.price} must be positive and new size "
                                                      f"{cmd.size} above the {order.filled} filled")
        request = OrderRequest("limit", "buy" if order.side == Side.BUY else "sell", format_fixed(cmd.size),
                               format_fixed(cmd.price), {}, False)
        self._check_precision(order.instrument, request)
        return request

    def _modified(self, order: TrackedOrder, venue: VenueOrder, ts_recv: int) -> None:
        order.price, order.size = venue.price, venue.qty
        order.venue_update_ms = max(order.venue_update_ms, venue.update_ms)
        self._emit(self._report(EventKind.MODIFIED, order, venue.update_ms * _MS, ts_recv, order.price))

    async def _query(self, cmd: Command) -> None:
        self.counters.queries += 1
        order = self._orders.get(cmd.client_order_id)
        await self._answer_status(cmd, order)

    async def _answer_status(self, cmd: Command, order: TrackedOrder | None) -> None:
        """Report how the venue holds the order (ReportFlag.STATUS), or that it never got it.

        A failed request sends nothing: the pipeline asks again at its next timeout.
        """
        inst = order.instrument if order is not None else self._instrument(cmd)
        if inst is None:
            self._emit(self._refusal(cmd, EventKind.REJECTED, ReportFlag.STATUS | RejectReason.UNKNOWN_ORDER))
            return
        algo = order.waiting_trigger if order is not None else self._is_algo(cmd)
        if order is not None:
            order.busy += 1
        try:
            venue = await self._fetch_status(cmd.client_order_id, order, inst, algo)
        except Failure:
            return
        finally:
            if order is not None:
                order.busy -= 1
        ts_recv = time.time_ns()
        if venue is None:
            self._orders.forget_if_unacknowledged(order)
            self._emit(self._refusal(cmd, EventKind.REJECTED, ReportFlag.STATUS | RejectReason.UNKNOWN_ORDER))
            return
        self._emit(self._status_report(cmd, order, venue, ts_recv))

    async def _fetch_status(self, client_order_id: int, order: TrackedOrder | None, inst: Instrument,
                            algo: bool) -> VenueOrder | None:
        """The venue's record of the order (a triggered stop's: that of the order it became), None if it has none.

        Learn the ids it reveals and any final state, so that the report stream finishes the
        order even if the pipeline takes no notice of the status report.
        """
        venue = await self._fetch_order(client_order_id, order, inst, algo)
        if venue is not None and venue.algo and venue.status in TRIGGERED and venue.actual_order_id:
            actual = await self._fetch_order_by_id(venue.actual_order_id, inst)
            venue = VenueOrder(venue.order_id, venue.client_text, venue.symbol, actual.status, venue.side, venue.type,
                               actual.price, actual.qty, actual.executed, actual.update_ms, True, actual.order_id)
        if venue is not None and order is not None:
            self._adopt(order, venue)
        return venue

    def _adopt(self, order: TrackedOrder, venue: VenueOrder) -> None:
        """Take in what the venue's record of a tracked order says: its ids, and whether it ended.

        An order the venue refused before we heard of it is forgotten (the status report says
        so); one that ended after its acceptance gets its final report, once its fills are in
        (a stop the venue could not place when it triggered ends EXPIRED).
        """
        kind = FINAL_KIND.get(venue.status)
        if kind == EventKind.REJECTED and not order.accepted:
            self._orders.untrack(order)
            return
        self._orders.learn_ids(order, venue)
        if not order.accepted:
            order.accepted, order.acked_ns = True, time.time_ns()
        if kind is not None:
            self._finish(order, EventKind.EXPIRED if kind == EventKind.REJECTED else kind, venue.executed,
                         venue.update_ms * _MS)

    async def _fetch_order(self, client_order_id: int, order: TrackedOrder | None, inst: Instrument,
                           algo: bool) -> VenueOrder | None:
        try:
            answer = await self._request("fetch_order", self._exchange.fetch_order(
                *self._order_ref(client_order_id, order, inst, algo)))
        except Failure as failure:
            if failure.outcome == Outcome.NOT_FOUND:
                return None
            raise
        venue = self._read(parse_order, answer, "fetch_order")
        if venue is None:
            raise Failure(Outcome.MALFORMED, RejectReason.VENUE_BUSY, "unreadable order")
        return venue

    async def _fetch_order_by_id(self, order_id: int, inst: Instrument) -> VenueOrder:
        answer = await self._request("fetch_order", self._exchange.fetch_order(str(order_id), inst.symbol))
        venue = self._read(parse_order, answer, "fetch_order")
        if venue is None:
            raise Failure(Outcome.MALFORMED, RejectReason.VENUE_BUSY, "unreadable order")
        return venue

    # ------------------------------------------------------------------ order ends

    def _finish(self, order: TrackedOrder, kind: int, venue_executed: int, ts_event: int) -> None:
        """The venue ended the order: report it (CANCELED/EXPIRED) once its fills are all reported.

        A FILLED order ends with its last fill report; here it only waits, so that polling
        stops asking the venue about it.
        """
        if order.done or order.final is not None:
            return
        order.final = (kind, venue_executed, ts_event)
        order.final_since_ns = time.time_ns()
        self._release(order)

    def _release(self, order: TrackedOrder, force: bool = False) -> None:
        if order.done or order.final is None:
            return
        kind, venue_executed, ts_event = order.final
        if order.filled < venue_executed and not force:
            self._wake.set()
            return
        self._orders.close(order)
        if kind != EventKind.FILLED:
            self._emit(self._report(kind, order, ts_event, time.time_ns(), order.price))

    # ------------------------------------------------------------------ polling

    async def _poll_loop(self) -> None:
        """Poll orders in flight and fills every ``poll_interval_s`` (sooner when woken); never raise."""
        while True:
            with contextlib.suppress(TimeoutError):
                await within(self._wake.wait(), self.config.poll_interval_s)  # keeps close()'s cancel
            self._wake.clear()
            try:
                await self._poll_once()
            except Exception as exc:  # noqa: BLE001 - a bug or the sink: reported, polling goes on
                self.counters.poll_errors += 1
                self._warn("poll_error", "binance: polling failed: %s: %s", type(exc).__name__, exc,
                           exc_info=self._log_counts.get("poll_error", 0) < _LOG_FIRST)

    async def _poll_once(self) -> None:
        self.counters.polls += 1
        floor_ms = time.time_ns() // _MS - int(self.config.fills_lookback_s * 1000)
        for inst in self._instruments.values():
            if not self._orders.live(inst):  # no order can fill: start the next watch near now (Binance's 7-day window)
                self._trades_since_ms[inst.instrument_id] = max(self._trades_since_ms[inst.instrument_id], floor_ms)
                continue
            for step in (self._refresh_orders, self._poll_fills):
                try:
                    await step(inst)
                except Failure:
                    pass  # counted and logged where it happened; the next poll tries again
        self._expire_finals()

    async def _refresh_orders(self, inst: Instrument) -> None:
        """See what the venue did to our working orders on its own: modified, ended, triggered."""
        sent_ns = time.time_ns()
        candidates = [o for o in self._orders.live(inst) if o.accepted and o.final is None and o.acked_ns < sent_ns]
        regular = [o for o in candidates if o.order_id]
        waiting = [o for o in candidates if o.waiting_trigger]
        if regular:
            await self._refresh(inst, regular, {}, lambda o: o.order_id)
        if waiting:
            await self._refresh(inst, waiting, {"trigger": True}, lambda o: o.venue_order_id)

    async def _refresh(self, inst: Instrument, orders: list[TrackedOrder], params: dict,
                       key: Callable[[TrackedOrder], int]) -> None:
        answer = await self._request("fetch_open_orders", self._exchange.fetch_open_orders(inst.symbol, None, None,
                                                                                            params))
        open_orders = self._read_orders(answer, "fetch_open_orders")
        if open_orders is None:
            return
        by_id = {v.order_id: v for v in open_orders}
        for order in orders:
            venue = by_id.get(key(order))
            if order.busy or order.done or order.final is not None:
                continue  # a command is on its way, or it ended meanwhile: its answer decides
            if venue is not None:
                self._venue_changed(order, venue)
            else:
                await self._fetch_status(order.client_order_id, order, inst, order.waiting_trigger)

    def _venue_changed(self, order: TrackedOrder, venue: VenueOrder) -> None:
        """An open order whose price or size the venue changed since we last knew: MODIFIED."""
        if venue.update_ms <= order.venue_update_ms or venue.algo:
            return
        order.venue_update_ms = venue.update_ms
        if (venue.price, venue.qty) != (order.price, order.size) and venue.qty > order.filled:
            self.counters.venue_modifies += 1
            self._modified(order, venue, time.time_ns())

    async def _poll_fills(self, inst: Instrument) -> None:
        """Report the trades since the last one seen, oldest first, each exactly once."""
        limit = self.config.trades_page_limit
        while True:
            since = self._trades_since_ms[inst.instrument_id]
            answer = await self._request("fetch_my_trades", self._exchange.fetch_my_trades(inst.symbol, since, limit))
            ts_recv = time.time_ns()
            trades = self._read_trades(answer, "fetch_my_trades")
            unseen = {t.trade_id: t for t in trades if t.trade_id not in self._seen_trades}  # once, even if listed twice
            fresh = sorted(unseen.values(), key=lambda t: (t.time_ms, t.trade_id))
            self.counters.repeated_trades += len(trades) - len(fresh)
            for trade in fresh:
                order = await self._owner(trade, inst)  # a Failure stops here: this trade is retried next time
                self._see_trade(trade, inst)
                if order is not None:
                    self._fill(order, trade, inst, ts_recv)
            if len(answer) < limit or not fresh:
                return

    def _see_trade(self, trade: VenueTrade, inst: Instrument) -> None:
        self._seen_trades[trade.trade_id] = None
        while len(self._seen_trades) > 100_000:
            self._seen_trades.popitem(last=False)
        since = self._trades_since_ms[inst.instrument_id]
        self._trades_since_ms[inst.instrument_id] = max(since, trade.time_ms)

    async def _owner(self, trade: VenueTrade, inst: Instrument) -> TrackedOrder | None:
        """The tracked order a trade belongs to, or None (counted) for an order the adapter does not track."""
        order = self._orders.by_order_id(trade.order_id)
        if order is None and trade.order_id not in self._foreign:
            order = await self._resolve(trade.order_id, inst)
        if order is None:
            self.counters.foreign_trades += 1
        return order

    async def _resolve(self, order_id: int, inst: Instrument) -> TrackedOrder | None:
        """Find which tracked order an unknown engine order id is, asking the venue only if one may be ours.

        A stop that triggered reveals its ``actualOrderId`` through the Algo Service; an order
        whose acknowledgement was lost reveals its client id through the order itself. An id
        that is neither is remembered as foreign (manual trading, another system).
        """
        live = self._orders.live(inst)
        waiting = [o for o in live if o.waiting_trigger and not o.busy]
        if waiting:
            await self._refresh(inst, waiting, {"trigger": True}, lambda o: o.venue_order_id)
        order = self._orders.by_order_id(order_id)
        if order is None and any(o.order_id == 0 and not o.algo for o in live):
            venue = await self._fetch_order_by_id(order_id, inst)
            candidate = self._orders.get(self.client_order_id(venue.client_text))
            if candidate is not None and candidate.order_id == 0 and not candidate.algo:
                self._orders.learn_ids(candidate, venue)
                order = candidate
        if order is None:
            self._foreign[order_id] = 0
            while len(self._foreign) > 10_000:
                self._foreign.popitem(last=False)
        return order

    def _fill(self, order: TrackedOrder, trade: VenueTrade, inst: Instrument, ts_recv: int) -> None:
        if order.done:
            self.counters.late_fills += 1
            self._warn("late_fill", "binance: fill %s of order %s came after its final report; left to reconciliation",
                       trade.trade_id, order.client_order_id)
            return
        if order.filled + trade.qty > order.size:
            self.counters.overfills += 1
            self._warn("overfill", "binance: fill %s would overfill order %s; left to reconciliation",
                       trade.trade_id, order.client_order_id)
            return
        order.filled += trade.qty
        kind = EventKind.FILLED if order.leaves == 0 else EventKind.PARTIALLY_FILLED
        if kind == EventKind.FILLED:
            self._orders.close(order)
        self.counters.fills += 1
        flags = Liquidity.MAKER if trade.maker else Liquidity.TAKER
        self._emit(self._report(kind, order, trade.time_ms * _MS, ts_recv, trade.price, size=trade.qty,
                                flags=flags, fee=self._fee(trade, inst)))
        self._release(order)

    def _fee(self, trade: VenueTrade, inst: Instrument) -> int:
        """The fill's fee in the quote currency (negative: a rebate); 0, counted, in any other asset."""
        if trade.commission_asset == inst.quote:
            return trade.commission
        if trade.commission_asset == inst.base:  # spot takes a buyer's fee from what it bought
            return (trade.commission * trade.price + PRICE_SCALE // 2) // PRICE_SCALE
        self.counters.unconverted_fees += 1
        self._warn("fee_asset", "binance: fee of fill %s is in %s, reported as 0", trade.trade_id,
                   trade.commission_asset)
        return 0

    def _expire_finals(self) -> None:
        deadline = time.time_ns() - int(self.config.fill_wait_s * 1e9)
        for order in list(self._orders):
            if not order.done and order.final is not None and order.final_since_ns < deadline:
                self.counters.finals_without_fills += 1
                self._warn("final_without_fills", "binance: order %s ended with fills still unreported; "
                           "reporting its end anyway", order.client_order_id)
                self._release(order, force=True)

    # ------------------------------------------------------------------ reconciliation

    async def snapshot(self, fills_since_ns: int) -> VenueSnapshot:
        """Ask the venue for open orders, fills since ``fills_since_ns`` and positions (None where it failed)."""
        if self._exchange is None:
            raise RuntimeError("call BinanceExecution.start() before snapshot()")
        requested_ns = time.time_ns()
        since_ns = max(fills_since_ns, requested_ns - _TRADE_HISTORY_MS * _MS)  # older trades are gone
        orders, fills, positions = await asyncio.gather(
            self._part(self._open_order_rows()), self._part(self._fill_rows(since_ns)),
            self._part(self._position_rows()),
        )
        return VenueSnapshot(requested_ns, max(time.time_ns(), requested_ns), orders, fills, since_ns,
                             positions, self.config.venue_id)

    async def _part(self, rows: Awaitable[np.ndarray | None]) -> np.ndarray | None:
        try:
            return await rows
        except Failure:
            return None

    async def _open_order_rows(self) -> np.ndarray:
        rows = []
        for inst in self._instruments.values():
            for params in ({}, {"trigger": True}) if self.config.market == "futures" else ({},):
                answer = await self._request("fetch_open_orders", self._exchange.fetch_open_orders(
                    inst.symbol, None, None, params))
                venue_orders = self._read_orders(answer, "fetch_open_orders")
                if venue_orders is None:
                    raise Failure(Outcome.MALFORMED, RejectReason.VENUE_BUSY, "unreadable open orders")
                rows.extend(self._order_row(v, inst) for v in venue_orders)
        return np.array(rows, dtype=VENUE_ORDER_DTYPE)

    def _order_row(self, venue: VenueOrder, inst: Instrument) -> tuple:
        order = None if venue.algo else self._orders.by_order_id(venue.order_id)
        cid = order.client_order_id if order is not None else self.client_order_id(venue.client_text)
        status = VenueOrderStatus.PARTIALLY_FILLED if venue.executed > 0 else VenueOrderStatus.OPEN
        order_type = order.order_type if order is not None else engine_order_type(venue)
        voi = order.venue_order_id if order is not None else venue.order_id
        return (voi, cid, venue.price, venue.qty, venue.executed, venue.qty - venue.executed, venue.update_ms * _MS,
                inst.instrument_id, venue.side, order_type, status)

    async def _fill_rows(self, since_ns: int) -> np.ndarray:
        """Every fill since ``since_ns``, asked in the 7-day windows Binance allows."""
        rows = []
        end_ms = time.time_ns() // _MS + 60_000  # a venue clock a little ahead loses nothing
        for inst in self._instruments.values():
            start = since_ns // _MS
            while start <= end_ms:
                stop = min(start + _TRADE_WINDOW_MS, end_ms)
                trades = await self._trades_between(inst, start, stop)
                rows.extend(self._fill_row(t, inst) for t in trades if t.time_ms * _MS >= since_ns)
                start = stop + 1
        return np.array(rows, dtype=VENUE_FILL_DTYPE)

    async def _trades_between(self, inst: Instrument, start_ms: int, end_ms: int) -> list[VenueTrade]:
        found: dict[int, VenueTrade] = {}
        limit = self.config.trades_page_limit
        while True:
            answer = await self._request("fetch_my_trades", self._exchange.fetch_my_trades(
                inst.symbol, start_ms, limit, {"until": end_ms}))
            fresh = [t for t in self._read_trades(answer, "fetch_my_trades", strict=True) if t.trade_id not in found]
            found.update((t.trade_id, t) for t in fresh)
            if len(answer) < limit or not fresh:
                return sorted(found.values(), key=lambda t: (t.time_ms, t.trade_id))
            start_ms = max(t.time_ms for t in fresh)

    def _fill_row(self, trade: VenueTrade, inst: Instrument) -> tuple:
        order = self._orders.by_order_id(trade.order_id)
        cid = order.client_order_id if order is not None else 0
        voi = order.venue_order_id if order is not None else trade.order_id
        liquidity = Liquidity.MAKER if trade.maker else Liquidity.TAKER
        return (trade.trade_id, voi, cid, trade.price, trade.qty, self._fee(trade, inst), trade.time_ms * _MS,
                inst.instrument_id, trade.side, liquidity)

    async def _position_rows(self) -> np.ndarray | None:
        """Signed positions per instrument, flat ones included; None on spot, which has no positions."""
        if self.config.market != "futures":
            return None
        symbols = [inst.symbol for inst in self._instruments.values()]
        answer = await self._request("fetch_positions", self._exchange.fetch_positions(symbols))
        ts_recv = time.time_ns()
        qty = dict.fromkeys(self._instruments, 0)
        entry: dict[int, list[int]] = {iid: [] for iid in self._instruments}
        ts = dict.fromkeys(self._instruments, ts_recv)
        try:
            for pos in answer:
                position = parse_position(pos.get("info") if isinstance(pos, Mapping) else pos, self._by_market_id)
                if position is None:
                    continue
                iid = self._by_market_id[position.symbol].instrument_id
                qty[iid] += position.amount
                if position.amount:
                    entry[iid].append(position.entry_price)
                    ts[iid] = position.update_ms * _MS
        except (Rejected, TypeError) as exc:
            self._malformed("fetch_positions", exc, answer)
            raise Failure(Outcome.MALFORMED, RejectReason.VENUE_BUSY, "unreadable positions") from None
        rows = [(ts[i], qty[i], entry[i][0] if len(entry[i]) == 1 else 0, i) for i in self._instruments]
        return np.array(rows, dtype=VENUE_POSITION_DTYPE)

    # ------------------------------------------------------------------ requests and parsing

    async def _request(self, what: str, call: Awaitable[Any]) -> Any:
        """Await one ccxt call; turn any failure into a counted, logged, redacted ``Failure``."""
        self.counters.requests += 1
        try:
            return await call
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - every failure is classified, none escapes unlabelled
            outcome, reason = classify(exc)
            detail = self._credentials.redact(f"{type(exc).__name__}: {exc}")[:500]
            n = _bump(self.counters.request_failures, outcome)
            if outcome == Outcome.MALFORMED:
                _bump(self.counters.malformed, what)
            expected = outcome in (Outcome.NOT_FOUND, Outcome.DUPLICATE)  # answers, not trouble
            self._warn(f"{what}:{outcome}", "binance %s failed (%s, %s so far): %s", what, outcome, n, detail,
                       level=logging.INFO if expected else logging.WARNING)
            raise Failure(outcome, reason, detail) from None

    def _read(self, parse: Callable[[object], Any], answer: Any, what: str) -> Any:
        """Parse ccxt's answer from its raw ``info``; None (counted, logged) if it is malformed."""
        try:
            info = answer.get("info") if isinstance(answer, Mapping) else answer
            return parse(info)
        except Rejected as exc:
            self._malformed(what, exc, answer)
            return None

    def _read_orders(self, answer: Any, what: str) -> list[VenueOrder] | None:
        if not isinstance(answer, list):
            self._malformed(what, Rejected(Reason.NOT_OBJECT, "expected a list of orders"), answer)
            return None
        orders = [self._read(parse_order, item, what) for item in answer]
        return None if any(o is None for o in orders) else orders

    def _read_trades(self, answer: Any, what: str, strict: bool = False) -> list[VenueTrade]:
        """The readable trades of an answer (an unreadable one is counted and skipped; ``strict``: a Failure)."""
        if not isinstance(answer, list):
            self._malformed(what, Rejected(Reason.NOT_OBJECT, "expected a list of trades"), answer)
            raise Failure(Outcome.MALFORMED, RejectReason.VENUE_BUSY, "unreadable trades")
        trades = [self._read(parse_trade, item, what) for item in answer]
        if strict and any(t is None for t in trades):
            raise Failure(Outcome.MALFORMED, RejectReason.VENUE_BUSY, "unreadable trade")
        return [t for t in trades if t is not None]

    def _malformed(self, what: str, exc: Exception, answer: Any) -> None:
        n = _bump(self.counters.malformed, what)
        text = self._credentials.redact(repr(answer.get("info") if isinstance(answer, Mapping) else answer))
        self._warn(f"malformed:{what}", "binance %s: malformed answer (%s so far): %s; answer starts %s",
                   what, n, exc, text[:200])

    def _warn(self, key: str, msg: str, *args: Any, exc_info: bool = False, level: int = logging.WARNING) -> None:
        """Log ``msg`` with redacted ``args``, rate-limited per ``key``: the first ones, then one in ``_LOG_EVERY``."""
        n = _bump(self._log_counts, key)
        if n <= _LOG_FIRST or n % _LOG_EVERY == 0:
            log.log(level, msg, *(self._credentials.redact(str(a)) for a in args), exc_info=exc_info)

    # ------------------------------------------------------------------ reports

    def _emit(self, record: np.ndarray) -> None:
        kind = int(record["kind"][0])
        flags = int(record["flags"][0])
        _bump(self.counters.reports, _NAMES["kind"].get(kind, str(kind)))
        if flags & ReportFlag.STATUS:
            self.counters.status_reports += 1
        elif kind == EventKind.REJECTED:
            _bump(self.counters.rejects, _NAMES["reason"].get(flags, str(flags)))
        elif kind == EventKind.CANCEL_REJECTED:
            _bump(self.counters.cancel_rejects, _NAMES["reason"].get(flags, str(flags)))
        self._sink(record)

    def _report(self, kind: int, order: TrackedOrder, ts_event: int, ts_recv: int, price: int, *, size: int = 0,
                flags: int = 0, fee: int | None = None, leaves: int | None = None) -> np.ndarray:
        """A report about a tracked order; ``fee`` makes it a fill, else it carries the venue order id."""
        rec = _record(kind, order.side, self.config.venue_id, order.instrument.instrument_id, order.client_order_id,
                      ts_event, ts_recv, flags)
        rec["price"] = price
        rec["size"] = size
        rec["leaves_qty"] = order.leaves if leaves is None else leaves
        if fee is not None:
            rec["fee"] = fee
        else:
            rec["venue_order_id"] = order.venue_order_id
        return rec

    def _refusal(self, cmd: Command, kind: int, flags: int, *, ts_event: int | None = None,
                 ts_recv: int | None = None) -> np.ndarray:
        """A report about a command, with no order behind it (as the simulator's ``_refuse_command``)."""
        now = time.time_ns() if ts_recv is None else ts_recv
        rec = _record(kind, cmd.side, cmd.venue_id, cmd.instrument_id, cmd.client_order_id,
                      now if ts_event is None else ts_event, now, flags)
        rec["price"] = cmd.price
        return rec

    def _cancel_refusal(self, cmd: Command, order: TrackedOrder | None, reason: int) -> np.ndarray:
        if order is None or order.done:
            return self._refusal(cmd, EventKind.CANCEL_REJECTED, reason)
        now = time.time_ns()
        return self._report(EventKind.CANCEL_REJECTED, order, now, now, cmd.price, flags=reason)

    def _status_report(self, cmd: Command, order: TrackedOrder | None, venue: VenueOrder, ts_recv: int) -> np.ndarray:
        kind = FINAL_KIND.get(venue.status, EventKind.ACCEPTED)
        reason = RejectReason.INVALID_ORDER if kind == EventKind.REJECTED else 0
        working = kind == EventKind.ACCEPTED
        rec = _record(kind, venue.side, self.config.venue_id, cmd.instrument_id if order is None else
                      order.instrument.instrument_id, cmd.client_order_id, venue.update_ms * _MS, ts_recv,
                      ReportFlag.STATUS | reason)
        rec["price"] = order.price if order is not None else venue.price
        rec["size"] = venue.executed
        rec["leaves_qty"] = venue.qty - venue.executed if working else 0
        rec["venue_order_id"] = order.venue_order_id if order is not None and order.venue_order_id else venue.order_id
        return rec


def _record(kind: int, side: int, venue_id: int, instrument_id: int, client_order_id: int, ts_event: int,
            ts_recv: int, flags: int) -> np.ndarray:
    rec = np.zeros(1, dtype=EVENT_DTYPE)
    rec["kind"] = kind
    rec["side"] = side
    rec["venue_id"] = venue_id
    rec["instrument_id"] = instrument_id
    rec["client_order_id"] = client_order_id
    rec["ts_event"] = ts_event
    rec["ts_recv"] = ts_recv
    rec["flags"] = flags
    return rec

