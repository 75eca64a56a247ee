"""What reconciliation concludes, per instrument, and the result it hands back to its caller."""

from __future__ import annotations

from collections import namedtuple
from dataclasses import dataclass

import numpy as np

Verdict = namedtuple("Verdict", "RECONCILED BREAK")(0, 1)
"""RECONCILED: after the correcting events the engine agrees with the venue. BREAK: it
may not, and the caller halts trading in that instrument and raises an alert."""

BreakReason = namedtuple(
    "BreakReason", "MISSING_REPORT OVERFILL FILL_GAP UNKNOWN_ORDER POSITION_MISMATCH NO_PRICE"
)(1, 2, 4, 8, 16, 32)
"""Bit flags of a verdict's ``reasons``; any bit set makes the verdict a BREAK.

* MISSING_REPORT: a report needed to decide was not answered, does not cover the
  order's life, or could not be read (a missing report never means flat).
* OVERFILL: booking the venue's new fills would take an order past its size or past
  what the venue says it filled: something was booked twice. Nothing is booked.
* FILL_GAP: the venue says an order filled more than the fills we have explain.
* UNKNOWN_ORDER: the venue has an open order this engine did not place or thinks finished.
* POSITION_MISMATCH: the venue's position differs from what our fills explain; the
  position was set to the venue's by an adjusting fill (unless ``adopt_positions``).
* NO_PRICE: a position needed an adjustment, but there was no price to book it at.
"""

VERDICT_DTYPE = np.dtype(
    [
        ("internal_qty", "<i8"), ("corrected_qty", "<i8"), ("venue_qty", "<i8"), ("reasons", "<u4"),
        ("instrument_id", "<i4"), ("verdict", "u1"), ("has_venue_qty", "u1"),
    ],
    align=True,
)
"""One instrument's verdict: its position before and after the correcting events, the
venue's position (meaningful only when ``has_venue_qty``), the BreakReason bits and the
Verdict."""


def reason_names(reasons: int) -> list[str]:
    """Name the BreakReason bits set in ``reasons``, lowest bit first (for logs and alerts)."""
    return [name for name, bit in BreakReason._asdict().items() if reasons & bit]


@dataclass(frozen=True, eq=False)
class ReconciliationResult:
    """What one reconciliation found and what the caller does about it.

    The caller feeds ``events`` through ``step`` in order, before any other venue
    report, so the order table and positions are corrected by the code that always
    changes them and the journal records the correction; adds ``new_trade_ids`` to its
    set of applied venue trade ids in the same transaction; halts every instrument whose
    verdict is BREAK; and logs ``findings``. ``external_orders`` are the venue's open
    orders this engine does not manage (left at the venue for an operator).
    """

    events: np.ndarray
    new_trade_ids: np.ndarray
    verdicts: np.ndarray
    external_orders: np.ndarray
    findings: tuple[str, ...]

    @property
    def halted_instruments(self) -> np.ndarray:
        """Return the ids of the instruments whose verdict is BREAK."""
        return self.verdicts["instrument_id"][self.verdicts["verdict"] == Verdict.BREAK]

    @property
    def reconciled(self) -> bool:
        """Whether every instrument reconciled."""
        return bool(np.all(self.verdicts["verdict"] == Verdict.RECONCILED))
