"""Indicator speed: streaming update cost, batch throughput, and how that compares with plain
Python and with TA-Lib; then the cost per event of the default feature set.

For each indicator, one table row:

* stream ns    nanoseconds per update of the streaming kernel inside a compiled loop (how
               it runs in a strategy's ``on_event``: state in memory, nothing allocated);
* batch M/s    millions of values per second of the ``*_1d_nb`` batch function (the same
               update in a loop, plus the output arrays);
* python ns    nanoseconds per value of a straightforward pure-Python streaming loop
               (running sums, deques; written below, no NumPy per element);
* x python     python ns / stream ns;
* talib M/s    TA-Lib's function over the same array, where it has the indicator;
* x talib      batch speed / TA-Lib speed (above 1: faster than TA-Lib).

Inputs are a synthetic random walk of ``--n`` prices (sizes, sides and L1/L2 books
alongside), windows of 20 (MACD 12/26/9, L2 over 5 levels). Each figure is the best CPU
time of ``--repeat`` runs; pure Python runs once over ``--n-python`` values. Usage::

    python bench/indicators.py
    python bench/indicators.py --n 5000000 --repeat 7

This is a script, not a test: figures depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from app.numba_cache import configure_numba_cache  # noqa: E402

configure_numba_cache()

import numpy as np  # noqa: E402
import talib  # noqa: E402
from numba import njit  # noqa: E402

from framework.data.synthetic import SyntheticSpec, generate_day  # noqa: E402
from framework.events import EVENT_DTYPE, concat_events  # noqa: E402
from framework.features import FeatureSet  # noqa: E402
from framework.indicators import book, moving_averages, oscillators, returns, rolling, volatility, volume  # noqa: E402

W = 20
LEVELS = 5

# ----------------------------------------------------------------------------- compiled drivers
# Each calls an update once per element and returns the state's first output, so the
# loop has an effect the compiler must keep. The update is passed in, so each driver
# compiles once per indicator, with the update inlined (not cached: Numba names a passed-in
# kernel by a per-process id, so a cached driver would never be found again).


@njit
def _drive1(update, state, a):
    for i in range(a.shape[0]):
        update(state, a[i])
    return state[0]


@njit
def _drive2(update, state, a, b):
    for i in range(a.shape[0]):
        update(state, a[i], b[i])
    return state[0]


@njit
def _drive3(update, state, a, b, c):
    for i in range(a.shape[0]):
        update(state, a[i], b[i], c[i])
    return state[0]


@njit
def _drive4(update, state, a, b, c, d):
    for i in range(a.shape[0]):
        update(state, a[i], b[i], c[i], d[i])
    return state[0]


# ----------------------------------------------------------------------------- pure Python


def _py_sma(x):
    ring, total, out = deque(), 0.0, []
    for v in x:
        ring.append(v)
        total += v
        if len(ring) > W:
            total -= ring.popleft()
        out.append(total / W if len(ring) == W else math.nan)
    return out


def _py_ema(x, n=W):
    alpha, ema, seed, out = 2.0 / (n + 1), math.nan, [], []
    for v in x:
        if len(seed) < n:
            seed.append(v)
            if len(seed) == n:
                ema = sum(seed) / n
        else:
            ema += (v - ema) * alpha
        out.append(ema)
    return out


def _py_wma(x):
    ring, total, weighted, out = deque(), 0.0, 0.0, []
    for v in x:
        if len(ring) == W:
            weighted += W * v - total
            total += v - ring.popleft()
        else:
            total += v
            weighted += (len(ring) + 1) * v
        ring.append(v)
        out.append(weighted / (W * (W + 1) / 2) if len(ring) == W else math.nan)
    return out


def _py_rsi(x):
    prev, gain, loss, k, out = None, 0.0, 0.0, 0, []
    for v in x:
        if prev is not None:
            d = v - prev
            k += 1
            if k > W:
                gain, loss = gain * (W - 1), loss * (W - 1)
            gain, loss = (gain + d, loss) if d >= 0 else (gain, loss - d)
            if k >= W:
                gain, loss = gain / W, loss / W
        prev = v
        out.append(100 * gain / (gain + loss) if k >= W and gain + loss > 0 else math.nan)
    return out


def _py_macd(x):
    fast, slow = _py_ema(x, 12), _py_ema(x, 26)
    line = [f - s for f, s in zip(fast, slow, strict=True)]
    signal = _py_ema([v for v in line if v == v], 9)
    return line, signal


def _py_moments(x, transform=None):
    ring, s1, s2, out = deque(), 0.0, 0.0, []
    for v in x:
        ring.append(v)
        s1 += v
        s2 += v * v
        if len(ring) > W:
            old = ring.popleft()
            s1 -= old
            s2 -= old * old
        mean = s1 / W
        out.append(transform(v, mean, math.sqrt(max(s2 / W - mean * mean, 0.0))) if len(ring) == W else math.nan)
    return out


def _py_bbands(x):
    return _py_moments(x, lambda v, m, s: (m, m + 2 * s, m - 2 * s))


def _py_zscore(x):
    return _py_moments(x, lambda v, m, s: (v - m) / s if s > 0 else 0.0)


def _py_atr(high, low, close):
    prev, atr, total, k, out = None, math.nan, 0.0, 0, []
    for h, lo, c in zip(high, low, close, strict=True):
        if prev is not None:
            tr = max(h - lo, abs(prev - h), abs(lo - prev))
            k += 1
            if k < W:
                total += tr
            elif k == W:
                atr = (total + tr) / W
            else:
                atr = (atr * (W - 1) + tr) / W
        prev = c
        out.append(atr)
    return out


def _py_rvol(x):
    rets = [math.log(b / a) for a, b in zip(x[:-1], x[1:], strict=True)]
    return _py_moments(rets, lambda v, m, s: s)


def _py_extreme(x, better):
    dq, out = deque(), []
    for i, v in enumerate(x):
        while dq and not better(dq[-1][1], v):
            dq.pop()
        dq.append((i, v))
        if dq[0][0] <= i - W:
            dq.popleft()
        out.append(dq[0][1] if i >= W - 1 else math.nan)
    return out


def _py_pair(a, b, finish):
    ring, sa, sb, out = deque(), 0.0, 0.0, []
    for u, v in zip(a, b, strict=True):
        ring.append((u, v))
        sa, sb = sa + u, sb + v
        if len(ring) > W:
            ou, ov = ring.popleft()
            sa, sb = sa - ou, sb - ov
        out.append(finish(sa, sb) if len(ring) == W else math.nan)
    return out


def _py_vwap(p, s):
    return _py_pair([u * v for u, v in zip(p, s, strict=True)], s, lambda a, b: a / b)


def _py_session_vwap(ts, p, s):
    day, notional, vol, out = None, 0.0, 0.0, []
    for t, u, v in zip(ts, p, s, strict=True):
        if t // 86_400_000_000_000 != day:
            day, notional, vol = t // 86_400_000_000_000, 0.0, 0.0
        notional += u * v
        vol += v
        out.append(notional / vol)
    return out


def _py_flow(s, side):
    return _py_pair([u * v for u, v in zip(s, side, strict=True)], s, lambda a, b: (a, a / b))


def _py_imbalance(bs, a_s):
    return [(b - a) / (b + a) for b, a in zip(bs, a_s, strict=True)]


def _py_micro(bp, bs, ap, a_s):
    return [(p * a + q * b) / (b + a) for p, b, q, a in zip(bp, bs, ap, a_s, strict=True)]


def _py_imbalance_l2(bids, asks):
    out = []
    for b_row, a_row in zip(bids, asks, strict=True):
        b, a = sum(b_row[:LEVELS]), sum(a_row[:LEVELS])
        out.append((b - a) / (b + a))
    return out


def _py_micro_l2(bp, bs, ap, a_s):
    out = []
    for p_row, b_row, q_row, a_row in zip(bp, bs, ap, a_s, strict=True):
        b, a = sum(b_row[:LEVELS]), sum(a_row[:LEVELS])
        pb = sum(p * s for p, s in zip(p_row[:LEVELS], b_row[:LEVELS], strict=True)) / b
        pa = sum(p * s for p, s in zip(q_row[:LEVELS], a_row[:LEVELS], strict=True)) / a
        out.append((pb * a + pa * b) / (a + b))
    return out


def _py_log_return(x):
    ring, out = deque(), []
    for v in x:
        out.append(math.log(v / ring[0]) if len(ring) == W else math.nan)
        ring.append(v)
        if len(ring) > W:
            ring.popleft()
    return out


# ----------------------------------------------------------------------------- measurement


def _inputs(n: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = 100.0 * np.exp(np.cumsum(rng.normal(0, 1e-4, n)))
    spread = np.abs(rng.normal(0, 0.01, n))
    depth = np.cumsum(rng.uniform(0.01, 0.02, (n, LEVELS)), axis=1)
    return {
        "x": x, "high": x + spread, "low": x - spread, "size": 10.0 ** rng.uniform(-2, 1, n),
        "side": rng.choice([-1.0, 1.0], n), "ts": np.cumsum(rng.integers(0, 10**9, n)),
        "bid_px": x[:, None] - depth, "ask_px": x[:, None] + depth,
        "bid_sz": 10.0 ** rng.uniform(-1, 1, (n, LEVELS)), "ask_sz": 10.0 ** rng.uniform(-1, 1, (n, LEVELS)),
    }


def _best(fn: Callable[[], object], repeat: int) -> float:
    """Best CPU time of ``repeat`` calls after a warm-up call: CPU time, not wall time, so
    that other processes on a shared machine do not count (cache contention still does)."""
    fn()
    best = math.inf
    for _ in range(repeat):
        t0 = time.process_time()
        fn()
        best = min(best, time.process_time() - t0)
    return best


@dataclass(frozen=True)
class Case:
    """One indicator to time: its state factory and update, the update's input arrays, its
    batch call, a pure-Python loop over the same inputs, and TA-Lib's call (if any)."""

    name: str
    make_state: Callable[[], np.ndarray]
    update: Callable
    inputs: tuple[np.ndarray, ...]
    batch: Callable[[], object]
    python: Callable[..., object]
    talib: Callable[[], object] | None = None


