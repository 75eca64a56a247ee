"""Performance statistics: plain functions from numpy arrays to numbers.

Backtest and live share these so that a strategy is judged by the same arithmetic in
both. Every function accepts empty or single-element input and returns a documented
neutral value (``0.0``, an empty array or ``nan``) instead of raising, because a run
that never traded still deserves a report.

Conventions
-----------
* ``equity`` is a float64 series of portfolio values in the quote currency, sampled at a
  fixed interval (``EQUITY_DTYPE["equity"]``).
* ``fills`` is an array of ``FILL_DTYPE`` records in the order they happened; price,
  size and fee are fixed point and are converted with ``PRICE_SCALE`` here.
* Ratios are annualized as ``per-period ratio * sqrt(periods_per_year)`` with a zero
  risk-free rate. ``periods_per_year`` comes from the sample interval and a calendar:
  ``"24/7"`` (365 days x 24 h, crypto) or ``"equity"`` (252 sessions x 6.5 h).
"""

from __future__ import annotations

import math

import numpy as np

from framework.events import INV_PRICE_SCALE

NS_PER_SECOND = 1_000_000_000
NS_PER_HOUR = 3600 * NS_PER_SECOND
NS_PER_DAY = 24 * NS_PER_HOUR

CALENDARS: dict[str, str] = {
    "24/7": "24/7 calendar",
    "equity": "equity calendar (252 sessions x 6.5 h)",
}
"""Supported calendars and how the annualization basis names them."""

_EQUITY_SESSIONS = 252
_EQUITY_SESSION_NS = int(6.5 * NS_PER_HOUR)

_ZERO_RISK_RTOL = 1e-10
"""A risk measure below this fraction of the largest absolute return counts as zero:
the standard deviation of identical floats is rounding noise, not risk."""


# --------------------------------------------------------------------------- returns


def simple_returns(equity: np.ndarray) -> np.ndarray:
    """Return the period returns ``equity[i] / equity[i-1] - 1`` (length ``n - 1``).

    Ratios are computed on these so that they do not depend on account size. A
    period that starts from zero equity has no defined return; count it as 0.0 so
    that one blown-up sample does not turn every ratio into nan. Fewer than two
    samples give an empty array.
    """
    e = np.asarray(equity, dtype=np.float64).ravel()
    if e.size < 2:
        return np.empty(0, dtype=np.float64)
    prev = e[:-1]
    out = np.zeros(e.size - 1, dtype=np.float64)
    np.divide(e[1:] - prev, prev, out=out, where=prev != 0.0)
    return out


def total_return(equity: np.ndarray, initial_capital: float) -> float:
    """Return the final equity over the initial capital, minus one.

    Measure against the capital the run started with, not the first sample, so that
    a fill before the first sample still counts. An empty series means nothing
    happened: 0.0. A non-positive or non-finite initial capital has no return: nan.
    """
    e = np.asarray(equity, dtype=np.float64).ravel()
    if e.size == 0:
        return 0.0
    if not (math.isfinite(initial_capital) and initial_capital > 0.0):
        return math.nan
    return float(e[-1] / initial_capital - 1.0)


def _ratio(mean: float, risk: float, scale: float, periods_per_year: float) -> float:
    """Annualize ``mean / risk``; 0.0 when there is no return to rate, nan when the
    return is non-zero but the risk is zero (the ratio is unbounded)."""
    if scale == 0.0:
        return 0.0
    if risk <= _ZERO_RISK_RTOL * scale:
        return math.nan
    return float(mean / risk * math.sqrt(max(periods_per_year, 0.0)))


def sharpe_ratio(returns: np.ndarray, periods_per_year: float) -> float:
    """Return the annualized Sharpe ratio: mean / sample std (ddof=1) * sqrt(periods_per_year).

    Use a zero risk-free rate: the strategies are intraday and the rate over one
    period is negligible next to the noise. Fewer than two returns, or all returns
    zero (a run that never moved), give 0.0; identical non-zero returns (no measured
    risk) give nan rather than an infinite ratio.
    """
    r = np.asarray(returns, dtype=np.float64).ravel()
    if r.size < 2:
        return 0.0
    scale = float(np.max(np.abs(r)))
    return _ratio(float(np.mean(r)), float(np.std(r, ddof=1)), scale, periods_per_year)


def sortino_ratio(returns: np.ndarray, periods_per_year: float) -> float:
    """Return the annualized Sortino ratio: mean / downside deviation * sqrt(periods_per_year).

    Penalize only losses, since upside volatility is not risk to the owner. The
    downside deviation is ``sqrt(mean(min(r, 0)**2))`` over *all* periods (zero
    target, population form), so a strategy with rare small losses is not flattered
    by dividing by the count of losing periods only. Fewer than two returns, or all
    returns zero, give 0.0; a non-zero mean with no losing period gives nan.
    """
    r = np.asarray(returns, dtype=np.float64).ravel()
    if r.size < 2:
        return 0.0
    scale = float(np.max(np.abs(r)))
    downside = float(np.sqrt(np.mean(np.square(np.minimum(r, 0.0)))))
    return _ratio(float(np.mean(r)), downside, scale, periods_per_year)


