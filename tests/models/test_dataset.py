"""The labelled dataset: features use only the past, labels only the future, splits never overlap."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from lifecycle_cases import market

from framework.data.catalog import Catalog
from framework.data.synthetic import SyntheticSpec, write_synthetic
from framework.events import INV_PRICE_SCALE, EventKind
from framework.features import FeatureSet
from models.dataset import SPLITS, LabelSpec, SplitSpec, build_dataset, data_hash, load_events

SECOND = 1_000_000_000
FEATURES = FeatureSet.from_config({"name": "test", "features": [
    {"name": "ret_5", "indicator": "log_return", "input": "trade", "params": {"horizon": 5}},
    {"name": "flow_10", "indicator": "trade_flow", "input": "trade", "params": {"window": 10}},
    {"name": "imbalance", "indicator": "book_imbalance", "input": "quote", "params": {}},
    {"name": "mid_z_20", "indicator": "zscore", "input": "quote", "params": {"window": 20}},
]})
LABEL = LabelSpec(horizon_ns=30 * SECOND)
SPLIT = SplitSpec(0.6, 0.2, 0.2)


def reference_labels(events: np.ndarray, rows: np.ndarray, horizon_ns: int) -> np.ndarray:
    """Labels by a plain loop: the last quote's mid at or before the trade's position, and at or before t + h."""
    def mid_at_or_before(index: int) -> float:
        for j in range(index, -1, -1):
            e = events[j]
            if e["kind"] == EventKind.QUOTE and e["bid_size"] > 0 and e["ask_size"] > 0:
                return (e["bid_price"] + e["ask_price"]) * 0.5 * INV_PRICE_SCALE
        return np.nan

    ts = events["ts_event"]
    out = []
    for i in rows:
        later = int(np.flatnonzero(ts <= ts[i] + horizon_ns)[-1])
        out.append(np.log(mid_at_or_before(later) / mid_at_or_before(int(i))))
    return np.array(out)


def test_labels_are_the_sign_of_the_forward_mid_return_over_the_horizon():
    events = market()
    ds = build_dataset(events, FEATURES, 0, LABEL, SPLIT)
    sample = ds.event_index[:: max(1, len(ds.y) // 300)]
    expected = reference_labels(events, sample, LABEL.horizon_ns)
    got = ds.forward_return[:: max(1, len(ds.y) // 300)]
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(ds.y[:: max(1, len(ds.y) // 300)], (expected > 0).astype(np.int64))
    assert (ds.forward_return != 0).all(), "rows where the price did not move are dropped"


def test_rows_are_trades_with_warm_features_and_a_full_horizon():
    events = market()
    ds = build_dataset(events, FEATURES, 0, LABEL, SPLIT)
    assert (events["kind"][ds.event_index] == EventKind.TRADE).all()
    assert not np.isnan(ds.X).any()
    assert (ds.ts_ns + LABEL.horizon_ns <= events["ts_event"][-1]).all()
    assert np.all(np.diff(ds.event_index) > 0), "rows stay in time order"
    np.testing.assert_array_equal(ds.X, FEATURES.compute(events, 0)[ds.event_index])


def test_features_at_t_use_only_data_at_or_before_t_and_labels_only_data_after():
    """Change every price after a cut-off T (up 10%): features of rows at or before T do not move,
    labels whose horizon ends before T do not move, and labels reaching past T all turn to up."""
    events = market()
    cut = int(events["ts_event"][len(events) // 2])
    changed = events.copy()
    after = changed["ts_event"] > cut
    for field in ("price", "bid_price", "ask_price"):
        changed[field][after] = (changed[field][after] * 1.1).astype(np.int64)
    before_ds = build_dataset(events, FEATURES, 0, LABEL, SPLIT)
    after_ds = build_dataset(changed, FEATURES, 0, LABEL, SPLIT)
    _, a, b = np.intersect1d(before_ds.event_index, after_ds.event_index, return_indices=True)
    ts = before_ds.ts_ns[a]
    past = ts <= cut
    assert past.sum() > 100
    np.testing.assert_array_equal(before_ds.X[a][past], after_ds.X[b][past])
    settled = ts + LABEL.horizon_ns < cut
    np.testing.assert_array_equal(before_ds.y[a][settled], after_ds.y[b][settled])
    reaching = past & ~settled
    assert reaching.sum() > 0
    assert (after_ds.y[b][reaching] == 1).all()
    assert not np.array_equal(before_ds.y[a][reaching], after_ds.y[b][reaching])
    assert (after_ds.X[b][~past] != before_ds.X[a][~past]).any(), "rows after T do see the change"


def test_splits_are_contiguous_in_time_and_purged_of_labels_reaching_the_next_split():
    ds = build_dataset(market(), FEATURES, 0, LABEL, SPLIT)
    ranges = [ds.splits[name] for name in SPLITS]
    assert ranges[0].start == 0 and ranges[-1].stop == len(ds.y)
    for earlier, later in itertools.pairwise(ranges):
        assert earlier.stop == later.start
        assert ds.ts_ns[earlier.stop - 1] + LABEL.horizon_ns < ds.ts_ns[later.start]
    sizes = np.array([r.stop - r.start for r in ranges]) / len(ds.y)
    np.testing.assert_allclose(sizes, [0.6, 0.2, 0.2], atol=0.02)
    X, y = ds.split("validation")
    np.testing.assert_array_equal(X, ds.X[ranges[1]])
    np.testing.assert_array_equal(y, ds.y[ranges[1]])


def test_trade_price_labels_follow_the_last_trade():
    events = market()
    ds = build_dataset(events, FEATURES, 0, LabelSpec(LABEL.horizon_ns, "trade"), SPLIT)
    i = ds.event_index[10]
    later = np.flatnonzero(events["ts_event"] <= events["ts_event"][i] + LABEL.horizon_ns)[-1]
    trades = np.flatnonzero(events["kind"][: later + 1] == EventKind.TRADE)
    assert ds.forward_return[10] == np.log(events["price"][trades[-1]] * INV_PRICE_SCALE
                                           / (events["price"][i] * INV_PRICE_SCALE))


def test_too_little_data_names_what_to_change():
    with pytest.raises(ValueError, match=r"model\.splits\.\w+: no rows .*horizon_ns"):
        build_dataset(market()[:50], FEATURES, 0, LABEL, SPLIT)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: LabelSpec(0), r"model\.label\.horizon_ns: must be positive, got 0"),
        (lambda: LabelSpec(SECOND, "close"), r"model\.label\.price: .*'close'"),
        (lambda: SplitSpec(0.7, 0.2, 0.2), r"model\.splits: .* must be 1, got 1\.1"),
        (lambda: SplitSpec(0.8, 0.0, 0.2), r"model\.splits\.validation: must be positive"),
    ],
)
def test_bad_specs_name_the_config_key(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_events_load_in_replay_order_and_the_hash_names_the_data(tmp_path):
    catalog = Catalog(tmp_path)
    write_synthetic(catalog, SyntheticSpec(symbol="SYN", trades_per_day=500, seed=1, days=2))
    streams = [("quote", "SYN"), ("trade", "SYN")]
    everything = load_events(catalog, streams, None, None, chunk_rows=333)
    assert np.all(np.diff(everything["ts_event"]) >= 0)
    day_two = int(np.datetime64("2024-01-02", "ns").astype(np.int64))
    first_day = load_events(catalog, streams, None, day_two, chunk_rows=1000)
    assert 0 < len(first_day) < len(everything) and first_day["ts_event"][-1] < day_two
    assert data_hash(first_day) == data_hash(everything[: len(first_day)])
    assert data_hash(first_day) != data_hash(first_day[1:])
    assert len(load_events(catalog, streams, 0, 1, chunk_rows=10)) == 0
