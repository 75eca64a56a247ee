"""The model lifecycle as a user runs it: train, promote (or be refused), backtest the champion.

One synthetic market and one local MLflow store per module. Training and the
documented commands go through ``run.py``; the refusal of each gate is checked
in-process with ``run_promote``, each under its own alias so the tests stay independent.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig

from app.backtest import run_backtest
from app.promote import GateBacktest, gate_backtest, run_promote
from app.train import run_train
from framework.config import register_configs
from framework.journal import read_journal
from models.promotion import PromotionRefused
from models.registry import RegistryStore, load_onnx
from models.tracking import load_training_artifacts, log_training
from models.training import train

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "models"))

from lifecycle_cases import dataset, onnx_of, training_run  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:mlflow")

ROOT = Path(__file__).resolve().parents[2]
PASSABLE = ["model.promotion.min_sharpe=-1e12", "model.promotion.min_total_return=-1.0",
            "model.promotion.max_drawdown=1.0", "model.promotion.min_fills=0"]
"""Thresholds any backtest reaches: for tests of the other gates, and of the mechanics."""


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    """A folder with the catalog and the MLflow store; the model ``signal`` version 1 trained by run.py."""
    root = tmp_path_factory.mktemp("lifecycle")
    proc = _run_py(root, "train", ["mode=train"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "models:/signal/1 (logistic_regression)" in proc.stdout
    return root


def _common(root: Path) -> list[str]:
    return [f"data.catalog_root={root / 'catalog'}", "data.synthetic.trades_per_day=6000",
            f"model.registry_dir={root / 'mlruns'}", "model.label.horizon_ns=10000000000", "progress=false"]


def _run_py(root: Path, name: str, overrides: list[str]) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    cmd = [sys.executable, "run.py", f"hydra.run.dir={root / name}", *_common(root), *overrides]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=900, env=env, check=False)


def _config(root: Path, overrides: list[str]) -> DictConfig:
    register_configs()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose("config", overrides=[*_common(root), *overrides])


def _out(root: Path, name: str) -> Path:
    out = root / name
    out.mkdir()
    return out


def _store(root: Path) -> RegistryStore:
    return RegistryStore.local(root / "mlruns")


def _alias_version(root: Path, name: str, alias: str) -> int | None:
    client = _store(root).client()
    aliases = client.get_registered_model(name).aliases
    return int(aliases[alias]) if alias in aliases else None


def test_run_py_refuses_a_promotion_with_a_non_zero_exit_naming_the_gate(root):
    refused = _run_py(root, "refused", ["mode=promote", "model.version=1", "model.alias=cli",
                                        "model.promotion.period.start=2024-01-01T12:00"])
    assert refused.returncode != 0
    assert "promote: promotion of signal version 1 to @cli refused: gate 'backtest' failed: not evaluated" in (
        refused.stderr)
    assert "Traceback" not in refused.stderr
    assert _alias_version(root, "signal", "cli") is None


def test_run_py_promotes_and_a_backtest_of_the_champion_records_its_version(root):
    promoted = _run_py(root, "promoted", ["mode=promote", "model.version=1", *PASSABLE])
    assert promoted.returncode == 0, promoted.stderr[-3000:]
    assert "promoted: models:/signal@champion -> version 1" in promoted.stdout
    assert _alias_version(root, "signal", "champion") == 1

    metrics = run_backtest(_config(root, ["strategy=model_signal", "journal=true"]), _out(root, "champion"))
    registered = load_onnx("models:/signal/1", store=_store(root))
    expected = {"model_uri": "models:/signal@champion", "model_name": "signal", "model_version": 1,
                "model_sha256": registered.sha256}
    assert {k: metrics["meta"][k] for k in expected} == expected
    assert json.loads((root / "champion" / "metrics.json").read_text())["meta"]["model_version"] == 1
    header, _, _ = read_journal(root / "champion" / "journal.bin")
    assert {k: header[k] for k in expected} == expected


def test_training_records_the_run_and_refuses_to_train_on_the_promotion_period(root):
    metrics = json.loads((root / "train" / "metrics.json").read_text())
    assert metrics["meta"]["model_version"] == 1 and metrics["validation_roc_auc"] > 0.5
    artifacts = load_training_artifacts("signal", 1, store=_store(root))
    assert artifacts.data_end_ns < 1_704_124_800_000_000_000, "trained on data before 16:00, the promotion period"
    cfg = _config(root, ["mode=train", "model.train_period.end=2024-01-01T20:00"])
    with pytest.raises(ValueError, match=r"model\.train_period .* overlaps model\.promotion\.period"):
        run_train(cfg, _out(root, "overlap"))


def test_a_promotion_logs_every_gate_and_moves_the_alias_only_when_all_pass(root):
    cfg = _config(root, ["mode=promote", "model.version=1", "model.alias=passing", *PASSABLE])
    metrics = run_promote(cfg, _out(root, "passing"))
    assert metrics["meta"]["model_uri"] == "models:/signal/1" and metrics["meta"]["period"][0] == "2024-01-01T16:00"
    assert _alias_version(root, "signal", "passing") == 1
    promotion = json.loads((root / "passing" / "promotion.json").read_text())
    assert [(g["gate"], g["passed"]) for g in promotion["gates"]] == [
        ("onnx_parity", True), ("backtest", True), ("determinism", True)]
    run = _store(root).client().get_run(promotion["mlflow_run_id"])
    assert run.data.tags["decision"] == "promoted"
    assert {f"gate.{g}.passed" for g in ("onnx_parity", "backtest", "determinism")} <= set(run.data.metrics)
    assert (root / "passing" / "backtest" / "metrics.json").is_file() and (root / "passing" / "rerun").is_dir()


def _refusal(root: Path, alias: str, overrides: list[str], **kwargs) -> str:
    cfg = _config(root, ["mode=promote", f"model.alias={alias}", *overrides])
    with pytest.raises(PromotionRefused) as info:
        run_promote(cfg, _out(root, alias), **kwargs)
    assert _alias_version(root, str(cfg.model.name), alias) is None, "a refused promotion moves nothing"
    return str(info.value)


def test_refused_when_the_backtest_misses_a_threshold(root):
    text = _refusal(root, "strict", ["model.version=1", *PASSABLE, "model.promotion.min_total_return=0.5"])
    assert "gate 'backtest' failed: total_return" in text and "model.promotion.min_total_return 0.5" in text
    assert "onnx_parity" not in text and "determinism" not in text


def test_refused_when_the_registered_onnx_is_not_the_trained_model(root):
    """``mismatch`` version 1: the training run logged one logistic regression as the native model, the
    registered file is the export of another (fitted with a far stronger penalty)."""
    other = train(dataset(), "logistic_regression", {"C": 1e-4}, seed=0).model
    log_training(training_run("logistic_regression"), onnx_of(other), "mismatch", store=_store(root),
                 experiment="mismatch")
    text = _refusal(root, "parity", ["model.name=mismatch", "model.version=1", *PASSABLE])
    assert "gate 'onnx_parity' failed: ONNX parity FAILED" in text
    assert "gate 'backtest'" not in text and "gate 'determinism'" not in text


def test_refused_when_the_backtest_is_not_deterministic(root):
    calls: list[int] = []

    def drifting(cfg, model, out_dir) -> GateBacktest:
        """The real backtest, whose second run reports another journal: what hidden state would cause."""
        result = gate_backtest(cfg, model, out_dir)
        calls.append(1)
        return result if len(calls) == 1 else GateBacktest(result.metrics, result.journal_hash[::-1])

    text = _refusal(root, "drifting", ["model.version=1", *PASSABLE], backtest=drifting)
    assert "gate 'determinism' failed: journal hashes differ" in text
    assert "gate 'backtest'" not in text and "onnx_parity" not in text


def test_refused_when_the_promotion_period_is_not_out_of_sample(root):
    text = _refusal(root, "in_sample", ["model.version=1", *PASSABLE, "model.promotion.period.start=2024-01-01T12:00"])
    assert "gate 'backtest' failed: not evaluated: model.promotion.period starts at 2024-01-01T12:00" in text
    assert "not out of sample" in text and "gate 'determinism' failed: not evaluated" in text


def test_a_backtest_of_a_model_that_is_not_registered_names_the_key(root):
    cfg = _config(root, ["strategy=model_signal", "model.alias=nobody"])
    with pytest.raises(ValueError, match=r"strategy\.params\.model: cannot load 'models:/signal@nobody'"):
        run_backtest(cfg, _out(root, "missing"))
