"""The pipeline's state: one record layout per stage, allocated once, mutated in place.

``Pipeline`` is a namedtuple of numpy arrays so that Numba compiles every access to a
fixed offset and nothing is allocated per event. Everything ``step`` knows lives here,
which is what makes a run reproducible: the same state and the same event give the
same commands. Per-instrument arrays are indexed by the dense ``instrument_id``.
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from framework.events import COMMAND_DTYPE, RejectReason, padded, records
from framework.risk.records import INSTRUMENT_LIMITS_DTYPE, PORTFOLIO_LIMITS_DTYPE, BreakerState, allocate_risk
from framework.routing import allocate_routes

MARKET_DTYPE = padded(np.dtype(
    [
        ("bid_price", "<i8"), ("bid_size", "<i8"), ("ask_price", "<i8"), ("ask_size", "<i8"), ("ts_quote", "<i8"),
        ("last_price", "<i8"), ("last_size", "<i8"), ("ts_trade", "<i8"), ("ts_last", "<i8"),
        ("bar_open", "<i8"), ("bar_high", "<i8"), ("bar_low", "<i8"), ("bar_close", "<i8"), ("bar_volume", "<i8"),
        ("ts_bar", "<i8"),
    ],
    align=True,
))
"""Market-data stage, per instrument: L1 book, last trade, last bar, staleness times
(padded to ``INSTRUMENT_RECORD_BYTES``, as are positions and risk's per-instrument state)."""

POSITION_DTYPE = padded(np.dtype(
    [
        ("qty", "<i8"), ("avg_price", "<f8"), ("mark", "<f8"), ("realized_pnl", "<f8"), ("unrealized_pnl", "<f8"),
        ("fees", "<f8"), ("traded_notional", "<f8"), ("n_fills", "<i8"), ("open_buy", "<i8"), ("open_sell", "<i8"),
        ("exposure", "<f8"), ("pnl", "<f8"), ("high_water_mark", "<f8"), ("max_drawdown", "<f8"),
        ("mark_price", "<i8"),
    ],
    align=True,
))
"""Positions stage, per instrument: fixed-point quantity, average-cost price and PnL, and
the unfilled size of working buy and sell orders (in flight included), which risk adds
to the position to bound the worst case. ``exposure`` is ``|qty| * mark``; ``pnl`` the
instrument's net PnL (realized + unrealized - fees), with its high-water mark and the
largest fall from it, in quote currency (an instrument has no capital of its own to
divide by); the current drawdown is ``high_water_mark - pnl``. ``mark_price`` is the
fixed-point price ``mark`` was set from (0: none yet, or set from elsewhere), so that
marking tests a repeated price with one integer comparison."""

PORTFOLIO_DTYPE = np.dtype(
    [
        ("initial_capital", "<f8"), ("realized_pnl", "<f8"), ("unrealized_pnl", "<f8"), ("fees", "<f8"),
        ("equity", "<f8"), ("high_water_mark", "<f8"), ("max_drawdown", "<f8"),
        ("gross_exposure", "<f8"), ("net_position", "<f8"),
    ],
    align=True,
)
"""Positions stage, whole portfolio (one record)."""

ORDER_DTYPE = np.dtype(
    [
        ("client_order_id", "<i8"), ("ts_created", "<i8"), ("ts_updated", "<i8"),
        ("price", "<i8"), ("size", "<i8"), ("filled", "<i8"), ("leaves", "<i8"),
        ("trigger_price", "<i8"), ("expire_ts", "<i8"), ("pending_price", "<i8"), ("pending_size", "<i8"),
        ("reserved", "<i8"),
        ("venue_order_id", "<i8"), ("avg_fill_price", "<f8"), ("instrument_id", "<i4"),
        ("status", "u1"), ("side", "i1"), ("order_type", "u1"), ("tif", "u1"), ("flags", "u1"),
        ("venue_id", "u1"), ("reject_reason", "u1"), ("attempts", "u1"), ("queries", "u1"), ("stale_answers", "u1"),
        ("legs", "u1"),
    ],
    align=True,
)
"""Execution stage: one slot of the order table (128 bytes). An order lives in slot
``client_order_id % capacity``, so lookup is O(1) and slots of finished orders are reused.
``reserved`` is the extra working size a pending modify may add, held against risk limits
until the venue confirms or refuses it. ``venue_order_id`` is the venue's id for the
order, from its acknowledgement; ``attempts`` how many times the order has been sent,
``queries`` how many of the venue's answers to QUERY are still to come, and
``stale_answers`` how many of those answer queries sent before the order's latest send
(they say nothing about it). ``legs`` is how many venue legs the router split the
strategy's order into (``framework.routing``), on the first leg only (its client order
id is the strategy's; the others follow it); 0 on every other order. An order
waiting on a deadline (SUBMITTED or QUERYING for its acknowledgement, RETRY_WAIT for
its backoff) has been waiting since ``ts_updated``: its deadline is derived, not stored."""

EXEC_STATE_DTYPE = np.dtype(
    [
        ("now", "<i8"), ("next_client_order_id", "<i8"), ("n_open", "<i8"), ("n_intents", "<i8"),
        ("n_waiting", "<i8"), ("wake_ts", "<i8"), ("timer_ts", "<i8"),
    ],
    align=True,
)
"""Execution stage, one record. ``n_waiting`` counts orders waiting on a deadline;
``wake_ts`` is when the stage must next look at them (0: never), at or before the
earliest deadline, and ``timer_ts`` when its timer (``EXEC_TIMER_ID``) is set to fire
(0: not set). Keeping one timer, moved as deadlines come and go, means an order that is
acknowledged in time costs no timer event at all."""

EXEC_LIMITS_DTYPE = np.dtype(
    [
        ("max_attempts", "<i8"), ("backoff_base_ns", "<i8"), ("backoff_multiplier", "<f8"),
        ("backoff_max_ns", "<i8"), ("jitter", "<f8"), ("ack_timeout_ns", "<i8"),
    ],
    align=True,
)
"""Execution stage, its configuration (one record, ``conf/execution``). An order is sent
at most ``max_attempts`` times (0 or 1: never re-sent). The n-th re-send waits
``backoff_base_ns * backoff_multiplier ** (n - 1)``, at most ``backoff_max_ns`` (0: no
cap), less a
deterministic random share of up to ``jitter`` of it (0: exact, 1: "full jitter").
``ack_timeout_ns`` is how long an order may go unacknowledged before the venue is
queried (0: never queried)."""

Counter = namedtuple(
    "Counter",
    "TRADES QUOTES BOOK BARS REPORTS TIMERS EXEC_TIMERS CONTROLS OTHER_KINDS OUT_OF_ORDER "
    "ORDERS_SUBMITTED CANCELS_SENT MODIFIES_SENT FILLS REJECTS_VENUE REJECTS_RISK "
    "ILLEGAL_TRANSITIONS UNKNOWN_ORDER_REPORTS INTENTS_DROPPED BOOK_LEVELS_DROPPED "
    "TRANSIENT_REJECTS RETRIES RETRIES_EXHAUSTED QUERIES STALE_STATUS_REPORTS UNKNOWN_INSTRUMENT",
)(*range(26))
"""Indices of the pipeline's counters array. The first nine count the events ``step`` took,
each under its kind (their sum is ``events_stepped``): EXEC_TIMERS the execution stage's
own timer events (TIMERS only the strategy's), OTHER_KINDS events of a kind no stage
handles, which only the strategy sees. TRANSIENT_REJECTS venue refusals that will be
retried; RETRIES orders sent again; RETRIES_EXHAUSTED orders refused for good after their
last attempt; QUERIES queries sent; STALE_STATUS_REPORTS status reports that answered an
earlier query or came after the order had moved on, and were ignored; UNKNOWN_INSTRUMENT
events naming an instrument id outside the pipeline, refused."""

N_COUNTERS = len(Counter)


def events_stepped(counters: np.ndarray) -> int:
    """How many events ``step`` took (refused ones not included): the sum of the per-kind
    counts. Not a counter of its own: one more increment on every event cost the SMA
    backtest some 2% of its time (``bench/backtest_throughput.py``)."""
    return int(counters[: Counter.OUT_OF_ORDER].sum())


N_REJECT_REASONS = 32
MAX_INTENTS = 64
"""Intents one strategy call may emit; more are dropped and counted (a runaway guard)."""

Pipeline = namedtuple(
    "Pipeline",
    [
        "market", "book", "book_depth",  # market data
        "risk_limits", "portfolio_limits", "risk_state", "risk_instruments", "risk_windows", "risk_recent",
        "reject_counts",  # risk (framework.risk.records)
        "orders", "exec_state", "exec_limits", "intents", "routes", "venue_quotes", "route_of_venue",  # execution
        "positions", "portfolio",  # positions
        "counters",
    ],
)
"""All pipeline state. ``book[i, side, level] = (price, size)`` with side 0 bids
(descending) and 1 asks (ascending); ``book_depth[i, side]`` levels in use."""


@dataclass(frozen=True)
class PipelineSpec:
    """Sizes and limits the pipeline is allocated with.

    Per-instrument limits take one value for every instrument or one per instrument.
    ``max_position`` sets both the long and the short limit; ``instrument_limits`` sets
    any field of ``INSTRUMENT_LIMITS_DTYPE`` (and wins), ``portfolio_limits`` any field
    of ``PORTFOLIO_LIMITS_DTYPE``.
    """

    n_instruments: int = 1
    order_capacity: int = 4096
    book_levels: int = 256
    initial_capital: float = 1_000_000.0
    max_order_size: tuple[int, ...] = (0,)
    """Per instrument, fixed point; 0 means no order may be sent."""
    max_position: tuple[int, ...] = (0,)
    price_collar: tuple[float, ...] = (0.05,)
    instrument_limits: Mapping[str, tuple] = field(default_factory=dict)
    portfolio_limits: Mapping[str, float] = field(default_factory=dict)
    strategy_id: int = 0
    execution: Mapping[str, float] = field(default_factory=dict)
    """Any field of ``EXEC_LIMITS_DTYPE``; those not given are 0 (no retries, no queries)."""
    routing: tuple[tuple[int, float, float], ...] = ()
    """``(venue_id, maker_fee_rate, taker_fee_rate)`` per venue the router may use; with
    fewer than two, orders go where their intent says (``framework.routing``)."""


def _per_instrument(values: tuple, n: int, name: str) -> list:
    if len(values) == 1:
        return list(values) * n
    if len(values) != n:
        raise ValueError(f"{name}: {len(values)} values for {n} instruments; give one value or one per instrument")
    return list(values)


def _limits(spec: PipelineSpec) -> tuple[np.ndarray, np.ndarray]:
    n = spec.n_instruments
    limits = records(n, INSTRUMENT_LIMITS_DTYPE)
    limits["max_order_size"] = _per_instrument(spec.max_order_size, n, "max_order_size")
    limits["max_long"] = _per_instrument(spec.max_position, n, "max_position")
    limits["max_short"] = _per_instrument(spec.max_position, n, "max_position")
    limits["price_collar"] = _per_instrument(spec.price_collar, n, "price_collar")
    for name, values in spec.instrument_limits.items():
        if name not in INSTRUMENT_LIMITS_DTYPE.names:
            raise ValueError(f"risk limit {name!r}: not a per-instrument limit ({', '.join(INSTRUMENT_LIMITS_DTYPE.names)})")
        limits[name] = _per_instrument(tuple(np.atleast_1d(values)), n, name)
    portfolio = records(1, PORTFOLIO_LIMITS_DTYPE)
    portfolio["on_daily_loss"] = BreakerState.REDUCING
    portfolio["on_drawdown"] = BreakerState.REDUCING
    portfolio["on_reject_rate"] = BreakerState.HALTED
    portfolio["on_throttle"] = BreakerState.HALTED
    portfolio["on_stale_data"] = BreakerState.REDUCING
    portfolio["on_fill_rate"] = BreakerState.HALTED
    portfolio["reject_window"] = 100
    for name, value in spec.portfolio_limits.items():
        if name not in PORTFOLIO_LIMITS_DTYPE.names:
            raise ValueError(f"risk limit {name!r}: not a portfolio limit ({', '.join(PORTFOLIO_LIMITS_DTYPE.names)})")
        portfolio[name] = value
    return limits, portfolio


def _exec_limits(spec: PipelineSpec) -> np.ndarray:
    limits = records(1, EXEC_LIMITS_DTYPE)
    limits["backoff_multiplier"] = 1.0
    for name, value in spec.execution.items():
        if name not in EXEC_LIMITS_DTYPE.names:
            raise ValueError(f"execution limit {name!r}: not one of {', '.join(EXEC_LIMITS_DTYPE.names)}")
        if value < 0:
            raise ValueError(f"execution limit {name!r}: must be >= 0, got {value}")
        limits[name] = value
    if limits["jitter"][0] > 1.0:
        raise ValueError(f"execution limit 'jitter': a fraction of the delay in [0, 1], got {limits['jitter'][0]}")
    if limits["backoff_multiplier"][0] < 1.0:
        raise ValueError(f"execution limit 'backoff_multiplier': at least 1, got {limits['backoff_multiplier'][0]}")
    if limits["max_attempts"][0] > 255:
        raise ValueError(f"execution limit 'max_attempts': at most 255, got {limits['max_attempts'][0]}")
    return limits


def allocate(spec: PipelineSpec) -> Pipeline:
    """Allocate a fresh pipeline state for ``spec``: flat, zeroed, ready for ``step``."""
    n = spec.n_instruments
    if n < 1:
        raise ValueError(f"n_instruments must be at least 1, got {n}")
    if spec.order_capacity < 2:
        raise ValueError(f"order_capacity must be at least 2, got {spec.order_capacity}")
    risk = allocate_risk(*_limits(spec), strategy_id=spec.strategy_id)
    routes, venue_quotes, route_of_venue = allocate_routes(list(spec.routing), n)
    portfolio = records(1, PORTFOLIO_DTYPE)
    portfolio["initial_capital"] = spec.initial_capital
    portfolio["equity"] = spec.initial_capital
    portfolio["high_water_mark"] = spec.initial_capital
    exec_state = records(1, EXEC_STATE_DTYPE)
    exec_state["next_client_order_id"] = 1
    return Pipeline(
        market=records(n, MARKET_DTYPE),
        book=np.zeros((n, 2, spec.book_levels, 2), np.int64),
        book_depth=np.zeros((n, 2), np.int64),
        risk_limits=risk.limits,
        portfolio_limits=risk.portfolio_limits,
        risk_state=risk.state,
        risk_instruments=risk.instruments,
        risk_windows=risk.windows,
        risk_recent=risk.recent,
        reject_counts=np.zeros(N_REJECT_REASONS, np.int64),
        orders=records(spec.order_capacity, ORDER_DTYPE),
        exec_state=exec_state,
        exec_limits=_exec_limits(spec),
        intents=records(MAX_INTENTS, COMMAND_DTYPE),
        routes=routes,
        venue_quotes=venue_quotes,
        route_of_venue=route_of_venue,
        positions=records(n, POSITION_DTYPE),
        portfolio=portfolio,
        counters=np.zeros(N_COUNTERS, np.int64),
    )


def reject_reason_names() -> dict[int, str]:
    """Map reject reason codes to names, for reports."""
    return {code: name for name, code in RejectReason._asdict().items()}
