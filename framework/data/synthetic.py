"""A synthetic market with realistic microstructure, for tests and benchmarks.

The model, from slow to fast:

* A daily skeleton: GARCH(1,1) with Student-t innovations fixes each day's open and
  variance level. Every day is then generated on its own from (seed, day) yet joins
  the previous day's close, so any day can be made without making the ones before.
* An intraday efficient log price on a one-second grid: Student-t minute returns
  (spread over their seconds by a Gaussian bridge) whose variance follows a
  per-minute GARCH(1,1) (volatility clustering) times an intraday U-shaped
  seasonal factor, bridged to end at the next day's open.
* Event times for quotes and trades drawn from an inhomogeneous Poisson process
  whose intensity has the same U shape (busy open and close, quiet middle).
* Quotes on the tick grid around the efficient price, with a spread in ticks that
  widens with the local volatility (never crossed: ask > bid) and heavy-tailed
  (Pareto) sizes on the lot grid.
* Trades at the prevailing touch: buys lift the ask, sells hit the bid, and the
  aggressor is more likely a buyer when the efficient price is above the mid.

Per-event work is compiled, and every day is seeded from (seed, day) with PCG64, so
the same spec always gives byte-identical arrays.
"""

from __future__ import annotations

import math
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache

import numba as nb
import numpy as np

from framework.data.catalog import Catalog
from framework.events import QUOTE_DTYPE, TRADE_DTYPE, EventKind, Side, concat_records, records, to_fixed

_DAY_NS = 86_400_000_000_000
_SEC_NS = 1_000_000_000
_MINUTE = 60


@dataclass(frozen=True)
class SyntheticSpec:
    """Describe a synthetic instrument and how many days of it to make.

    Prices and sizes are in whole units (``tick_size=0.01``); the arrays hold them as
    fixed point. ``session_start`` (``HH:MM`` UTC) and ``session_hours`` bound the
    trading day; every calendar day from ``start`` has a session.
    ``annual_volatility`` is spread over ``days_per_year`` sessions. ``u_shape`` is
    how much busier (and more volatile) the session edges are than its middle:
    intensity at open and close is ``1 + u_shape`` times the midday intensity.
    ``tail_dof`` is the Student-t degrees of freedom of returns (lower is heavier),
    ``garch_alpha``/``garch_beta`` the GARCH(1,1) reaction and persistence (per
    minute intraday, per day across days), ``mean_spread_ticks`` the mean spread at
    average volatility, ``size_tail`` the Pareto tail index of sizes in lots
    (trades start at one lot, quotes at ``quote_size_lots``).

    ``venues`` lists the instrument on that many venues (``venue_id`` 0 .. venues-1):
    every venue quotes and trades around the same efficient price, each with its own
    draws of arrivals, spreads, sizes and aggressors, so their touches differ by
    microstructure noise and a router has real choices. Venue 0's rows are exactly
    those of a one-venue spec.
    """

    symbol: str = "SYN"
    start: str = "2024-01-01"
    days: int = 1
    trades_per_day: int = 100_000
    quotes_per_trade: float = 2.0
    initial_price: float = 100.0
    tick_size: float = 0.01
    lot_size: float = 1.0
    annual_volatility: float = 0.4
    seed: int = 0
    session_start: str = "00:00"
    session_hours: float = 24.0
    days_per_year: float = 365.0
    tail_dof: float = 4.0
    garch_alpha: float = 0.08
    garch_beta: float = 0.90
    u_shape: float = 2.0
    mean_spread_ticks: float = 1.6
    size_tail: float = 1.6
    quote_size_lots: float = 5.0
    venues: int = 1

    def __post_init__(self) -> None:
        checks = [
            (self.days >= 1, "days >= 1"),
            (self.trades_per_day >= 1, "trades_per_day >= 1"),
            (self.quotes_per_trade > 0, "quotes_per_trade > 0"),
            (self.tick_size > 0 and self.lot_size > 0, "positive tick_size and lot_size"),
            (self.initial_price >= 10 * self.tick_size, "initial_price >= 10 ticks"),
            (self.annual_volatility > 0 and self.days_per_year > 0, "positive volatility and days_per_year"),
            (self.seed >= 0, "a non-negative seed"),
            (0 < self.session_hours <= 24, "0 < session_hours <= 24"),
            (self._session_offset_ns() + self.session_ns <= _DAY_NS, "a session that ends by midnight UTC"),
            (self.tail_dof > 2, "tail_dof > 2 (finite variance)"),
            (self.garch_alpha >= 0 and self.garch_beta >= 0, "non-negative GARCH parameters"),
            (self.garch_alpha + self.garch_beta < 1, "garch_alpha + garch_beta < 1 (stationary)"),
            (self.u_shape >= 0, "u_shape >= 0"),
            (self.mean_spread_ticks >= 1, "mean_spread_ticks >= 1"),
            (self.size_tail > 1 and self.quote_size_lots >= 1, "size_tail > 1 and quote_size_lots >= 1"),
            (1 <= self.venues <= 16, "1 <= venues <= 16"),
            (re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d", self.session_start) is not None, "session_start as HH:MM"),
        ]
        failed = [what for ok, what in checks if not ok]
        if failed:
            raise ValueError(f"invalid SyntheticSpec: expected {'; '.join(failed)}")

    def _session_offset_ns(self) -> int:
        hours, minutes = self.session_start.split(":")
        return (int(hours) * 3600 + int(minutes) * 60) * _SEC_NS

    @property
    def session_ns(self) -> int:
        """Length of the daily session in nanoseconds."""
        return round(self.session_hours * 3600) * _SEC_NS

    def session_open_ns(self, day_index: int) -> int:
        """Return the UTC open time of day ``day_index`` in nanoseconds."""
        day0 = int(np.datetime64(self.start, "D").astype(np.int64))
        return (day0 + day_index) * _DAY_NS + self._session_offset_ns()


def _rng(spec: SyntheticSpec, stream: int) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([spec.seed, stream])))


