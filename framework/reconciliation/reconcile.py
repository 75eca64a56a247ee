"""``reconcile``: the engine's orders and positions against the venue's reports, as pure logic.

No I/O, no clock, no randomness: the same pipeline state, venue snapshot and applied
trade ids give the same result in every run and every process. The rules live in the
modules beside this one (``fills``, ``orders``, ``position_check``) and in
``docs/concepts/reconciliation.md``.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from framework.reconciliation.fills import prepare_fills
from framework.reconciliation.ledger import Ledger
from framework.reconciliation.orders import reconcile_orders
from framework.reconciliation.position_check import reconcile_positions
from framework.reconciliation.reports import VenueSnapshot
from framework.reconciliation.verdicts import VERDICT_DTYPE, BreakReason, ReconciliationResult, Verdict
from framework.state import Pipeline


def _id_array(ids: Iterable[int] | np.ndarray) -> np.ndarray:
    if isinstance(ids, np.ndarray):
        return ids.astype(np.int64, copy=False)
    return np.fromiter(ids, np.int64)


def _flag_missing_reports(snapshot: VenueSnapshot, ledger: Ledger) -> None:
    """A report about every instrument that did not come breaks every instrument."""
    if not snapshot.has_open_orders:
        ledger.flag_all(BreakReason.MISSING_REPORT, "the venue did not answer the open-orders request")
    if not snapshot.has_positions:
        ledger.flag_all(BreakReason.MISSING_REPORT, "the venue did not answer the positions request")
    if not snapshot.has_fills:
        ledger.note("the venue did not answer the fills request: no fill is booked")


def _verdicts(internal_qty: np.ndarray, ledger: Ledger, venue_qty: np.ndarray, known: np.ndarray) -> np.ndarray:
    out = np.zeros(len(internal_qty), VERDICT_DTYPE)
    out["instrument_id"] = np.arange(len(internal_qty))
    out["internal_qty"] = internal_qty
    out["corrected_qty"] = internal_qty + ledger.position_deltas()
    out["venue_qty"] = venue_qty
    out["has_venue_qty"] = known
    out["reasons"] = ledger.reasons
    out["verdict"] = np.where(ledger.reasons != 0, Verdict.BREAK, Verdict.RECONCILED)
    return out


def reconcile(p: Pipeline, snapshot: VenueSnapshot, applied_trade_ids: Iterable[int] | np.ndarray = (), *,
              adopt_positions: bool = False) -> ReconciliationResult:
    """Compare the pipeline ``p`` with the venue's ``snapshot``; return the corrections and a verdict per instrument.

    ``applied_trade_ids`` are the venue trade ids (and synthetic ids) already booked
    into ``p``; the caller keeps them, with the journal, and adds the result's
    ``new_trade_ids`` once it has fed the result's events to ``step``. Pass
    ``adopt_positions`` only on a cold start, when a position no fill explains is
    expected and should be taken over rather than halt the instrument.
    """
    n = p.positions.shape[0]
    applied = _id_array(applied_trade_ids)
    ledger = Ledger(n)
    _flag_missing_reports(snapshot, ledger)
    fills = prepare_fills(snapshot.fills, applied, n, ledger)
    external_orders = reconcile_orders(p.orders, snapshot, fills, ledger)
    venue_qty, known = reconcile_positions(p.positions, p.market, snapshot, applied, ledger, adopt_positions)
    ts_recv = max(snapshot.received_ns, int(p.exec_state[0]["now"]))  # ``step`` refuses anything older
    return ReconciliationResult(
        events=ledger.events(ts_recv, snapshot.venue_id),
        new_trade_ids=ledger.trade_ids(),
        verdicts=_verdicts(p.positions["qty"].astype(np.int64), ledger, venue_qty, known),
        external_orders=external_orders,
        findings=tuple(ledger.findings),
    )
