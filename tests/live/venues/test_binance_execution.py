"""Binance order entry against a real loopback fake of Binance's REST API: the production path, end to end.

Each scenario starts ``FakeBinance`` (an aiohttp server on 127.0.0.1) and a
``BinanceExecution`` whose ccxt client points at it through ``rest_url``, so ccxt signs,
sends and maps errors exactly as it would against Binance. Waits poll a condition with
a deadline (``until``), never sleep a fixed time, and every scenario runs under one
``asyncio.timeout``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import stat
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from decimal import Decimal

import aiohttp
import ccxt.async_support as ccxt
import numpy as np
import pytest
from fake_binance_rest import MAKER_RATE, TAKER_RATE, FakeBinance
from hypothesis import given
from hypothesis import strategies as st

from framework.events import (
    COMMAND_DTYPE,
    EVENT_DTYPE,
    PRICE_SCALE,
    CommandKind,
    EventKind,
    Liquidity,
    OrderFlag,
    OrderType,
    RejectReason,
    ReportFlag,
    Side,
    TimeInForce,
    concat_events,
)
from framework.reconciliation.reports import (
    VENUE_FILL_DTYPE,
    VENUE_ORDER_DTYPE,
    VENUE_POSITION_DTYPE,
    VenueOrderStatus,
)
from live.venues.binance.credentials import Credentials, CredentialsError
from live.venues.binance.errors import Outcome, classify
from live.venues.binance.execution import BinanceExecution, BinanceExecutionConfig
from live.venues.binance.messages import parse_fixed
from live.venues.binance.order_requests import Command, Refused, order_request
from live.venues.binance.venue_records import format_fixed

KEY = "k3y-Fake-0123456789abcdefXYZ"
SECRET = "s3cret-Fake-9876543210fedcbaQRS"
BTC, ETH = "BTC/USDT:USDT", "ETH/USDT:USDT"
SCENARIO_TIMEOUT = 15.0


def fx(text: str) -> int:
    """Fixed point of a decimal text, exactly."""
    return parse_fixed(text)


def fee_fx(qty: str, price: str, rate: Decimal) -> int:
    """The fake's commission (rounded to 1e-8 as Binance does) in fixed point."""
    return fx(f"{(Decimal(qty) * Decimal(price) * rate).quantize(Decimal('0.00000001'), 'ROUND_HALF_UP')}")


def command(kind: int, cid: int, *, price: str = "0", size: str = "0", side: int = Side.BUY,
            order_type: int = OrderType.LIMIT, tif: int = TimeInForce.GTC, trigger: str = "0", flags: int = 0,
            instrument_id: int = 0, expire_ts: int = 0) -> np.ndarray:
    rec = np.zeros(1, COMMAND_DTYPE)
    rec["kind"], rec["client_order_id"], rec["side"] = kind, cid, side
    rec["price"], rec["size"], rec["trigger_price"] = fx(price), fx(size), fx(trigger)
    rec["order_type"], rec["tif"], rec["flags"] = order_type, tif, flags
    rec["instrument_id"], rec["expire_ts"] = instrument_id, expire_ts
    return rec


def submit(cid: int, price: str = "59000.1", size: str = "0.010", **kw) -> np.ndarray:
    return command(CommandKind.SUBMIT, cid, price=price, size=size, **kw)


class Reports:
    """The sink: keeps every report array, checks its dtype."""

    def __init__(self) -> None:
        self.parts: list[np.ndarray] = []

    def __call__(self, records: np.ndarray) -> None:
        assert records.dtype == EVENT_DTYPE and len(records) > 0
        self.parts.append(records.copy())

    @property
    def all(self) -> np.ndarray:
        return concat_events(self.parts) if self.parts else np.zeros(0, EVENT_DTYPE)

    def of(self, cid: int) -> np.ndarray:
        events = self.all
        return events[events["client_order_id"] == cid]

    def kinds(self, cid: int) -> list[int]:
        return [int(k) for k in self.of(cid)["kind"]]


async def until(condition: Callable[[], bool], what: str, timeout: float = 5.0) -> None:
    """Poll ``condition`` until it holds; fail naming ``what``."""
    try:
        async with asyncio.timeout(timeout):
            while not condition():
                await asyncio.sleep(0.005)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for: {what}") from None


async def polls(adapter: BinanceExecution, n: int = 3) -> None:
    """Wait until the adapter has completed ``n`` more polling rounds."""
    target = adapter.counters.polls + n
    await until(lambda: adapter.counters.polls >= target, f"{n} polling rounds")


def config(fake: FakeBinance, **over) -> BinanceExecutionConfig:
    kw = {"symbols": {0: BTC, 1: ETH}, "venue_id": 3, "rest_url": fake.base_url, "poll_interval_s": 0.02,
          "request_timeout_s": 2.0, "fill_wait_s": 2.0}
    return BinanceExecutionConfig(**(kw | over))


