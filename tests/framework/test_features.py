"""Feature sets: config validation, a stable hash, and one compiled program that computes, one event
at a time or over a history, exactly what the indicators compute alone, with no lookahead."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from numba import njit
from omegaconf import OmegaConf

from framework.data.loaders import binance
from framework.data.synthetic import SyntheticSpec, generate_day
from framework.events import BAR_DTYPE, EVENT_DTYPE, INV_PRICE_SCALE, EventKind, concat_events
from framework.features import (
    INDICATORS,
    INPUTS,
    FeatureSet,
    features_ready,
    features_update_event,
)
from framework.indicators.book import (
    book_imbalance_1d_nb,
    book_imbalance_l2_1d_nb,
    microprice_1d_nb,
    microprice_l2_1d_nb,
)
from framework.indicators.moving_averages import ema_1d_nb, sma_1d_nb, wma_1d_nb
from framework.indicators.oscillators import macd_1d_nb, rsi_1d_nb
from framework.indicators.returns import log_return_1d_nb
from framework.indicators.rolling import rolling_max_1d_nb, rolling_min_1d_nb, zscore_1d_nb
from framework.indicators.volatility import atr_1d_nb, bbands_1d_nb, realized_vol_1d_nb
from framework.indicators.volume import trade_flow_1d_nb, vwap_1d_nb, vwap_session_1d_nb

sys.path.insert(0, str(Path(__file__).resolve().parent / "indicators"))

from indicator_cases import assert_identical  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
DEFAULT = ROOT / "conf/features/default.yaml"

PARAMS = {
    "sma": {"window": 5}, "ema": {"window": 5}, "wma": {"window": 5}, "rsi": {"window": 5},
    "macd": {"fast": 3, "slow": 7, "signal": 4}, "bbands": {"window": 5, "k": 2.0}, "atr": {"window": 5},
    "realized_vol": {"window": 5}, "zscore": {"window": 5}, "rolling_min": {"window": 5},
    "rolling_max": {"window": 5}, "vwap": {"window": 5}, "vwap_session": {"session_start_ns": 3_600_000_000_000},
    "trade_flow": {"window": 5}, "book_imbalance": {}, "microprice": {}, "log_return": {"horizon": 3},
}
"""Small parameters, so that every feature warms up early in a short history."""

EVERY = FeatureSet.from_config(
    {
        "name": "every",
        "features": [
            {"name": f"{ind}_{src}", "indicator": ind, "input": src, "params": PARAMS[ind]}
            for ind, d in INDICATORS.items()
            for src in d.inputs
        ],
    }
)
"""Every indicator on every input it can read."""


def _events(n_trades: int = 3_000, seed: int = 5) -> np.ndarray:
    """Trades, quotes and 50-trade bars of instrument 0, merged with instrument 1's trades
    (other prices), in time order: what the pipeline would see."""
    day = generate_day(SyntheticSpec(trades_per_day=n_trades, seed=seed), 0)
    trades, quotes = day["trade"].view(EVENT_DTYPE), day["quote"].view(EVENT_DTYPE)
    other = trades.copy()
    other["instrument_id"] = 1
    other["price"] = other["price"] * 2
    starts = np.arange(0, n_trades, 50)
    ends = np.minimum(starts + 49, n_trades - 1)
    bars = np.zeros(len(starts), BAR_DTYPE)
    bars["kind"] = EventKind.BAR
    bars["ts_event"] = bars["ts_recv"] = trades["ts_recv"][ends] + 1
    bars["high"] = np.maximum.reduceat(trades["price"], starts)
    bars["low"] = np.minimum.reduceat(trades["price"], starts)
    bars["close"] = trades["price"][ends]
    bars["volume"] = np.add.reduceat(trades["size"], starts)
    events = concat_events([trades, quotes, other, bars.view(EVENT_DTYPE)])
    return events[np.argsort(events["ts_recv"], kind="stable")]


def _inputs(events: np.ndarray, source: str, instrument_id: int = 0) -> dict[str, np.ndarray]:
    """Each indicator input as a float array over all events: NaN where the event is not one the
    feature reads (another kind or instrument), which the indicators skip as a gap."""
    mine = (events["kind"] == INPUTS[source]) & (events["instrument_id"] == instrument_id)

    def field(name: str, present: np.ndarray | None = None) -> np.ndarray:
        ok = mine if present is None else mine & present
        return np.where(ok, events[name] * INV_PRICE_SCALE, np.nan)

    if source == "trade":
        price, size = field("price"), field("size")
        side = np.where(mine, events["side"].astype(np.float64), np.nan)
        return {"x": price, "hlc": (price, price, price), "pv": (price, size), "flow": (size, side)}
    if source == "quote":
        bid, ask = events["bid_size"] > 0, events["ask_size"] > 0
        bp, bs = field("bid_price", bid), field("bid_size", bid)
        ap, a_s = field("ask_price", ask), field("ask_size", ask)
        x = (bp + ap) * 0.5
        return {"x": x, "hlc": (x, x, x), "book": (bp, bs, ap, a_s)}
    high, low, close = field("high"), field("low"), field("close")
    return {"x": close, "hlc": (high, low, close), "pv": ((high + low + close) / 3.0, field("volume"))}


def _alone(ind: str, params: dict, inp: dict[str, np.ndarray], ts: np.ndarray) -> list[np.ndarray]:
    """The indicator's own batch function on the feature's inputs: its columns."""
    p = tuple(params.values())
    x = inp["x"]
    out = {
        "sma": lambda: sma_1d_nb(x, *p), "ema": lambda: ema_1d_nb(x, *p), "wma": lambda: wma_1d_nb(x, *p),
        "rsi": lambda: rsi_1d_nb(x, *p), "macd": lambda: macd_1d_nb(x, *p), "bbands": lambda: bbands_1d_nb(x, *p),
        "atr": lambda: atr_1d_nb(*inp["hlc"], *p), "realized_vol": lambda: realized_vol_1d_nb(x, *p),
        "zscore": lambda: zscore_1d_nb(x, *p), "rolling_min": lambda: rolling_min_1d_nb(x, *p),
        "rolling_max": lambda: rolling_max_1d_nb(x, *p), "vwap": lambda: vwap_1d_nb(*inp["pv"], *p),
        "vwap_session": lambda: vwap_session_1d_nb(ts, *inp["pv"], *p),
        "trade_flow": lambda: trade_flow_1d_nb(*inp["flow"], *p),
        "book_imbalance": lambda: book_imbalance_1d_nb(inp["book"][1], inp["book"][3]),
        "microprice": lambda: microprice_1d_nb(*inp["book"]), "log_return": lambda: log_return_1d_nb(x, *p),
    }[ind]()
    return list(out) if isinstance(out, tuple) else [out]


@njit(cache=True)
def _feed_one(prog, state, out, events, t):
    return features_update_event(prog, state, out, events[t])


def _stream(fs: FeatureSet, events: np.ndarray, instrument_id: int) -> np.ndarray:
    """Feed events one compiled call at a time, as a strategy's on_event would."""
    prog, state, out = fs.program(instrument_id), fs.new_state(), fs.new_output()
    rows = np.empty((len(events), len(fs.columns)))
    for t in range(len(events)):
        _feed_one(prog, state, out, events, t)
        rows[t] = out
    return rows


