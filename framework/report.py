"""Run report: metrics, fills and equity on disk, a chart, and a text summary.

``write_report`` turns the arrays a run produced (backtest or live) into files a human
or a notebook can open without the framework:

* ``metrics.json``  ``stats.summarize`` output plus ``counters`` and ``meta``
* ``fills.parquet`` one row per fill, readable units and the raw fixed-point values
* ``equity.parquet`` the portfolio samples with UTC timestamps and drawdown
* ``report.png``    equity, drawdown and net position on a shared time axis

Each file is written to a temporary file in the same directory and moved into place
with ``os.replace``, so a reader never sees a half-written file and an interrupted run
leaves the previous report intact. ``metrics.json`` is written last: its presence
means the report is complete.

Conventional keys (others are kept and written as they are):
``counters``: ``orders``, ``fills``, ``rejections``;
``meta``: ``strategy``, ``journal_hash``, ``events_processed``, ``elapsed_seconds``.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from framework.events import EQUITY_DTYPE, FILL_DTYPE, INV_PRICE_SCALE, PRICE_SCALE, Liquidity, OrderType, Side
from framework.stats import drawdown, fill_realized_pnl, summarize

METRICS_FILE = "metrics.json"
FILLS_FILE = "fills.parquet"
EQUITY_FILE = "equity.parquet"
CHART_FILE = "report.png"

_TS_UTC = pa.timestamp("ns", tz="UTC")
_LIQUIDITY_NAMES = {Liquidity.NONE: "none", Liquidity.MAKER: "maker", Liquidity.TAKER: "taker"}
_ORDER_TYPE_NAMES = {v: k.lower() for k, v in OrderType._asdict().items()}

# Accepted spellings of the conventional counter and meta keys, first match wins.
_ORDERS_KEYS = ("orders", "orders_submitted", "submitted")
_FILLS_KEYS = ("fills", "n_fills")
_REJECT_KEYS = ("rejections", "rejected", "orders_rejected")
_EVENTS_KEYS = ("events_processed", "events")
_ELAPSED_KEYS = ("elapsed_seconds", "elapsed_s", "elapsed")
_HASH_KEYS = ("journal_hash", "journal_sha256")


# --------------------------------------------------------------------------- atomic files


def _atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp)`` on a temporary file beside ``path``, fsync it, then move it over ``path``.

    Keep the temporary file in the same directory so ``os.replace`` is a rename on one
    file system, which is atomic; remove it if anything fails.
    """
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _write_parquet(path: Path, table: pa.Table) -> None:
    _atomic_write(path, lambda tmp: pq.write_table(table, tmp))


# --------------------------------------------------------------------------- tables


def _lookup(codes: np.ndarray, names: Mapping[int, str], default: Callable[[int], str]) -> np.ndarray:
    """Map integer codes to strings through their unique values (cheap for many rows)."""
    if codes.size == 0:
        return np.empty(0, dtype=object)
    uniq, inverse = np.unique(codes, return_inverse=True)
    table = np.array([names.get(int(u), default(int(u))) for u in uniq], dtype=object)
    return table[inverse]


