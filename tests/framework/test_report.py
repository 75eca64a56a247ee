import json
import math

import numpy as np
import pandas as pd
import pytest

from framework import report
from framework.events import EQUITY_DTYPE, FILL_DTYPE, PRICE_SCALE
from framework.report import format_summary, write_report

MINUTE = 60 * 1_000_000_000
T0 = 1_700_000_000_000_000_000  # 2023-11-14T22:13:20Z
FILES = {"metrics.json", "fills.parquet", "equity.parquet", "report.png"}
KW = dict(initial_capital=1000.0, sample_interval_ns=MINUTE, calendar="24/7")
META = {"strategy": "demo_mm", "journal_hash": "deadbeef42", "events_processed": 120_000, "elapsed_seconds": 0.4}
COUNTERS = {"orders": 7, "fills": 3, "rejections": 1}


def make_equity(values, position=None):
    eq = np.zeros(len(values), dtype=EQUITY_DTYPE)
    eq["ts_event"] = T0 + np.arange(len(values)) * MINUTE
    eq["equity"] = values
    eq["net_position"] = position if position is not None else 0.0
    eq["realized_pnl"] = np.linspace(0.0, 4.0, len(values))
    return eq


def make_fills():
    f = np.zeros(3, dtype=FILL_DTYPE)
    f["ts_event"] = T0 + np.array([1, 2, 3]) * MINUTE
    f["client_order_id"] = [11, 12, 13]
    f["price"] = [10 * PRICE_SCALE, 12 * PRICE_SCALE, 14_500_000_000]
    f["size"] = [2 * PRICE_SCALE, 2 * PRICE_SCALE, 1 * PRICE_SCALE]
    f["fee"] = [10_000_000, -2_000_000, 5_000_000]
    f["instrument_id"] = [5, 5, 9]
    f["venue_id"] = 1
    f["side"] = [1, -1, 1]
    f["liquidity"] = [1, 2, 2]
    f["order_type"] = [2, 2, 1]
    return f


def run(tmp_path, equity, fills, counters=COUNTERS, meta=META):
    return write_report(tmp_path / "out", equity, fills, counters, {5: "BTC-USDT", 9: "ETH-USDT"}, meta, **KW)


def strict_json(path):
    def reject(name):
        raise ValueError(f"non-standard JSON constant {name}")

    return json.loads(path.read_text(), parse_constant=reject)


