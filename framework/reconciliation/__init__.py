"""Reconciliation with a venue, as pure logic: from the venue's reports and the pipeline's
state, the correcting execution reports and a verdict per instrument.

The venue is the authority; a report it did not send never means "nothing" (no orders,
flat); fills are booked once, known by their venue trade id. See
``docs/concepts/reconciliation.md`` for the rules and what an adapter must provide.
"""

from framework.reconciliation.ids import synthetic_id
from framework.reconciliation.reconcile import reconcile
from framework.reconciliation.reports import (
    VENUE_FILL_DTYPE,
    VENUE_ORDER_DTYPE,
    VENUE_POSITION_DTYPE,
    VenueOrderStatus,
    VenueSnapshot,
)
from framework.reconciliation.verdicts import (
    VERDICT_DTYPE,
    BreakReason,
    ReconciliationResult,
    Verdict,
    reason_names,
)

__all__ = [
    "VENUE_FILL_DTYPE",
    "VENUE_ORDER_DTYPE",
    "VENUE_POSITION_DTYPE",
    "VERDICT_DTYPE",
    "BreakReason",
    "ReconciliationResult",
    "VenueOrderStatus",
    "VenueSnapshot",
    "Verdict",
    "reason_names",
    "reconcile",
    "synthetic_id",
]