def _cases(d: dict[str, np.ndarray]) -> list[Case]:
    ma, osc, vol, rol, vlm, bk, ret = moving_averages, oscillators, volatility, rolling, volume, book, returns
    x, hi, lo, size, side, ts = d["x"], d["high"], d["low"], d["size"], d["side"], d["ts"]
    bp, bs, ap, a_s = (d[k][:, 0].copy() for k in ("bid_px", "bid_sz", "ask_px", "ask_sz"))
    l2 = (d["bid_px"], d["bid_sz"], d["ask_px"], d["ask_sz"])
    return [
        Case("sma", lambda: ma.sma_state_nb(W), ma.sma_update_nb, (x,), lambda: ma.sma_1d_nb(x, W), _py_sma,
             lambda: talib.SMA(x, W)),
        Case("ema", lambda: ma.ema_state_nb(W), ma.ema_update_nb, (x,), lambda: ma.ema_1d_nb(x, W), _py_ema,
             lambda: talib.EMA(x, W)),
        Case("wma", lambda: ma.wma_state_nb(W), ma.wma_update_nb, (x,), lambda: ma.wma_1d_nb(x, W), _py_wma,
             lambda: talib.WMA(x, W)),
        Case("rsi", lambda: osc.rsi_state_nb(W), osc.rsi_update_nb, (x,), lambda: osc.rsi_1d_nb(x, W), _py_rsi,
             lambda: talib.RSI(x, W)),
        Case("macd", lambda: osc.macd_state_nb(12, 26, 9), osc.macd_update_nb, (x,),
             lambda: osc.macd_1d_nb(x, 12, 26, 9), _py_macd, lambda: talib.MACD(x, 12, 26, 9)),
        Case("bbands", lambda: vol.bbands_state_nb(W, 2.0), vol.bbands_update_nb, (x,),
             lambda: vol.bbands_1d_nb(x, W, 2.0), _py_bbands, lambda: talib.BBANDS(x, W, 2.0, 2.0)),
        Case("atr", lambda: vol.atr_state_nb(W), vol.atr_update_nb, (hi, lo, x),
             lambda: vol.atr_1d_nb(hi, lo, x, W), _py_atr, lambda: talib.ATR(hi, lo, x, W)),
        Case("realized_vol", lambda: vol.realized_vol_state_nb(W), vol.realized_vol_update_nb, (x,),
             lambda: vol.realized_vol_1d_nb(x, W), _py_rvol),
        Case("zscore", lambda: rol.zscore_state_nb(W), rol.zscore_update_nb, (x,),
             lambda: rol.zscore_1d_nb(x, W), _py_zscore),
        Case("rolling_min", lambda: rol.rolling_min_state_nb(W), rol.rolling_min_update_nb, (x,),
             lambda: rol.rolling_min_1d_nb(x, W), lambda v: _py_extreme(v, lambda a, b: a < b),
             lambda: talib.MIN(x, W)),
        Case("rolling_max", lambda: rol.rolling_max_state_nb(W), rol.rolling_max_update_nb, (x,),
             lambda: rol.rolling_max_1d_nb(x, W), lambda v: _py_extreme(v, lambda a, b: a > b),
             lambda: talib.MAX(x, W)),
        Case("vwap", lambda: vlm.vwap_state_nb(W), vlm.vwap_update_nb, (x, size),
             lambda: vlm.vwap_1d_nb(x, size, W), _py_vwap),
        Case("vwap_session", lambda: vlm.vwap_session_state_nb(0), vlm.vwap_session_update_nb, (ts, x, size),
             lambda: vlm.vwap_session_1d_nb(ts, x, size, 0), _py_session_vwap),
        Case("trade_flow", lambda: vlm.trade_flow_state_nb(W), vlm.trade_flow_update_nb, (size, side),
             lambda: vlm.trade_flow_1d_nb(size, side, W), _py_flow),
        Case("book_imbalance", bk.book_imbalance_state_nb, bk.book_imbalance_update_nb, (bs, a_s),
             lambda: bk.book_imbalance_1d_nb(bs, a_s), _py_imbalance),
        Case("microprice", bk.microprice_state_nb, bk.microprice_update_nb, (bp, bs, ap, a_s),
             lambda: bk.microprice_1d_nb(bp, bs, ap, a_s), _py_micro),
        Case("book_imbalance_l2", lambda: bk.book_imbalance_l2_state_nb(LEVELS), bk.book_imbalance_l2_update_nb,
             (l2[1], l2[3]), lambda: bk.book_imbalance_l2_1d_nb(l2[1], l2[3], LEVELS), _py_imbalance_l2),
        Case("microprice_l2", lambda: bk.microprice_l2_state_nb(LEVELS), bk.microprice_l2_update_nb, l2,
             lambda: bk.microprice_l2_1d_nb(*l2, LEVELS), _py_micro_l2),
        Case("log_return", lambda: ret.log_return_state_nb(W), ret.log_return_update_nb, (x,),
             lambda: ret.log_return_1d_nb(x, W), _py_log_return),
    ]