@asynccontextmanager
async def running(secret: str = SECRET, **over) -> AsyncIterator[tuple[FakeBinance, BinanceExecution, Reports]]:
    """A fake venue and a started adapter pointed at it; both closed at the end."""
    fake = FakeBinance(KEY, SECRET)
    await fake.start()
    reports = Reports()
    adapter = BinanceExecution(config(fake, **over), Credentials(KEY, secret), reports)
    try:
        async with asyncio.timeout(SCENARIO_TIMEOUT):
            await adapter.start()
            yield fake, adapter, reports
    finally:
        await adapter.close()
        await fake.close()
    assert fake.counters.unexpected == [], "ccxt called endpoints the fake does not implement"


def with_venue_id(rec: np.ndarray, venue_id: int = 3) -> np.ndarray:
    rec["venue_id"] = venue_id
    return rec


async def send(adapter: BinanceExecution, *recs: np.ndarray) -> None:
    await adapter.send(concat_commands([with_venue_id(r) for r in recs]))


def concat_commands(parts: list[np.ndarray]) -> np.ndarray:
    out = np.zeros(sum(len(p) for p in parts), COMMAND_DTYPE)
    out.view(np.uint8)[:] = np.concatenate([p.view(np.uint8).reshape(-1) for p in parts])
    return out


def one(records: np.ndarray, kind: int) -> np.void:
    found = records[records["kind"] == kind]
    assert len(found) == 1, f"expected one report of kind {kind}, got {records[['kind', 'flags']]}"
    return found[0]


# =========================================================================== orders and fills


@pytest.mark.asyncio
async def test_limit_order_is_accepted_then_partially_and_fully_filled_each_fill_once() -> None:
    async with running() as (fake, adapter, reports):
        fake.duplicate_trades = True  # the venue lists every trade twice, and again on every poll
        await send(adapter, submit(1, price="59000.1", size="0.010"))
        order = fake.order_by_client_id("pt1")
        ack = one(reports.of(1), EventKind.ACCEPTED)
        assert ack["venue_order_id"] == order.order_id
        assert (ack["price"], ack["size"], ack["leaves_qty"]) == (fx("59000.1"), 0, fx("0.010"))
        assert (ack["side"], ack["instrument_id"], ack["venue_id"]) == (Side.BUY, 0, 3)
        assert ack["ts_event"] == order.update_ms * 1_000_000 and ack["ts_recv"] >= ack["ts_event"]

        first = fake.fill("pt1", "0.004", "59000.1", maker=True)
        await until(lambda: EventKind.PARTIALLY_FILLED in reports.kinds(1), "the partial fill")
        second = fake.fill("pt1", "0.006", "59000.0", maker=False)
        await until(lambda: EventKind.FILLED in reports.kinds(1), "the final fill")
        await polls(adapter)

        part = one(reports.of(1), EventKind.PARTIALLY_FILLED)
        assert (part["price"], part["size"], part["leaves_qty"]) == (fx("59000.1"), fx("0.004"), fx("0.006"))
        assert part["fee"] == fee_fx("0.004", "59000.1", MAKER_RATE) == 47_200_080
        assert part["flags"] == Liquidity.MAKER and part["ts_event"] == first.time_ms * 1_000_000
        full = one(reports.of(1), EventKind.FILLED)
        assert (full["price"], full["size"], full["leaves_qty"]) == (fx("59000.0"), fx("0.006"), 0)
        assert full["fee"] == fee_fx("0.006", "59000.0", TAKER_RATE) and full["flags"] == Liquidity.TAKER
        assert full["ts_event"] == second.time_ms * 1_000_000
        assert reports.kinds(1) == [EventKind.ACCEPTED, EventKind.PARTIALLY_FILLED, EventKind.FILLED]
        assert adapter.counters.fills == 2 and adapter.counters.repeated_trades >= 2


@pytest.mark.asyncio
async def test_a_rebate_is_a_negative_fee_and_a_market_order_fills_as_taker() -> None:
    async with running() as (fake, adapter, reports):
        await send(adapter, submit(1, price="3000.5", size="1.250", instrument_id=1, side=Side.SELL))
        fake.fill("pt1", "1.250", "3000.5", maker=True, commission="-0.00750125")
        await send(adapter, submit(2, price="0", size="0.002", order_type=OrderType.MARKET))
        await until(lambda: EventKind.FILLED in reports.kinds(1) and EventKind.FILLED in reports.kinds(2), "fills")
        rebate = one(reports.of(1), EventKind.FILLED)
        assert (rebate["fee"], rebate["instrument_id"], rebate["side"]) == (-7_501_250, 1, Side.SELL)
        market = one(reports.of(2), EventKind.FILLED)
        assert market["price"] == fx("60000") and market["flags"] == Liquidity.TAKER
        assert reports.kinds(2) == [EventKind.ACCEPTED, EventKind.FILLED]


