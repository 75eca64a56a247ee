"""Load vendor files into record arrays and ingest them into a catalog.

``FORMATS`` maps a format name to a loader ``path -> {kind: records}``;
``detect_format`` guesses the name from the file name; ``ingest`` loads a file
completely (so a malformed file raises ``DataFormatError`` before anything is
written) and then writes it to a catalog.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import numpy as np

from framework.data.catalog import Catalog
from framework.data.errors import DataFormatError
from framework.data.loaders import bars, binance, lean
from framework.events import concat_records

Loader = Callable[[Path], dict[str, np.ndarray]]

FORMATS: dict[str, Loader] = {
    "binance-trades": binance.load_trades,
    "binance-quotes": binance.load_quotes,
    "binance-depth": binance.load_depth,
    "lean-trades": lean.load_trades,
    "lean-quotes": lean.load_quotes,
    "yahoo-daily": bars.load_yahoo_daily,
    "lean-daily": bars.load_lean_daily,
}
"""Format name -> loader returning ``{kind: records of KIND_DTYPES[kind]}``."""

_PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    ("binance-trades", re.compile(r"^binance_\w+?_trades_\d{8}\.csv(\.gz)?$")),
    ("binance-quotes", re.compile(r"^binance_\w+?_quotes_\d{8}\.csv(\.gz)?$")),
    ("binance-depth", re.compile(r"^binance_\w+?_depth_\d{8}\.csv(\.gz)?$")),
    ("lean-trades", re.compile(r"^lean_[a-z0-9.]+_trades_\d{8}\.csv(\.gz)?$")),
    ("lean-quotes", re.compile(r"^lean_[a-z0-9.]+_quotes_\d{8}\.csv(\.gz)?$")),
    ("yahoo-daily", re.compile(r"^yahoo_[a-z0-9.]+_daily.*\.csv(\.gz)?$")),
    ("lean-daily", re.compile(r"^lean_daily_[a-z0-9.]+\.csv(\.gz)?$")),
]


def detect_format(path: str | Path) -> str:
    """Return the format name matching the file name, e.g. ``binance-trades``.

    LEAN tick patterns take one ticker token (``lean_bac_quotes_20131008``), so
    other LEAN layouts such as ``lean_oanda_eurusd_quotes_*`` are not mistaken for
    equity quotes. Raise ``DataFormatError`` when no pattern matches.
    """
    name = Path(path).name
    for fmt, pattern in _PATTERNS:
        if pattern.match(name):
            return fmt
    known = "; ".join(f"{fmt}: {pattern.pattern}" for fmt, pattern in _PATTERNS)
    raise DataFormatError(path, f"a file name matching a known format ({known}); pass the format explicitly")


def load(path: str | Path, fmt: str | None = None) -> dict[str, np.ndarray]:
    """Load ``path`` with format ``fmt`` (detected from the name when None)."""
    fmt = fmt or detect_format(path)
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
    return FORMATS[fmt](Path(path))


def ingest(path: str | Path, fmt: str | None, catalog: Catalog, symbol: str) -> dict[str, int]:
    """Load ``path`` and write it to ``catalog`` under ``symbol`` (venue 0); return rows per kind.

    The whole file is loaded and checked before the first write, so a malformed file
    leaves the catalog (and its instrument registry) untouched.
    """
    return ingest_venues([(path, fmt, 0)], catalog, symbol)


def ingest_venues(files: list[tuple[str | Path, str | None, int]], catalog: Catalog, symbol: str) -> dict[str, int]:
    """Load ``(path, format, venue_id)`` files of one instrument and write them to ``catalog``
    under ``symbol``, each row stamped with its file's venue; return rows per kind.

    Files of the same kind (one per venue) are merged before the write, since the
    catalog replaces a day's file whole. Every file is loaded and checked before the
    first write, so a malformed one leaves the catalog untouched.
    """
    per_kind: dict[str, list[np.ndarray]] = {}
    for path, fmt, venue in files:
        if not 0 <= int(venue) < 256:
            raise ValueError(f"{path}: venue id {venue} is not in 0..255")
        for kind, array in load(path, fmt).items():
            array["venue_id"] = venue
            per_kind.setdefault(kind, []).append(array)
    counts = {}
    for kind, arrays in per_kind.items():
        merged = arrays[0] if len(arrays) == 1 else concat_records(arrays, arrays[0].dtype)
        catalog.write(kind, symbol, merged)
        counts[kind] = len(merged)
    return counts