# ----------------------------------------------------------------------------- config and hash


def test_the_default_set_loads_with_named_columns():
    fs = FeatureSet.from_yaml(DEFAULT)
    assert fs.name == "default"
    assert fs.columns[:3] == ["ret_1", "ret_10", "ret_100"]
    assert "macd.hist" in fs.columns and "flow_100.imbalance" in fs.columns
    assert len(fs.hash()) == 64


def test_a_hydra_node_gives_the_same_set():
    assert FeatureSet.from_config(OmegaConf.load(DEFAULT)) == FeatureSet.from_yaml(DEFAULT)


def _spec(**changes) -> dict:
    features = [
        {"name": "rsi", "indicator": "rsi", "input": "trade", "params": {"window": 14}},
        {"name": "bb", "indicator": "bbands", "input": "quote", "params": {"window": 20, "k": 2.0}},
    ]
    return {"name": "s", "features": features, **changes}


def test_the_hash_is_pinned_and_ignores_spelling_but_not_meaning():
    base = FeatureSet.from_config(_spec())
    canonical = (
        '{"features":[{"indicator":"rsi","input":"trade","name":"rsi","params":{"window":14}},'
        '{"indicator":"bbands","input":"quote","name":"bb","params":{"k":2.0,"window":20}}],"format":1}'
    )
    assert base.hash() == hashlib.sha256(canonical.encode()).hexdigest()
    assert base.hash() == "3688e7b79f01e5f204026d68e4c09bfeb46343be8709d0cfa9b81b871c901318"
    respelled = _spec(name="renamed")
    respelled["features"][1] = {"params": {"k": 2, "window": 20}, "input": "quote", "indicator": "bbands", "name": "bb"}
    assert FeatureSet.from_config(respelled).hash() == base.hash()
    reordered = _spec()
    reordered["features"].reverse()
    changed = _spec()
    changed["features"][1]["params"]["k"] = 2.5
    other_input = _spec()
    other_input["features"][0]["input"] = "quote"
    assert len({base.hash()} | {FeatureSet.from_config(s).hash() for s in (reordered, changed, other_input)}) == 4


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"indicator": "sma2"}, r"features\[0\] \(rsi\)\.indicator: 'sma2' is not one of"),
        ({"input": "book"}, r"\.input: rsi reads \['trade', 'quote', 'bar'\], got 'book'"),
        ({"params": {}}, r"\.params: rsi takes exactly \['window'\]"),
        ({"params": {"window": 14, "alpha": 1}}, r"\.params: rsi takes exactly"),
        ({"params": {"window": 14.0}}, r"\.params\.window: expected int, got 14\.0"),
        ({"params": {"window": True}}, r"\.params\.window: expected int, got True"),
        ({"params": {"window": 0}}, r"feature 'rsi' \(rsi\): indicator window must be at least 1"),
        ({"name": "a.b"}, r"features\[0\]\.name: expected a non-empty string without '\.'"),
        ({"extra": 1}, r"features\[0\]: expected keys"),
    ],
)
def test_a_bad_feature_is_refused_naming_where(change, message):
    spec = _spec()
    spec["features"][0].update(change)
    with pytest.raises(ValueError, match=message):
        FeatureSet.from_config(spec)


