"""Sliding-window counters: message and fill throttles, and the reject rate.

A throttle of ``limit`` per second keeps the times of the last ``limit`` events in a
ring; the next event is allowed when the oldest of them is at least a second old. That
is an exact sliding window (not a bucket reset each second, which lets twice the limit
through across a boundary) at O(1) per event and no allocation.
"""

from __future__ import annotations

from numba import njit

from framework.jit import HOT
from framework.risk.records import DECISIONS, RING, WINDOW_NS


@njit(**HOT)
def window_full(windows, row: int, ring: int, limit: int, now: int) -> bool:
    """Whether ``limit`` events already happened in the second before ``now`` (0: never full)."""
    if limit <= 0:
        return False
    return now - windows[row, ring, windows[row, ring, RING] % limit] < WINDOW_NS


@njit(**HOT)
def window_add(windows, row: int, ring: int, limit: int, now: int) -> None:
    """Record one event at ``now`` in a ring (a no-op when the limit is off)."""
    if limit <= 0:
        return
    head = windows[row, ring, RING] % limit
    windows[row, ring, head] = now
    windows[row, ring, RING] = head + 1


@njit(**HOT)
def record_decision(state, windows, size: int, rejected: bool) -> None:
    """Push one order outcome into the reject-rate window (the last ``size`` decisions)."""
    rs = state[0]
    ring = windows[windows.shape[0] - 1, DECISIONS]
    slot = rs.decisions % size
    if rs.decisions >= size:
        rs.decision_rejects -= ring[slot]
    ring[slot] = 1 if rejected else 0
    rs.decision_rejects += ring[slot]
    rs.decisions += 1


@njit(**HOT)
def reject_rate(state, size: int) -> float:
    """The share of rejected orders among the last ``size`` decisions, once there were
    that many (else 0: a rate over a handful of orders would trip on the first reject)."""
    rs = state[0]
    if rs.decisions < size:
        return 0.0
    return rs.decision_rejects / size
