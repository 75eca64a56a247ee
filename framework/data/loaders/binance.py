"""Loaders for Binance websocket captures flattened to CSV (trades, bookTicker, depth).

The captures' receive clock (``local_ts_ns``) runs about 1.27 s behind Binance's, so
``ts_recv`` can be earlier than ``ts_event``; the two clocks are kept as recorded.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from framework.data.loaders._csv import CsvColumns
from framework.events import BOOK_DTYPE, QUOTE_DTYPE, TRADE_DTYPE, BookFlag, EventKind, Side

_MS = 1_000_000
_MISSING = -1


def load_trades(path: str | Path) -> dict[str, np.ndarray]:
    """Load ``binance_*_trades_*.csv[.gz]`` (the ``@trade`` stream) as TRADE records.

    ``ts_event`` is the trade time ``T``, ``ts_recv`` the capture's receive time,
    ``side`` the aggressor, ``trade_id`` Binance's. File order is kept and must be
    time order on both clocks.
    """
    csv = CsvColumns(path, ["local_ts_ns", "trade_time_ms", "trade_id", "price", "qty", "aggressor_side"])
    out = np.zeros(csv.rows, dtype=TRADE_DTYPE)
    out["kind"] = EventKind.TRADE
    out["ts_recv"] = recv = csv.integer("local_ts_ns")
    out["ts_event"] = event = csv.integer("trade_time_ms") * _MS
    out["trade_id"] = csv.integer("trade_id")
    out["price"] = price = csv.decimal("price")
    out["size"] = size = csv.decimal("qty")
    out["side"] = csv.choice("aggressor_side", {"buy": Side.BUY, "sell": Side.SELL})
    csv.require(price > 0, "price", "a positive price")
    csv.require(size > 0, "qty", "a positive quantity")
    csv.require_sorted(recv, "local_ts_ns")
    csv.require_sorted(event, "trade_time_ms")
    return {"trade": out}


def load_quotes(path: str | Path) -> dict[str, np.ndarray]:
    """Load ``binance_*_quotes_*.csv[.gz]`` (the ``@bookTicker`` stream) as QUOTE records.

    ``ts_event`` is the transaction time ``T``; spot bookTicker has none, so there it
    falls back to the receive time ``local_ts_ns`` (the only clock the row has).
    """
    csv = CsvColumns(
        path, ["local_ts_ns", "transact_time_ms", "bid_price", "bid_qty", "ask_price", "ask_qty"]
    )
    out = np.zeros(csv.rows, dtype=QUOTE_DTYPE)
    out["kind"] = EventKind.QUOTE
    out["ts_recv"] = recv = csv.integer("local_ts_ns")
    transact = csv.integer("transact_time_ms", empty=_MISSING)
    out["ts_event"] = np.where(transact == _MISSING, recv, transact * _MS)
    for side in ("bid", "ask"):
        out[f"{side}_price"] = price = csv.decimal(f"{side}_price")
        out[f"{side}_size"] = size = csv.decimal(f"{side}_qty")
        csv.require(price > 0, f"{side}_price", "a positive price")
        csv.require(size >= 0, f"{side}_qty", "a non-negative quantity")
    csv.require_sorted(recv, "local_ts_ns")
    return {"quote": out}


def load_depth(path: str | Path) -> dict[str, np.ndarray]:
    """Load ``binance_*_depth_*.csv[.gz]`` (REST snapshot + depth diffs) as BOOK records.

    One record per price level, in file order. Snapshot rows are BOOK_SNAPSHOT and
    diff rows BOOK_DELTA; ``size`` is the new absolute size (0 deletes the level) and
    ``sequence`` the message's ``final_update_id`` (``lastUpdateId`` for the
    snapshot). ``BookFlag.LAST`` marks the last row of each message. ``BookFlag.CLEAR``
    marks the first row of each side of a snapshot, since CLEAR empties only the side
    of its record.

    Quirk: the snapshot is not the first message. The REST reply arrives after a few
    diffs, one of which bridges ``lastUpdateId``; a book builder must buffer diffs
    until the snapshot and then drop those with ``sequence`` < the snapshot's.
    File order is kept as it is: ``ts_event`` is the venue time (``T``, else ``E``;
    the spot snapshot has neither and takes the previous message's), raised where
    needed to the running maximum so that sorting by ``ts_event`` cannot move the
    snapshot before the diffs that preceded it in the file.
    """
    csv = CsvColumns(
        path,
        ["local_ts_ns", "msg_type", "event_time_ms", "transact_time_ms", "final_update_id", "side", "price", "qty"],
    )
    n = csv.rows
    out = np.zeros(n, dtype=BOOK_DTYPE)
    snapshot = csv.choice("msg_type", {"snapshot": 1, "update": 0}).astype(bool)
    out["kind"] = np.where(snapshot, EventKind.BOOK_SNAPSHOT, EventKind.BOOK_DELTA)
    out["ts_recv"] = recv = csv.integer("local_ts_ns")
    csv.require_sorted(recv, "local_ts_ns")
    out["sequence"] = sequence = csv.integer("final_update_id")
    out["side"] = side = csv.choice("side", {"bid": Side.BUY, "ask": Side.SELL})
    out["price"] = price = csv.decimal("price")
    out["size"] = size = csv.decimal("qty")
    csv.require(price > 0, "price", "a positive price")
    csv.require(size >= 0, "qty", "a non-negative quantity (0 deletes the level)")
    if n == 0:
        return {"book": out}

    venue = csv.integer("transact_time_ms", empty=_MISSING)
    event = csv.integer("event_time_ms", empty=_MISSING)
    venue = np.where(venue == _MISSING, event, venue)
    known = venue != _MISSING
    if known.any():
        # carry the last known venue time forward (backward for leading rows), then
        # take the running maximum so file order survives a stable sort by ts_event
        last = np.maximum.accumulate(np.where(known, np.arange(n), -1))
        venue = np.where(last >= 0, venue[np.maximum(last, 0)], venue[np.argmax(known)])
        out["ts_event"] = np.maximum.accumulate(venue) * _MS
    else:
        out["ts_event"] = recv

    boundary = np.ones(n, dtype=bool)  # True where a row ends its message
    boundary[:-1] = (
        (sequence[1:] != sequence[:-1]) | (snapshot[1:] != snapshot[:-1]) | (recv[1:] != recv[:-1])
    )
    message = np.cumsum(np.concatenate(([True], boundary[:-1])))
    rows = np.flatnonzero(snapshot)
    _, first = np.unique(np.stack([message[rows], side[rows]]), axis=1, return_index=True)
    out["flags"] = np.where(boundary, BookFlag.LAST, 0)
    out["flags"][rows[first]] |= BookFlag.CLEAR
    return {"book": out}