def drawdown(equity: np.ndarray) -> np.ndarray:
    """Return the fraction by which each sample lies below the running peak (>= 0).

    Report losses relative to the best point reached, which is what an owner
    experiences. Where the running peak is not positive the fraction is undefined;
    report 0.0 there. Empty input gives an empty array.
    """
    e = np.asarray(equity, dtype=np.float64).ravel()
    if e.size == 0:
        return np.empty(0, dtype=np.float64)
    peak = np.maximum.accumulate(e)
    out = np.zeros(e.size, dtype=np.float64)
    np.divide(peak - e, peak, out=out, where=peak > 0.0)
    return out


def max_drawdown(equity: np.ndarray) -> float:
    """Return the largest drawdown fraction (0.0 for empty or never-falling equity).

    The worst peak-to-trough loss bounds the capital a strategy needs; it lies in
    [0, 1] while equity stays positive.
    """
    dd = drawdown(equity)
    return float(dd.max()) if dd.size else 0.0


# --------------------------------------------------------------------------- fills


def _average_cost(fills: np.ndarray) -> tuple[np.ndarray, np.ndarray, dict[int, tuple[float, float]]]:
    """Replay fills under the average-cost method.

    Return per-fill realized PnL, a mask of fills that reduced (or flipped) a
    position, and the final ``{instrument_id: (quantity, average price)}``.
    Positions are kept in exact fixed-point integers so flat is exactly flat.
    """
    n = len(fills)
    realized = np.zeros(n, dtype=np.float64)
    reducing = np.zeros(n, dtype=bool)
    book: dict[int, tuple[int, float]] = {}
    if n == 0:
        return realized, reducing, {}
    rows = zip(
        fills["instrument_id"].tolist(),
        fills["side"].tolist(),
        fills["price"].tolist(),
        fills["size"].tolist(),
    )
    for i, (inst, side, price, size) in enumerate(rows):
        qty = side * size  # signed fixed point
        if qty == 0:
            continue
        pos, avg = book.get(inst, (0, 0.0))
        px = price * INV_PRICE_SCALE
        if pos == 0 or (pos > 0) == (qty > 0):
            new = pos + qty
            avg = (avg * abs(pos) + px * abs(qty)) / abs(new)
        else:
            closed = min(abs(qty), abs(pos))
            realized[i] = (px - avg) * (closed * INV_PRICE_SCALE) * (1.0 if pos > 0 else -1.0)
            reducing[i] = True
            new = pos + qty
            if new == 0:
                avg = 0.0
            elif (new > 0) != (pos > 0):
                avg = px  # flipped: the remainder opened at this fill's price
        book[inst] = (new, avg)
    positions = {k: (q * INV_PRICE_SCALE, a) for k, (q, a) in book.items()}
    return realized, reducing, positions


def fill_realized_pnl(fills: np.ndarray) -> np.ndarray:
    """Return the realized PnL of each fill (quote currency, fees excluded).

    Attribute PnL to the fill that closes risk, under the average-cost method per
    ``instrument_id``: a fill that adds to a position moves its average price and
    realizes nothing; a fill that reduces or flips it realizes
    ``(price - avg) * closed_qty * sign(position)``, and any flipped remainder opens
    at the fill price. Fills are replayed in array order.
    """
    return _average_cost(fills)[0]


def open_positions(fills: np.ndarray) -> dict[int, tuple[float, float]]:
    """Return ``{instrument_id: (net quantity, average price)}`` after all fills.

    Expose the average-cost state so that callers can mark open positions to market
    consistently with ``fill_realized_pnl``; flat instruments have quantity 0.0.
    """
    return _average_cost(fills)[2]


def hit_rate(fills: np.ndarray) -> float:
    """Return the fraction of position-reducing fills with positive realized PnL.

    Only closing fills win or lose; opening fills are not counted. No closing fill
    gives 0.0 rather than nan so the figure is always printable.
    """
    realized, reducing, _ = _average_cost(fills)
    return _hit_rate(realized, reducing)


def _hit_rate(realized: np.ndarray, reducing: np.ndarray) -> float:
    n = int(np.count_nonzero(reducing))
    return float(np.count_nonzero(realized[reducing] > 0.0) / n) if n else 0.0


def traded_notional(fills: np.ndarray) -> float:
    """Return the sum of ``price * size`` over fills, in the quote currency."""
    if len(fills) == 0:
        return 0.0
    px = fills["price"].astype(np.float64) * INV_PRICE_SCALE
    sz = fills["size"].astype(np.float64) * INV_PRICE_SCALE
    return float(np.dot(px, sz))


def turnover(fills: np.ndarray, mean_equity: float) -> float:
    """Return traded notional divided by mean equity (how many times capital was traded).

    Normalize by capital so that runs of different size compare, and so that fee
    drag can be read as turnover x fee rate. A non-positive or non-finite mean
    equity gives 0.0.
    """
    if not (math.isfinite(mean_equity) and mean_equity > 0.0):
        return 0.0
    return traded_notional(fills) / mean_equity