def test_duplicate_columns_and_empty_sets_are_refused():
    spec = _spec()
    spec["features"][1]["name"] = "rsi"
    with pytest.raises(ValueError, match=r"duplicate feature names \['rsi'\]"):
        FeatureSet.from_config(spec)
    with pytest.raises(ValueError, match="non-empty list"):
        FeatureSet.from_config({"name": "s", "features": []})


def test_the_program_lays_states_end_to_end_and_points_columns_at_outputs():
    prog = EVERY.program(3)
    ops = prog.ops
    assert prog.instrument_id == 3 and len(ops) == len(EVERY.features)
    np.testing.assert_array_equal(ops["state_offset"][1:], np.cumsum(ops["state_size"])[:-1])
    assert ops["state_offset"][0] == 0 and ops["state_size"].sum() == EVERY.new_state().shape[0]
    assert len(prog.columns) == len(EVERY.columns)
    assert np.isnan(EVERY.new_state()[prog.columns]).all()


# ----------------------------------------------------------------------------- computation


@pytest.fixture(scope="module")
def events() -> np.ndarray:
    return _events()


def test_each_column_is_exactly_its_indicator_computed_alone(events):
    matrix = EVERY.compute(events, instrument_id=0)
    assert matrix.shape == (len(events), len(EVERY.columns))
    col = 0
    for f in EVERY.features:
        for expected in _alone(f.indicator, dict(f.params), _inputs(events, f.input), events["ts_recv"]):
            assert_identical(matrix[:, col], expected)
            assert not np.isnan(expected[-1]), f"{EVERY.columns[col]} never warmed up"
            col += 1


def test_one_event_at_a_time_equals_the_batch(events):
    assert_identical(_stream(EVERY, events, 0), EVERY.compute(events, instrument_id=0))


def test_other_instruments_are_ignored_unless_the_program_reads_them_all(events):
    mine = events[events["instrument_id"] == 0]
    np.testing.assert_array_equal(
        EVERY.compute(events, 0)[events["instrument_id"] == 0], EVERY.compute(mine, 0)
    )
    assert not np.array_equal(EVERY.compute(events, -1), EVERY.compute(events, 0), equal_nan=True)


def test_a_quote_with_an_absent_side_is_a_gap(events):
    fs = FeatureSet.from_config(
        {"name": "q", "features": [
            {"name": "mid", "indicator": "sma", "input": "quote", "params": {"window": 1}},
            {"name": "imb", "indicator": "book_imbalance", "input": "quote", "params": {}},
        ]}
    )
    quotes = events[events["kind"] == EventKind.QUOTE][:2].copy()
    quotes["bid_size"][1] = 0
    rows = fs.compute(quotes)
    np.testing.assert_array_equal(rows[1], rows[0])


