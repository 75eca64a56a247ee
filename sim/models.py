"""The simulated exchange's swappable models: latency, fees and the fill rule.

Each model is an integer code plus parameters in the ``SIM_PARAMS_DTYPE`` record,
chosen in ``conf/sim/``. The compiled loop branches on the code, which is constant
for a run, so the branch costs nothing and one cached compilation serves every model.

Latency (``latency_model``)
    CONSTANT: every message takes its channel's base latency. Models a colocated,
    quiet link; ignores queuing and jitter.
    RANDOM: base plus an exponential jitter with the given mean, drawn from a seeded
    splitmix64 stream per channel that lives in the simulation state (``latency_streams``),
    so a run is reproducible
    whatever the chunk size. Models a link with occasional delays; ignores
    correlation between consecutive delays.
    Three channels: feed (venue -> strategy market data), order (strategy -> venue)
    and response (venue -> strategy reports), each with its own stream: what a
    strategy sends never changes the latency of the market data it later receives,
    so two strategies on the same data see the same market timing. Each channel is FIFO like the TCP or
    WebSocket connection it models: a message never overtakes an earlier one.

Faults (``transient_reject_rate``, ``ack_loss_rate``, ``submit_loss_rate``)
    What goes wrong between a trader and a venue, so that the execution stage's
    recovery is exercised: the venue refuses an arriving SUBMIT or MODIFY with
    VENUE_BUSY (a rate limit or overload) with one probability, the acknowledgement of
    a new order is lost on its way back with another, and a SUBMIT is lost on its way
    there with a third. Each is an independent draw per message from a fourth seeded
    splitmix64 stream (``FAULT_STREAM``), drawn only when its rate is above zero, so a
    run without faults draws nothing and its latencies are those of a run before
    faults existed. The stream has its own seed (``sim.faults.seed``). Ignores correlated outages (a venue down for a minute) and lost
    fills or cancels.

Fees (``maker_fee_rate``, ``taker_fee_rate``)
    A fraction of the fill's notional, negative for a rebate; resting fills pay maker,
    aggressive fills pay taker. Ignores tiered schedules and fee currencies.

Fill rule (``fill_model``)
    TOUCH: a resting order fills when the market trades or offers at or through its
    price (optimistic about queue position: assumes we are first at our level).
    THROUGH: only when the market trades or offers strictly through its price
    (pessimistic: assumes we are last at our level). Both cap each fill by the size
    the data shows, so no fill is larger than the liquidity the data supports.
"""

from __future__ import annotations

from collections import namedtuple

import numpy as np
from numba import njit

from framework.jit import HOT, KERNEL

LatencyModel = namedtuple("LatencyModel", "CONSTANT RANDOM")(0, 1)
FillModel = namedtuple("FillModel", "TOUCH THROUGH")(0, 1)
Channel = namedtuple("Channel", "FEED ORDER RESPONSE")(0, 1, 2)
FAULT_STREAM = len(Channel)
"""Index of the injected faults' random stream, after the latency channels' streams."""

SIM_PARAMS_DTYPE = np.dtype(
    [
        ("latency_model", "<i8"), ("seed", "<i8"),
        ("feed_ns", "<i8"), ("order_ns", "<i8"), ("response_ns", "<i8"),
        ("feed_jitter_ns", "<f8"), ("order_jitter_ns", "<f8"), ("response_jitter_ns", "<f8"),
        ("maker_fee_rate", "<f8"), ("taker_fee_rate", "<f8"),
        ("fill_model", "<i8"), ("equity_interval_ns", "<i8"),
        ("transient_reject_rate", "<f8"), ("ack_loss_rate", "<f8"), ("submit_loss_rate", "<f8"),
    ],
    align=True,
)


def latency_streams(seed: int, fault_seed: int = 0) -> np.ndarray:
    """Seed one independent splitmix64 stream per latency channel from ``seed``, and the
    injected faults' stream (``FAULT_STREAM``) from ``fault_seed``: changing one seed never
    changes the other's draws."""
    golden = 0x9E3779B97F4A7C15
    seeds = [seed] * len(Channel) + [fault_seed]
    return np.array([(s + golden * (c + 1)) & 0xFFFFFFFFFFFFFFFF for c, s in enumerate(seeds)],
                    np.uint64).view(np.int64)


@njit(**HOT)
def splitmix64(state: np.ndarray, stream: int) -> np.uint64:
    """Advance generator ``state[stream]`` and return 64 random bits."""
    z = np.uint64(state[stream]) + np.uint64(0x9E3779B97F4A7C15)
    state[stream] = np.int64(z)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


@njit(**HOT)
def uniform01(state: np.ndarray, stream: int) -> float:
    """Return a float in the open interval (0, 1) from seeded stream ``stream``."""
    return ((splitmix64(state, stream) >> np.uint64(11)) + 0.5) * (1.0 / 9007199254740992.0)


@njit(**HOT)
def latency_ns(prm, rng: np.ndarray, channel: int) -> int:
    """Draw one message's latency on ``channel`` in nanoseconds."""
    if channel == Channel.FEED:
        base = prm.feed_ns
        jitter = prm.feed_jitter_ns
    elif channel == Channel.ORDER:
        base = prm.order_ns
        jitter = prm.order_jitter_ns
    else:
        base = prm.response_ns
        jitter = prm.response_jitter_ns
    if prm.latency_model == LatencyModel.RANDOM and jitter > 0.0:
        return base + np.int64(-jitter * np.log(uniform01(rng, channel)))
    return base


@njit(**KERNEL)
def fault(rng: np.ndarray, rate: float) -> bool:
    """Whether an injected fault of probability ``rate`` strikes this message (no draw at rate 0)."""
    return rate > 0.0 and uniform01(rng, FAULT_STREAM) < rate


@njit(**KERNEL)
def fee_fixed(price: int, size: int, rate: float) -> int:
    """Fee of a fill in fixed point: ``rate`` times the notional, rounded to 1e-9."""
    return np.int64(np.rint(price * 1e-9 * size * rate))


@njit(**KERNEL)
def rests_filled(fill_model: int, side: int, order_price: int, market_price: int) -> bool:
    """Whether a resting order at ``order_price`` is reached by a market at ``market_price``."""
    if side > 0:
        return market_price < order_price or (fill_model == FillModel.TOUCH and market_price == order_price)
    return market_price > order_price or (fill_model == FillModel.TOUCH and market_price == order_price)