def _std_t(rng: np.random.Generator, dof: float, n: int) -> np.ndarray:
    """Draw Student-t innovations scaled to unit variance."""
    return rng.standard_t(dof, n) * math.sqrt((dof - 2) / dof)


@lru_cache(maxsize=16)
def _skeleton(spec: SyntheticSpec) -> tuple[np.ndarray, np.ndarray]:
    """Return daily open log prices (days + 1) and daily variance ratios (days)."""
    z = _std_t(_rng(spec, 0), spec.tail_dof, spec.days)
    var = spec.annual_volatility**2 / spec.days_per_year
    omega = var * (1 - spec.garch_alpha - spec.garch_beta)
    logp = np.empty(spec.days + 1)
    ratio = np.empty(spec.days)
    logp[0] = math.log(spec.initial_price)
    h = var
    for d in range(spec.days):
        ratio[d] = h / var
        r = math.sqrt(h) * z[d]
        logp[d + 1] = logp[d] + r
        h = omega + spec.garch_alpha * r * r + spec.garch_beta * h
    return logp, ratio


@nb.njit(cache=True, nogil=True)
def _intraday(z, e, season, h0, omega, alpha, beta, unit):  # pragma: no cover - compiled
    """Return the per-second log path (from 0) and per-second volatility ratio.

    ``h`` is a per-minute variance following GARCH(1,1) on deseasonalized minute
    returns. Minute m moves by ``sqrt(h * season) * z[m]`` (Student-t, so 1-minute
    returns keep their heavy tails instead of averaging them away over 60 seconds),
    spread over its seconds along a Gaussian bridge ``e`` so that each second's
    variance is ``h * season / 60``.
    """
    n = e.shape[0]
    logp = np.empty(n + 1)
    vol = np.empty(n)
    logp[0] = 0.0
    h = h0
    for m in range((n + 59) // 60):
        lo = m * 60
        hi = min(lo + 60, n)
        k = hi - lo
        bridge = 0.0
        fsum = 0.0
        for s in range(lo, hi):
            bridge += e[s]
            fsum += season[s]
        bridge /= k
        acc = 0.0
        for s in range(lo, hi):
            var = h * season[s] / k
            r = math.sqrt(var) * (z[m] / math.sqrt(k) + e[s] - bridge)
            logp[s + 1] = logp[s] + r
            vol[s] = math.sqrt(var * k / unit)
            acc += r
        h = omega + alpha * acc * acc / (fsum / k) + beta * h
    return logp, vol


@nb.njit(cache=True, nogil=True)
def _arrivals(rng, n, u_shape, first_at_open):  # pragma: no cover - compiled
    """Draw n sorted arrival fractions in [0, 1) of the session, U-shaped intensity.

    Normalized cumulative sums of exponential gaps are sorted uniforms (no sort
    needed); they go through the inverse of the cumulative intensity
    F(x) = (x + u((2x - 1)^3 + 1) / 6) / (1 + u / 3), tabulated and walked once.
    With ``first_at_open`` the first arrival is at 0 exactly.
    """
    lead = 1 if first_at_open else 0
    out = np.empty(n + 1 - lead)
    total = 0.0
    for i in range(out.shape[0]):
        total += rng.standard_exponential()
        out[i] = total
    grid = 1 << 14
    j = 0
    x0 = 0.0
    f0 = 0.0
    x1 = 1.0 / grid
    f1 = (x1 + u_shape * ((2 * x1 - 1) ** 3 + 1) / 6) / (1 + u_shape / 3)
    for i in range(n - lead):
        target = out[i] / total
        while f1 < target and j < grid - 1:
            j += 1
            x0, f0 = x1, f1
            x1 = (j + 1) / grid
            f1 = (x1 + u_shape * ((2 * x1 - 1) ** 3 + 1) / 6) / (1 + u_shape / 3)
        out[i] = min(x0 + (x1 - x0) * (target - f0) / (f1 - f0), 1.0 - 1e-15)
    if lead:
        out[1:] = out[:-1].copy()
        out[0] = 0.0
    return out[:n]


@nb.njit(cache=True, nogil=True, inline="always")
def _log_price(path, sec):  # pragma: no cover - compiled
    j = min(int(sec), path.shape[0] - 2)
    return path[j] + (sec - j) * (path[j + 1] - path[j]), j


@nb.njit(cache=True, nogil=True, inline="always")
def _lots(rng, tail, scale, cap):  # pragma: no cover - compiled
    """Draw a Pareto size in lots (at least ``scale``, at most ``cap``)."""
    return min(math.floor(scale * math.exp(-math.log(1.0 - rng.random()) / tail)), cap)


@nb.njit(cache=True, nogil=True)
def _fill_quotes(out, rng, x, path, vol, p):  # pragma: no cover - compiled
    """Fill quotes: tick-grid bid/ask around the efficient price, vol-dependent spread."""
    open_ns, session_ns, n_sec, inv_tick, tick, lot, extra_ticks, tail, scale, cap = p
    for i in range(out.shape[0]):
        sec = x[i] * n_sec
        lp, j = _log_price(path, sec)
        mid = math.exp(lp) * inv_tick
        mean_extra = extra_ticks * vol[j]  # geometric number of extra ticks, mean grows with vol
        extra = 0
        if mean_extra > 0:
            extra = min(math.floor(math.log(1.0 - rng.random()) / math.log(mean_extra / (1.0 + mean_extra))), 1000)
        spread = 1 + extra
        bid = max(round(mid - spread / 2), 1)
        ts = open_ns + np.int64(x[i] * session_ns)
        q = out[i]
        q.ts_event = ts
        q.ts_recv = ts
        q.kind = EventKind.QUOTE
        q.bid_price = bid * tick
        q.ask_price = (bid + spread) * tick
        q.bid_size = _lots(rng, tail, scale, cap) * lot
        q.ask_size = _lots(rng, tail, scale, cap) * lot


@nb.njit(cache=True, nogil=True)
def _fill_trades(out, rng, x, path, quotes, first_id, p):  # pragma: no cover - compiled
    """Fill trades at the prevailing quote's touch; buy more likely above the mid."""
    open_ns, session_ns, n_sec, inv_tick, tick, lot, tail, cap = p
    q = 0
    first = quotes[0].ts_event
    for i in range(out.shape[0]):
        ts = max(open_ns + np.int64(x[i] * session_ns), first + 1)
        while q + 1 < quotes.shape[0] and quotes[q + 1].ts_event < ts:
            q += 1
        bid = quotes[q].bid_price
        ask = quotes[q].ask_price
        lp, _ = _log_price(path, x[i] * n_sec)
        edge = (math.exp(lp) * inv_tick * tick - (bid + ask) / 2) / (ask - bid)
        buy = rng.random() < 1.0 / (1.0 + math.exp(-4.0 * edge))
        t = out[i]
        t.ts_event = ts
        t.ts_recv = ts
        t.kind = EventKind.TRADE
        t.side = Side.BUY if buy else Side.SELL
        t.price = ask if buy else bid
        t.size = _lots(rng, tail, 1.0, cap) * lot
        t.trade_id = first_id + i


def generate_day(spec: SyntheticSpec, day_index: int) -> dict[str, np.ndarray]:
    """Make one day of synthetic data: ``{"trade": TRADE_DTYPE, "quote": QUOTE_DTYPE}``.

    Deterministic in (spec, day_index) and independent of other days' generation, so
    days can be made one at a time with bounded memory, or in parallel.
    """
    if not 0 <= day_index < spec.days:
        raise IndexError(f"day_index {day_index} outside 0..{spec.days - 1}")
    rng = _rng(spec, day_index + 1)
    open_logp, var_ratio = _skeleton(spec)
    n_sec = spec.session_ns // _SEC_NS
    minute_var = spec.annual_volatility**2 / spec.days_per_year / (n_sec / _MINUTE)
    x = (np.arange(n_sec) + 0.5) / n_sec
    season = (1 + spec.u_shape * (2 * x - 1) ** 2) / (1 + spec.u_shape / 3)
    path, vol = _intraday(
        _std_t(rng, spec.tail_dof, (n_sec + _MINUTE - 1) // _MINUTE),
        rng.standard_normal(n_sec),
        season,
        minute_var * var_ratio[day_index],
        minute_var * (1 - spec.garch_alpha - spec.garch_beta),
        spec.garch_alpha,
        spec.garch_beta,
        minute_var,
    )
    # Bridge the day to end exactly at the next day's open from the skeleton.
    path += open_logp[day_index] + np.linspace(0.0, 1.0, n_sec + 1) * (
        open_logp[day_index + 1] - open_logp[day_index] - path[-1]
    )
    tick = to_fixed(spec.tick_size)
    lot = to_fixed(spec.lot_size)
    cap = min(10**9, (2**62) // lot)
    open_ns = spec.session_open_ns(day_index)

    per_venue = []
    for venue in range(spec.venues):
        venue_rng = rng if venue == 0 else _rng(spec, 1_000_000 * venue + day_index + 1)
        first_id = (venue * spec.days + day_index) * spec.trades_per_day + 1
        per_venue.append(_venue_day(spec, venue_rng, path, vol, n_sec, open_ns, tick, lot, cap, first_id))
        per_venue[-1]["quote"]["venue_id"] = venue
        per_venue[-1]["trade"]["venue_id"] = venue
    if spec.venues == 1:
        return per_venue[0]
    out = {}
    for kind in ("trade", "quote"):
        merged = concat_records([day[kind] for day in per_venue], per_venue[0][kind].dtype)
        out[kind] = merged[np.argsort(merged["ts_event"], kind="stable")]
    return out


def _venue_day(spec: SyntheticSpec, rng: np.random.Generator, path: np.ndarray, vol: np.ndarray, n_sec: int,
               open_ns: int, tick: int, lot: int, cap: int, first_id: int) -> dict[str, np.ndarray]:
    """One venue's quotes and trades around the day's efficient price ``path``."""
    # Quotes: the first at the open, so every trade has a prevailing quote.
    n_quotes = max(1, round(spec.trades_per_day * spec.quotes_per_trade))
    quotes = records(n_quotes, QUOTE_DTYPE)
    _fill_quotes(
        quotes, rng, _arrivals(rng, n_quotes, spec.u_shape, True), path, vol,
        (open_ns, spec.session_ns, n_sec, 1 / spec.tick_size, tick, lot, spec.mean_spread_ticks - 1,
         spec.size_tail, spec.quote_size_lots, cap),
    )
    # Trades: strictly after the quote they trade against, at its bid or ask.
    n_trades = spec.trades_per_day
    trades = records(n_trades, TRADE_DTYPE)
    _fill_trades(
        trades, rng, _arrivals(rng, n_trades, spec.u_shape, False), path, quotes, first_id,
        (open_ns, spec.session_ns, n_sec, 1 / spec.tick_size, tick, lot, spec.size_tail, cap),
    )
    return {"trade": trades, "quote": quotes}


def write_synthetic(catalog: Catalog, spec: SyntheticSpec) -> None:
    """Generate ``spec`` day by day into ``catalog`` (memory bounded by one day).

    The instrument is registered with its ``tick_size`` and ``lot_size`` in fixed
    point; a day's trade and quote files are encoded concurrently.
    """
    catalog.register(spec.symbol, tick_size=to_fixed(spec.tick_size), lot_size=to_fixed(spec.lot_size))
    with ThreadPoolExecutor(2) as pool:
        for day in range(spec.days):
            records = generate_day(spec, day)
            for done in [pool.submit(catalog.write, kind, spec.symbol, a) for kind, a in records.items()]:
                done.result()