def fills_table(fills: np.ndarray, instruments: Mapping[int, str]) -> pa.Table:
    """Return the fills as an Arrow table with readable units and the raw fixed-point values.

    ``price``/``size``/``fee`` are float64 whole units; ``price_raw``/``size_raw``/
    ``fee_raw`` are the exact int64 values (divide by ``PRICE_SCALE``, also stored in
    the schema metadata). ``realized_pnl`` is ``stats.fill_realized_pnl``.
    """
    f = np.asarray(fills)
    if f.size == 0:
        f = np.empty(0, dtype=FILL_DTYPE)
    side = np.where(f["side"] == Side.BUY, "buy", np.where(f["side"] == Side.SELL, "sell", "none")).astype(object)
    columns = {
        "ts_event": pa.array(f["ts_event"], type=pa.int64()).cast(_TS_UTC),
        "instrument": pa.array(_lookup(f["instrument_id"], instruments, str), type=pa.string()),
        "side": pa.array(side, type=pa.string()),
        "price": pa.array(f["price"] * INV_PRICE_SCALE, type=pa.float64()),
        "size": pa.array(f["size"] * INV_PRICE_SCALE, type=pa.float64()),
        "fee": pa.array(f["fee"] * INV_PRICE_SCALE, type=pa.float64()),
        "realized_pnl": pa.array(fill_realized_pnl(f), type=pa.float64()),
        "liquidity": pa.array(_lookup(f["liquidity"], _LIQUIDITY_NAMES, str), type=pa.string()),
        "order_type": pa.array(_lookup(f["order_type"], _ORDER_TYPE_NAMES, str), type=pa.string()),
        "client_order_id": pa.array(f["client_order_id"], type=pa.int64()),
        "instrument_id": pa.array(f["instrument_id"], type=pa.int32()),
        "venue_id": pa.array(f["venue_id"], type=pa.uint8()),
        "price_raw": pa.array(f["price"], type=pa.int64()),
        "size_raw": pa.array(f["size"], type=pa.int64()),
        "fee_raw": pa.array(f["fee"], type=pa.int64()),
    }
    table = pa.table(columns)
    return table.replace_schema_metadata({"price_scale": str(PRICE_SCALE)})


def equity_table(equity: np.ndarray) -> pa.Table:
    """Return the equity samples as an Arrow table with UTC timestamps and a drawdown column."""
    e = np.asarray(equity)
    if e.size == 0:
        e = np.empty(0, dtype=EQUITY_DTYPE)
    columns: dict[str, pa.Array] = {"ts_event": pa.array(e["ts_event"], type=pa.int64()).cast(_TS_UTC)}
    for name in EQUITY_DTYPE.names:
        if name != "ts_event":
            columns[name] = pa.array(e[name], type=pa.float64())
    columns["drawdown"] = pa.array(drawdown(e["equity"]), type=pa.float64())
    return pa.table(columns)


# --------------------------------------------------------------------------- chart


_CHART_BUCKETS = 2000
"""Above twice this many samples the chart draws a min/max envelope per time bucket:
the picture is the same (extremes are kept) and a million-sample run renders fast."""


def _envelope(t: np.ndarray, y: np.ndarray, buckets: int = _CHART_BUCKETS) -> tuple[np.ndarray, np.ndarray]:
    """Reduce a long series to its min and max per bucket, both drawn at the bucket's start."""
    if len(y) <= 2 * buckets:
        return t, y
    starts = np.linspace(0, len(y), buckets, endpoint=False).astype(np.int64)
    lo = np.minimum.reduceat(y, starts)
    hi = np.maximum.reduceat(y, starts)
    return np.repeat(t[starts], 2), np.column_stack([lo, hi]).ravel()


def _write_chart(path: Path, equity: np.ndarray, title: str) -> None:
    """Draw equity, drawdown (%) and net position on a shared time axis, or "no data"."""
    # Figure + the Agg canvas directly: no pyplot global state, safe in any thread
    # and independent of whatever backend the process selected.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 8), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    if len(equity) < 2:
        ax = fig.add_subplot()
        ax.text(0.5, 0.5, "no data", ha="center", va="center", fontsize=20, transform=ax.transAxes)
        ax.set_axis_off()
        fig.suptitle(title)
    else:
        ts = equity["ts_event"].astype("datetime64[ns]")
        axes = fig.subplots(3, 1, sharex=True, height_ratios=[3, 1.5, 1.5])
        ax_eq, ax_dd, ax_pos = axes
        t, y = _envelope(ts, equity["equity"])
        ax_eq.plot(t, y, color="tab:blue", linewidth=1.0)
        ax_eq.set_ylabel("equity")
        ax_eq.ticklabel_format(axis="y", useOffset=False, style="plain")
        t, dd_pct = _envelope(ts, -100.0 * drawdown(equity["equity"]))
        ax_dd.fill_between(t, dd_pct, 0.0, color="tab:red", alpha=0.4, linewidth=0.0)
        ax_dd.plot(t, dd_pct, color="tab:red", linewidth=0.6)
        ax_dd.set_ylabel("drawdown %")
        t, pos = _envelope(ts, equity["net_position"])
        ax_pos.step(t, pos, where="post", color="tab:green", linewidth=0.8)
        ax_pos.axhline(0.0, color="grey", linewidth=0.5)
        ax_pos.set_ylabel("net position")
        ax_pos.set_xlabel("time (UTC)")
        for ax in axes:
            ax.grid(True, alpha=0.3)
        fig.suptitle(title)
    _atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"))


