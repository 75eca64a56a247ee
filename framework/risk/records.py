"""The risk stage's state: limits per instrument and for the portfolio, and what it remembers.

Limits are plain records so that an operator's control event can change them and the
journal can replay it; state is plain records and arrays so that it can be written
to bytes and restored after a restart (``risk_state_bytes`` / ``restore_risk_state``):
the kill switch and the circuit breaker must survive one.

Sizes and prices are fixed point (1e-9), notionals in quote currency, times int64
nanoseconds, fractions as floats. A limit of 0 is "off", except the order size and
the long and short position limits, where 0 means "no order may be sent": a
missing limit must stop trading, not let it run unchecked.
"""

from __future__ import annotations

from collections import namedtuple

import numpy as np

from framework.events import padded, records

BreakerState = namedtuple("BreakerState", "ACTIVE REDUCING HALTED")(0, 1, 2)
"""ACTIVE: every check applies. REDUCING: only orders that reduce exposure go out.
HALTED: only cancels. The breaker only ever escalates by itself; back to ACTIVE only
through the BREAKER_RESET control event, sent by a person."""

Trip = namedtuple("Trip", "NONE DAILY_LOSS DRAWDOWN REJECT_RATE THROTTLE STALE_DATA FILL_RATE OPERATOR")(
    0, 1, 2, 3, 4, 5, 6, 7
)
"""Why the breaker tripped (the first cause of the current trip is kept)."""

Reference = namedtuple("Reference", "MID_OR_LAST LAST MID")(0, 1, 2)
"""Which price the collar, the band and slippage protection measure against."""

KillScope = namedtuple("KillScope", "ALL VENUE STRATEGY")(0, 1, 2)
"""The ``value`` of a KILL_SWITCH_ON/OFF control event (plus KILL_FLATTEN as a bit);
``target`` names the venue or strategy."""

KILL_FLATTEN = 0x100
"""Bit of a KILL_SWITCH_ON ``value``: also close every position in scope."""

WINDOW_NS = 1_000_000_000
"""Throttles count messages and fills per second (a sliding window)."""

RING = 1024
"""Most messages or fills per second a throttle can count; larger limits are refused."""

RECENT = 64
"""Accepted orders the duplicate check remembers."""

INSTRUMENT_LIMITS_DTYPE = np.dtype(
    [
        ("max_order_size", "<i8"), ("max_long", "<i8"), ("max_short", "<i8"),
        ("max_order_notional", "<f8"), ("price_collar", "<f8"), ("collar_reference", "<i8"),
        ("price_band", "<f8"), ("band_window_ns", "<i8"), ("max_open_orders", "<i8"),
        ("duplicate_window_ns", "<i8"), ("max_messages_per_s", "<i8"), ("max_fills_per_s", "<i8"),
        ("max_data_age_ns", "<i8"), ("max_slippage", "<f8"),
    ],
    align=True,
)
"""Per instrument. ``max_short`` is a positive size. The price band keeps prices within
``price_band`` of the reference at the start of each ``band_window_ns`` window;
``max_slippage`` caps a marketable order's price at that fraction from the reference."""

PORTFOLIO_LIMITS_DTYPE = np.dtype(
    [
        ("max_gross_exposure", "<f8"), ("max_open_orders", "<i8"), ("max_messages_per_s", "<i8"),
        ("daily_loss_limit", "<f8"), ("max_drawdown", "<f8"), ("max_reject_rate", "<f8"),
        ("reject_window", "<i8"), ("day_offset_ns", "<i8"),
        ("on_daily_loss", "<i8"), ("on_drawdown", "<i8"), ("on_reject_rate", "<i8"),
        ("on_throttle", "<i8"), ("on_stale_data", "<i8"), ("on_fill_rate", "<i8"),
    ],
    align=True,
)
"""Whole portfolio (one record). Gross exposure counts positions and every working
order, in flight included, at the reference price. The day for the daily loss starts
at UTC midnight plus ``day_offset_ns``. ``on_*`` is the BreakerState each trigger
trips to (ACTIVE: the trigger only rejects, never trips)."""

