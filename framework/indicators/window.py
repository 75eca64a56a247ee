"""Rolling windows over the last ``n`` valid values: the building block of the windowed indicators.

A rolling sum kept by adding the new value and subtracting the one leaving rounds at
every step. Plainly done, it drifts away from what a fresh sum over the window gives,
and it loses every digit at once when a value far larger than the others (a bad
print, a block trade) leaves: ``big + small - big`` keeps only the rounding error of
``big``. The windows here avoid both:

* Every sum is compensated (Neumaier): each addition's rounding error is computed
  exactly (TwoSum) and accumulated apart, so ``sum + compensation`` stays within a
  few ulps of the exact sum whatever left the window.
* The moments window sums deviations from a shift ``K`` (the window's mean at its
  last recentring) rather than raw values, so the variance ``S2/n - (S1/n)^2`` does
  not cancel the way ``E[x^2] - E[x]^2`` does for prices far from zero. A value and
  its deviation leave with exactly the bits they came with.
* Each time the ring wraps (every ``n`` values) the sums are recomputed from the ring
  and ``K`` recentred: O(1) amortised, one O(n) pass per ``n`` values, and the
  compensation never grows.

A moments window also counts how many identical values end the stream (``run``):
when all ``n`` are one value, its mean is exactly that value and its variance
exactly zero, so a flat market gives a zero standard deviation rather than 1e-17
noise that a z-score would then divide by.

Both layouts are float64 arrays embedded in the indicator's state:

``moments`` (``MOMENTS_HEADER + n`` slots): mean and population variance of one series.
``pair`` (``PAIR_HEADER + 2 n`` slots): the sums of two series pushed together
    (price x size and size for VWAP, signed and total volume for trade flow).

Counters and ring positions are stored as float64, exact up to 2**53. The results
depend only on the stream, so a streaming kernel and a batch loop over it agree bit
for bit.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from framework.jit import HOT, KERNEL

_N, _COUNT, _HEAD = 0, 1, 2
_SHIFT, _S1, _C1, _S2, _C2, _RUN, _LAST = 3, 4, 5, 6, 7, 8, 9
MOMENTS_HEADER = 10
"""Slots before the ring of a moments window: n, count, head, shift K, sum and compensation of
``x - K``, sum and compensation of ``(x - K)^2``, run of identical values, last value."""

_SA, _CA, _SB, _CB = 3, 4, 5, 6
PAIR_HEADER = 7
"""Slots before the two rings of a pair window: n, count, head, then sum and compensation of each series."""


@njit(**HOT)
def _two_sum(s: float, c: float, x: float) -> tuple[float, float]:
    """Add ``x`` to the compensated sum ``(s, c)``: branch-free TwoSum, the rounding error goes to ``c``.

    With ``c = 0`` it is the exact sum ``s + x`` as a pair (rounded sum, error).
    """
    t = s + x
    back = t - s
    return t, c + ((s - (t - back)) + (x - back))


@njit(**HOT)
def _add_exact(s: float, c: float, x: float, leaving: float) -> tuple[float, float]:
    """Add ``x - leaving`` to the compensated sum ``(s, c)`` without losing a bit of either."""
    hi, lo = _two_sum(x, 0.0, -leaving)
    t, err = _two_sum(s, 0.0, hi)
    return t, c + (lo + err)


@njit(**HOT)
def extend_run(run: float, same: bool, cap: float) -> float:
    """Return the length of the run of identical values after one more value, at most ``cap``."""
    if same:
        return run + 1.0 if run < cap else cap
    return 1.0


@njit(**KERNEL)
def check_window(window: int) -> None:
    """Refuse a window shorter than one value (the ring would have no slot)."""
    if window < 1:
        raise ValueError("indicator window must be at least 1")


@njit(**KERNEL)
def moments_init(w: np.ndarray, n: int) -> None:
    """Reset ``w`` (``MOMENTS_HEADER + n`` slots) to an empty window of ``n`` values."""
    w[:] = 0.0
    w[_N] = n


@njit(**KERNEL)
def _moments_resync(w: np.ndarray, ring: np.ndarray, n: int) -> None:
    """Recentre ``K`` on the ring's mean and recompute both sums from the ring.

    The sums are compensated here too: a value summed now may leave later, and the
    rounding error of adding it must not stay behind when it does.
    """
    total = 0.0
    for i in range(n):
        total += ring[i]
    shift = total / n
    s1 = c1 = s2 = c2 = 0.0
    for i in range(n):
        d = ring[i] - shift
        s1, c1 = _two_sum(s1, c1, d)
        s2, c2 = _two_sum(s2, c2, d * d)
    w[_SHIFT] = shift
    w[_S1] = s1
    w[_C1] = c1
    w[_S2] = s2
    w[_C2] = c2


@njit(**HOT)
def moments_push(w: np.ndarray, x: float) -> bool:
    """Push ``x`` (finite) into the window; return True once it holds ``n`` values.

    When full, the value ``n`` places back leaves: the exact difference of the
    deviations (and of the squared deviations) entering and leaving, as a TwoSum pair,
    goes into the compensated sums. The sums are first formed when the ring first
    wraps; before that only the ring fills.
    """
    n = w[_N]
    count = w[_COUNT]
    head = w[_HEAD]
    slot = int(head)
    ring = w[MOMENTS_HEADER:]
    w[_RUN] = extend_run(w[_RUN], count > 0.0 and x == w[_LAST], n)
    w[_LAST] = x
    if count >= n:
        shift = w[_SHIFT]
        d = x - shift
        old = ring[slot] - shift
        s1, c1 = _add_exact(w[_S1], w[_C1], d, old)
        s2, c2 = _add_exact(w[_S2], w[_C2], d * d, old * old)
        w[_S1] = s1
        w[_C1] = c1
        w[_S2] = s2
        w[_C2] = c2
    ring[slot] = x
    head += 1.0
    if head == n:
        head = 0.0
        _moments_resync(w, ring, int(n))
    w[_HEAD] = head
    w[_COUNT] = count + 1.0
    return count + 1.0 >= n


@njit(**HOT)
def moments_mean(w: np.ndarray) -> float:
    """Return the mean of a full window: exactly the value when all ``n`` values are identical."""
    if w[_RUN] >= w[_N]:
        return w[_LAST]
    return w[_SHIFT] + (w[_S1] + w[_C1]) / w[_N]


@njit(**HOT)
def moments_var(w: np.ndarray) -> float:
    """Return the population variance (ddof 0) of a full window: exactly 0 when all values are identical."""
    if w[_RUN] >= w[_N]:
        return 0.0
    n = w[_N]
    mean_dev = (w[_S1] + w[_C1]) / n
    var = (w[_S2] + w[_C2]) / n - mean_dev * mean_dev
    return var if var > 0.0 else 0.0


@njit(**KERNEL)
def pair_init(w: np.ndarray, n: int) -> None:
    """Reset ``w`` (``PAIR_HEADER + 2 n`` slots) to an empty pair window of ``n`` values."""
    w[:] = 0.0
    w[_N] = n


@njit(**KERNEL)
def _pair_resync(w: np.ndarray, ring_a: np.ndarray, ring_b: np.ndarray, n: int) -> None:
    """Recompute both compensated sums from the rings (see ``_moments_resync``)."""
    sa = ca = sb = cb = 0.0
    for i in range(n):
        sa, ca = _two_sum(sa, ca, ring_a[i])
        sb, cb = _two_sum(sb, cb, ring_b[i])
    w[_SA] = sa
    w[_CA] = ca
    w[_SB] = sb
    w[_CB] = cb


@njit(**HOT)
def pair_push(w: np.ndarray, a: float, b: float) -> bool:
    """Push one pair of finite values; return True once the window holds ``n`` pairs."""
    n = w[_N]
    count = w[_COUNT]
    head = w[_HEAD]
    slot = int(head)
    size = int(n)
    ring_a = w[PAIR_HEADER : PAIR_HEADER + size]
    ring_b = w[PAIR_HEADER + size : PAIR_HEADER + 2 * size]
    if count >= n:
        sa, ca = _add_exact(w[_SA], w[_CA], a, ring_a[slot])
        sb, cb = _add_exact(w[_SB], w[_CB], b, ring_b[slot])
        w[_SA] = sa
        w[_CA] = ca
        w[_SB] = sb
        w[_CB] = cb
    ring_a[slot] = a
    ring_b[slot] = b
    head += 1.0
    if head == n:
        head = 0.0
        _pair_resync(w, ring_a, ring_b, size)
    w[_HEAD] = head
    w[_COUNT] = count + 1.0
    return count + 1.0 >= n


@njit(**HOT)
def pair_sums(w: np.ndarray) -> tuple[float, float]:
    """Return the two sums over the window."""
    return w[_SA] + w[_CA], w[_SB] + w[_CB]
