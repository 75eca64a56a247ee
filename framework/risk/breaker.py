"""The circuit breaker: ACTIVE, REDUCING, HALTED, and what trips it.

Triggers (each trips to the state its ``on_*`` limit names, ACTIVE meaning "only
reject"): the day's loss beyond ``daily_loss_limit``, a drawdown from the high-water
mark beyond ``max_drawdown``, a reject rate beyond ``max_reject_rate``, a throttle
breach, an order refused for stale data, fills faster than the fill throttle.

The breaker only escalates by itself (ACTIVE -> REDUCING -> HALTED). It returns to
ACTIVE only through a BREAKER_RESET control event, which a person sends. Loss and
drawdown trips are edge-triggered: each trips once when its limit is crossed (the
loss once per day, the drawdown again only after it recovered below the limit), so
that a reset is not undone by the very next price while the condition persists.
"""

from __future__ import annotations

from numba import njit

from framework.jit import HOT, KERNEL
from framework.risk.records import BreakerState, Trip

DAY_NS = 86_400_000_000_000


@njit(**KERNEL)
def trip(state, target: int, cause: int, now: int) -> None:
    """Escalate the breaker to ``target`` for ``cause`` (never de-escalates; ACTIVE does nothing)."""
    rs = state[0]
    if target <= rs.breaker:
        return
    if rs.breaker == BreakerState.ACTIVE:
        rs.trip = cause
        rs.trip_ts = now
    rs.breaker = target
    rs.n_trips += 1


@njit(**KERNEL)
def reset(state) -> None:
    """Return to ACTIVE: only ever called for an operator's BREAKER_RESET."""
    rs = state[0]
    rs.breaker = BreakerState.ACTIVE
    rs.trip = Trip.NONE


@njit(**KERNEL)
def _new_day(state, limits, equity: float, now: int) -> None:
    rs = state[0]
    offset = limits[0].day_offset_ns
    rs.day_end_ts = (now - offset) // DAY_NS * DAY_NS + DAY_NS + offset
    rs.day_start_equity = equity
    rs.loss_tripped = 0


@njit(**HOT)
def _check_pnl(state, limits, pf, now: int) -> None:
    rs = state[0]
    lim = limits[0]
    if lim.daily_loss_limit > 0.0 and rs.loss_tripped == 0:
        if rs.day_start_equity - pf.equity > lim.daily_loss_limit:
            rs.loss_tripped = 1
            trip(state, lim.on_daily_loss, Trip.DAILY_LOSS, now)
    if lim.max_drawdown > 0.0:
        down = pf.high_water_mark - pf.equity > lim.max_drawdown * pf.high_water_mark
        if down and rs.drawdown_tripped == 0:
            rs.drawdown_tripped = 1
            trip(state, lim.on_drawdown, Trip.DRAWDOWN, now)
        elif not down:
            rs.drawdown_tripped = 0


@njit(**HOT)
def watch(state, limits, portfolio, now: int) -> None:
    """Check the loss and drawdown triggers after an event moved equity; roll the day.

    ``step`` runs it after every report, timer and control event, and after market data
    that moved equity or found its instrument's ``due_ts`` reached (``framework.step``).
    """
    rs = state[0]
    pf = portfolio[0]
    if now >= rs.day_end_ts:
        _new_day(state, limits, pf.equity, now)
    lim = limits[0]
    if lim.daily_loss_limit > 0.0 or lim.max_drawdown > 0.0:
        _check_pnl(state, limits, pf, now)