@pytest.mark.asyncio
async def test_modify_then_cancel_then_cancels_of_unknown_orders_are_refused() -> None:
    async with running() as (fake, adapter, reports):
        await send(adapter, submit(1, price="59000.1", size="0.010"))
        fake.fill("pt1", "0.003", "59000.1")
        await until(lambda: EventKind.PARTIALLY_FILLED in reports.kinds(1), "the partial fill")
        await send(adapter, command(CommandKind.MODIFY, 1, price="58999.9", size="0.020"))
        modified = one(reports.of(1), EventKind.MODIFIED)
        assert (modified["price"], modified["leaves_qty"]) == (fx("58999.9"), fx("0.017"))
        order = fake.order_by_client_id("pt1")
        assert (order.price, order.orig_qty) == (Decimal("58999.9"), Decimal("0.020"))
        assert modified["venue_order_id"] == order.order_id

        await send(adapter, command(CommandKind.CANCEL, 1))
        canceled = one(reports.of(1), EventKind.CANCELED)
        assert canceled["venue_order_id"] == order.order_id and fake.order_by_client_id("pt1").status == "CANCELED"
        await send(adapter, command(CommandKind.CANCEL, 1), command(CommandKind.CANCEL, 99))
        for cid in (1, 99):
            refused = one(reports.of(cid), EventKind.CANCEL_REJECTED)
            assert refused["flags"] == RejectReason.UNKNOWN_ORDER
        assert reports.kinds(1) == [EventKind.ACCEPTED, EventKind.PARTIALLY_FILLED, EventKind.MODIFIED,
                                    EventKind.CANCELED, EventKind.CANCEL_REJECTED]


@pytest.mark.asyncio
async def test_a_cancel_waits_for_the_fills_the_venue_had_made() -> None:
    async with running(poll_interval_s=30.0) as (fake, adapter, reports):  # no poll of its own before the cancel
        await send(adapter, submit(1))
        fake.fill("pt1", "0.004", "59000.1")
        await send(adapter, command(CommandKind.CANCEL, 1))  # the venue says executedQty 0.004: fetch that fill first
        await until(lambda: EventKind.CANCELED in reports.kinds(1), "the cancel")
        assert reports.kinds(1) == [EventKind.ACCEPTED, EventKind.PARTIALLY_FILLED, EventKind.CANCELED]
        assert one(reports.of(1), EventKind.CANCELED)["leaves_qty"] == fx("0.006")


@pytest.mark.asyncio
async def test_orders_the_venue_ends_or_changes_on_its_own_are_reported() -> None:
    async with running() as (fake, adapter, reports):
        await send(adapter, submit(1), submit(2, price="59000.2"),
                   submit(3, price="59000.0", tif=TimeInForce.IOC))  # IOC not crossing: expires at once
        fake.fill("pt1", "0.001", "59000.1")
        fake.cancel_by_venue("pt1", "EXPIRED")
        order = fake.order_by_client_id("pt2")
        order.price, order.update_ms = Decimal("59000.3"), order.update_ms + 1  # changed at the venue (web UI)
        await until(lambda: EventKind.EXPIRED in reports.kinds(1) and EventKind.MODIFIED in reports.kinds(2),
                    "the venue's expiry and modification")
        assert reports.kinds(1) == [EventKind.ACCEPTED, EventKind.PARTIALLY_FILLED, EventKind.EXPIRED]
        assert one(reports.of(2), EventKind.MODIFIED)["price"] == fx("59000.3")
        assert reports.kinds(3) == [EventKind.ACCEPTED, EventKind.EXPIRED]
        assert adapter.counters.venue_modifies == 1


@pytest.mark.asyncio
async def test_stop_order_goes_to_the_algo_service_and_its_fills_follow_the_trigger() -> None:
    async with running() as (fake, adapter, reports):
        stop = submit(1, price="0", size="0.010", side=Side.SELL, order_type=OrderType.STOP, trigger="58000.0",
                      flags=OrderFlag.REDUCE_ONLY)
        await send(adapter, stop)
        algo = fake.algo_by_client_id("pt1")
        assert (algo.order_type, algo.trigger_price, algo.reduce_only) == ("STOP_MARKET", Decimal("58000.0"), True)
        assert one(reports.of(1), EventKind.ACCEPTED)["venue_order_id"] == algo.algo_id
        fake.trigger("pt1")
        fake.fill("pt1", "0.010", "57990.5", maker=False)
        await until(lambda: EventKind.FILLED in reports.kinds(1), "the stop's fill")
        assert one(reports.of(1), EventKind.FILLED)["price"] == fx("57990.5")

        await send(adapter, submit(2, price="57000.0", size="0.010", side=Side.SELL, order_type=OrderType.STOP_LIMIT,
                                   trigger="57500.0"))
        await send(adapter, command(CommandKind.CANCEL, 2, order_type=OrderType.STOP_LIMIT))
        assert reports.kinds(2) == [EventKind.ACCEPTED, EventKind.CANCELED]
        assert fake.algo_by_client_id("pt2").status == "CANCELED" and fake.counters.orders_created == 0


@pytest.mark.asyncio
async def test_orders_off_the_tick_or_impossible_are_refused_before_any_request() -> None:
    async with running() as (fake, adapter, reports):
        await send(adapter, submit(1, price="59000.15"), submit(2, size="0.0005"),
                   submit(3, flags=OrderFlag.POST_ONLY, tif=TimeInForce.IOC), submit(4, side=Side.NONE),
                   submit(5, instrument_id=7))
        for cid in range(1, 6):
            assert one(reports.of(cid), EventKind.REJECTED)["flags"] == RejectReason.INVALID_ORDER
        assert fake.counters.orders_created == 0 and adapter.counters.local_rejects == 5