def fees_paid(fills: np.ndarray) -> float:
    """Return the total fees in the quote currency (rebates are negative fees)."""
    if len(fills) == 0:
        return 0.0
    return float(fills["fee"].astype(np.float64).sum() * INV_PRICE_SCALE)


# --------------------------------------------------------------------------- annualization


def periods_per_year(sample_interval_ns: int, calendar: str) -> float:
    """Return how many sample intervals make up one year of trading time.

    Annualize by the time the market is open, so that ratios compare across sample
    intervals and across venues. ``"24/7"`` counts 365 x 24 h. ``"equity"`` counts
    252 sessions of 6.5 h: intervals up to one session divide the trading time
    (1 minute -> 98280), intervals from one session to one day count one period per
    session (252), and longer intervals count sessions by calendar days (1 week -> 36).
    Raise ValueError for an unknown calendar or a non-positive interval: those are
    configuration errors, not data.
    """
    interval = int(sample_interval_ns)
    if interval <= 0:
        raise ValueError(f"sample_interval_ns must be positive, got {sample_interval_ns}")
    if calendar == "24/7":
        return 365 * NS_PER_DAY / interval
    if calendar == "equity":
        if interval <= _EQUITY_SESSION_NS:
            return _EQUITY_SESSIONS * _EQUITY_SESSION_NS / interval
        return _EQUITY_SESSIONS * NS_PER_DAY / max(interval, NS_PER_DAY)
    raise ValueError(f"unknown calendar {calendar!r}; expected one of {sorted(CALENDARS)}")


_UNITS = (
    (NS_PER_DAY, "day"),
    (NS_PER_HOUR, "hour"),
    (60 * NS_PER_SECOND, "minute"),
    (NS_PER_SECOND, "second"),
    (1_000_000, "millisecond"),
    (1_000, "microsecond"),
    (1, "nanosecond"),
)


def format_interval(interval_ns: int) -> str:
    """Name an interval by the largest unit that divides it: ``"1-minute"``, ``"250-millisecond"``."""
    interval = int(interval_ns)
    for unit, name in _UNITS:
        if interval >= unit and interval % unit == 0:
            return f"{interval // unit}-{name}"
    return f"{interval}-nanosecond"


def annualization_basis(sample_interval_ns: int, calendar: str) -> str:
    """Describe how ratios are annualized, e.g. ``"1-minute returns, 525600 periods/year, 24/7 calendar"``.

    Print this next to every ratio: a Sharpe ratio is meaningless without its basis.
    """
    ppy = periods_per_year(sample_interval_ns, calendar)
    count = f"{ppy:.0f}" if abs(ppy - round(ppy)) < 1e-9 * max(ppy, 1.0) else f"{ppy:.2f}"
    return f"{format_interval(sample_interval_ns)} returns, {count} periods/year, {CALENDARS[calendar]}"


# --------------------------------------------------------------------------- summary


def summarize(
    equity: np.ndarray,
    fills: np.ndarray,
    initial_capital: float,
    sample_interval_ns: int,
    calendar: str,
) -> dict[str, float | int | str]:
    """Return the headline metrics of a run as a flat, JSON-friendly dict.

    ``equity`` is an ``EQUITY_DTYPE`` array sampled every ``sample_interval_ns``;
    ``fills`` a ``FILL_DTYPE`` array. Ratios come from the equity samples; fill
    statistics from the fills. ``realized_pnl`` and ``unrealized_pnl`` are the
    portfolio's own figures at the last sample (falling back to the fills' realized
    PnL when there is no sample), so the report agrees with what the run saw. Ratios
    that are undefined are nan; callers writing JSON should map nan to null.

    Keys: total_return, sharpe, sortino, annualization, periods_per_year, n_periods,
    max_drawdown, n_fills, traded_notional, turnover, fees, hit_rate, final_equity,
    realized_pnl, unrealized_pnl.
    """
    ppy = periods_per_year(sample_interval_ns, calendar)
    if len(equity):
        values = np.asarray(equity["equity"], dtype=np.float64)
        final_equity = float(values[-1])
        realized = float(equity["realized_pnl"][-1])
        unrealized = float(equity["unrealized_pnl"][-1])
        mean_equity = float(values.mean())
    else:
        values = np.empty(0, dtype=np.float64)
        final_equity = float(initial_capital)
        realized = float(fill_realized_pnl(fills).sum())
        unrealized = 0.0
        mean_equity = float(initial_capital)
    returns = simple_returns(values)
    pnl, reducing, _ = _average_cost(fills)
    return {
        "total_return": total_return(values, initial_capital),
        "sharpe": sharpe_ratio(returns, ppy),
        "sortino": sortino_ratio(returns, ppy),
        "annualization": annualization_basis(sample_interval_ns, calendar),
        "periods_per_year": ppy,
        "n_periods": int(returns.size),
        "max_drawdown": max_drawdown(values),
        "n_fills": int(len(fills)),
        "traded_notional": traded_notional(fills),
        "turnover": turnover(fills, mean_equity),
        "fees": fees_paid(fills),
        "hit_rate": _hit_rate(pnl, reducing),
        "final_equity": final_equity,
        "realized_pnl": realized,
        "unrealized_pnl": unrealized,
    }
