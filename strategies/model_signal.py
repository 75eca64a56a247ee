"""Trade on a registered model's probability of an up move, computed inside ``step`` on every trade.

The model comes from the registry (``params.model``: ``models:/NAME@ALIAS``, or
``models:/NAME/VERSION`` to pin one; the runner loads it and records its version and
hash). Its ONNX file names the feature set it was trained on (``models.metadata``),
so the strategy builds exactly that feature program: the same kernels, in the same
column order, as the training data (``models/dataset.py``).

Per event, inside the compiled loop and without allocating:

1. every market-data event of the instrument updates the features
   (``features_update_event``);
2. on a trade, once every feature has warmed up, the compiled model
   (``models.inference.predict``) gives ``p_up``, the probability that the price is
   higher ``horizon_ns`` later (given that it moves): a decision point, as each row of
   the training data is one;
3. the position target follows the view: ``+order_size`` when ``p_up >= long_above``,
   ``-order_size`` when ``p_up <= short_below`` (flat when ``allow_short`` is off),
   flat in between; a market order moves the position, working orders included, to
   the target when it changes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from numba import njit

from framework.events import EventKind, Side, records, to_fixed
from framework.features import features_ready, features_update_event
from framework.jit import HOT
from framework.strategy_api import market_order
from models.compiled import compile_onnx
from models.inference import inference_model, predict
from models.metadata import model_features

if TYPE_CHECKING:
    from models.registry import LoadedOnnx

PARAMS_DTYPE = np.dtype(
    [("instrument_id", "<i8"), ("order_size", "<i8"), ("allow_short", "<i8"), ("up_class", "<i8"),
     ("long_above", "<f8"), ("short_below", "<f8")],
    align=True,
)
STATE_DTYPE = np.dtype([("target", "<i8"), ("n_predictions", "<i8"), ("p_up", "<f8")], align=True)
"""``target``: the position (fixed point) the strategy last asked for; ``n_predictions`` and
``p_up``: how many predictions it made and the last one (for reports and tests)."""


@dataclass(frozen=True)
class Params:
    """Parameters of the model strategy."""

    instrument: str = "SYNTH"
    model: str = "models:/signal@champion"
    long_above: float = 0.55
    short_below: float = 0.45
    order_size: float = 1.0
    allow_short: bool = True

    def __post_init__(self) -> None:
        if not self.model.startswith("models:/"):
            raise ValueError(f"strategy.params.model: expected models:/NAME@ALIAS or models:/NAME/VERSION, "
                             f"got {self.model!r}")
        if not 0.0 <= self.short_below < self.long_above <= 1.0:
            raise ValueError(f"strategy.params: need 0 <= short_below < long_above <= 1, got "
                             f"short_below={self.short_below}, long_above={self.long_above}")
        if self.order_size <= 0:
            raise ValueError(f"strategy.params.order_size: must be positive, got {self.order_size}")


def make(params: Params, instrument_ids: dict[str, int], model: LoadedOnnx) -> tuple[np.ndarray, tuple]:
    """Build the parameter record and the state: the model's feature program, its buffers and the compiled model.

    ``model`` is the registry entry the runner loaded for ``params.model``. The state is
    ``(STATE_DTYPE record, FeatureProgram, feature state, feature vector, InferenceModel)``;
    the feature vector is the model's input row, so nothing is copied per prediction.
    """
    if params.instrument not in instrument_ids:
        raise ValueError(
            f"strategy.params.instrument: {params.instrument!r} is not in the data (have {sorted(instrument_ids)})"
        )
    if model.uri != params.model:
        raise ValueError(f"strategy.params.model: {params.model!r}, but the model loaded is {model.uri!r}")
    features = model_features(model.onnx_bytes)
    compiled = compile_onnx(model.onnx_bytes)
    if compiled.labels is None or sorted(compiled.labels) != [0, 1]:
        raise ValueError(f"strategy.params.model: {model.uri} must classify up (1) against down (0), "
                         f"it predicts {compiled.labels}")
    if compiled.n_features != len(features.columns):
        raise ValueError(f"strategy.params.model: {model.uri} reads {compiled.n_features} features, "
                         f"its feature set has {len(features.columns)}")
    iid = instrument_ids[params.instrument]
    rec = records(1, PARAMS_DTYPE)
    rec["instrument_id"] = iid
    rec["order_size"] = to_fixed(params.order_size)
    rec["allow_short"] = int(params.allow_short)
    rec["up_class"] = compiled.labels.index(1)
    rec["long_above"] = params.long_above
    rec["short_below"] = params.short_below
    state = (
        records(1, STATE_DTYPE),
        features.program(iid),
        features.new_state(),
        features.new_output(),
        inference_model(compiled),
    )
    return rec, state


@njit(**HOT)
def on_event(p, params, state, ev) -> None:
    """Update the features on market data; on a trade, predict and move the position to the model's view."""
    prm = params[0]
    features = state[3]
    features_update_event(state[1], state[2], features, ev)
    if ev.kind != EventKind.TRADE or ev.instrument_id != prm.instrument_id or not features_ready(features):
        return
    s = state[0][0]
    model = state[4]
    predict(model, features)
    p_up = model.scores[prm.up_class]
    s.n_predictions += 1
    s.p_up = p_up
    target = 0
    if p_up >= prm.long_above:
        target = prm.order_size
    elif p_up <= prm.short_below and prm.allow_short != 0:
        target = -prm.order_size
    if target == s.target:
        return
    s.target = target
    pos = p.positions[prm.instrument_id]
    delta = target - (pos.qty + pos.open_buy - pos.open_sell)
    if delta > 0:
        market_order(p, prm.instrument_id, Side.BUY, delta)
    elif delta < 0:
        market_order(p, prm.instrument_id, Side.SELL, -delta)