# --------------------------------------------------------------------------- metrics


def _jsonable(value: Any) -> Any:
    """Convert numpy scalars and containers to plain JSON; nan and inf become null."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return [_jsonable(v) for v in value.tolist()]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, (bool, int, str)):
        return value
    return str(value)


def _first(mapping: Mapping[str, Any], keys: tuple[str, ...]) -> Any:
    for k in keys:
        if k in mapping and mapping[k] is not None:
            return mapping[k]
    return None


def write_report(
    out_dir: Path,
    equity: np.ndarray,
    fills: np.ndarray,
    counters: dict[str, int],
    instruments: dict[int, str],
    meta: dict,
    *,
    initial_capital: float,
    sample_interval_ns: int,
    calendar: str,
) -> dict:
    """Write metrics.json, fills.parquet, equity.parquet and report.png into ``out_dir``.

    Return the metrics written to ``metrics.json``: the ``stats.summarize`` keys at the
    top level, ``events_per_second`` when ``meta`` gives events and elapsed time, and
    the ``counters`` and ``meta`` dicts nested under those names. nan values are
    written as null so the file is strict JSON. Works for runs with no fills and
    with zero or one equity sample.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    equity = np.asarray(equity)
    fills = np.asarray(fills)
    if len(equity) == 0:
        equity = np.empty(0, dtype=EQUITY_DTYPE)
    if len(fills) == 0:
        fills = np.empty(0, dtype=FILL_DTYPE)

    metrics: dict[str, Any] = dict(summarize(equity, fills, initial_capital, sample_interval_ns, calendar))
    metrics["initial_capital"] = float(initial_capital)
    events = _first(meta, _EVENTS_KEYS)
    elapsed = _first(meta, _ELAPSED_KEYS)
    if events is not None and elapsed is not None and float(elapsed) > 0.0:
        metrics["events_per_second"] = float(events) / float(elapsed)
    metrics["counters"] = dict(counters)
    metrics["meta"] = dict(meta)
    metrics = _jsonable(metrics)

    _write_parquet(out_dir / FILLS_FILE, fills_table(fills, instruments))
    _write_parquet(out_dir / EQUITY_FILE, equity_table(equity))
    title = (
        f"{meta.get('strategy', 'run')}   return {_num(_pct(metrics['total_return']), '+.2f', '%')}"
        f"   Sharpe {_num(metrics['sharpe'], '.2f')}   max DD {_num(_pct(metrics['max_drawdown']), '.2f', '%')}"
        f"   fills {metrics['n_fills']}"
    )
    _write_chart(out_dir / CHART_FILE, equity, title)
    text = json.dumps(metrics, indent=2, allow_nan=False) + "\n"
    _atomic_write(out_dir / METRICS_FILE, lambda tmp: tmp.write_text(text, encoding="utf-8"))
    return metrics


# --------------------------------------------------------------------------- text summary


def _num(value: Any, fmt: str, suffix: str = "") -> str:
    if value is None:
        return "n/a"
    try:
        x = float(value)
    except (TypeError, ValueError):
        return str(value)
    if not math.isfinite(x):
        return "n/a"
    return f"{x:{fmt}}{suffix}"


