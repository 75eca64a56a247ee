"""Model inference latency: onnxruntime one row at a time against the compiled kernels.

Trains three binary classifiers on synthetic features (16 columns): a logistic
regression, a scikit-learn GradientBoostingClassifier of 100 trees of depth 6 and an
XGBClassifier of 100 trees of depth 6. Each is exported to ONNX
(``models.onnx_export``), checked against the native model, compiled
(``models.compiled``), and timed on held-out rows:

* ORT 1 row       ``InferenceSession.run`` with one float32 row, p50 and p99 over
                  ``--iterations`` calls (one intra-op thread, as a live process that
                  scores one event at a time would run it);
* ORT batch       onnxruntime's time per row when given all rows in one call;
* kernel in loop  the compiled kernel's time per row, called row after row from a
                  compiled loop: what a strategy pays inside ``step`` (best of
                  ``--repeat``);
* kernel 1 call   the kernel called once from Python, p50 and p99: mostly Numba's
                  dispatch from the interpreter, which ``step`` never pays;
* max |diff|      largest difference between the kernel's and onnxruntime's
                  probabilities on the timed rows.

Usage::

    python bench/model_inference.py
    python bench/model_inference.py --rows 200000 --iterations 50000 --repeat 5

This is a script, not a test: figures depend on the machine and what else runs on it.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from app.numba_cache import configure_numba_cache  # noqa: E402

configure_numba_cache()

import numpy as np  # noqa: E402
import onnxruntime  # noqa: E402
from sklearn.ensemble import GradientBoostingClassifier  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from xgboost import XGBClassifier  # noqa: E402

from models.compiled import compile_onnx  # noqa: E402
from models.onnx_export import check_onnx_parity, export_onnx  # noqa: E402

N_FEATURES = 16
N_TRAIN = 5_000


def make_data(n_rows: int, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Features with a nonlinear signal, so that deep trees have something to split on."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n_rows, N_FEATURES))
    signal = X[:, 0] * X[:, 1] + np.sin(2 * X[:, 2]) + 0.5 * X[:, 3] - 0.3 * X[:, 4] ** 2
    y = (signal + 0.5 * rng.normal(size=n_rows) > 0).astype(np.int64)
    return X, y


def percentiles_us(samples_ns: np.ndarray) -> tuple[float, float]:
    """p50 and p99 in microseconds."""
    p50, p99 = np.percentile(samples_ns, [50, 99])
    return p50 / 1e3, p99 / 1e3


def time_ort_single_row(session: onnxruntime.InferenceSession, rows: np.ndarray, iterations: int) -> np.ndarray:
    """Nanoseconds of each ``session.run`` on one float32 row."""
    name = session.get_inputs()[0].name
    feeds = [{name: rows[i % len(rows)][None, :]} for i in range(min(iterations, len(rows)))]
    for feed in feeds[:1000]:
        session.run(None, feed)
    out = np.empty(iterations, np.int64)
    for i in range(iterations):
        feed = feeds[i % len(feeds)]
        t0 = time.perf_counter_ns()
        session.run(None, feed)
        out[i] = time.perf_counter_ns() - t0
    return out


def time_kernel_single_call(compiled, rows: np.ndarray, iterations: int) -> np.ndarray:
    """Nanoseconds of each call of the kernel from Python on one float64 row."""
    kernel, arrays = compiled.kernel, compiled.arrays
    scratch = np.zeros(compiled.n_outputs)
    for i in range(1000):
        kernel(arrays, rows[i % len(rows)], scratch)
    out = np.empty(iterations, np.int64)
    for i in range(iterations):
        row = rows[i % len(rows)]
        t0 = time.perf_counter_ns()
        kernel(arrays, row, scratch)
        out[i] = time.perf_counter_ns() - t0
    return out


def best_seconds(repeat: int, fn) -> float:
    """Best wall time of ``repeat`` calls of ``fn``."""
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000, help="held-out rows timed in the compiled loop")
    parser.add_argument("--iterations", type=int, default=20_000, help="single-row calls timed per model")
    parser.add_argument("--repeat", type=int, default=3, help="best of this many runs of the compiled loop")
    args = parser.parse_args()

    X, y = make_data(N_TRAIN + args.rows)
    X_train, y_train, X_rows = X[:N_TRAIN], y[:N_TRAIN], X[N_TRAIN:]
    models = {
        "logistic regression": LogisticRegression(max_iter=1000),
        "sklearn GBM 100x6": GradientBoostingClassifier(n_estimators=100, max_depth=6, random_state=0),
        "XGBoost 100x6": XGBClassifier(n_estimators=100, max_depth=6, n_jobs=1, random_state=0),
    }
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    print(f"onnxruntime {onnxruntime.__version__}, {N_FEATURES} features, {N_TRAIN:,d} training rows, "
          f"{args.rows:,d} timed rows, {args.iterations:,d} single-row calls")
    results = []
    for label, model in models.items():
        t0 = time.perf_counter()
        model.fit(X_train, y_train)
        onnx_bytes = export_onnx(model, N_FEATURES)
        check_onnx_parity(model, onnx_bytes, X_rows[:2000]).raise_if_failed()
        compiled = compile_onnx(onnx_bytes)
        session = onnxruntime.InferenceSession(onnx_bytes, options, providers=["CPUExecutionProvider"])
        rows32 = X_rows.astype(np.float32)
        out = np.empty((len(X_rows), compiled.n_outputs))
        compiled.rows_kernel(compiled.arrays, X_rows[:10], out[:10])  # compile (or load from cache)
        print(f"  {label}: trained, exported, checked and compiled in {time.perf_counter() - t0:.1f} s")

        ort_single = percentiles_us(time_ort_single_row(session, rows32, args.iterations))
        name = session.get_inputs()[0].name
        ort_batch_s = best_seconds(args.repeat, lambda: session.run(None, {name: rows32}))
        loop_s = best_seconds(args.repeat, lambda: compiled.rows_kernel(compiled.arrays, X_rows, out))
        kernel_single = percentiles_us(time_kernel_single_call(compiled, X_rows, args.iterations))
        diff = float(np.abs(out - session.run(None, {name: rows32})[1]).max())
        results.append((label, ort_single, 1e9 * ort_batch_s / len(X_rows), 1e9 * loop_s / len(X_rows),
                        kernel_single, diff))

    print()
    print(f"{'model':22s} {'ORT 1 row p50':>14s} {'p99':>8s} {'ORT batch':>10s} {'kernel in loop':>15s} "
          f"{'kernel 1 call p50':>18s} {'p99':>8s} {'max |diff|':>11s}")
    for label, (o50, o99), batch_ns, loop_ns, (k50, k99), diff in results:
        print(f"{label:22s} {o50:11.2f} us {o99:5.2f} us {batch_ns:7.0f} ns {loop_ns:12.0f} ns "
              f"{k50:15.2f} us {k99:5.2f} us {diff:11.2e}")


if __name__ == "__main__":
    main()