@pytest.mark.asyncio
async def test_venue_refusals_map_to_their_reasons() -> None:
    async with running() as (fake, adapter, reports):
        await send(adapter, submit(1, price="61000.0", flags=OrderFlag.POST_ONLY))  # would take: -5022
        fake.fail("POST", "/fapi/v1/order", -2019, "Margin is insufficient.")
        await send(adapter, submit(2))
        fake.fail("POST", "/fapi/v1/order", -1111, "Precision is over the maximum defined for this asset.")
        await send(adapter, submit(3))
        assert one(reports.of(1), EventKind.REJECTED)["flags"] == RejectReason.POST_ONLY_WOULD_TAKE
        assert one(reports.of(2), EventKind.REJECTED)["flags"] == RejectReason.MAX_GROSS_EXPOSURE
        assert one(reports.of(3), EventKind.REJECTED)["flags"] == RejectReason.INVALID_ORDER
        assert adapter.counters.rejects == {"POST_ONLY_WOULD_TAKE": 1, "MAX_GROSS_EXPOSURE": 1, "INVALID_ORDER": 1}


# =========================================================================== retries and unknown outcomes


@pytest.mark.asyncio
async def test_rate_limit_is_venue_busy_and_the_same_order_can_go_again() -> None:
    async with running() as (fake, adapter, reports):
        fake.rate_limit("POST", "/fapi/v1/order")
        await send(adapter, submit(1))
        busy = one(reports.of(1), EventKind.REJECTED)
        assert busy["flags"] == RejectReason.VENUE_BUSY and busy["venue_order_id"] == 0
        assert fake.counters.orders_created == 0
        await send(adapter, submit(1))  # the pipeline's retry, under the same client order id
        assert reports.kinds(1) == [EventKind.REJECTED, EventKind.ACCEPTED]
        assert adapter.counters.request_failures["busy"] == 1


@pytest.mark.asyncio
async def test_a_timed_out_submit_reports_nothing_and_the_query_finds_the_order() -> None:
    async with running(request_timeout_s=0.4) as (fake, adapter, reports):
        fake.timeout("POST", "/fapi/v1/order", delay_s=3.0, act=True)  # the venue places it; the answer is lost
        await send(adapter, submit(1))
        assert reports.of(1).size == 0 and adapter.counters.unknown_outcomes == 1
        order = fake.order_by_client_id("pt1")
        assert order is not None and order.status == "NEW"
        await send(adapter, command(CommandKind.QUERY, 1))
        status = one(reports.of(1), EventKind.ACCEPTED)
        assert status["flags"] == ReportFlag.STATUS and status["venue_order_id"] == order.order_id
        assert (status["size"], status["leaves_qty"], status["price"]) == (0, fx("0.010"), fx("59000.1"))
        fake.fill("pt1", "0.010", "59000.1")  # the order is tracked again: its fills stream
        await until(lambda: EventKind.FILLED in reports.kinds(1), "the fill after the query")
        assert fake.counters.orders_created == 1


@pytest.mark.asyncio
async def test_query_of_an_order_the_venue_never_got_is_unknown_order() -> None:
    async with running() as (_, adapter, reports):
        await send(adapter, command(CommandKind.QUERY, 42), command(CommandKind.QUERY, 43, order_type=OrderType.STOP))
        for cid in (42, 43):
            answer = one(reports.of(cid), EventKind.REJECTED)
            assert answer["flags"] == ReportFlag.STATUS | RejectReason.UNKNOWN_ORDER


@pytest.mark.asyncio
async def test_a_resubmit_of_a_live_order_is_a_status_report_never_a_second_order() -> None:
    async with running() as (fake, adapter, reports):
        await send(adapter, submit(1))
        fake.fill("pt1", "0.002", "59000.1")
        await until(lambda: EventKind.PARTIALLY_FILLED in reports.kinds(1), "the partial fill")
        await send(adapter, submit(1))  # this adapter knows the order
        again = reports.of(1)[-1]
        assert (again["kind"], again["flags"], again["size"]) == (EventKind.ACCEPTED, ReportFlag.STATUS, fx("0.002"))

        other = Reports()  # a second process with the same prefix: Binance itself refuses the duplicate id
        second = BinanceExecution(config(fake), Credentials(KEY, SECRET), other)
        await second.start()
        try:
            await second.send(with_venue_id(submit(1)))
        finally:
            await second.close()
        status = one(other.of(1), EventKind.ACCEPTED)
        assert status["flags"] == ReportFlag.STATUS and status["venue_order_id"] == fake.order_by_client_id("pt1").order_id
        assert fake.counters.orders_created == 1 and second.counters.duplicate_submits == 1