_DRIVERS = {1: _drive1, 2: _drive2, 3: _drive3, 4: _drive4}


def _python_inputs(arrays: tuple[np.ndarray, ...], n: int) -> list[list]:
    return [a[:n].tolist() for a in arrays]


def bench_indicators(n: int, n_python: int, repeat: int) -> None:
    d = _inputs(n)
    print(f"{n:,} values per indicator, window {W}, best CPU time of {repeat}; pure Python over {n_python:,}")
    head = (
        f"{'indicator':<18}{'stream ns':>10}{'batch M/s':>11}{'python ns':>11}{'x python':>10}"
        f"{'talib M/s':>11}{'x talib':>9}"
    )
    print(head)
    print("-" * len(head))
    for case in _cases(d):
        driver = _DRIVERS[len(case.inputs)]
        stream_s = _best(lambda: driver(case.update, case.make_state(), *case.inputs), repeat)  # noqa: B023
        batch_s = _best(case.batch, repeat)
        py_args = _python_inputs(case.inputs, n_python)
        python_s = _best(lambda: case.python(*py_args), 1) * n / n_python  # noqa: B023
        row = f"{case.name:<18}{stream_s / n * 1e9:>10.1f}{n / batch_s / 1e6:>11.1f}"
        row += f"{python_s / n * 1e9:>11.0f}{python_s / stream_s:>10.0f}"
        if case.talib is None:
            row += f"{'-':>11}{'-':>9}"
        else:
            talib_s = _best(case.talib, repeat)
            row += f"{n / talib_s / 1e6:>11.1f}{talib_s / batch_s:>9.2f}"
        print(row)


def bench_features(n_trades: int, repeat: int) -> None:
    fs = FeatureSet.from_yaml(ROOT / "conf/features/default.yaml")
    day = generate_day(SyntheticSpec(trades_per_day=n_trades, seed=1), 0)
    events = concat_events([day["trade"].view(EVENT_DTYPE), day["quote"].view(EVENT_DTYPE)])
    events = events[np.argsort(events["ts_recv"], kind="stable")]
    seconds = _best(lambda: fs.compute(events), repeat)
    print(
        f"\nfeature set 'default' ({len(fs.features)} features, {len(fs.columns)} columns): "
        f"{seconds / len(events) * 1e9:.0f} ns per event over {len(events):,} synthetic trades and quotes "
        f"(FeatureSet.compute: program loop + the matrix row)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="values per indicator")
    parser.add_argument("--n-python", type=int, default=200_000, help="values for the pure-Python loops")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    bench_indicators(args.n, args.n_python, args.repeat)
    bench_features(args.n // 3, args.repeat)


if __name__ == "__main__":
    main()
