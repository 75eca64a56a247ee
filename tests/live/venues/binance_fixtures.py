"""Shared helpers for the Binance tests: a hand-written capture and independent reference books.

The synthetic capture is written in the raw format (``<receive_ns> <json>``) so it runs
through exactly the code the real capture does. The reference books use ``Decimal`` and
plain dicts, not the code under test, so that they can catch its mistakes.
"""

from __future__ import annotations

import heapq
import json
from decimal import Decimal

import numpy as np

from framework.events import PRICE_SCALE, BookFlag, EventKind, Side
from live.venues.binance.messages import Instrument

SYMBOL = "BTCUSDT"
INSTRUMENT = Instrument(7, 3)
SYMBOLS = {SYMBOL: INSTRUMENT}
T0_NS = 1_723_161_255_000_000_000  # receive clock
T0_MS = 1_723_161_256_000  # venue clock
STEP_NS = 20_000_000  # 20 ms between lines


def fixed(text: str) -> int:
    """Exact fixed point through Decimal: the reference for the parser."""
    return int(Decimal(text) * PRICE_SCALE)


def wrap(stream: str, data: dict) -> str:
    return json.dumps({"stream": stream, "data": data}, separators=(",", ":"))


def depth(ms: int, U: int, u: int, pu: int, bids: list, asks: list) -> str:
    return wrap(f"{SYMBOL.lower()}@depth@0ms", {
        "e": "depthUpdate", "E": T0_MS + ms + 1, "T": T0_MS + ms, "s": SYMBOL, "U": U, "u": u, "pu": pu,
        "b": bids, "a": asks,
    })


def trade(ms: int, t: int, p: str, q: str, maker: bool) -> str:
    return wrap(f"{SYMBOL.lower()}@trade", {
        "e": "trade", "E": T0_MS + ms + 1, "T": T0_MS + ms, "s": SYMBOL, "t": t, "p": p, "q": q, "X": "MARKET",
        "m": maker,
    })


def ticker(ms: int, u: int, b: str, B: str, a: str, A: str) -> str:
    return wrap(f"{SYMBOL.lower()}@bookTicker", {
        "e": "bookTicker", "u": u, "s": SYMBOL, "b": b, "B": B, "a": a, "A": A, "T": T0_MS + ms, "E": T0_MS + ms + 1,
    })


def snapshot(ms: int, last: int, bids: list, asks: list) -> str:
    return json.dumps({"lastUpdateId": last, "E": T0_MS + ms + 1, "T": T0_MS + ms, "bids": bids, "asks": asks})


GAP_LINE = 17
"""Index of the diff after the missing updates 126..130 (see ``synthetic_messages``)."""


def synthetic_messages() -> list[str]:
    """A few dozen USD-M messages: diffs before the snapshot (one stale, one bridging it),
    the REST snapshot, trades of both aggressor sides, quotes, a level deletion, a quote
    with an empty side, and a gap (pu 130 after u 125) at ``GAP_LINE``."""
    return [
        depth(0, 90, 95, 80, [["100.0", "1.000"]], [["101.0", "2.000"]]),  # older than the snapshot
        trade(1, 1, "101.0", "0.500", False),
        ticker(2, 95, "100.0", "1.000", "101.0", "2.000"),
        depth(3, 96, 105, 95, [["100.0", "1.500"], ["99.5", "3.000"]], [["101.5", "1.000"]]),  # bridges 100
        snapshot(4, 100, [["100.0", "1.200"], ["99.5", "3.000"], ["99.0", "4.000"]],
                 [["101.0", "2.000"], ["101.5", "0.700"], ["102.0", "5.000"]]),
        ticker(5, 105, "100.0", "1.500", "101.0", "2.000"),
        depth(6, 106, 110, 105, [["100.0", "0.000"]], [["101.0", "1.500"]]),  # deletes the best bid
        trade(7, 2, "99.5", "0.250", True),
        ticker(8, 110, "99.5", "3.000", "101.0", "1.500"),
        depth(9, 111, 118, 110, [["99.8", "2.000"]], [["100.9", "0.300"]]),
        trade(10, 3, "100.9", "0.300", False),
        depth(11, 119, 125, 118, [["98.0", "7.000"]], [["100.9", "0.000"]]),
        ticker(12, 125, "99.8", "2.000", "101.0", "1.500"),
        trade(13, 4, "99.8", "0.001", True),
        ticker(14, 125, "99.8", "1.999", "0", "0"),  # an empty ask side is allowed on a quote
        trade(15, 5, "99.8", "1.999", True),
        ticker(16, 125, "99.7", "0.500", "101.0", "1.500"),
        depth(17, 131, 140, 130, [["99.9", "1.000"], ["99.8", "0.000"]], [["101.2", "0.400"]]),  # the gap
        trade(18, 6, "101.0", "0.100", False),
        depth(19, 141, 150, 140, [["99.9", "0.000"]], [["103.0", "1.000"]]),
        ticker(20, 150, "99.5", "3.000", "101.0", "1.400"),
        depth(21, 151, 160, 150, [["99.6", "0.800"]], [["101.0", "1.400"], ["101.2", "0.000"]]),
        trade(22, 7, "101.0", "0.050", False),
        depth(23, 161, 170, 160, [["99.5", "2.500"]], []),
        ticker(24, 170, "99.6", "0.800", "101.0", "1.400"),
        depth(25, 171, 171, 170, [], [["101.5", "0.000"]]),
        trade(26, 8, "99.6", "0.800", True),
        depth(27, 172, 180, 171, [["99.7", "0.100"]], [["102.5", "2.000"]]),
        ticker(28, 180, "99.7", "0.100", "101.0", "1.400"),
        trade(29, 9, "101.0", "1.400", False),
    ]