def _int(value: Any) -> str:
    if value is None:
        return "n/a"
    try:
        return f"{int(value):,}"
    except (TypeError, ValueError):
        return str(value)


def format_summary(metrics: dict) -> str:
    """Return a compact, aligned multi-line summary of a run's metrics for stdout.

    Accept the dict ``write_report`` returns (or ``summarize`` output, with counters
    and meta missing); absent or undefined figures print as ``n/a``.
    """
    counters: Mapping[str, Any] = metrics.get("counters") or {}
    meta: Mapping[str, Any] = metrics.get("meta") or {}
    basis = metrics.get("annualization")
    rows: list[tuple[str, str]] = []
    if meta.get("strategy") is not None:
        rows.append(("strategy", str(meta["strategy"])))
    n_fills = _first(counters, _FILLS_KEYS)
    if n_fills is None:
        n_fills = metrics.get("n_fills")
    order_counts = (_first(counters, _ORDERS_KEYS), n_fills, _first(counters, _REJECT_KEYS))
    notional = _num(metrics.get("traded_notional"), ",.2f")
    rows += [
        ("total return", _num(_pct(metrics.get("total_return")), "+.2f", " %")),
        (
            "sharpe/sortino",
            f"{_num(metrics.get('sharpe'), '.2f')} / {_num(metrics.get('sortino'), '.2f')}"
            + (f"   ({basis})" if basis else ""),
        ),
        ("max drawdown", _num(_pct(metrics.get("max_drawdown")), ".2f", " %")),
        ("orders/fills/rej", " / ".join(_int(v) for v in order_counts)),
        ("turnover", f"{_num(metrics.get('turnover'), '.4g', 'x')}   (notional {notional})"),
        ("fees", _num(metrics.get("fees"), ",.4f")),
        ("hit rate", _num(_pct(metrics.get("hit_rate")), ".1f", " %")),
        ("realized pnl", _num(metrics.get("realized_pnl"), "+,.2f")),
        ("unrealized pnl", _num(metrics.get("unrealized_pnl"), "+,.2f")),
        ("final equity", _num(metrics.get("final_equity"), ",.2f")),
    ]
    risk = meta.get("risk") or {}
    if risk.get("breaker_trips") or risk.get("kill_switch") or risk.get("halted_instruments"):
        state = f"{risk.get('breaker', 'n/a')} (tripped by {risk.get('breaker_trip', 'n/a')}, {risk.get('breaker_trips')} trips)"
        if risk.get("kill_switch"):
            state += ", kill switch on"
        if risk.get("halted_instruments"):
            state += f", halted instruments {risk['halted_instruments']}"
        rows.append(("risk", state))
    events = _first(meta, _EVENTS_KEYS)
    if events is not None:
        rate = metrics.get("events_per_second")
        elapsed = _first(meta, _ELAPSED_KEYS)
        if rate is None and elapsed is not None and float(elapsed) > 0.0:
            rate = float(events) / float(elapsed)
        extra = []
        if rate is not None:
            extra.append(f"{_num(rate, ',.0f')} events/s")
        if elapsed is not None:
            extra.append(f"{_num(elapsed, '.2f')} s wall, compilation and I/O included")
        rows.append(("events", _int(events) + (f"   ({', '.join(extra)})" if extra else "")))
        loop_rate = meta.get("loop_events_per_second")
        if loop_rate:
            compiled = meta.get("compile_seconds")
            note = f" (compile or cache load {_num(compiled, '.2f')} s before it)" if compiled is not None else ""
            rows.append(("loop throughput", f"{_num(loop_rate, ',.0f')} inputs/s in the compiled loop{note}"))
    journal = _first(meta, _HASH_KEYS)
    if journal is not None:
        rows.append(("journal", str(journal)))
    width = max(len(label) for label, _ in rows)
    return "\n".join(f"{label:<{width}}  {value}" for label, value in rows)


def _pct(value: Any) -> float | None:
    if value is None:
        return None
    try:
        return 100.0 * float(value)
    except (TypeError, ValueError):
        return None