@pytest.mark.asyncio
async def test_orders_placed_by_someone_else_are_not_reported_and_map_to_client_id_zero() -> None:
    async with running() as (fake, adapter, reports):
        await send(adapter, submit(1, price="59000.1"))
        outsider = BinanceExecution(config(fake, client_id_prefix="web"), Credentials(KEY, SECRET), Reports())
        await outsider.start()
        try:
            await outsider.send(with_venue_id(submit(1, price="59000.2", size="0.020")))  # "web1" on the account
        finally:
            await outsider.close()
        since_ns = (fake._clock_ms() - 1000) * 1_000_000
        trade = fake.fill("web1", "0.005", "59000.2")
        await until(lambda: adapter.counters.foreign_trades >= 1, "the foreign trade to be seen")
        assert reports.kinds(1) == [EventKind.ACCEPTED] and len(reports.all) == 1
        snap = await adapter.snapshot(since_ns)
        theirs = snap.open_orders[snap.open_orders["price"] == fx("59000.2")]
        assert theirs["client_order_id"].tolist() == [0] and theirs["filled"].tolist() == [fx("0.005")]
        assert [(f["venue_trade_id"], f["client_order_id"]) for f in snap.fills] == [(trade.trade_id, 0)]


@pytest.mark.asyncio
async def test_commands_it_does_not_handle_are_counted_and_ignored() -> None:
    async with running() as (_, adapter, reports):
        await send(adapter, command(CommandKind.ALERT, 1), command(CommandKind.SET_TIMER, -1))
        assert adapter.counters.ignored_commands == 2 and reports.all.size == 0 and adapter.counters.requests == 0


# =========================================================================== malformed answers


@pytest.mark.asyncio
async def test_malformed_answers_are_counted_and_the_adapter_keeps_working() -> None:
    async with running() as (fake, adapter, reports):
        await send(adapter, submit(1))
        fake.malformed("GET", "/fapi/v1/userTrades", "{this is not json")
        fake.malformed("GET", "/fapi/v1/userTrades", json.dumps([{"id": 1, "price": "abc"}]))
        fake.malformed("GET", "/fapi/v1/openOrders", json.dumps([{"orderId": "x"}]))
        fake.malformed("GET", "/fapi/v1/userTrades", "[1, 2, 3]", status=200)
        await until(lambda: not any(f.path in ("/fapi/v1/userTrades", "/fapi/v1/openOrders") for f in fake._faults),
                    "the malformed answers to be served")
        fake.fill("pt1", "0.010", "59000.1")
        await until(lambda: EventKind.FILLED in reports.kinds(1), "a fill after the garbage")

        fake.malformed("POST", "/fapi/v1/order", json.dumps({"orderId": 5, "status": "NEW"}), act=True)
        await send(adapter, submit(2))  # the order was placed, the answer is unreadable: an unknown outcome
        assert reports.of(2).size == 0 and fake.order_by_client_id("pt2") is not None
        await send(adapter, command(CommandKind.QUERY, 2))
        assert one(reports.of(2), EventKind.ACCEPTED)["flags"] == ReportFlag.STATUS

        assert sum(adapter.counters.malformed.values()) >= 4 and adapter.counters.poll_errors == 0
        assert adapter._poller is not None and not adapter._poller.done()


# =========================================================================== reconciliation snapshot


@pytest.mark.asyncio
async def test_snapshot_has_open_orders_fills_and_positions_exactly() -> None:
    async with running() as (fake, adapter, reports):
        since_ns = (fake._clock_ms() - 1000) * 1_000_000
        fake.set_position("ETHUSDT", "-1.500", "3001.25")
        await send(adapter, submit(1, price="59000.1", size="0.010"),
                   submit(2, price="0", size="0.005", side=Side.SELL, order_type=OrderType.STOP, trigger="58000.0"))
        trade = fake.fill("pt1", "0.004", "59000.1", maker=True)
        await until(lambda: EventKind.PARTIALLY_FILLED in reports.kinds(1), "the fill")
        snap = await adapter.snapshot(since_ns)

        order, algo = fake.order_by_client_id("pt1"), fake.algo_by_client_id("pt2")
        assert snap.open_orders.dtype == VENUE_ORDER_DTYPE and len(snap.open_orders) == 2
        limit, stop = sorted(snap.open_orders, key=lambda r: r["client_order_id"])
        assert tuple(limit) == (order.order_id, 1, fx("59000.1"), fx("0.010"), fx("0.004"), fx("0.006"),
                                order.update_ms * 1_000_000, 0, Side.BUY, OrderType.LIMIT,
                                VenueOrderStatus.PARTIALLY_FILLED)
        assert tuple(stop) == (algo.algo_id, 2, 0, fx("0.005"), 0, fx("0.005"), algo.update_ms * 1_000_000, 0,
                               Side.SELL, OrderType.STOP, VenueOrderStatus.OPEN)
        assert snap.fills.dtype == VENUE_FILL_DTYPE
        assert [tuple(f) for f in snap.fills] == [(trade.trade_id, order.order_id, 1, fx("59000.1"), fx("0.004"),
                                                   47_200_080, trade.time_ms * 1_000_000, 0, Side.BUY,
                                                   Liquidity.MAKER)]
        assert snap.positions.dtype == VENUE_POSITION_DTYPE
        btc, eth = sorted(snap.positions, key=lambda r: r["instrument_id"])
        assert (btc["qty"], btc["avg_price"], btc["instrument_id"]) == (fx("0.004"), fx("59000.1"), 0)
        assert (eth["qty"], eth["avg_price"], eth["instrument_id"]) == (fx("-1.5"), fx("3001.25"), 1)
        assert snap.fills_since_ns == since_ns and snap.venue_id == 3
        assert snap.requested_ns <= snap.received_ns


