"""The gates a model version must pass before it becomes the one that trades, and the decision.

Three gates, each a plain function of evidence to a ``GateResult``:

``onnx_parity``  the registered ONNX file gives the native model's probabilities on
                 the held-out rows logged at training (``check_onnx_parity``), and the
                 compiled kernel the pipeline runs gives onnxruntime's
                 (``check_compiled_parity``);
``backtest``     the strategy trading that version over the out-of-sample period
                 reaches the configured thresholds (Sharpe, total return, drawdown,
                 fills);
``determinism``  that backtest run twice gives the same journal hash: the same inputs
                 produced the same commands, bit for bit.

``decide`` refuses, naming every failing gate and why, unless all passed. Running the
backtests is the runner's job (``app/promote.py``); this module only judges.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from models.inference import check_compiled_parity
from models.onnx_export import check_onnx_parity

GATES = ("onnx_parity", "backtest", "determinism")


class PromotionRefused(RuntimeError):
    """At least one gate failed; the message names each failing gate and why."""


@dataclass(frozen=True)
class GateResult:
    """One gate's verdict, a one-line reason, and the figures it judged (logged to MLflow)."""

    name: str
    passed: bool
    detail: str
    metrics: dict[str, float] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.name}: {'passed' if self.passed else 'FAILED'}: {self.detail}"


@dataclass(frozen=True)
class Thresholds:
    """What the out-of-sample backtest must reach (``model.promotion.*``)."""

    min_sharpe: float
    min_total_return: float
    max_drawdown: float
    min_fills: int


def parity_gate(native_model: Any, onnx_bytes: bytes, X_holdout: np.ndarray, *, atol: float, rtol: float) -> GateResult:
    """Check the ONNX file against the native model and the compiled kernel against onnxruntime."""
    onnx_parity = check_onnx_parity(native_model, onnx_bytes, X_holdout, atol=atol, rtol=rtol)
    compiled = check_compiled_parity(onnx_bytes, X_holdout)
    return GateResult(
        "onnx_parity",
        onnx_parity.passed and compiled.passed,
        f"{onnx_parity}; {compiled}",
        {
            "onnx_max_abs_error": onnx_parity.max_abs_error,
            "onnx_failed_rows": float(onnx_parity.n_failed_rows + onnx_parity.label_mismatches),
            "compiled_max_abs_error": compiled.max_abs_error,
            "rows": float(len(X_holdout)),
        },
    )


def backtest_gate(metrics: Mapping[str, Any], thresholds: Thresholds) -> GateResult:
    """Compare the backtest's ``metrics.json`` figures with the thresholds; undefined figures fail."""
    checks = [
        ("sharpe", ">=", thresholds.min_sharpe, "min_sharpe"),
        ("total_return", ">=", thresholds.min_total_return, "min_total_return"),
        ("max_drawdown", "<=", thresholds.max_drawdown, "max_drawdown"),
        ("n_fills", ">=", thresholds.min_fills, "min_fills"),
    ]
    failures, figures = [], {}
    for key, op, limit, config_key in checks:
        value = metrics.get(key)
        number = float(value) if isinstance(value, (int, float)) else math.nan
        figures[key] = number
        ok = (number >= limit) if op == ">=" else (number <= limit)
        if not ok:  # NaN compares False: an undefined figure fails
            failures.append(f"{key} {number:.6g} is not {op} model.promotion.{config_key} {limit:g}")
    shown = ", ".join(f"{k} {v:.6g}" for k, v in figures.items())
    return GateResult("backtest", not failures, "; ".join(failures) if failures else shown, figures)


def determinism_gate(first_hash: str | None, second_hash: str | None) -> GateResult:
    """Pass when two runs of the same backtest produced the same journal hash."""
    same = first_hash is not None and first_hash == second_hash
    detail = f"journal hash {first_hash} twice" if same else f"journal hashes differ: {first_hash} then {second_hash}"
    return GateResult("determinism", same, detail)


def not_evaluated(name: str, reason: str) -> GateResult:
    """A gate that could not be evaluated (its evidence is missing or its backtest failed): it fails."""
    return GateResult(name, False, f"not evaluated: {reason}")


def decide(name: str, version: int, alias: str, gates: list[GateResult]) -> None:
    """Return when every gate passed; raise ``PromotionRefused`` naming each failing gate otherwise."""
    failed = [g for g in gates if not g.passed]
    if failed:
        reasons = "; ".join(f"gate '{g.name}' failed: {g.detail}" for g in failed)
        raise PromotionRefused(f"promotion of {name} version {version} to @{alias} refused: {reasons}")
