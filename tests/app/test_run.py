"""End-to-end runs of the backtest mode: what a quant types, and what they get back."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig

from app.backtest import run_backtest
from framework.config import register_configs
from framework.data.errors import DataFormatError

ROOT = Path(__file__).resolve().parents[2]
SMALL = ["data.synthetic.trades_per_day=4000", "progress=false"]


def _config(overrides: list[str], tmp_path: Path) -> DictConfig:
    register_configs()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose("config", overrides=[f"data.catalog_root={tmp_path / 'catalog'}", *overrides])


def _run(overrides: list[str], tmp_path: Path, name: str = "run") -> dict:
    out = tmp_path / name
    out.mkdir()
    return run_backtest(_config(overrides, tmp_path), out)


def test_run_py_backtests_and_writes_a_report(tmp_path: Path) -> None:
    out = tmp_path / "out"
    cmd = [sys.executable, "run.py", f"hydra.run.dir={out}", f"data.catalog_root={tmp_path / 'cat'}", *SMALL]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "total return" in proc.stdout and "sharpe" in proc.stdout
    for name in ("metrics.json", "fills.parquet", "equity.parquet", "report.png", "config.yaml"):
        assert (out / name).is_file(), name
    metrics = json.loads((out / "metrics.json").read_text())
    fills = pd.read_parquet(out / "fills.parquet")
    assert metrics["n_fills"] == len(fills) > 0


def test_same_config_twice_gives_the_same_journal_hash(tmp_path: Path) -> None:
    a = _run([*SMALL, "journal=true"], tmp_path, "a")
    b = _run([*SMALL, "journal=true", "chunk_rows=777"], tmp_path, "b")
    assert a["meta"]["journal_hash"] and a["meta"]["journal_hash"] == b["meta"]["journal_hash"]
    assert (tmp_path / "a" / "journal.bin").is_file()
    c = _run([*SMALL, "journal=true", "strategy.params.fast=20"], tmp_path, "c")
    assert c["meta"]["journal_hash"] != a["meta"]["journal_hash"]


def test_market_maker_quotes_and_trades(tmp_path: Path) -> None:
    m = _run(["strategy=market_maker", *SMALL], tmp_path)
    assert m["n_fills"] > 0
    assert m["counters"]["modifies_sent"] > 0 or m["counters"]["cancels_sent"] > 0


@pytest.mark.parametrize(
    "overrides",
    [["sim/latency=random", "sim.latency.seed=3"], ["sim/fill=through"], ["sim/fees=zero"], ["sim/latency=zero"]],
)
def test_simulation_models_are_chosen_in_config(tmp_path: Path, overrides: list[str]) -> None:
    m = _run(["strategy=market_maker", *SMALL, *overrides], tmp_path)
    assert m["counters"]["events"] > 0
    if "sim/fees=zero" in overrides:
        assert m["fees"] == 0.0


def test_latency_changes_the_outcome(tmp_path: Path) -> None:
    fast = _run(["strategy=market_maker", *SMALL, "sim/latency=zero", "journal=true"], tmp_path, "fast")
    slow = _run(["strategy=market_maker", *SMALL, "sim.latency.order_ns=50000000", "journal=true"], tmp_path, "slow")
    assert fast["meta"]["journal_hash"] != slow["meta"]["journal_hash"]


def test_real_binance_file_as_data_source(tmp_path: Path, shared_data: Path) -> None:
    m = _run(["data=binance_usdm_btcusdt", "strategy=market_maker", "progress=false", "strategy.params.order_size=0.01",
              "strategy.params.max_inventory=0.05"], tmp_path)
    assert m["counters"]["quotes"] == 66_089 and m["counters"]["trades"] == 21_313
    assert m["n_fills"] > 0


def test_two_venues_route_orders_and_fill_on_each_venue(tmp_path: Path) -> None:
    out = tmp_path / "two"
    out.mkdir()
    m = run_backtest(_config(["strategy=market_maker", "data=synthetic_two_venues", "venue=two_venues", *SMALL],
                             tmp_path), out)
    fills = pd.read_parquet(out / "fills.parquet")
    assert m["counters"]["quotes"] == 2 * 8000  # both venues' quotes reached the strategy
    # The market maker only rests: on BETA, whose maker rebate is the lowest maker fee.
    assert set(fills["venue_id"]) == {1} and set(fills["liquidity"]) == {"maker"}
    out = tmp_path / "sma"
    out.mkdir()
    run_backtest(_config(["data=synthetic_two_venues", "venue=two_venues", *SMALL], tmp_path), out)
    taker = pd.read_parquet(out / "fills.parquet")
    # The SMA crossover takes: where the ask (bid) plus fees is best, which is mostly ALPHA.
    assert set(taker["liquidity"]) == {"taker"} and set(taker["venue_id"]) <= {0, 1}
    assert (taker["venue_id"] == 0).sum() > (taker["venue_id"] == 1).sum() > 0


def test_a_data_row_of_an_unconfigured_venue_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="venue 1.*1 venue"):
        _run(["data=synthetic_two_venues", *SMALL], tmp_path)


def test_real_data_on_two_venues(tmp_path: Path, shared_data: Path) -> None:
    m = _run(["data=binance_btcusdt_two_venues", "venue=two_venues", "strategy=market_maker", "progress=false",
              "strategy.params.order_size=0.01", "strategy.params.max_inventory=0.05"], tmp_path)
    assert m["counters"]["quotes"] == 66_089 + 28_040 and m["counters"]["trades"] == 21_313 + 9_757
    assert m["n_fills"] > 0


def test_bad_config_value_names_key_and_value(tmp_path: Path) -> None:
    with pytest.raises(Exception) as info:
        _config(["sim.latency.order_ns=abc"], tmp_path)
    text = str(info.value)
    assert "order_ns" in text and "abc" in text


def test_bad_strategy_parameter_names_the_key(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"strategy\.params.*fast"):
        _run([*SMALL, "strategy.params.fast=500"], tmp_path)
    with pytest.raises(ValueError, match=r"strategy\.params\.fast: 'x'"):
        _run([*SMALL, "strategy.params.fast=x"], tmp_path, "second")


def test_bad_data_file_names_file_row_and_column(tmp_path: Path) -> None:
    bad = tmp_path / "binance_usdm_btcusdt_trades_bad.csv"
    bad.write_text(
        "local_ts_ns,event_time_ms,trade_time_ms,trade_id,price,qty,is_buyer_maker,aggressor_side\n"
        "1723161254000000000,1723161255000,1723161255000,1,60000.10,0.001,true,sell\n"
        "1723161254100000000,1723161255100,1723161255100,2,sixty,0.001,false,buy\n"
    )
    files = f"data.files=[{{path:{bad},format:binance-trades}}]"
    with pytest.raises(DataFormatError) as info:
        _run(["data.source=file", "data.symbol=BTCUSDT", "data.kinds=[trade]", files, "progress=false"], tmp_path)
    text = str(info.value)
    assert str(bad) in text and "price" in text and "sixty" in text and "row 2" in text
    assert not list((tmp_path / "catalog").rglob("*.parquet")), "nothing may be written for a bad file"


@pytest.mark.slow
@pytest.mark.parametrize(
    "strategy", [["strategy.params.slow=100", "data.kinds=[trade]"], ["strategy=market_maker"]], ids=["sma", "mm"]
)
def test_golden_backtest_without_the_jit(tmp_path: Path, strategy: list[str]) -> None:
    """The kernels are plain Python too: NUMBA_DISABLE_JIT=1 gives the same journal hash."""
    hashes = []
    for jit in ("0", "1"):
        out = tmp_path / f"jit{jit}"
        env = {**os.environ, "NUMBA_DISABLE_JIT": jit}
        cmd = [sys.executable, "run.py", f"hydra.run.dir={out}", f"data.catalog_root={tmp_path / 'cat'}",
               "data.synthetic.trades_per_day=1500", "progress=false", "journal=true", *strategy]
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=900, env=env)
        assert proc.returncode == 0, proc.stderr[-3000:]
        metrics = json.loads((out / "metrics.json").read_text())
        assert metrics["n_fills"] > 0
        hashes.append(metrics["meta"]["journal_hash"])
    assert hashes[0] == hashes[1]