@pytest.mark.asyncio
async def test_snapshot_reports_none_for_what_failed_and_flat_instruments_as_zero() -> None:
    async with running() as (fake, adapter, _):
        fake.rate_limit("GET", "/fapi/v3/positionRisk")
        snap = await adapter.snapshot((fake._clock_ms() - 1000) * 1_000_000)
        assert snap.positions is None and not snap.has_positions
        assert snap.open_orders is not None and len(snap.open_orders) == 0 and snap.fills is not None
        fake.malformed("GET", "/fapi/v1/openOrders", "[{\"orderId\": 1}]")
        snap = await adapter.snapshot(snap.received_ns)
        assert snap.open_orders is None and snap.positions is not None
        assert [tuple(p)[1:] for p in snap.positions] == [(0, 0, 0), (0, 0, 1)]


# =========================================================================== credentials and secrets


def test_credentials_from_the_environment_are_masked() -> None:
    creds = Credentials.from_env(environ={"BINANCE_API_KEY": KEY, "BINANCE_API_SECRET": SECRET})
    assert (creds.api_key, creds.api_secret) == (KEY, SECRET)
    for text in (repr(creds), str(creds), f"{creds}"):
        assert KEY not in text and SECRET not in text and "***" in text
    named = Credentials.from_env("MY_KEY", "MY_SECRET", environ={"MY_KEY": KEY, "MY_SECRET": SECRET})
    assert named.api_secret == SECRET and "MY_KEY" in repr(named)
    assert creds.redact(f"a {SECRET} b {KEY}") == "a *** b ***"


def test_missing_credentials_name_the_variables_never_the_values() -> None:
    with pytest.raises(CredentialsError, match="BINANCE_API_SECRET") as err:
        Credentials.from_env(environ={"BINANCE_API_KEY": KEY})
    assert KEY not in str(err.value) and "BINANCE_API_KEY" not in str(err.value).split("variable(s)")[1]
    with pytest.raises(CredentialsError, match="BINANCE_API_KEY, BINANCE_API_SECRET"):
        Credentials.from_env(environ={})


def test_credentials_from_a_private_file(tmp_path) -> None:
    path = tmp_path / "binance.json"
    path.write_text(json.dumps({"api_key": KEY, "api_secret": SECRET}))
    os.chmod(path, 0o600)
    creds = Credentials.from_file(path)
    assert (creds.api_key, creds.api_secret) == (KEY, SECRET) and str(path) in repr(creds)


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660])
def test_a_secrets_file_others_can_read_is_refused(tmp_path, mode: int) -> None:
    path = tmp_path / "binance.json"
    path.write_text(json.dumps({"api_key": KEY, "api_secret": SECRET}))
    os.chmod(path, mode)
    with pytest.raises(CredentialsError) as err:
        Credentials.from_file(path)
    assert str(path) in str(err.value) and f"{mode:04o}" in str(err.value) and SECRET not in str(err.value)


@pytest.mark.parametrize("content, needle", [
    (f'{{"api_key": "{KEY}", "api_secret": "{SECRET}"', "not valid JSON"),
    (json.dumps({"api_key": KEY}), "api_secret"),
    (json.dumps([KEY, SECRET]), "JSON object"),
])
def test_a_bad_secrets_file_is_refused_without_showing_it(tmp_path, content: str, needle: str) -> None:
    path = tmp_path / "binance.json"
    path.write_text(content)
    path.chmod(stat.S_IRUSR | stat.S_IWUSR)
    with pytest.raises(CredentialsError, match=needle) as err:
        Credentials.from_file(path)
    assert SECRET not in str(err.value) and KEY not in str(err.value)
    with pytest.raises(CredentialsError, match="cannot read"):
        Credentials.from_file(tmp_path / "missing.json")


@pytest.mark.asyncio
async def test_the_secret_never_appears_in_logs_errors_or_counters(caplog) -> None:
    caplog.set_level(logging.DEBUG)  # ccxt's DEBUG lines carry the request headers, API key included
    texts: list[str] = []
    async with running(request_timeout_s=0.4) as (fake, adapter, reports):
        fake.rate_limit("POST", "/fapi/v1/order")
        fake.fail("POST", "/fapi/v1/order", -2015, f"Invalid API-key {KEY}")  # even a venue echoing the key
        fake.timeout("POST", "/fapi/v1/order", delay_s=2.0)
        fake.malformed("GET", "/fapi/v1/order", f"{{garbage {SECRET}")
        for cid in (1, 2, 3):
            await send(adapter, submit(cid))
        await send(adapter, command(CommandKind.QUERY, 3))
        texts += [repr(adapter), json.dumps(adapter.stats()), repr(adapter.config)]
    async with running(secret="the-wrong-secret") as (fake, adapter, reports):  # Binance refuses the signature
        await send(adapter, submit(1))
        assert one(reports.of(1), EventKind.REJECTED)["flags"] == RejectReason.INVALID_ORDER
        assert fake.counters.bad_signatures == 1 and adapter.counters.request_failures == {"refused": 1}
        texts += [repr(adapter), json.dumps(adapter.stats())]
    assert "X-MBX-APIKEY" in caplog.text  # the headers were logged, so the redaction below was needed
    assert "AuthenticationError" in caplog.text  # ccxt's own mapping of -1022 and -2015 ran
    for text in [caplog.text, *texts, *(r.getMessage() for r in caplog.records)]:
        assert SECRET not in text and KEY not in text