def capture_lines(messages: list[str]) -> list[bytes]:
    """The raw capture format: ``<receive_ns> <json>``, 20 ms apart."""
    return [f"{T0_NS + i * STEP_NS} {m}".encode() for i, m in enumerate(messages)]


# --------------------------------------------------------------------------- reference books


class RefBook:
    """A plain dict book of exact prices: what the downstream book must equal."""

    def __init__(self) -> None:
        self.sides: dict[int, dict[int, int]] = {Side.BUY: {}, Side.SELL: {}}

    def set_levels(self, side: int, levels: list) -> None:
        book = self.sides[side]
        for price, qty in levels:
            p, q = fixed(price), fixed(qty)
            if q == 0:
                book.pop(p, None)
            else:
                book[p] = q

    def load_snapshot(self, obj: dict) -> None:
        self.sides = {Side.BUY: {}, Side.SELL: {}}
        self.set_levels(Side.BUY, obj["bids"])
        self.set_levels(Side.SELL, obj["asks"])

    def apply_diff(self, data: dict) -> None:
        self.set_levels(Side.BUY, data["b"])
        self.set_levels(Side.SELL, data["a"])

    def top(self, n: int) -> tuple[list, list]:
        return top_levels(self.sides, n)


def top_levels(sides: dict[int, dict[int, int]], n: int) -> tuple[list, list]:
    bids = heapq.nlargest(n, sides[Side.BUY].items())
    asks = heapq.nsmallest(n, sides[Side.SELL].items())
    return bids, asks


class RecordBook:
    """A downstream consumer: applies BOOK records (CLEAR empties a side, size 0 deletes)."""

    def __init__(self, instrument_id: int = INSTRUMENT.instrument_id) -> None:
        self.instrument_id = instrument_id
        self.sides: dict[int, dict[int, int]] = {Side.BUY: {}, Side.SELL: {}}
        self.messages = 0  # LAST flags seen
        self.snapshots = 0  # CLEAR records seen

    def apply(self, records: np.ndarray) -> None:
        for rec in records:
            if rec["kind"] not in (EventKind.BOOK_DELTA, EventKind.BOOK_SNAPSHOT):
                continue
            assert rec["instrument_id"] == self.instrument_id
            side = self.sides[int(rec["side"])]
            if rec["flags"] & BookFlag.CLEAR:
                side.clear()
                self.snapshots += 1
            price, size = int(rec["price"]), int(rec["size"])
            if size == 0:
                side.pop(price, None)
            else:
                side[price] = size
            if rec["flags"] & BookFlag.LAST:
                self.messages += 1

    def top(self, n: int) -> tuple[list, list]:
        return top_levels(self.sides, n)

    @property
    def empty(self) -> bool:
        return not self.sides[Side.BUY] and not self.sides[Side.SELL]