def test_features_ready_once_every_column_has_warmed_up(events):
    fs = FeatureSet.from_yaml(DEFAULT)
    matrix = fs.compute(events, 0)
    ready = np.array([features_ready(row) for row in matrix])
    np.testing.assert_array_equal(ready, ~np.isnan(matrix).any(axis=1))
    assert not ready[0] and ready[-1]


@settings(max_examples=25, deadline=None)
@given(cut=st.integers(0, 2_000), seed=st.integers(0, 2**32 - 1))
def test_no_lookahead_rows_up_to_t_ignore_everything_after_t(events, cut, seed):
    head = events[: cut + 1]
    full = EVERY.compute(events[:2_001], 0)
    assert_identical(EVERY.compute(head, 0), full[: cut + 1])
    altered = events[:2_001].copy()
    rng = np.random.default_rng(seed)
    tail = altered[cut + 1 :]
    tail["price"] = (tail["price"] * rng.uniform(0.5, 2.0, len(tail))).astype(np.int64)
    tail["size"] = rng.integers(1, 10**12, len(tail))
    tail["kind"] = rng.choice(list(INPUTS.values()), len(tail))
    assert_identical(EVERY.compute(altered, 0)[: cut + 1], full[: cut + 1])


def test_real_trades_and_quotes_merged_give_each_indicator_alone(shared_data):
    root = shared_data
    trades = binance.load_trades(root / "trades/binance_usdm_btcusdt_trades_20240808.csv.gz")["trade"]
    quotes = binance.load_quotes(root / "quotes/binance_usdm_btcusdt_quotes_20240808.csv.gz")["quote"]
    events = concat_events([trades.view(EVENT_DTYPE), quotes.view(EVENT_DTYPE)])
    events = events[np.argsort(events["ts_recv"], kind="stable")]
    fs = FeatureSet.from_yaml(DEFAULT)
    matrix = fs.compute(events)
    col = 0
    for f in fs.features:
        for expected in _alone(f.indicator, dict(f.params), _inputs(events, f.input), events["ts_recv"]):
            assert_identical(matrix[:, col], expected)
            col += 1
    assert not np.isnan(matrix[-1]).any()


def test_every_kernel_runs_without_the_jit_and_gives_the_same_bits(events, tmp_path):
    """NUMBA_DISABLE_JIT=1 runs the kernels as plain Python (to debug them): the program over
    every indicator and input, and the L2 book kernels, must give the compiled bits."""
    sample = events[:1_500]
    np.save(tmp_path / "events.npy", sample.view(np.uint8).reshape(len(sample), -1))
    (tmp_path / "every.yaml").write_text(yaml.safe_dump({"name": EVERY.name, "features": [
        {"name": f.name, "indicator": f.indicator, "input": f.input, "params": dict(f.params)} for f in EVERY.features
    ]}))
    rng = np.random.default_rng(0)
    book = [rng.uniform(1, 2, (200, 4)) for _ in range(4)]
    np.save(tmp_path / "book.npy", np.stack(book))
    script = f"""
import numpy as np
from framework.events import EVENT_DTYPE
from framework.features import FeatureSet
from framework.indicators.book import book_imbalance_l2_1d_nb, microprice_l2_1d_nb
ev = np.ascontiguousarray(np.load({str(tmp_path / "events.npy")!r})).view(EVENT_DTYPE).reshape(-1)
bp, bs, ap, a_s = np.load({str(tmp_path / "book.npy")!r})
np.save({str(tmp_path / "features.npy")!r}, FeatureSet.from_yaml({str(tmp_path / "every.yaml")!r}).compute(ev, 0))
l2 = [book_imbalance_l2_1d_nb(bs, a_s, 3), microprice_l2_1d_nb(bp, bs, ap, a_s, 3)]
np.save({str(tmp_path / "l2.npy")!r}, np.stack(l2))
"""
    env = {**os.environ, "NUMBA_DISABLE_JIT": "1"}
    proc = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert_identical(np.load(tmp_path / "features.npy"), EVERY.compute(sample, 0))
    bp, bs, ap, a_s = book
    compiled = np.stack([book_imbalance_l2_1d_nb(bs, a_s, 3), microprice_l2_1d_nb(bp, bs, ap, a_s, 3)])
    assert_identical(np.load(tmp_path / "l2.npy"), compiled)