# =========================================================================== configuration and TLS


@pytest.mark.parametrize("url", ["http://fapi.binance.com", "http://10.0.0.5:8080", "ws://127.0.0.1:1", "fapi"])
def test_a_rest_url_without_tls_is_refused_unless_loopback(url: str) -> None:
    with pytest.raises(ValueError, match=r"rest_url=.* must be a https:// URL \(TLS\)"):
        BinanceExecutionConfig({0: BTC}, rest_url=url)


@pytest.mark.parametrize("url", ["https://fapi.binance.com", "http://127.0.0.1:8080", "http://localhost:1"])
def test_tls_or_loopback_rest_urls_are_accepted(url: str) -> None:
    assert BinanceExecutionConfig({0: BTC}, rest_url=url).rest_url == url


@pytest.mark.parametrize("over, field", [
    ({"market": "margin"}, "market"), ({"symbols": {}}, "symbols"), ({"symbols": {0: "BTCUSDT"}}, "symbols"),
    ({"symbols": {-1: BTC}}, "instrument id"), ({"symbols": {0: BTC, 1: BTC}}, "twice"),
    ({"client_id_prefix": "p t"}, "client_id_prefix"), ({"client_id_prefix": "x" * 17}, "client_id_prefix"),
    ({"poll_interval_s": 0}, "poll_interval_s"), ({"request_timeout_s": -1}, "request_timeout_s"),
    ({"venue_id": 256}, "venue_id"), ({"recv_window_ms": 70_000}, "recv_window_ms"),
    ({"trades_page_limit": 1}, "trades_page_limit"), ({"max_finished_orders": 0}, "max_finished_orders"),
])
def test_config_refuses_bad_values_naming_the_field(over: dict, field: str) -> None:
    with pytest.raises(ValueError, match=field):
        BinanceExecutionConfig(**({"symbols": {0: BTC}} | over))


@pytest.mark.asyncio
async def test_start_refuses_a_symbol_the_venue_does_not_list() -> None:
    fake = FakeBinance(KEY, SECRET)
    await fake.start()
    try:
        adapter = BinanceExecution(config(fake, symbols={0: "DOGE/USDT:USDT"}), Credentials(KEY, SECRET), Reports())
        with pytest.raises(ValueError, match="DOGE/USDT:USDT"):
            await adapter.start()
        with pytest.raises(RuntimeError, match="start"):
            await adapter.send(submit(1))
    finally:
        await fake.close()


# =========================================================================== pure parts


@given(st.integers(min_value=-(2**63) + 1, max_value=2**63 - 1))
def test_fixed_point_text_round_trips_exactly(value: int) -> None:
    assert parse_fixed(format_fixed(value)) == value


def test_fixed_point_text_is_the_shortest_exact_decimal() -> None:
    assert [format_fixed(v) for v in (0, PRICE_SCALE, 1_250_000_000, 1, -5_000_000_000_000)] == [
        "0", "1", "1.25", "0.000000001", "-5000"]


def cmd(**kw) -> Command:
    fields = {"kind": CommandKind.SUBMIT, "side": Side.BUY, "flags": 0, "venue_id": 0, "instrument_id": 0,
              "order_type": OrderType.LIMIT, "tif": TimeInForce.GTC, "client_order_id": 7, "price": fx("100.5"),
              "size": fx("2"), "trigger_price": 0, "expire_ts": 0}
    return Command(**(fields | kw))


@pytest.mark.parametrize("market, kw, expected", [
    ("futures", {}, ("limit", "buy", "2", "100.5", {"newClientOrderId": "pt7", "timeInForce": "GTC"}, False)),
    ("spot", {"flags": OrderFlag.POST_ONLY}, ("limit", "buy", "2", "100.5",
                                              {"newClientOrderId": "pt7", "postOnly": True}, False)),
    ("futures", {"tif": TimeInForce.GTD, "expire_ts": 1_700_000_000_123_456_789},
     ("limit", "buy", "2", "100.5", {"newClientOrderId": "pt7", "timeInForce": "GTD",
                                     "goodTillDate": 1_700_000_000_123}, False)),
    ("futures", {"order_type": OrderType.STOP, "trigger_price": fx("99"), "side": Side.SELL,
                 "flags": OrderFlag.REDUCE_ONLY},
     ("market", "sell", "2", None, {"newClientOrderId": "pt7", "reduceOnly": True, "triggerPrice": "99"}, True)),
    ("spot", {"order_type": OrderType.STOP_LIMIT, "trigger_price": fx("99"), "tif": TimeInForce.IOC},
     ("limit", "buy", "2", "100.5", {"newClientOrderId": "pt7", "triggerPrice": "99", "timeInForce": "IOC"}, False)),
    ("spot", {"order_type": OrderType.MARKET, "price": 0}, ("market", "buy", "2", None,
                                                             {"newClientOrderId": "pt7"}, False)),
])
def test_order_requests_per_market(market: str, kw: dict, expected: tuple) -> None:
    req = order_request(cmd(**kw), market, "pt7")
    assert (req.type, req.side, req.amount, req.price, req.params, req.algo) == expected


