"""Positions stage: quantity, average-cost price, realized and unrealized PnL, fees,
exposure, high-water mark and drawdown, per instrument and for the portfolio.

The average-cost method: adding to a position moves the average price; reducing it
realizes ``closed_qty * (fill_price - avg_price)`` in the position's direction; a fill
that flips the position opens the remainder at the fill price. Fees are kept apart
from trading PnL so reports can show both. Portfolio totals are maintained
incrementally (old contribution out, new one in) so that marking costs O(1) per event.

Invariant (tested): ``equity == initial_capital + cash_flows + sum(qty * mark)`` where
cash flows are ``-side * size * price - fee`` summed over fills.
"""

from __future__ import annotations

from numba import njit

from framework.events import INV_PRICE_SCALE
from framework.jit import HOT, KERNEL


@njit(**HOT)
def _refresh_portfolio(portfolio) -> None:
    """Recompute equity and move the high-water mark and the maximum drawdown.

    The current drawdown is derived when asked (``drawdown``), and the maximum is
    tested by a multiplication: marking runs on every price change, and a division
    there costs more than the rest of the update.
    """
    pf = portfolio[0]
    equity = pf.initial_capital + pf.realized_pnl + pf.unrealized_pnl - pf.fees
    pf.equity = equity
    hwm = pf.high_water_mark
    if equity > hwm:
        pf.high_water_mark = equity
    elif hwm > 0.0 and hwm - equity > pf.max_drawdown * hwm:
        pf.max_drawdown = (hwm - equity) / hwm


@njit(**KERNEL)
def drawdown(portfolio) -> float:
    """The portfolio's current drawdown: the fraction of equity lost from its high-water mark."""
    pf = portfolio[0]
    if pf.high_water_mark <= 0.0 or pf.equity >= pf.high_water_mark:
        return 0.0
    return (pf.high_water_mark - pf.equity) / pf.high_water_mark


@njit(**HOT)
def _refresh_instrument(p) -> None:
    """Recompute one instrument's net PnL and move its high-water mark and maximum drawdown."""
    pnl = p.realized_pnl + p.unrealized_pnl - p.fees
    p.pnl = pnl
    if pnl > p.high_water_mark:
        p.high_water_mark = pnl
    elif p.high_water_mark - pnl > p.max_drawdown:
        p.max_drawdown = p.high_water_mark - pnl


@njit(**HOT)
def _set_mark(positions, portfolio, instrument_id: int, mark: float) -> None:
    p = positions[instrument_id]
    pf = portfolio[0]
    qty = p.qty * INV_PRICE_SCALE
    old_unrealized = p.unrealized_pnl
    old_exposure = p.exposure
    p.mark = mark
    p.unrealized_pnl = qty * (mark - p.avg_price) if p.qty != 0 else 0.0
    p.exposure = abs(qty) * mark
    pf.unrealized_pnl += p.unrealized_pnl - old_unrealized
    pf.gross_exposure += p.exposure - old_exposure
    _refresh_instrument(p)


@njit(**HOT)
def mark_to_market(positions, portfolio, instrument_id: int, price: int) -> bool:
    """Revalue one instrument at ``price`` (fixed point) and refresh equity and drawdown;
    return whether equity moved (risk checks its loss triggers only then).

    A price equal to the current mark changes nothing (the sums it would add are exact
    zeros), so it returns at once: most prints repeat the last price. The test is on the
    fixed-point price last marked (``mark_price``): one integer comparison, where the
    float mark took a conversion, a multiplication and a comparison with its NaN case.
    ``mark`` changes only here once it is set (``apply_fill`` sets only a missing one),
    so an equal ``mark_price`` means an equal mark.
    """
    pos = positions[instrument_id]
    if price == pos.mark_price or price <= 0:
        return False
    pos.mark_price = price
    mark = price * INV_PRICE_SCALE
    if mark == pos.mark:
        return False
    if pos.qty == 0:
        pos.mark = mark
        return False
    _set_mark(positions, portfolio, instrument_id, mark)
    _refresh_portfolio(portfolio)
    return True


@njit(**KERNEL)
def apply_fill(positions, portfolio, instrument_id: int, side: int, price: int, size: int, fee: int) -> None:
    """Book one fill (fixed-point price, size and fee) into the position and the portfolio."""
    p = positions[instrument_id]
    pf = portfolio[0]
    px = price * INV_PRICE_SCALE
    old_qty = p.qty
    old_exposure = p.exposure
    delta = side * size
    new_qty = old_qty + delta
    realized = 0.0
    if old_qty == 0 or (old_qty > 0) == (delta > 0):
        total = abs(old_qty) + size
        p.avg_price = (abs(old_qty) * p.avg_price + size * px) / total
    else:
        closed = min(abs(old_qty), size)
        direction = 1.0 if old_qty > 0 else -1.0
        realized = closed * INV_PRICE_SCALE * (px - p.avg_price) * direction
        if new_qty == 0:
            p.avg_price = 0.0
        elif (new_qty > 0) != (old_qty > 0):
            p.avg_price = px
    p.qty = new_qty
    fee_value = fee * INV_PRICE_SCALE
    p.realized_pnl += realized
    p.fees += fee_value
    p.traded_notional += size * INV_PRICE_SCALE * px
    p.n_fills += 1
    pf.realized_pnl += realized
    pf.fees += fee_value
    pf.net_position += delta * INV_PRICE_SCALE
    pf.gross_exposure -= old_exposure
    if p.mark <= 0.0:  # no market price yet: the fill's is the first
        p.mark = px
        p.mark_price = price
    old_unrealized = p.unrealized_pnl
    p.unrealized_pnl = new_qty * INV_PRICE_SCALE * (p.mark - p.avg_price) if new_qty != 0 else 0.0
    p.exposure = abs(new_qty * INV_PRICE_SCALE) * p.mark
    pf.unrealized_pnl += p.unrealized_pnl - old_unrealized
    pf.gross_exposure += p.exposure
    _refresh_instrument(p)
    _refresh_portfolio(portfolio)
