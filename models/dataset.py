"""A labelled dataset from market events: the features after each trade, and where the price went next.

A row is one decision point: a trade of the instrument, after which the strategy
(``strategies/model_signal.py``) predicts. Its features are the feature vector after
that trade, computed by ``FeatureSet.compute``, the very kernels the strategy runs per
event, so they use only events at or before it. Its label is the one column that
looks forward:

    forward_return = log(price(t + horizon_ns) / price(t))
    label          = 1 if forward_return > 0, 0 if forward_return < 0

``t`` is the trade's ``ts_event``; ``price(t)`` is the price after that trade (the
latest quote mid, or the latest trade price with ``price=trade``) and
``price(t + horizon_ns)`` the price after the last event at or before ``t +
horizon_ns``. The horizon is in nanoseconds of event time, so it means the same
whatever the trading intensity. Rows are dropped when a feature is still warming up,
when there is no price yet, when the data ends before ``t + horizon_ns`` (no full
horizon), and when the price did not move (the label is "up rather than down":
``P(label = 1)`` is the probability of an up move given a move).

Splits are contiguous in time, train then validation then test, never shuffled. A
row's label reads prices up to ``t + horizon_ns``, so the last rows of a split would
see into the next one; they are purged: a row stays in its split only if its horizon
ends before the next split's first row.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from framework.data.catalog import Catalog
from framework.events import EVENT_DTYPE, INV_PRICE_SCALE, EventKind, concat_events
from framework.features import FeatureSet

SPLITS = ("train", "validation", "test")
PRICES = ("mid", "trade")


@dataclass(frozen=True)
class LabelSpec:
    """How labels are made: the horizon in nanoseconds and the price series (``mid`` or ``trade``)."""

    horizon_ns: int
    price: str = "mid"

    def __post_init__(self) -> None:
        if self.horizon_ns <= 0:
            raise ValueError(f"model.label.horizon_ns: must be positive, got {self.horizon_ns}")
        if self.price not in PRICES:
            raise ValueError(f"model.label.price: expected one of {PRICES}, got {self.price!r}")


@dataclass(frozen=True)
class SplitSpec:
    """Fractions of the rows, in time order, for training, validation and test."""

    train: float
    validation: float
    test: float

    def __post_init__(self) -> None:
        for name in SPLITS:
            if not getattr(self, name) > 0:
                raise ValueError(f"model.splits.{name}: must be positive, got {getattr(self, name)}")
        total = self.train + self.validation + self.test
        if abs(total - 1.0) > 1e-9:
            raise ValueError(f"model.splits: train + validation + test must be 1, got {total:g}")


@dataclass(frozen=True)
class Dataset:
    """Rows in time order: ``X`` (features, float64), ``y`` (0 down, 1 up), their ``forward_return``,
    the trade's ``ts_ns``, its index in the events (``event_index``) and the row ranges of each split.

    ``columns`` names the features; ``splits[name]`` is a ``slice`` of the rows.
    """

    X: np.ndarray
    y: np.ndarray
    forward_return: np.ndarray
    ts_ns: np.ndarray
    event_index: np.ndarray
    columns: tuple[str, ...]
    splits: dict[str, slice]

    def split(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """Return the features and labels of one split (``train``, ``validation``, ``test``)."""
        rows = self.splits[name]
        return self.X[rows], self.y[rows]


def load_events(
    catalog: Catalog, streams: list[tuple[str, str]], start_ns: int | None, end_ns: int | None, chunk_rows: int
) -> np.ndarray:
    """Read ``[start_ns, end_ns)`` of the streams in the order a backtest replays them (the catalog's
    tie-break rule), as one ``EVENT_DTYPE`` array."""
    chunks = list(catalog.stream(streams, start_ns, end_ns, chunk_rows=chunk_rows))
    return concat_events(chunks) if chunks else np.zeros(0, EVENT_DTYPE)


def data_hash(events: np.ndarray) -> str:
    """Return the sha256 of the event records' bytes: the exact data a model was trained on."""
    return hashlib.sha256(np.ascontiguousarray(events).view(np.uint8)).hexdigest()


def price_after_each_event(events: np.ndarray, instrument_id: int, price: str) -> np.ndarray:
    """Return the price after each event: the latest mid of a quote with both sides (``mid``) or
    the latest trade price (``trade``) of the instrument, NaN until the first one."""
    mine = events["instrument_id"] == instrument_id
    if price == "mid":
        valid = mine & (events["kind"] == EventKind.QUOTE) & (events["bid_size"] > 0) & (events["ask_size"] > 0)
        # from the exact fixed-point sum, so that equal mids are equal floats and "no move" is exactly 0
        values = (events["bid_price"] + events["ask_price"]) * (0.5 * INV_PRICE_SCALE)
    else:
        valid = mine & (events["kind"] == EventKind.TRADE)
        values = events["price"] * INV_PRICE_SCALE
    last = np.where(valid, np.arange(len(events)), -1)
    np.maximum.accumulate(last, out=last)
    return np.where(last >= 0, values[np.maximum(last, 0)], np.nan)


def build_dataset(
    events: np.ndarray, features: FeatureSet, instrument_id: int, label: LabelSpec, splits: SplitSpec
) -> Dataset:
    """Compute features and labels over ``events`` (in replay order) and split the rows in time.

    Raise ValueError when fewer than one row per split survives, naming what to change.
    """
    X_all = features.compute(events, instrument_id)
    price = price_after_each_event(events, instrument_id, label.price)
    ts = events["ts_event"]
    decisions = np.flatnonzero(
        (events["kind"] == EventKind.TRADE)
        & (events["instrument_id"] == instrument_id)
        & ~np.isnan(X_all).any(axis=1)
        & ~np.isnan(price)
    )
    horizon_end = ts[decisions] + label.horizon_ns
    full = horizon_end <= (ts[-1] if len(ts) else 0)
    decisions, horizon_end = decisions[full], horizon_end[full]
    later = np.searchsorted(ts, horizon_end, side="right") - 1  # the last event at or before t + horizon
    forward = np.log(price[later] / price[decisions])
    moved = forward != 0.0
    rows = decisions[moved]
    return _split(
        X_all[rows], (forward[moved] > 0).astype(np.int64), forward[moved], ts[rows], rows,
        tuple(features.columns), splits, label.horizon_ns,
    )


def _split(X, y, forward, ts, rows, columns, splits: SplitSpec, horizon_ns: int) -> Dataset:
    n = len(y)
    bounds = np.rint(np.cumsum([0.0, splits.train, splits.validation, splits.test]) * n).astype(np.int64)
    keep = np.ones(n, bool)
    for b in bounds[1:-1]:
        if 0 < b < n:
            keep[: b] &= ~(ts[: b] + horizon_ns >= ts[b])  # purge labels that reach the next split
    kept_before = np.concatenate([[0], np.cumsum(keep)])
    ranges = {name: slice(int(kept_before[lo]), int(kept_before[hi]))
              for name, lo, hi in zip(SPLITS, bounds[:-1], bounds[1:])}
    for name, r in ranges.items():
        if r.stop - r.start < 1:
            raise ValueError(
                f"model.splits.{name}: no rows ({n} labelled rows in all); use more data (model.train_period, "
                "data.synthetic.trades_per_day) or a shorter model.label.horizon_ns"
            )
    return Dataset(X[keep], y[keep], forward[keep], ts[keep], rows[keep], columns, ranges)
