"""Backtest throughput with the model strategy, and what its features and prediction cost per event.

Trains each model type on one synthetic day (``models/dataset.py``, ``models/training.py``,
the shipped ``microstructure`` feature set, labels 1 s ahead), exports it to ONNX with
its feature set inside, and backtests ``strategies/model_signal.py`` trading it over
another synthetic day cut to ``--events`` events (quotes and trades, 1M by default),
through the public ``sim.backtest.Backtest`` with the app's default simulator (constant
latency: feed 0.5 ms, orders and reports 1 ms; default fees). Prints one row per model:

* loop ev/s       pipeline inputs (data rows, reports) per second inside the compiled
                  loop (``BacktestResult.loop_seconds``; best of ``--repeat``);
* ns/input        the same as nanoseconds per input;
* feat ns/ev      a bare compiled loop over the same events doing only what the strategy
                  does for its signal: ``features_update_event`` on every event;
* +pred ns/ev     the same loop plus ``predict`` on every trade once the features are
                  warm: the strategy's per-event feature and prediction cost;
* pred ns         the prediction alone, per prediction (the difference of the two loops
                  divided by the number of predictions);
* fills           fills of the market orders the strategy sent (its decisions, at the default thresholds).

Usage::

    python bench/model_backtest.py
    python bench/model_backtest.py --events 2000000 --repeat 5 --models xgboost

This is a script, not a test: figures depend on the machine and on what else runs on it.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from app.numba_cache import configure_numba_cache  # noqa: E402

configure_numba_cache()  # as run.py does: a cache keyed by the sources, so never stale

import numpy as np  # noqa: E402
from numba import njit  # noqa: E402

from framework.data.synthetic import SyntheticSpec, generate_day  # noqa: E402
from framework.events import EVENT_DTYPE, EventKind, concat_events, kernel_view, to_fixed  # noqa: E402
from framework.features import FeatureSet, features_ready, features_update_event  # noqa: E402
from framework.jit import KERNEL  # noqa: E402
from models.compiled import compile_onnx  # noqa: E402
from models.dataset import LabelSpec, SplitSpec, build_dataset  # noqa: E402
from models.inference import inference_model, predict  # noqa: E402
from models.metadata import embed_spec  # noqa: E402
from models.onnx_export import export_onnx  # noqa: E402
from models.registry import LoadedOnnx  # noqa: E402
from models.training import train  # noqa: E402

MODELS = {
    "logistic_regression": {"C": 1.0, "max_iter": 1000},
    "gradient_boosting": {"n_estimators": 100, "max_depth": 3},
    "xgboost": {"n_estimators": 100, "max_depth": 4, "tree_method": "hist"},
}
"""The shipped configurations of conf/model/*.yaml."""
URI = "models:/bench/1"


def day_events(trades: int, seed: int) -> np.ndarray:
    """One synthetic day of SYN (instrument 0), quotes and trades in replay order."""
    day = generate_day(SyntheticSpec(symbol="SYN", trades_per_day=trades, seed=seed), 0)
    events = concat_events([day["quote"].view(EVENT_DTYPE), day["trade"].view(EVENT_DTYPE)])
    return events[np.argsort(events["ts_event"], kind="stable")]


def trained_model(model_type: str, features: FeatureSet, events: np.ndarray) -> LoadedOnnx:
    """Train ``model_type`` on ``events`` and return it as the runner would load it from the registry."""
    dataset = build_dataset(events, features, 0, LabelSpec(1_000_000_000), SplitSpec(0.6, 0.2, 0.2))
    model = train(dataset, model_type, MODELS[model_type], seed=0).model
    onnx_bytes = embed_spec(export_onnx(model, len(features.columns)), features,
                            {"target": "up", "horizon_ns": 1_000_000_000, "price": "mid"})
    return LoadedOnnx(URI, "bench", 1, hashlib.sha256(onnx_bytes).hexdigest(), onnx_bytes)


def build(model: LoadedOnnx):
    """A fresh Backtest of model_signal on instrument 0, as app/backtest.py wires one."""
    from framework.state import PipelineSpec, allocate
    from sim.backtest import Backtest, Strategy
    from sim.exchange import allocate_exchange
    from sim.loop import allocate_loop
    from sim.models import SIM_PARAMS_DTYPE, latency_streams
    from strategies import model_signal

    sparams, sstate = model_signal.make(model_signal.Params(instrument="SYN", model=URI), {"SYN": 0}, model)
    spec = PipelineSpec(max_order_size=(to_fixed(10),), max_position=(to_fixed(10),))
    prm = np.zeros(1, SIM_PARAMS_DTYPE)
    prm["feed_ns"], prm["order_ns"], prm["response_ns"] = 500_000, 1_000_000, 1_000_000
    prm["maker_fee_rate"], prm["taker_fee_rate"] = 0.0002, 0.0005
    prm["equity_interval_ns"] = 60_000_000_000
    exchange = allocate_exchange(1, spec.order_capacity, prm, latency_streams(0))
    loop = allocate_loop(spec.order_capacity, 64)
    return Backtest(allocate(spec), exchange, loop, Strategy(model_signal.on_event, sparams, sstate))


@njit(**KERNEL)
def features_only(prog, state, out, events) -> int:
    """Update the features on every event; return how many rows had every feature warm."""
    warm = 0
    for i in range(events.shape[0]):
        features_update_event(prog, state, out, events[i])
        if features_ready(out):
            warm += 1
    return warm


@njit(**KERNEL)
def features_and_predict(prog, state, out, model, events) -> int:
    """Update the features on every event and predict on every trade once warm, as the strategy does;
    return the number of predictions."""
    n = 0
    for i in range(events.shape[0]):
        ev = events[i]
        features_update_event(prog, state, out, ev)
        if ev.kind == EventKind.TRADE and features_ready(out):
            predict(model, out)
            n += 1
    return n


def signal_costs(model: LoadedOnnx, features: FeatureSet, events: np.ndarray, repeat: int) -> tuple[float, float, int]:
    """Best-of-``repeat`` seconds of the two bare loops over ``events``, and the number of predictions."""
    evs = kernel_view(events)
    compiled = inference_model(compile_onnx(model.onnx_bytes))
    prog = features.program(0)
    best_f, best_p, n_pred = float("inf"), float("inf"), 0
    for _ in range(repeat + 1):  # the first round compiles
        t0 = time.perf_counter()
        features_only(prog, features.new_state(), features.new_output(), evs)
        t1 = time.perf_counter()
        n_pred = features_and_predict(prog, features.new_state(), features.new_output(), compiled, evs)
        t2 = time.perf_counter()
        best_f, best_p = min(best_f, t1 - t0), min(best_p, t2 - t1)
    return best_f, best_p, n_pred


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--events", type=int, default=1_000_000, help="events backtested (quotes and trades)")
    ap.add_argument("--train-trades", type=int, default=100_000, help="trades of the training day")
    ap.add_argument("--chunk", type=int, default=1_000_000, help="rows per chunk fed to the backtest")
    ap.add_argument("--repeat", type=int, default=3, help="runs per measurement (best shown)")
    ap.add_argument("--models", nargs="+", choices=sorted(MODELS), default=list(MODELS))
    args = ap.parse_args()

    features = FeatureSet.from_yaml(ROOT / "conf" / "features" / "microstructure.yaml")
    training = day_events(args.train_trades, seed=1)
    events = day_events(args.events // 3 + 1, seed=2)[: args.events]
    chunks = [events[i : i + args.chunk] for i in range(0, len(events), args.chunk)]
    n_trades = int((events["kind"] == EventKind.TRADE).sum())
    print(f"{len(events):,} events ({n_trades:,} trades), features {features.name} ({len(features.columns)} "
          f"columns), chunk {args.chunk:,d} rows, best of {args.repeat}")
    print()
    print(f"{'model':20s} {'loop ev/s':>10s} {'ns/input':>9s} {'feat ns/ev':>11s} {'+pred ns/ev':>12s} "
          f"{'pred ns':>8s} {'predictions':>12s} {'fills':>8s} {'compile s':>10s}")
    for model_type in args.models:
        model = trained_model(model_type, features, training)
        t0 = time.perf_counter()
        build(model).compile()
        compile_s = time.perf_counter() - t0
        runs = [build(model).run(chunks) for _ in range(args.repeat)]
        best = min(runs, key=lambda r: r.loop_seconds)
        feat_s, both_s, n_pred = signal_costs(model, features, events, args.repeat)
        print(f"{model_type:20s} {best.n_inputs / best.loop_seconds / 1e6:9.2f}M "
              f"{1e9 * best.loop_seconds / best.n_inputs:9.1f} {1e9 * feat_s / len(events):11.1f} "
              f"{1e9 * both_s / len(events):12.1f} {1e9 * (both_s - feat_s) / max(n_pred, 1):8.1f} "
              f"{n_pred:12,d} {len(best.fills):8,d} {compile_s:10.1f}")


if __name__ == "__main__":
    main()