@pytest.mark.parametrize("market, kw", [
    ("spot", {"tif": TimeInForce.GTD, "expire_ts": 1}), ("spot", {"flags": OrderFlag.REDUCE_ONLY}),
    ("futures", {"flags": OrderFlag.POST_ONLY, "tif": TimeInForce.FOK}), ("futures", {"size": 0}),
    ("futures", {"order_type": OrderType.STOP}), ("futures", {"order_type": OrderType.MARKET,
                                                              "flags": OrderFlag.POST_ONLY}),
    ("futures", {"tif": TimeInForce.GTD}), ("futures", {"order_type": 9}), ("futures", {"price": 0}),
])
def test_impossible_orders_are_refused_as_invalid(market: str, kw: dict) -> None:
    with pytest.raises(Refused) as err:
        order_request(cmd(**kw), market, "pt7")
    assert err.value.reason == RejectReason.INVALID_ORDER


def _connect_error() -> ccxt.ExchangeNotAvailable:
    try:
        raise ccxt.ExchangeNotAvailable("binance POST https://fapi.binance.com/fapi/v1/order") from \
            aiohttp.ClientConnectorError(None, OSError(111, "refused"))
    except ccxt.ExchangeNotAvailable as exc:
        return exc


@pytest.mark.parametrize("exc, outcome, reason", [
    (ccxt.RateLimitExceeded("x"), Outcome.BUSY, RejectReason.VENUE_BUSY),
    (ccxt.DDoSProtection("binanceusdm 429"), Outcome.BUSY, RejectReason.VENUE_BUSY),
    (ccxt.OnMaintenance("x"), Outcome.BUSY, RejectReason.VENUE_BUSY),
    (_connect_error(), Outcome.BUSY, RejectReason.VENUE_BUSY),
    (ccxt.ExchangeNotAvailable("binance POST https://x/fapi/v1/order 403 Forbidden <html>"), Outcome.BUSY,
     RejectReason.VENUE_BUSY),
    (ccxt.ExchangeNotAvailable("binance POST https://x/fapi/v1/order 502 Bad Gateway"), Outcome.UNKNOWN,
     RejectReason.VENUE_BUSY),
    (ccxt.RequestTimeout("x"), Outcome.UNKNOWN, RejectReason.VENUE_BUSY),
    (ccxt.NetworkError("x"), Outcome.UNKNOWN, RejectReason.VENUE_BUSY),
    (ccxt.BadResponse("x"), Outcome.MALFORMED, RejectReason.VENUE_BUSY),
    (ValueError("ccxt could not parse"), Outcome.MALFORMED, RejectReason.VENUE_BUSY),
    (ccxt.InvalidOrder("x"), Outcome.REFUSED, RejectReason.INVALID_ORDER),
    (ccxt.BadRequest("x"), Outcome.REFUSED, RejectReason.INVALID_ORDER),
    (ccxt.AuthenticationError("x"), Outcome.REFUSED, RejectReason.INVALID_ORDER),
    (ccxt.InsufficientFunds("x"), Outcome.REFUSED, RejectReason.MAX_GROSS_EXPOSURE),
    (ccxt.OrderNotFound("x"), Outcome.NOT_FOUND, RejectReason.UNKNOWN_ORDER),
    (ccxt.ExchangeError('binanceusdm {"code":-4116,"msg":"ClientOrderId is duplicated."}'), Outcome.DUPLICATE,
     RejectReason.DUPLICATE_ORDER),
    (ccxt.InvalidOrder('binance {"code":-2010,"msg":"Duplicate order sent."}'), Outcome.DUPLICATE,
     RejectReason.DUPLICATE_ORDER),
    (ccxt.InvalidOrder('binance {"code":-2010,"msg":"Order would immediately match and take."}'), Outcome.REFUSED,
     RejectReason.POST_ONLY_WOULD_TAKE),
    (ccxt.OrderNotFillable('binanceusdm {"code":-5021,"msg":"FOK"}'), Outcome.REFUSED, RejectReason.FOK_NOT_FILLABLE),
    (ccxt.RequestTimeout('binanceusdm {"code":-1007,"msg":"Timeout waiting for response"}'), Outcome.UNKNOWN,
     RejectReason.VENUE_BUSY),
])
def test_venue_errors_are_classified(exc: Exception, outcome: str, reason: int) -> None:
    assert classify(exc) == (outcome, reason)


@pytest.mark.parametrize("text, expected", [("pt42", 42), ("pt042", 0), ("pt", 0), ("xx42", 0), ("pt4x", 0),
                                            ("pt0", 0), (None, 0), ("pt99999999999999999999", 0)])
def test_client_order_ids_map_back_only_with_the_prefix(text, expected: int) -> None:
    adapter = BinanceExecution(BinanceExecutionConfig({0: BTC}), Credentials(KEY, SECRET), Reports())
    assert adapter.client_order_id(text) == expected