def test_files_exist_and_round_trip(tmp_path):
    eq = make_equity([1000.0, 1010.0, 990.0, 1004.0], position=[0.0, 2.0, 0.0, 1.0])
    fills = make_fills()
    metrics = run(tmp_path, eq, fills)
    out = tmp_path / "out"
    assert {p.name for p in out.iterdir()} == FILES  # nothing else, in particular no temp files

    df = pd.read_parquet(out / "fills.parquet")
    assert len(df) == 3
    assert str(df["ts_event"].dtype) == "datetime64[ns, UTC]"
    assert df["ts_event"].iloc[0] == pd.Timestamp(T0 + MINUTE, unit="ns", tz="UTC")
    assert list(df["instrument"]) == ["BTC-USDT", "BTC-USDT", "ETH-USDT"]
    assert list(df["side"]) == ["buy", "sell", "buy"]
    assert list(df["liquidity"]) == ["maker", "taker", "taker"]
    assert list(df["order_type"]) == ["limit", "limit", "market"]
    np.testing.assert_allclose(df["price"], [10.0, 12.0, 14.5])
    np.testing.assert_allclose(df["size"], [2.0, 2.0, 1.0])
    np.testing.assert_allclose(df["fee"], [0.01, -0.002, 0.005])
    np.testing.assert_allclose(df["realized_pnl"], [0.0, 4.0, 0.0])
    assert df["price"].dtype == np.float64
    assert list(df["price_raw"]) == list(fills["price"]) and df["price_raw"].dtype == np.int64
    assert list(df["size_raw"]) == list(fills["size"])
    assert list(df["fee_raw"]) == list(fills["fee"])
    assert list(df["client_order_id"]) == [11, 12, 13]

    de = pd.read_parquet(out / "equity.parquet")
    assert str(de["ts_event"].dtype) == "datetime64[ns, UTC]"
    assert (de["ts_event"].astype("int64").to_numpy() == eq["ts_event"]).all()
    for name in EQUITY_DTYPE.names[1:]:
        np.testing.assert_array_equal(de[name].to_numpy(), eq[name])
    np.testing.assert_allclose(de["drawdown"], [0.0, 0.0, 20 / 1010, 6 / 1010])

    on_disk = strict_json(out / "metrics.json")
    assert on_disk == metrics
    assert on_disk["n_fills"] == 3
    assert on_disk["total_return"] == pytest.approx(0.004)
    assert on_disk["max_drawdown"] == pytest.approx(20 / 1010)
    assert on_disk["fees"] == pytest.approx(0.013)
    assert on_disk["traded_notional"] == pytest.approx(20 + 24 + 14.5)
    assert on_disk["annualization"] == "1-minute returns, 525600 periods/year, 24/7 calendar"
    assert on_disk["counters"] == COUNTERS
    assert on_disk["meta"] == META
    assert on_disk["events_per_second"] == pytest.approx(300_000)

    png = (out / "report.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 10_000


@pytest.mark.parametrize("n", [0, 1])
def test_zero_fill_short_run(tmp_path, n):
    eq = make_equity([1000.0] * n)
    metrics = run(tmp_path, eq, np.empty(0, dtype=FILL_DTYPE), counters={}, meta={})
    out = tmp_path / "out"
    assert {p.name for p in out.iterdir()} == FILES
    df = pd.read_parquet(out / "fills.parquet")
    assert len(df) == 0 and "realized_pnl" in df and str(df["ts_event"].dtype) == "datetime64[ns, UTC]"
    assert len(pd.read_parquet(out / "equity.parquet")) == n
    m = strict_json(out / "metrics.json")
    assert m == metrics
    assert m["n_fills"] == 0 and m["hit_rate"] == 0.0 and m["total_return"] == 0.0
    assert (out / "report.png").read_bytes().startswith(b"\x89PNG")
    text = format_summary(metrics)
    assert "total return" in text and "n/a" in text  # no orders/rejections counters given


def test_nan_metrics_become_null(tmp_path):
    # steadily rising equity: no losing period, Sortino is undefined (nan) -> null, printed n/a
    eq = make_equity([1000.0, 1001.0, 1003.0, 1004.0])
    metrics = run(tmp_path, eq, np.empty(0, dtype=FILL_DTYPE))
    m = strict_json(tmp_path / "out" / "metrics.json")
    assert m["sortino"] is None and metrics["sortino"] is None
    assert math.isfinite(m["sharpe"])
    assert "n/a" in format_summary(m)


def test_rewrite_is_atomic_and_leaves_no_temp_files(tmp_path, monkeypatch):
    eq = make_equity([1000.0, 1010.0, 990.0])
    run(tmp_path, eq, make_fills())
    out = tmp_path / "out"
    before = (out / "metrics.json").read_text()
    fills_before = (out / "fills.parquet").read_bytes()

    def broken_write_table(table, where, *args, **kwargs):
        with open(where, "wb") as f:
            f.write(b"half a parquet")
        raise OSError("disk full")

    monkeypatch.setattr(report.pq, "write_table", broken_write_table)
    with pytest.raises(OSError, match="disk full"):
        run(tmp_path, make_equity([1.0, 2.0]), np.empty(0, dtype=FILL_DTYPE))
    assert {p.name for p in out.iterdir()} == FILES
    assert (out / "fills.parquet").read_bytes() == fills_before
    assert (out / "metrics.json").read_text() == before

    monkeypatch.undo()
    run(tmp_path, make_equity([1000.0, 1020.0]), np.empty(0, dtype=FILL_DTYPE))
    assert {p.name for p in out.iterdir()} == FILES
    assert strict_json(out / "metrics.json")["n_fills"] == 0


def test_format_summary_key_figures(tmp_path):
    eq = make_equity([1000.0, 1010.0, 990.0, 1004.0])
    metrics = run(tmp_path, eq, make_fills())
    text = format_summary(metrics)
    lines = text.splitlines()
    assert 8 <= len(lines) <= 20
    # aligned: every value starts in the same column
    starts = {len(line) - len(line[line.index("  "):].lstrip()) for line in lines}
    assert len(starts) == 1
    assert "demo_mm" in text
    assert "+0.40 %" in text  # total return
    assert f"{metrics['sharpe']:.2f}" in text and "1-minute returns, 525600 periods/year, 24/7 calendar" in text
    assert "1.98 %" in text  # max drawdown 20/1010
    assert "7 / 3 / 1" in text  # orders / fills / rejections
    assert "0.0130" in text  # fees
    assert "100.0 %" in text  # hit rate: the one closing fill won
    assert "1,004.00" in text  # final equity
    assert "120,000" in text and "300,000 events/s" in text
    assert "deadbeef42" in text
    assert f"{metrics['turnover']:.4g}x" in text


def test_format_summary_accepts_bare_summary():
    text = format_summary({"total_return": 0.1, "sharpe": float("nan")})
    assert "+10.00 %" in text and "n/a" in text


def test_chart_envelope_keeps_extremes():
    y = np.sin(np.arange(100_000) / 500.0)
    y[12_345] = 5.0
    y[67_890] = -7.0
    t = np.arange(y.size)
    te, ye = report._envelope(t, y, buckets=500)
    assert ye.size == te.size == 1000
    assert ye.max() == 5.0 and ye.min() == -7.0
    assert np.all(np.diff(te) >= 0)
    assert report._envelope(t[:10], y[:10])[1].size == 10  # short series untouched
