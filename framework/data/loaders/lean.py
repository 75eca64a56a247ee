"""Loaders for QuantConnect LEAN (AlgoSeek) US-equity tick files flattened to CSV.

Prices come from the raw integer ``*_decicents`` columns (1/10000 USD), scaled
exactly into fixed point; the derived float-looking ``price`` columns are ignored.
Times come from the derived ``ts_utc`` column (millisecond resolution); ``ts_recv``
equals ``ts_event`` since the files carry no receive time.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from framework.data.loaders._csv import CsvColumns
from framework.events import QUOTE_DTYPE, TRADE_DTYPE, EventKind, Side

_DECICENT_DIGITS = 5
"""1/10000 USD times 10**5 is 1e-9 USD: decicents parse into fixed point at scale 5."""


def load_trades(path: str | Path) -> dict[str, np.ndarray]:
    """Load ``lean_<ticker>_trades_<date>.csv[.gz]`` as TRADE records.

    The tape has no aggressor side and no trade id: ``side`` is NONE and
    ``trade_id`` 0. Every print is kept, including off-exchange and extended-hours
    ones (filter on the source file's ``exchange``/``sale_condition_hex`` if needed).
    """
    csv = CsvColumns(path, ["ts_utc", "price_decicents", "size"])
    out = np.zeros(csv.rows, dtype=TRADE_DTYPE)
    out["kind"] = EventKind.TRADE
    out["side"] = Side.NONE
    out["ts_event"] = out["ts_recv"] = ts = csv.timestamp("ts_utc")
    out["price"] = price = csv.decimal("price_decicents", _DECICENT_DIGITS)
    out["size"] = size = csv.decimal("size")
    csv.require(price > 0, "price_decicents", "a positive price")
    csv.require(size > 0, "size", "a positive size")
    csv.require_sorted(ts, "ts_utc")
    return {"trade": out}


def load_quotes(path: str | Path) -> dict[str, np.ndarray]:
    """Load ``lean_<ticker>_quotes_<date>.csv[.gz]`` as full QUOTE records.

    Each row updates one side (the other side's price is 0, meaning "not in this
    row"), upstream writes bid-then-ask pairs. The last known other side is carried,
    and one quote is emitted per row from the first row at which both sides are
    known, so N rows give N - 1 quotes when the first pair is complete. Locked and
    crossed consolidated quotes are kept as they are.
    """
    csv = CsvColumns(
        path, ["ts_utc", "bid_price_decicents", "bid_size", "ask_price_decicents", "ask_size"]
    )
    ts = csv.timestamp("ts_utc")
    csv.require_sorted(ts, "ts_utc")
    sides = {}
    for side in ("bid", "ask"):
        price = csv.decimal(f"{side}_price_decicents", _DECICENT_DIGITS)
        size = csv.decimal(f"{side}_size")
        csv.require(price >= 0, f"{side}_price_decicents", "a non-negative price (0 means not in this row)")
        csv.require(size >= 0, f"{side}_size", "a non-negative size")
        present = price > 0
        # index of the latest row (at or before each row) that carried this side
        latest = np.maximum.accumulate(np.where(present, np.arange(len(price)), -1))
        sides[side] = (price, size, latest)
    neither = (sides["bid"][2] < np.arange(csv.rows)) & (sides["ask"][2] < np.arange(csv.rows))
    csv.require(~neither, "bid_price_decicents", "a row carrying a bid or an ask (a non-zero price)")
    ready = np.flatnonzero((sides["bid"][2] >= 0) & (sides["ask"][2] >= 0))
    out = np.zeros(len(ready), dtype=QUOTE_DTYPE)
    out["kind"] = EventKind.QUOTE
    out["ts_event"] = out["ts_recv"] = ts[ready]
    for side, (price, size, latest) in sides.items():
        out[f"{side}_price"] = price[latest[ready]]
        out[f"{side}_size"] = size[latest[ready]]
    return {"quote": out}
