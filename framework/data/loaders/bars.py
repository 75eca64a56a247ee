"""Loaders for daily OHLCV bar files (Yahoo layout and LEAN daily).

A daily bar is only known once its day is over, so ``ts_event`` (and ``ts_recv``) is
the end of the bar's date: the next UTC midnight. A replay therefore never shows a
day's close before that day has ended. Volume is stored in fixed point too.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from framework.data.loaders._csv import CsvColumns
from framework.events import BAR_DTYPE, EventKind

_DAY_NS = 86_400_000_000_000
_OHLC = ("open", "high", "low", "close")


def _bars(csv: CsvColumns, date: str, prices: dict[str, np.ndarray], volume: str) -> dict[str, np.ndarray]:
    """Assemble and check BAR records from parsed columns (``prices`` keyed by field)."""
    day = csv.timestamp(date)
    csv.require(day % _DAY_NS == 0, date, "a date without a time of day (YYYY-MM-DD)")
    ok = np.ones(csv.rows, dtype=bool)
    ok[1:] = day[1:] > day[:-1]
    csv.require(ok, date, "strictly increasing dates (one bar per day, in order)")
    out = np.zeros(csv.rows, dtype=BAR_DTYPE)
    out["kind"] = EventKind.BAR
    out["ts_event"] = out["ts_recv"] = day + _DAY_NS
    columns = dict(zip(_OHLC, prices))
    for field, column in columns.items():
        out[field] = prices[column]
        csv.require(prices[column] > 0, column, "a positive price")
    out["volume"] = csv.decimal(volume)
    csv.require(out["volume"] >= 0, volume, "a non-negative volume")
    o, h, low, c = (out[f] for f in _OHLC)
    csv.require(h >= np.maximum(np.maximum(o, c), low), columns["high"], "high >= open, close and low")
    csv.require(low <= np.minimum(o, c), columns["low"], "low <= open and close")
    return {"bar": out}


def load_yahoo_daily(path: str | Path) -> dict[str, np.ndarray]:
    """Load a Yahoo-layout daily CSV (``Date,Open,High,Low,Close,Adj Close,Volume``).

    Prices are the file's split-adjusted OHLC as written; ``Adj Close`` is not used.
    """
    names = ["Open", "High", "Low", "Close"]
    csv = CsvColumns(path, ["Date", *names, "Volume"])
    return _bars(csv, "Date", {name: csv.decimal(name) for name in names}, "Volume")


def load_lean_daily(path: str | Path) -> dict[str, np.ndarray]:
    """Load a LEAN daily CSV, taking prices exactly from the ``*_decicents`` columns.

    The prices are raw and unadjusted: splits appear as jumps.
    """
    names = [f"{field}_decicents" for field in _OHLC]
    csv = CsvColumns(path, ["date", *names, "volume"])
    return _bars(csv, "date", {name: csv.decimal(name, 5) for name in names}, "volume")
