"""SMA crossover on trades: long when the fast average of trade prices is above the slow one.

The averages run over the last ``fast`` and ``slow`` trades of one instrument, kept as
exact integer sums over a ring buffer of fixed-point prices, so the streaming value
equals the batch one bit for bit. On each crossing the strategy sends one market
order that moves its position (working orders included) to the new target:
``+order_size`` above, ``-order_size`` below (or flat, when ``allow_short`` is off).
It acts only on a crossing, so a refused order is not retried on every trade.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

from framework.events import EventKind, Side, records, to_fixed
from framework.jit import HOT
from framework.strategy_api import market_order

PARAMS_DTYPE = np.dtype(
    [("instrument_id", "<i8"), ("fast", "<i8"), ("slow", "<i8"), ("order_size", "<i8"), ("allow_short", "<i8")],
    align=True,
)
STATE_DTYPE = np.dtype(
    [
        ("n", "<i8"), ("sum_fast", "<i8"), ("sum_slow", "<i8"), ("signal", "<i8"), ("n_crossings", "<i8"),
        ("head", "<i8"),
    ],
    align=True,
)
"""``head`` is where the next price goes in the ring buffer (``n % slow``, kept
incrementally: a division per trade would cost more than the rest of the update)."""


@dataclass(frozen=True)
class Params:
    """Parameters of the SMA crossover."""

    instrument: str = "SYNTH"
    fast: int = 50
    slow: int = 200
    order_size: float = 1.0
    allow_short: bool = True

    def __post_init__(self) -> None:
        if not 0 < self.fast < self.slow:
            raise ValueError(f"strategy.params: need 0 < fast < slow, got fast={self.fast}, slow={self.slow}")
        if self.order_size <= 0:
            raise ValueError(f"strategy.params.order_size: must be positive, got {self.order_size}")


def make(params: Params, instrument_ids: dict[str, int]) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray]]:
    """Build the compiled parameter record and a fresh state for ``params``."""
    if params.instrument not in instrument_ids:
        raise ValueError(
            f"strategy.params.instrument: {params.instrument!r} is not in the data (have {sorted(instrument_ids)})"
        )
    rec = records(1, PARAMS_DTYPE)
    rec["instrument_id"] = instrument_ids[params.instrument]
    rec["fast"] = params.fast
    rec["slow"] = params.slow
    rec["order_size"] = to_fixed(params.order_size)
    rec["allow_short"] = int(params.allow_short)
    return rec, (records(1, STATE_DTYPE), np.zeros(params.slow, np.int64))


@njit(**HOT)
def update_averages(s, window, fast: int, slow: int, price: int) -> bool:
    """Push one price into both rolling sums; return True once the slow window is full.

    ``window`` is a ring of the last ``slow`` prices; the price leaving the fast sum is
    ``fast`` places behind the head. Its slots are indexed unsigned: Numba tests every
    signed index for a negative value to wrap around, which cost the SMA's backtest 5%
    of its instructions.
    """
    n = s.n
    slot = s.head
    fast_slot = slot - fast if slot >= fast else slot - fast + slow
    leaving_fast = window[np.uint64(fast_slot)] if n >= fast else 0
    leaving_slow = window[np.uint64(slot)] if n >= slow else 0
    window[np.uint64(slot)] = price
    s.sum_fast += price - leaving_fast
    s.sum_slow += price - leaving_slow
    s.head = slot + 1 if slot + 1 < slow else 0
    s.n = n + 1
    return n + 1 >= slow


@njit(**HOT, error_model="numpy")
def on_event(p, params, state, ev) -> None:
    """React to a trade of the strategy's instrument; ignore everything else.

    NumPy's error model: the averages divide by ``fast`` and ``slow``, which ``Params``
    checks are positive, and Python's would test both for zero on every trade (3.6% of
    the backtest's instructions; the bare loop tests its divisors once, outside its loop)."""
    if ev.kind != EventKind.TRADE:
        return
    prm = params[0]
    if ev.instrument_id != prm.instrument_id:
        return
    s = state[0][0]
    if not update_averages(s, state[1], prm.fast, prm.slow, ev.price):
        return
    fast_avg = s.sum_fast / prm.fast
    slow_avg = s.sum_slow / prm.slow
    signal = s.signal
    if fast_avg > slow_avg:
        signal = 1
    elif fast_avg < slow_avg:
        signal = -1
    if signal == s.signal:
        return
    s.signal = signal
    s.n_crossings += 1
    target = prm.order_size * signal
    if signal < 0 and prm.allow_short == 0:
        target = 0
    pos = p.positions[prm.instrument_id]
    working = pos.qty + pos.open_buy - pos.open_sell
    delta = target - working
    if delta > 0:
        market_order(p, prm.instrument_id, Side.BUY, delta)
    elif delta < 0:
        market_order(p, prm.instrument_id, Side.SELL, -delta)
