"""The venue's fills made fit to book: one canonical order, one record per trade id, new ones marked.

Venues page their fill histories, and adapters retry pages, so the same fill can come
twice in one report and again in the next; it must be booked once. A fill is known by
its trade id (``ids.effective_trade_ids``), and it is new unless the caller's set of
applied trade ids already holds that id.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from framework.events import Side, raw_copy
from framework.reconciliation.ids import effective_trade_ids
from framework.reconciliation.ledger import Ledger
from framework.reconciliation.reports import VENUE_FILL_DTYPE
from framework.reconciliation.verdicts import BreakReason

_SORT_FIELDS = (
    "ts_event", "venue_trade_id", "venue_order_id", "client_order_id", "instrument_id", "side", "price", "size",
    "fee", "liquidity",
)
"""Canonical order of a fills report: venue time, then trade id, then every other field."""


@dataclass(frozen=True, eq=False)
class FillSet:
    """The readable fills of a report, in canonical order, each once.

    ``trade_ids[i]`` is the id of ``rows[i]``; ``is_new[i]`` says whether it is not yet applied.
    """

    rows: np.ndarray
    trade_ids: np.ndarray
    is_new: np.ndarray

    @classmethod
    def empty(cls) -> FillSet:
        """A report with no fills (what a missing fills report contributes)."""
        return cls(np.zeros(0, VENUE_FILL_DTYPE), np.zeros(0, np.int64), np.zeros(0, bool))


def canonical(records: np.ndarray, fields: tuple[str, ...]) -> np.ndarray:
    """Return ``records`` sorted by ``fields`` (first field most significant), whatever order they came in."""
    order = np.lexsort(tuple(records[name] for name in reversed(fields)))
    return raw_copy(records, order)  # byte for byte: equal reports give equal bytes


def _readable(fills: np.ndarray, n_instruments: int, ledger: Ledger) -> np.ndarray:
    """Keep fills of instruments we trade with a side and a size; flag the rest."""
    in_range = (fills["instrument_id"] >= 0) & (fills["instrument_id"] < n_instruments)
    sane = ((fills["side"] == Side.BUY) | (fills["side"] == Side.SELL)) & (fills["size"] > 0)
    for f in fills[~in_range]:
        ledger.note(f"fill {f['venue_trade_id']} is for instrument {f['instrument_id']}, which we do not trade")
    for f in fills[in_range & ~sane]:
        ledger.flag(int(f["instrument_id"]), BreakReason.MISSING_REPORT,
                    f"fill {f['venue_trade_id']} has side {f['side']} and size {f['size']}: cannot book it")
    return fills[in_range & sane]


def prepare_fills(fills: np.ndarray | None, applied_trade_ids: np.ndarray, n_instruments: int,
                  ledger: Ledger) -> FillSet:
    """Put a fills report in canonical order, drop repeated trade ids and mark the new fills."""
    if fills is None:
        return FillSet.empty()
    rows = _readable(canonical(fills, _SORT_FIELDS), n_instruments, ledger)
    ids = effective_trade_ids(rows)
    _, first = np.unique(ids, return_index=True)
    keep = np.sort(first)
    if len(keep) < len(rows):
        ledger.note(f"{len(rows) - len(keep)} repeated fills in the fills report were counted once")
    rows, ids = rows[keep], ids[keep]
    return FillSet(rows, ids, ~np.isin(ids, applied_trade_ids))
