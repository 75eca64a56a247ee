"""The model strategy: inside a real backtest it predicts what onnxruntime predicts on the training feature rows."""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Iterator
from pathlib import Path

import numba
import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "models"))

from lifecycle_cases import FEATURES, onnx_of, trained  # noqa: E402

from app.backtest import build_backtest  # noqa: E402
from app.data_source import PreparedData, prepare  # noqa: E402
from framework.config import register_configs  # noqa: E402
from framework.events import EventKind, concat_events, from_fixed  # noqa: E402
from framework.journal import JournalHasher  # noqa: E402
from models.compiled import compile_onnx  # noqa: E402
from models.inference import ATOL, RTOL, inference_model, onnxruntime_scores  # noqa: E402
from models.onnx_export import export_onnx  # noqa: E402
from models.registry import LoadedOnnx  # noqa: E402
from strategies import model_signal  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
URI = "models:/test/1"


def loaded(model_type: str, onnx_bytes: bytes | None = None) -> LoadedOnnx:
    """A registry entry for a model trained on the shared synthetic dataset, as the runner would load it."""
    data = onnx_bytes if onnx_bytes is not None else onnx_of(trained(model_type).model)
    return LoadedOnnx(uri=URI, name="test", version=1, sha256=hashlib.sha256(data).hexdigest(), onnx_bytes=data)


def config(tmp_path: Path, *overrides: str) -> DictConfig:
    register_configs()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose("config", overrides=[
            "strategy=model_signal", f"strategy.params.model={URI}", f"data.catalog_root={tmp_path / 'catalog'}",
            "data.synthetic.trades_per_day=3000", "progress=false", *overrides,
        ])


def all_events(data: PreparedData) -> np.ndarray:
    return concat_events(list(data.catalog.stream(data.streams, chunk_rows=10**6)))


def one_at_a_time(events: np.ndarray, state: tuple, seen: dict[int, float]) -> Iterator[np.ndarray]:
    """Feed the backtest one event per chunk; before each, note the strategy's latest prediction by its number."""
    for i in range(len(events)):
        s = state[0][0]
        seen[int(s["n_predictions"])] = float(s["p_up"])
        yield events[i : i + 1]


@pytest.mark.parametrize("model_type", ["logistic_regression", "xgboost"])
def test_predictions_inside_the_backtest_equal_onnxruntime_on_the_training_feature_rows(tmp_path, model_type):
    """Each prediction the compiled strategy made per event, inside the compiled loop, equals onnxruntime's
    probability of an up move on the feature row that training computes for the same trade
    (``FeatureSet.compute``, as ``models/dataset.py`` does), within 1e-6 + 1e-6 |ort| (float64 sums in the
    kernel, float32 in onnxruntime). So the features streamed inside ``step`` equal the training features,
    and the compiled model equals the ONNX file."""
    cfg = config(tmp_path)
    data = prepare(cfg.data)
    model = loaded(model_type)
    bt = build_backtest(cfg, data, JournalHasher(), model)
    events = all_events(data)
    seen: dict[int, float] = {}
    bt.run(one_at_a_time(events, bt.strategy.state, seen))
    s = bt.strategy.state[0][0]
    seen[int(s["n_predictions"])] = float(s["p_up"])

    iid = data.instruments["SYNTH"]
    X = FEATURES.compute(events, iid)
    decisions = np.flatnonzero((events["kind"] == EventKind.TRADE) & (events["instrument_id"] == iid)
                               & ~np.isnan(X).any(axis=1))
    assert s["n_predictions"] == len(decisions) > 2000, "one prediction per trade once the features are warm"
    p_ort = onnxruntime_scores(model.onnx_bytes, X[decisions])[:, 1]
    numbers = np.array(sorted(n for n in seen if n > 0))
    p_backtest = np.array([seen[n] for n in numbers])
    assert len(numbers) > 0.9 * len(decisions), "nearly every prediction was observed between two events"
    np.testing.assert_allclose(p_backtest, p_ort[numbers - 1], rtol=RTOL, atol=ATOL)
    assert p_backtest.std() > 0.01, "the model's view moves with the market"


def test_tree_and_linear_models_share_one_compiled_loop():
    """Both families have the same Numba type, so the loop compiled for the strategy serves any model."""
    tree = inference_model(compile_onnx(onnx_of(trained("xgboost").model)))
    linear = inference_model(compile_onnx(onnx_of(trained("logistic_regression").model)))
    assert (tree.family, linear.family) == (0, 1)
    assert numba.typeof(tree) == numba.typeof(linear)


@pytest.mark.parametrize(
    "thresholds, allow_short, position",
    [((1e-9, 0.0), True, 1.0), ((1.0, 1.0 - 1e-9), True, -1.0), ((1.0, 1.0 - 1e-9), False, 0.0)],
    ids=["always_long", "always_short", "short_not_allowed"],
)
def test_the_position_follows_the_model_view(tmp_path, thresholds, allow_short, position):
    long_above, short_below = thresholds
    cfg = config(tmp_path, f"strategy.params.long_above={long_above}", f"strategy.params.short_below={short_below}",
                 f"strategy.params.allow_short={str(allow_short).lower()}")
    data = prepare(cfg.data)
    bt = build_backtest(cfg, data, None, loaded("logistic_regression"))
    result = bt.run(data.catalog.stream(data.streams, chunk_rows=4096))
    assert len(result.fills) == (1 if position else 0), "one order takes the position and holds it"
    assert from_fixed(bt.p.positions[data.instruments["SYNTH"]]["qty"]) == position
    assert bt.strategy.state[0][0]["n_predictions"] > 2000


def test_make_refuses_what_it_cannot_trade(tmp_path):
    params = model_signal.Params(instrument="SYNTH", model=URI)
    with pytest.raises(ValueError, match=r"strategy\.params\.instrument: 'SYNTH' is not in the data"):
        model_signal.make(params, {"OTHER": 0}, loaded("logistic_regression"))
    with pytest.raises(ValueError, match=r"strategy\.params\.model: 'models:/other@champion', but the model loaded"):
        model_signal.make(model_signal.Params(model="models:/other@champion"), {"SYNTH": 0},
                          loaded("logistic_regression"))
    bare = export_onnx(trained("logistic_regression").model, len(FEATURES.columns))
    with pytest.raises(ValueError, match="no pipeline_trader.feature_set"):
        model_signal.make(params, {"SYNTH": 0}, loaded("logistic_regression", bare))


@pytest.mark.parametrize(
    "values, message",
    [
        ({"model": "runs:/abc/model"}, r"strategy\.params\.model: expected models:/NAME@ALIAS"),
        ({"long_above": 0.4, "short_below": 0.6}, r"need 0 <= short_below < long_above <= 1"),
        ({"order_size": 0.0}, r"strategy\.params\.order_size: must be positive"),
    ],
)
def test_bad_parameters_name_the_key(values, message):
    with pytest.raises(ValueError, match=message):
        model_signal.Params(**values)
