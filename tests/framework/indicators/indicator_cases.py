"""Shared helpers for the indicator tests: input series, gap-aware vectorised references, data.

The references here are independent of the kernels: whole-array numpy/pandas formulas
(sliding windows, two-pass variances, pandas ``ewm``) computed on the valid rows only,
then spread over the gaps the way every indicator treats them (a gap carries the last
output). A kernel that agrees with them both streaming and in batch computes the
documented formula with the documented gap rule.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
from hypothesis import strategies as st
from numpy.lib.stride_tricks import sliding_window_view

from framework.data.loaders import bars as bar_loader
from framework.data.loaders import binance, lean
from framework.data.synthetic import SyntheticSpec, generate_day
from framework.events import INV_PRICE_SCALE

DAY_NS = 86_400_000_000_000

# ----------------------------------------------------------------------------- comparisons


def assert_identical(actual, expected) -> None:
    """Assert two float arrays (or tuples of them) are equal bit for bit, NaN included."""
    if isinstance(expected, tuple):
        assert isinstance(actual, tuple) and len(actual) == len(expected)
        for a, e in zip(actual, expected, strict=True):
            assert_identical(a, e)
        return
    a = np.ascontiguousarray(actual, dtype=np.float64)
    e = np.ascontiguousarray(expected, dtype=np.float64)
    assert a.shape == e.shape
    bad = np.flatnonzero(a.view(np.uint64) != e.view(np.uint64))
    assert bad.size == 0, f"{bad.size} values differ, first at {bad[0]}: {a[bad[0]]!r} != {e[bad[0]]!r}"


def assert_close(
    actual: np.ndarray, expected: np.ndarray, atol: float | np.ndarray, where: np.ndarray | None = None, label: str = ""
) -> None:
    """Assert NaN in the same places and ``|actual - expected| <= atol`` elsewhere (or only ``where``).

    ``atol`` is one bound or one per element."""
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    assert actual.shape == expected.shape
    nan_a, nan_e = np.isnan(actual), np.isnan(expected)
    mismatch = np.flatnonzero(nan_a != nan_e)
    assert mismatch.size == 0, (
        f"{label}: NaN pattern differs first at {mismatch[0]}: {actual[mismatch[0]]} vs {expected[mismatch[0]]}"
    )
    check = ~nan_a if where is None else (~nan_a & where)
    err = np.abs(actual[check] - expected[check])
    bound = np.broadcast_to(np.asarray(atol, dtype=np.float64), actual.shape)[check]
    if err.size:
        i = int(np.argmax(err - bound))
        assert err[i] <= bound[i], f"{label}: error {err[i]:.3g} > {bound[i]:.3g} at {np.flatnonzero(check)[i]}"


def stream(update: Callable, state: np.ndarray, *inputs: np.ndarray):
    """Call a streaming update once per element from Python; return its outputs as arrays."""
    outs = [update(state, *(a[t] for a in inputs)) for t in range(len(inputs[0]))]
    if outs and isinstance(outs[0], tuple):
        return tuple(np.array(col, dtype=np.float64) for col in zip(*outs, strict=True))
    return np.array(outs, dtype=np.float64)


def scale_of(x: np.ndarray) -> float:
    """Largest finite magnitude in ``x`` (1 if none): the unit the rounding errors scale with."""
    finite = np.abs(x[np.isfinite(x)])
    return float(finite.max()) if finite.size and finite.max() > 0 else 1.0


# ----------------------------------------------------------------------------- generated inputs


@st.composite
def series(draw, max_size: int = 300, positive: bool = True) -> np.ndarray:
    """Draw a float64 series of segments: random walks, tick-grid walks (many repeats), flat
    runs, NaN and infinite gaps and single spikes, at a level from 1e-2 to 5e4.
    With ``positive=False`` the series is centred near zero (signs change)."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    level = draw(st.sampled_from([1e-2, 1.0, 100.0, 5e4]))
    kinds = draw(st.lists(st.sampled_from(["walk", "ticks", "flat", "gap", "spike"]), min_size=1, max_size=8))
    parts = []
    x = level
    for kind in kinds:
        length = int(rng.integers(1, max(2, max_size // len(kinds))))
        if kind == "walk":
            seg = x * np.exp(np.cumsum(rng.normal(0, 0.01, length)))
        elif kind == "ticks":
            tick = level * 1e-3
            seg = x + tick * np.cumsum(rng.integers(-1, 2, length))
            seg = np.where(seg > 0, seg, x)
        elif kind == "flat":
            seg = np.full(length, x)
        elif kind == "gap":
            seg = rng.choice([np.nan, np.inf, -np.inf], length)
        else:
            seg = np.array([x * (1e3 if rng.random() < 0.5 else 1e-3)])
        parts.append(seg)
        finite = seg[np.isfinite(seg)]
        if kind != "spike" and finite.size:
            x = float(finite[-1])
    out = np.concatenate(parts).astype(np.float64)
    return out if positive else out - level


windows = st.integers(1, 40)


# ----------------------------------------------------------------------------- references


def with_gaps(ref: Callable, valid: np.ndarray, *arrays: np.ndarray):
    """Apply ``ref`` to the valid rows only and carry each output over the gaps (the indicators' rule)."""
    idx = np.cumsum(valid) - 1
    has = idx >= 0
    result = ref(*(a[valid] for a in arrays))

    def spread(r: np.ndarray) -> np.ndarray:
        full = np.full(valid.shape[0], np.nan)
        full[has] = r[idx[has]]
        return full

    return tuple(spread(r) for r in result) if isinstance(result, tuple) else spread(result)


def _aligned(n_total: int, start: int, values: np.ndarray) -> np.ndarray:
    out = np.full(n_total, np.nan)
    out[start : start + len(values)] = values
    return out


def _windows(x: np.ndarray, n: int) -> np.ndarray:
    return sliding_window_view(x, n) if len(x) >= n else np.empty((0, n))


def sma_ref(x: np.ndarray, n: int) -> np.ndarray:
    return _aligned(len(x), n - 1, _windows(x, n).mean(axis=1))


def var_ref(x: np.ndarray, n: int) -> np.ndarray:
    """Two-pass population variance of each window of ``n``."""
    w = _windows(x, n)
    return _aligned(len(x), n - 1, ((w - w.mean(axis=1, keepdims=True)) ** 2).mean(axis=1))


def ema_ref(x: np.ndarray, n: int, alpha: float | None = None) -> np.ndarray:
    """SMA-seeded exponential average (TA-Lib's convention) through pandas ``ewm``."""
    if len(x) < n:
        return np.full(len(x), np.nan)
    seeded = np.concatenate([[x[:n].mean()], x[n:]])
    a = 2.0 / (n + 1) if alpha is None else alpha
    return _aligned(len(x), n - 1, pd.Series(seeded).ewm(alpha=a, adjust=False).mean().to_numpy())


def wma_ref(x: np.ndarray, n: int) -> np.ndarray:
    return _aligned(len(x), n - 1, _windows(x, n) @ np.arange(1, n + 1) / (n * (n + 1) / 2))


def rsi_ref(x: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Wilder RSI (50 when there is no movement) and ``avg_gain + avg_loss``, aligned on ``x``."""
    d = np.diff(x)
    gain = ema_ref(np.clip(d, 0, None), n, alpha=1.0 / n)
    loss = ema_ref(np.clip(-d, 0, None), n, alpha=1.0 / n)
    total = gain + loss
    with np.errstate(invalid="ignore", divide="ignore"):
        rsi = np.where(total > 0, 100 * gain / total, np.where(np.isnan(total), np.nan, 50.0))
    pad = np.full(min(1, len(x)), np.nan)
    return np.concatenate([pad, rsi]), np.concatenate([pad, total])


def macd_ref(x: np.ndarray, fast: int, slow: int, signal: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """MACD with the fast EMA seeded where the slow one is (TA-Lib's convention)."""
    slow_ema = ema_ref(x, slow)
    fast_ema = np.concatenate([np.full(slow - fast, np.nan), ema_ref(x[slow - fast :], fast)])[: len(x)]
    line = fast_ema - slow_ema
    sig = np.full(len(x), np.nan)
    if len(x) >= slow:
        sig[slow - 1 :] = ema_ref(line[slow - 1 :], signal)
    return line, sig, line - sig


def bbands_ref(x: np.ndarray, n: int, k: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    mid = sma_ref(x, n)
    std = np.sqrt(var_ref(x, n))
    return mid, mid + k * std, mid - k * std


def true_range(high: np.ndarray, low: np.ndarray, close: np.ndarray) -> np.ndarray:
    prev = close[:-1]
    return np.maximum.reduce([high[1:] - low[1:], np.abs(prev - high[1:]), np.abs(low[1:] - prev)])


def atr_ref(high: np.ndarray, low: np.ndarray, close: np.ndarray, n: int) -> np.ndarray:
    tr = true_range(high, low, close)
    return np.concatenate([np.full(min(1, len(close)), np.nan), ema_ref(tr, n, alpha=1.0 / n)])


def log_returns(p: np.ndarray, k: int = 1) -> np.ndarray:
    return np.log(p[k:] / p[:-k]) if len(p) > k else np.empty(0)


def realized_var_ref(p: np.ndarray, n: int) -> np.ndarray:
    """Variance of the last ``n`` log returns (the square of realized volatility)."""
    r = log_returns(p)
    return np.concatenate([np.full(min(1, len(p)), np.nan), var_ref(r, n)])


def log_return_ref(p: np.ndarray, k: int) -> np.ndarray:
    return _aligned(len(p), k, log_returns(p, k))


def rolling_min_ref(x: np.ndarray, n: int) -> np.ndarray:
    return pd.Series(x).rolling(n).min().to_numpy()


def rolling_max_ref(x: np.ndarray, n: int) -> np.ndarray:
    return pd.Series(x).rolling(n).max().to_numpy()


def zscore_ref(x: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The z-score (0 where the window's deviation is 0) and the deviation, to weigh the error by."""
    std = np.sqrt(var_ref(x, n))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(std == 0, 0.0, (x - sma_ref(x, n)) / std), std


def vwap_ref(price: np.ndarray, size: np.ndarray, n: int) -> np.ndarray:
    return _aligned(len(price), n - 1, _windows(price * size, n).sum(axis=1) / _windows(size, n).sum(axis=1))


def vwap_session_ref(ts_ns: np.ndarray, price: np.ndarray, size: np.ndarray, start_ns: int) -> np.ndarray:
    session = (ts_ns - start_ns) // DAY_NS
    notional = pd.Series(price * size).groupby(session).cumsum().to_numpy()
    volume = pd.Series(size).groupby(session).cumsum().to_numpy()
    return notional / volume


def trade_flow_ref(size: np.ndarray, side: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    flow = _aligned(len(size), n - 1, _windows(side * size, n).sum(axis=1))
    volume = _aligned(len(size), n - 1, _windows(size, n).sum(axis=1))
    return flow, flow / volume


# ----------------------------------------------------------------------------- data


def _trades(records: np.ndarray) -> dict[str, np.ndarray]:
    return {
        "ts": records["ts_recv"].astype(np.int64),
        "price": records["price"] * INV_PRICE_SCALE,
        "size": records["size"] * INV_PRICE_SCALE,
        "side": records["side"].astype(np.float64),
    }


def _quotes(records: np.ndarray) -> dict[str, np.ndarray]:
    return {
        name: records[name] * INV_PRICE_SCALE for name in ("bid_price", "bid_size", "ask_price", "ask_size")
    }


def _bars(records: np.ndarray) -> dict[str, np.ndarray]:
    return {name: records[name] * INV_PRICE_SCALE for name in ("high", "low", "close", "volume")}


@lru_cache(maxsize=None)
def binance_trades(root: Path) -> dict[str, np.ndarray]:
    """BTCUSDT perpetual trades (21,313), float64 whole units, side = aggressor."""
    return _trades(binance.load_trades(root / "trades/binance_usdm_btcusdt_trades_20240808.csv.gz")["trade"])


@lru_cache(maxsize=None)
def binance_quotes(root: Path) -> dict[str, np.ndarray]:
    """BTCUSDT perpetual best bid/offer updates (66,089)."""
    return _quotes(binance.load_quotes(root / "quotes/binance_usdm_btcusdt_quotes_20240808.csv.gz")["quote"])


@lru_cache(maxsize=None)
def lean_trades(root: Path) -> dict[str, np.ndarray]:
    """BAC consolidated-tape trades of one session (125,872), no aggressor side."""
    return _trades(lean.load_trades(root / "trades/lean_bac_trades_20131008.csv.gz")["trade"])


@lru_cache(maxsize=None)
def lean_daily(root: Path, ticker: str) -> dict[str, np.ndarray]:
    """Unadjusted daily bars (splits show as jumps: a hard case for ATR)."""
    return _bars(bar_loader.load_lean_daily(root / f"bars/lean_daily_{ticker}.csv")["bar"])


@lru_cache(maxsize=None)
def synthetic(seed: int = 3, trades: int = 50_000) -> dict[str, dict[str, np.ndarray]]:
    """One synthetic day (framework.data.synthetic): trades, quotes, and 50-trade bars."""
    day = generate_day(SyntheticSpec(trades_per_day=trades, seed=seed), 0)
    t = _trades(day["trade"])
    starts = np.arange(0, len(t["price"]), 50)
    bars = {
        "high": np.maximum.reduceat(t["price"], starts),
        "low": np.minimum.reduceat(t["price"], starts),
        "close": t["price"][np.minimum(starts + 49, len(t["price"]) - 1)],
        "volume": np.add.reduceat(t["size"], starts),
    }
    return {"trade": t, "quote": _quotes(day["quote"]), "bar": bars}


def check_streaming_equals_batch(make_state: Callable, update: Callable, batch: Callable, params: tuple, *inputs):
    """Run ``update`` from Python one element at a time and ``batch`` over the arrays; assert
    bit-identical outputs and return them."""
    streamed = stream(update, make_state(*params), *inputs)
    batched = batch(*inputs, *params)
    assert_identical(streamed, batched)
    return batched


def book_l2_ref(
    bid_px: np.ndarray, bid_sz: np.ndarray, ask_px: np.ndarray, ask_sz: np.ndarray, levels: int
) -> tuple[np.ndarray, np.ndarray]:
    """L2 imbalance and microprice of each row (NaN where undefined), by whole-array masks."""

    def side(px: np.ndarray, sz: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        px, sz = px[:, :levels], sz[:, :levels]
        with np.errstate(invalid="ignore"):
            size_ok = np.isfinite(sz) & (sz > 0)
        used = size_ok & np.isfinite(px)
        total = np.where(size_ok, sz, 0).sum(axis=1)
        return total, np.where(used, sz, 0).sum(axis=1), np.where(used, px * sz, 0).sum(axis=1)

    b_all, b, b_notional = side(bid_px, bid_sz)
    a_all, a, a_notional = side(ask_px, ask_sz)
    with np.errstate(invalid="ignore", divide="ignore"):
        imbalance = np.where(b_all + a_all > 0, (b_all - a_all) / (b_all + a_all), np.nan)
        micro = np.where((b > 0) & (a > 0), (b_notional / b * a + a_notional / a * b) / (a + b), np.nan)
    return imbalance, micro


def carry(values: np.ndarray) -> np.ndarray:
    """Forward-fill NaN with the last defined value (a gap carries the last output)."""
    return pd.Series(values).ffill().to_numpy()


@lru_cache(maxsize=None)
def bybit_books(root: Path, levels: int = 10) -> dict[str, np.ndarray]:
    """XRPUSDT books rebuilt after each of the 50 messages of the Bybit orderbook.500 capture:
    the top ``levels`` of each side, best first, as [message, level] arrays (NaN past the depth)."""
    rows = pd.read_csv(root / "depth/bybit_linear_xrpusdt_ob500_20241201.csv.gz")
    book: dict[str, dict[float, float]] = {"bid": {}, "ask": {}}
    out = {k: np.full((rows["update_id"].nunique(), levels), np.nan) for k in ("bid_px", "bid_sz", "ask_px", "ask_sz")}
    for m, (_, msg) in enumerate(rows.groupby("update_id", sort=False)):
        if msg["msg_type"].iloc[0] == "snapshot":
            book = {"bid": {}, "ask": {}}
        for side, price, qty in zip(msg["side"], msg["price"], msg["qty"], strict=True):
            if qty == 0:
                book[side].pop(price, None)
            else:
                book[side][price] = qty
        for side, descending in (("bid", True), ("ask", False)):
            top = sorted(book[side].items(), reverse=descending)[:levels]
            out[f"{side}_px"][m, : len(top)] = [p for p, _ in top]
            out[f"{side}_sz"][m, : len(top)] = [q for _, q in top]
    return out
