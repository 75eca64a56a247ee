"""Positions: set every instrument to the venue's position, and judge whether our fills explain it.

The venue is the authority on what we hold. After the fills are booked, an instrument
whose position still differs from the venue's gets one adjusting fill that sets it to
the venue's, even when the instrument breaks: a halted instrument must still be seen
as it really is by the risk stage and the kill switch. So a warm restart with an empty
state never trades a live position flat, and never leaves the engine believing it is
flat. The adjustment is an external fill (client order id 0) priced at the venue's
average entry price, or when the venue gives none at the pipeline's reference price
(mid, else last trade); with neither, nothing is booked and the instrument breaks with
NO_PRICE.

A position our fills do not explain is a break, POSITION_MISMATCH, unless the caller
passes ``adopt_positions`` (a cold start, where there is no history to explain it).
The adjustment's id comes from the venue's position record, so a second reconciliation
against the same report knows the adjustment was made and keeps the same verdict.
"""

from __future__ import annotations

import numpy as np

from framework.events import EventKind, Liquidity
from framework.market_data import reference_price
from framework.reconciliation.fills import canonical
from framework.reconciliation.ids import adjustment_id
from framework.reconciliation.ledger import Correction, Ledger, Phase, qty
from framework.reconciliation.reports import VenueSnapshot
from framework.reconciliation.verdicts import BreakReason


def _venue_positions(positions: np.ndarray, ledger: Ledger) -> dict[int, np.void]:
    """Return the one venue record of each instrument; flag instruments missing or reported twice."""
    n = len(ledger.reasons)
    ids = positions["instrument_id"]
    ours = (ids >= 0) & (ids < n)
    for iid in np.unique(ids[~ours]).tolist():
        ledger.note(f"the venue reports a position in instrument {iid}, which we do not trade")
    counts = np.bincount(ids[ours], minlength=n)
    for iid in np.flatnonzero(counts != 1).tolist():
        said = "no position" if counts[iid] == 0 else f"{counts[iid]} positions"
        ledger.flag(iid, BreakReason.MISSING_REPORT, f"the positions report has {said} for it")
    return {int(r["instrument_id"]): r for r in canonical(positions[ours], ("instrument_id",))
            if counts[r["instrument_id"]] == 1}


def _check(market: np.ndarray, iid: int, venue: np.void, expected: int, already: bool, ledger: Ledger,
           adopt_positions: bool) -> None:
    """Compare one instrument with the venue's record; adjust it and flag it as the rules say."""
    target = int(venue["qty"])
    if expected == target:
        if already and not adopt_positions:
            ledger.flag(iid, BreakReason.POSITION_MISMATCH,
                        f"position {qty(target)} matches the venue only through an adjustment for this report")
        return
    if already:
        ledger.flag(iid, BreakReason.POSITION_MISMATCH,
                    f"position {qty(expected)} still differs from the venue's {qty(target)} after this "
                    f"report's adjustment was applied; not adjusting twice")
        return
    price = int(venue["avg_price"]) if venue["avg_price"] > 0 else int(reference_price(market, iid))
    if price <= 0:
        ledger.flag(iid, BreakReason.POSITION_MISMATCH | BreakReason.NO_PRICE,
                    f"fills explain {qty(expected)}, the venue holds {qty(target)}, and there is no price to "
                    f"book the difference at")
        return
    delta = target - expected
    ledger.add(Correction(Phase.ADJUST, iid, EventKind.FILLED, iid, 1 if delta > 0 else -1, 0, price, abs(delta),
                          0, 0, Liquidity.NONE, int(venue["ts_event"]), adjustment_id(venue)))
    what = f"fills explain {qty(expected)}, the venue holds {qty(target)}: set to the venue's at {qty(price)}"
    if adopt_positions:
        ledger.note(f"instrument {iid}: {what} (adopted)")
    else:
        ledger.flag(iid, BreakReason.POSITION_MISMATCH, what)


def reconcile_positions(positions: np.ndarray, market: np.ndarray, snapshot: VenueSnapshot,
                        applied_trade_ids: np.ndarray, ledger: Ledger,
                        adopt_positions: bool) -> tuple[np.ndarray, np.ndarray]:
    """Adjust every instrument to the venue's position after the fills in ``ledger``.

    ``positions`` and ``market`` are the pipeline's arrays. Return the venue's quantity
    per instrument and whether the venue reported it (an unreported one is unknown, not 0).
    """
    n = len(ledger.reasons)
    venue_qty, known = np.zeros(n, np.int64), np.zeros(n, bool)
    if not snapshot.has_positions:
        return venue_qty, known
    expected = positions["qty"].astype(np.int64) + ledger.position_deltas()
    for iid, venue in sorted(_venue_positions(snapshot.positions, ledger).items()):
        venue_qty[iid], known[iid] = venue["qty"], True
        already = bool(np.isin(adjustment_id(venue), applied_trade_ids))
        _check(market, iid, venue, int(expected[iid]), already, ledger, adopt_positions)
    return venue_qty, known
