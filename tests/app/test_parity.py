"""The parity harness on every shipped strategy: determinism, replay, and lockstep against the backtest.

``run_parity`` runs what ``python run.py mode=parity`` runs: the backtest twice (equal
journal hashes), the replay of its journal (every command reproduced), then a lockstep
session in each topology (the live runtime's engine, ZeroMQ sockets, codecs and, in the
multi topology, the market-data and gateway processes, against the simulated venue
server) whose journal and fills must equal the backtest's, and the replay of the
lockstep journal. Synthetic data always; real data from ../shared/data when present.
A mutation check shows the harness catches a difference and says where it is.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig

from app.parity import ParityFailure, compare_journals, run_parity
from app.train import run_train
from framework.config import register_configs
from framework.journal import JournalWriter, read_journal

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:mlflow")

ROOT = Path(__file__).resolve().parents[2]
FAST = ["live.end_linger_s=2", "parity.paper_s=0", "progress=false"]


def _config(root: Path, overrides: list[str]) -> DictConfig:
    register_configs()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose("config", overrides=[f"data.catalog_root={root / 'catalog'}",
                                            f"model.registry_dir={root / 'mlruns'}", *FAST, *overrides])


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    """A catalog and a model registry holding ``signal`` version 1, trained on the synthetic market."""
    root = tmp_path_factory.mktemp("parity")
    out = root / "train"
    out.mkdir()
    run_train(_config(root, ["mode=train", "data.synthetic.trades_per_day=6000",
                             "model.label.horizon_ns=10000000000"]), out)
    return root


def _parity(root: Path, name: str, overrides: list[str], capsys) -> str:
    out = root / name
    out.mkdir()
    metrics = run_parity(_config(root, ["mode=parity", *overrides]), out)
    printed = capsys.readouterr().out
    assert metrics["parity_failures"] == 0
    return printed


def _traded(out: Path) -> tuple[int, int]:
    """Commands and inputs of a run's backtest journal: the check means something only if it traded."""
    _, events, commands = read_journal(out / "run_a" / "journal.bin")
    return len(commands), len(events)


STRATEGIES = {
    "sma_crossover": ["strategy.params.fast=5", "strategy.params.slow=20"],
    "market_maker": [],
    "model_signal": ["strategy=model_signal", "strategy.params.model=models:/signal/1",
                     "strategy.params.long_above=0.52", "strategy.params.short_below=0.48"],
}


@pytest.mark.parametrize("strategy", sorted(STRATEGIES))
def test_every_level_holds_for_every_shipped_strategy_on_synthetic_data(root, strategy, capsys):
    printed = _parity(root, f"synthetic_{strategy}", ["data.synthetic.trades_per_day=2000",
                                                      *STRATEGIES[strategy]], capsys)
    for level in ("determinism", "replay parity", "plumbing       single", "plumbing       multi"):
        assert f"PASS  {level}" in printed
    assert printed.count("PASS  replay parity") == 3  # the backtest's journal and both lockstep journals
    commands, inputs = _traded(root / f"synthetic_{strategy}")
    assert commands > 0 and inputs > 6000


REAL = {
    "binance_usdm_btcusdt": ["data.start=2024-08-08T23:55:00", "data.end=2024-08-08T23:56:00"],
    "lean_bac": ["data.start=2013-10-08T13:30:00", "data.end=2013-10-08T13:36:00"],
}


@pytest.mark.parametrize(("data", "strategy"), [("binance_usdm_btcusdt", "sma_crossover"),
                                                ("binance_usdm_btcusdt", "market_maker"),
                                                ("binance_usdm_btcusdt", "model_signal"),
                                                ("lean_bac", "market_maker")])
def test_lockstep_equals_the_backtest_on_real_data(root, shared_data, data, strategy, capsys):
    topologies = "[single,multi]" if data.startswith("binance") else "[single]"
    printed = _parity(root, f"real_{data}_{strategy}", [f"data={data}", *REAL[data], *STRATEGIES[strategy],
                                                         f"parity.topologies={topologies}"], capsys)
    assert "FAIL" not in printed and "PASS  plumbing       single" in printed
    commands, inputs = _traded(root / f"real_{data}_{strategy}")
    assert commands > 0 and inputs > 1000


def test_a_difference_is_caught_and_shown_where_it_is(root, tmp_path):
    """Mutation: the same journal with one command's price moved by a tick, and one input's size changed."""
    out = tmp_path / "mutated"
    out.mkdir()
    run_parity(_config(root, ["mode=parity", "data.synthetic.trades_per_day=2000", "parity.topologies=[]",
                              *STRATEGIES["market_maker"]]), out)
    original = out / "run_a" / "journal.bin"
    meta, events, commands = read_journal(original)
    k = len(commands) // 2
    moved = commands.copy()
    moved["command"]["price"][k] += 1
    report = _write_and_compare(tmp_path / "moved.bin", meta, events, moved, original)
    assert f"first divergence at input {int(commands['input_index'][k])}" in report
    assert "market data" in report and "execution" in report and "positions" in report
    changed = events.copy()
    changed["size"][10] += 1
    report = _write_and_compare(tmp_path / "changed.bin", meta, changed, commands, original)
    assert "first diverging input: 10" in report
    with pytest.raises(ParityFailure, match="replay parity failed"):
        from app.parity import check_replay

        check_replay(tmp_path / "moved.bin")


def _write_and_compare(path: Path, meta: dict, events: np.ndarray, commands: np.ndarray, original: Path) -> str:
    writer = JournalWriter(path, {k: v for k, v in meta.items() if k not in ("version", "event_size")})
    writer.write(events, commands)
    writer.close()
    report = compare_journals(original, path, "expected", "actual")
    assert report
    return report


def test_lockstep_over_tcp_equals_the_backtest(root, capsys):
    """The processes of the multi topology joined by TCP on loopback instead of Unix sockets."""
    port = 20000 + (os.getpid() * 7) % 20000  # a base port of this run's own, far from the default
    printed = _parity(root, "tcp", ["data.synthetic.trades_per_day=2000", *STRATEGIES["sma_crossover"],
                                    "parity.topologies=[multi]", "live.transport=tcp",
                                    f"live.tcp_base_port={port}"], capsys)
    assert "PASS  plumbing       multi" in printed
    endpoints = json.loads((root / "tcp" / "lockstep_multi" / "endpoints.json").read_text())
    assert all(e.startswith("tcp://127.0.0.1:") for e in endpoints.values())
    assert {int(e.rsplit(":", 1)[1]) for e in endpoints.values()} == set(range(port, port + 10))