RISK_STATE_DTYPE = np.dtype(
    [
        ("breaker", "<i8"), ("trip", "<i8"), ("trip_ts", "<i8"), ("n_trips", "<i8"),
        ("kill_all", "<i8"), ("kill_venues", "<i8"), ("kill_strategy", "<i8"), ("kill_ts", "<i8"),
        ("strategy_id", "<i8"),
        ("day_end_ts", "<i8"), ("day_start_equity", "<f8"), ("loss_tripped", "<i8"), ("drawdown_tripped", "<i8"),
        ("n_checked", "<i8"), ("n_rejected", "<i8"),
        ("decisions", "<i8"), ("decision_rejects", "<i8"), ("recent_head", "<i8"),
    ],
    align=True,
)
"""Everything the stage remembers across events, in one record (plus the windows).
``kill_venues`` is a bit mask of venue ids."""

INSTRUMENT_RISK_DTYPE = padded(np.dtype(
    [("halted", "<i8"), ("band_anchor", "<i8"), ("band_end_ts", "<i8"), ("n_open", "<i8"), ("due_ts", "<i8")],
    align=True,
))
"""Per instrument: halted by an operator or by reconciliation; the price band's anchor
and when its window ends; working orders (kept by the execution stage); and when a
market-data event of the instrument next finds time-driven work (the band's window or
the day ended, ``framework.step``), so that every other one tests a single time."""

RECENT_DTYPE = np.dtype(
    [("ts", "<i8"), ("price", "<i8"), ("size", "<i8"), ("instrument_id", "<i8"), ("side", "<i8")],
    align=True,
)

MESSAGES, FILLS, DECISIONS = 0, 1, 1
"""Rings of ``windows``: ``windows[i, MESSAGES]`` and ``windows[i, FILLS]`` hold the last
message and fill times of instrument ``i``; the portfolio's row (``n_instruments``)
holds its message times and, in the place of fills, the last order outcomes
(1 rejected) for the reject rate. Slot ``RING`` of each ring is its next write index.
One array rather than five: every array in the pipeline is passed to each compiled
call that takes it, so fewer, larger arrays make every call cheaper."""

RiskArrays = namedtuple("RiskArrays", "limits portfolio_limits state instruments windows recent")
"""The stage's arrays, as ``allocate_risk`` makes them."""


def _windows(n: int) -> np.ndarray:
    w = np.full((n + 1, 2, RING + 1), np.iinfo(np.int64).min // 2, np.int64)
    w[:, :, RING] = 0
    w[n, DECISIONS, :] = 0
    return w


def allocate_risk(limits: np.ndarray, portfolio_limits: np.ndarray, strategy_id: int = 0) -> RiskArrays:
    """Allocate the risk stage's state for these limits (one limits row per instrument)."""
    n = limits.shape[0]
    for name in ("max_messages_per_s", "max_fills_per_s"):
        worst = int(limits[name].max(initial=0))
        if worst > RING:
            raise ValueError(f"risk.{name}: at most {RING} per second can be counted, got {worst}")
    if int(portfolio_limits["max_messages_per_s"][0]) > RING:
        raise ValueError(f"risk.portfolio.max_messages_per_s: at most {RING}, got {portfolio_limits['max_messages_per_s'][0]}")
    window = int(portfolio_limits["reject_window"][0])
    if portfolio_limits["max_reject_rate"][0] > 0 and not 1 <= window <= RING:
        raise ValueError(f"risk.portfolio.reject_window: must be 1..{RING} with a reject rate limit, got {window}")
    state = records(1, RISK_STATE_DTYPE)
    state["strategy_id"] = strategy_id
    return RiskArrays(
        limits=limits,
        portfolio_limits=portfolio_limits,
        state=state,
        instruments=records(n, INSTRUMENT_RISK_DTYPE),
        windows=_windows(n),
        recent=records(RECENT, RECENT_DTYPE),
    )


def risk_state_bytes(p) -> bytes:
    """Serialize what must survive a restart: breaker, kill switch, halts and limits."""
    parts = (p.risk_state, p.risk_instruments, p.risk_limits, p.portfolio_limits)
    return b"".join(np.ascontiguousarray(a).tobytes() for a in parts)


def restore_risk_state(p, blob: bytes) -> None:
    """Restore ``risk_state_bytes`` output into a pipeline allocated with the same shapes."""
    parts = (p.risk_state, p.risk_instruments, p.risk_limits, p.portfolio_limits)
    expected = sum(a.nbytes for a in parts)
    if len(blob) != expected:
        raise ValueError(f"risk state: {len(blob)} bytes, expected {expected} for this pipeline's shapes")
    offset = 0
    for a in parts:
        flat = a.view(np.uint8).reshape(-1)
        flat[:] = np.frombuffer(blob, np.uint8, a.nbytes, offset)
        offset += a.nbytes
