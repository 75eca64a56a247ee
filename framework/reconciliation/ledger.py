"""The ledger one reconciliation writes into: correcting reports, break reasons and findings.

Corrections are collected as they are found and put in one fixed order at the end, so
the events do not depend on the order of the venue's records or of the checks:

1. ACCEPTED for orders the venue has working that we still think are in flight;
2. every fill, in time order (venue time, then trade id);
3. MODIFIED where the venue's working price or size differs from ours;
4. CANCELED or EXPIRED for orders the venue no longer has;
5. position adjustments, by instrument.

Each order's reports therefore reach ``step`` in an order its state machine accepts.
"""

from __future__ import annotations

from collections import namedtuple
from typing import NamedTuple

import numpy as np

from framework.events import EventKind, Side, empty_events, from_fixed
from framework.reconciliation.verdicts import reason_names

Phase = namedtuple("Phase", "ACCEPT FILL AMEND CLOSE ADJUST")(0, 1, 2, 3, 4)
"""Where a correction goes in the event sequence (see the module docstring)."""

FILL_KINDS = (EventKind.PARTIALLY_FILLED, EventKind.FILLED)


class Correction(NamedTuple):
    """One correcting execution report, before it becomes an ``EVENT_DTYPE`` record.

    ``key`` orders corrections within a phase: the fill's canonical index, the client
    order id or the instrument id. ``trade_id`` is the fill's venue or synthetic trade
    id, 0 for reports that are not fills.
    """

    phase: int
    key: int
    kind: int
    instrument_id: int
    side: int
    client_order_id: int
    price: int
    size: int
    leaves_qty: int
    fee: int
    flags: int
    ts_event: int
    trade_id: int = 0


def qty(value: int) -> str:
    """Format a fixed-point quantity or price in whole units, for findings."""
    return f"{from_fixed(int(value)):g}"


def side_name(side: int) -> str:
    """Name a ``Side``, for findings."""
    return {Side.BUY: "buy", Side.SELL: "sell"}.get(int(side), f"side {int(side)}")


class Ledger:
    """Collects corrections, per-instrument break reasons and findings for one reconciliation."""

    def __init__(self, n_instruments: int) -> None:
        self.reasons = np.zeros(n_instruments, np.uint32)
        self.findings: list[str] = []
        self._corrections: list[Correction] = []

    def note(self, finding: str) -> None:
        """Record a finding that breaks nothing."""
        self.findings.append(finding)

    def flag(self, instrument_id: int, reason: int, finding: str) -> None:
        """Mark ``instrument_id`` as a break for ``reason`` and record why."""
        self.reasons[instrument_id] |= reason
        self.findings.append(f"instrument {instrument_id}: {finding} [{', '.join(reason_names(reason))}]")

    def flag_all(self, reason: int, finding: str) -> None:
        """Mark every instrument as a break for ``reason`` (a report about all of them is missing)."""
        self.reasons[:] |= reason
        self.findings.append(f"all instruments: {finding} [{', '.join(reason_names(reason))}]")

    def add(self, correction: Correction) -> None:
        """Add one correcting report."""
        self._corrections.append(correction)

    def position_deltas(self) -> np.ndarray:
        """Return, per instrument, the signed quantity the fills added so far will book."""
        deltas = np.zeros(len(self.reasons), np.int64)
        for c in self._corrections:
            if c.kind in FILL_KINDS:
                deltas[c.instrument_id] += c.side * c.size
        return deltas

    def trade_ids(self) -> np.ndarray:
        """Return the sorted trade ids of every fill added, the ids the caller marks applied."""
        return np.sort(np.array([c.trade_id for c in self._corrections if c.kind in FILL_KINDS], np.int64))

    def events(self, ts_recv: int, venue_id: int) -> np.ndarray:
        """Return the corrections as ``EVENT_DTYPE`` reports in their fixed order, received at ``ts_recv``."""
        ordered = sorted(self._corrections, key=lambda c: (c.phase, c.key, c.kind))
        out = empty_events(len(ordered))
        for i, c in enumerate(ordered):
            ev = out[i]
            ev["ts_event"], ev["ts_recv"], ev["kind"], ev["side"] = c.ts_event, ts_recv, c.kind, c.side
            ev["flags"], ev["venue_id"], ev["instrument_id"] = c.flags, venue_id, c.instrument_id
            ev["client_order_id"], ev["price"], ev["size"] = c.client_order_id, c.price, c.size
            ev["leaves_qty"], ev["fee"] = c.leaves_qty, c.fee
        return out
