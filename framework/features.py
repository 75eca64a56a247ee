"""Feature sets: indicators declared once in config, computed by the same kernels in training and live.

A feature set (``conf/features/*.yaml``) lists features, each an indicator with its
parameters and the events it reads::

    name: default
    features:
      - {name: rsi_14, indicator: rsi, input: trade, params: {window: 14}}
      - {name: imbalance, indicator: book_imbalance, input: quote, params: {}}

Numba cannot loop over a Python list of different indicator objects inside a kernel,
so ``FeatureSet.program`` compiles the list into arrays: one record per feature
(opcode, event kind it reads, where its state lives in one float64 state buffer) and
the state index of every output column. ``features_update`` is one compiled loop over
those records that calls each indicator's streaming update; ``features_update_event``
decodes an ``EVENT_DTYPE`` record into its inputs first. Training runs the very same
function over every event of a history (``FeatureSet.compute``), so a model is
trained on exactly the numbers it will see live.

Inputs per ``input`` kind (fixed point converted to float64 whole units):

``trade``  price (the scalar input), size, aggressor side (+1, -1, 0 unknown).
``quote``  best bid and ask price and size; the scalar input is the mid. A side of
           size 0 is absent: its price and size are NaN, so the mid is a gap.
``bar``    high, low, close (the scalar input), volume; VWAP uses the typical price
           ``(high + low + close) / 3``.

A feature updates only on events of its kind (and of the program's instrument) and
keeps its value in between, so the feature vector after any event holds every
feature's latest value: NaN until that feature has warmed up.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections import namedtuple
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from numba import njit

from framework.events import EVENT_DTYPE, INV_PRICE_SCALE, EventKind, kernel_view, records
from framework.indicators.book import (
    book_imbalance_state_nb,
    book_imbalance_update_nb,
    microprice_state_nb,
    microprice_update_nb,
)
from framework.indicators.moving_averages import (
    ema_state_nb,
    ema_update_nb,
    sma_state_nb,
    sma_update_nb,
    wma_state_nb,
    wma_update_nb,
)
from framework.indicators.oscillators import macd_state_nb, macd_update_nb, rsi_state_nb, rsi_update_nb
from framework.indicators.returns import log_return_state_nb, log_return_update_nb
from framework.indicators.rolling import (
    rolling_extreme_update_nb,
    rolling_max_state_nb,
    rolling_min_state_nb,
    zscore_state_nb,
    zscore_update_nb,
)
from framework.indicators.volatility import (
    atr_state_nb,
    atr_update_nb,
    bbands_state_nb,
    bbands_update_nb,
    realized_vol_state_nb,
    realized_vol_update_nb,
)
from framework.indicators.volume import (
    trade_flow_state_nb,
    trade_flow_update_nb,
    vwap_session_state_nb,
    vwap_session_update_nb,
    vwap_state_nb,
    vwap_update_nb,
)
from framework.jit import HOT

FORMAT_VERSION = 1
"""Part of every feature-set hash. Bump it when a kernel's output changes for the same
spec, so that a model trained on the old numbers cannot be matched with the new ones."""

Op = namedtuple(
    "Op",
    "SMA EMA WMA RSI MACD BBANDS ATR REALIZED_VOL ZSCORE ROLLING_MIN ROLLING_MAX "
    "VWAP VWAP_SESSION TRADE_FLOW BOOK_IMBALANCE MICROPRICE LOG_RETURN",
)(*range(1, 18))
"""Opcode of each indicator in a compiled feature program."""

INPUTS: dict[str, int] = {"trade": EventKind.TRADE, "quote": EventKind.QUOTE, "bar": EventKind.BAR}
"""The ``input`` names a feature may read, and the event kind each stands for."""

FEATURE_OP_DTYPE = np.dtype(
    [("opcode", "<i8"), ("source", "<i8"), ("state_offset", "<i8"), ("state_size", "<i8")], align=True
)
"""One feature of a compiled program: what it computes, which event kind feeds it, and
its slice ``state[state_offset : state_offset + state_size]`` of the state buffer."""

FeatureProgram = namedtuple("FeatureProgram", "ops columns instrument_id")
"""A compiled feature set: ``ops`` (FEATURE_OP_DTYPE records), ``columns`` (int64: the
state index of each output column) and ``instrument_id`` (-1 reads every instrument)."""


@dataclass(frozen=True)
class IndicatorDef:
    """How a feature-set entry maps to an indicator: opcode, parameters, outputs, inputs."""

    opcode: int
    make_state: Callable[..., np.ndarray]
    params: tuple[tuple[str, type], ...]
    outputs: tuple[str, ...]
    inputs: tuple[str, ...]


_ANY = ("trade", "quote", "bar")
_WINDOW = (("window", int),)
INDICATORS: dict[str, IndicatorDef] = {
    "sma": IndicatorDef(Op.SMA, sma_state_nb, _WINDOW, ("value",), _ANY),
    "ema": IndicatorDef(Op.EMA, ema_state_nb, _WINDOW, ("value",), _ANY),
    "wma": IndicatorDef(Op.WMA, wma_state_nb, _WINDOW, ("value",), _ANY),
    "rsi": IndicatorDef(Op.RSI, rsi_state_nb, _WINDOW, ("value",), _ANY),
    "macd": IndicatorDef(
        Op.MACD, macd_state_nb, (("fast", int), ("slow", int), ("signal", int)), ("macd", "signal", "hist"), _ANY
    ),
    "bbands": IndicatorDef(
        Op.BBANDS, bbands_state_nb, (("window", int), ("k", float)), ("middle", "upper", "lower"), _ANY
    ),
    "atr": IndicatorDef(Op.ATR, atr_state_nb, _WINDOW, ("value",), _ANY),
    "realized_vol": IndicatorDef(Op.REALIZED_VOL, realized_vol_state_nb, _WINDOW, ("value",), _ANY),
    "zscore": IndicatorDef(Op.ZSCORE, zscore_state_nb, _WINDOW, ("value",), _ANY),
    "rolling_min": IndicatorDef(Op.ROLLING_MIN, rolling_min_state_nb, _WINDOW, ("value",), _ANY),
    "rolling_max": IndicatorDef(Op.ROLLING_MAX, rolling_max_state_nb, _WINDOW, ("value",), _ANY),
    "vwap": IndicatorDef(Op.VWAP, vwap_state_nb, _WINDOW, ("value",), ("trade", "bar")),
    "vwap_session": IndicatorDef(
        Op.VWAP_SESSION, vwap_session_state_nb, (("session_start_ns", int),), ("value",), ("trade", "bar")
    ),
    "trade_flow": IndicatorDef(Op.TRADE_FLOW, trade_flow_state_nb, _WINDOW, ("flow", "imbalance"), ("trade",)),
    "book_imbalance": IndicatorDef(Op.BOOK_IMBALANCE, book_imbalance_state_nb, (), ("value",), ("quote",)),
    "microprice": IndicatorDef(Op.MICROPRICE, microprice_state_nb, (), ("value",), ("quote",)),
    "log_return": IndicatorDef(Op.LOG_RETURN, log_return_state_nb, (("horizon", int),), ("value",), _ANY),
}
"""Every indicator a feature set can use, by the name it has in config."""


# ----------------------------------------------------------------------------- compiled


@njit(**HOT)
def features_update(
    prog: FeatureProgram,
    state: np.ndarray,
    out: np.ndarray,
    source: int,
    ts_ns: int,
    v0: float,
    v1: float,
    v2: float,
    v3: float,
) -> bool:
    """Update every feature that reads ``source`` events, then write the feature vector into ``out``
    (left as it is when no feature reads them).

    ``v0..v3`` are the event's inputs in float64 whole units: trade (price, size,
    side, unused), quote (bid price, bid size, ask price, ask size; NaN for an absent
    side), bar (high, low, close, volume). ``ts_ns`` is the event's time (session
    VWAP). Returns True if any feature reads this kind of event.
    """
    if source == EventKind.TRADE:
        x = v0
    elif source == EventKind.QUOTE:
        x = (v0 + v2) * 0.5
    else:
        x = v2
    ops = prog.ops
    updated = False
    for i in range(ops.shape[0]):
        op = ops[i]
        if op.source != source:
            continue
        updated = True
        s = state[op.state_offset : op.state_offset + op.state_size]
        code = op.opcode
        if code == Op.SMA:
            sma_update_nb(s, x)
        elif code == Op.EMA:
            ema_update_nb(s, x)
        elif code == Op.WMA:
            wma_update_nb(s, x)
        elif code == Op.RSI:
            rsi_update_nb(s, x)
        elif code == Op.MACD:
            macd_update_nb(s, x)
        elif code == Op.BBANDS:
            bbands_update_nb(s, x)
        elif code == Op.ATR:
            if source == EventKind.BAR:
                atr_update_nb(s, v0, v1, v2)
            else:
                atr_update_nb(s, x, x, x)
        elif code == Op.REALIZED_VOL:
            realized_vol_update_nb(s, x)
        elif code == Op.ZSCORE:
            zscore_update_nb(s, x)
        elif code == Op.ROLLING_MIN or code == Op.ROLLING_MAX:
            rolling_extreme_update_nb(s, x)
        elif code == Op.VWAP or code == Op.VWAP_SESSION:
            price = (v0 + v1 + v2) / 3.0 if source == EventKind.BAR else v0
            size = v3 if source == EventKind.BAR else v1
            if code == Op.VWAP:
                vwap_update_nb(s, price, size)
            else:
                vwap_session_update_nb(s, ts_ns, price, size)
        elif code == Op.TRADE_FLOW:
            trade_flow_update_nb(s, v1, v2)
        elif code == Op.BOOK_IMBALANCE:
            book_imbalance_update_nb(s, v1, v3)
        elif code == Op.MICROPRICE:
            microprice_update_nb(s, v0, v1, v2, v3)
        elif code == Op.LOG_RETURN:
            log_return_update_nb(s, x)
    if updated:
        columns = prog.columns
        for c in range(columns.shape[0]):
            out[c] = state[columns[c]]
    return updated


@njit(**HOT)
def features_update_event(prog: FeatureProgram, state: np.ndarray, out: np.ndarray, ev: np.void) -> bool:
    """Feed one ``EVENT_DTYPE`` record to the feature program (see ``features_update``).

    Events of another instrument, or of a kind no feature reads, leave ``state`` and
    ``out`` untouched and return False. Call it from a strategy's ``on_event``.
    """
    if prog.instrument_id >= 0 and ev.instrument_id != prog.instrument_id:
        return False
    kind = ev.kind
    if kind == EventKind.TRADE:
        return features_update(
            prog, state, out, kind, ev.ts_recv, ev.price * INV_PRICE_SCALE, ev.size * INV_PRICE_SCALE, float(ev.side),
            np.nan,
        )
    if kind == EventKind.QUOTE:
        bid_price = ev.bid_price * INV_PRICE_SCALE if ev.bid_size > 0 else np.nan
        bid_size = ev.bid_size * INV_PRICE_SCALE if ev.bid_size > 0 else np.nan
        ask_price = ev.ask_price * INV_PRICE_SCALE if ev.ask_size > 0 else np.nan
        ask_size = ev.ask_size * INV_PRICE_SCALE if ev.ask_size > 0 else np.nan
        return features_update(prog, state, out, kind, ev.ts_recv, bid_price, bid_size, ask_price, ask_size)
    if kind == EventKind.BAR:
        return features_update(
            prog, state, out, kind, ev.ts_recv, ev.high * INV_PRICE_SCALE, ev.low * INV_PRICE_SCALE,
            ev.close * INV_PRICE_SCALE, ev.volume * INV_PRICE_SCALE,
        )
    return False


@njit(**HOT)
def features_ready(out: np.ndarray) -> bool:
    """Return True once every feature has a value (none is still warming up)."""
    for c in range(out.shape[0]):
        if math.isnan(out[c]):
            return False
    return True


@njit(cache=True)
def features_batch_nb(prog: FeatureProgram, state: np.ndarray, out: np.ndarray, events: np.ndarray) -> np.ndarray:
    """Return the feature vector after each event (a row per event), by ``features_update_event`` in a loop."""
    matrix = np.empty((events.shape[0], out.shape[0]))
    for t in range(events.shape[0]):
        features_update_event(prog, state, out, events[t])
        matrix[t] = out
    return matrix


# ----------------------------------------------------------------------------- spec


@dataclass(frozen=True)
class Feature:
    """One declared feature: a named indicator with all its parameters and the events it reads."""

    name: str
    indicator: str
    input: str
    params: tuple[tuple[str, int | float], ...]

    @property
    def columns(self) -> list[str]:
        """Column names: the feature's name, or ``name.output`` for each output of a multi-output indicator."""
        outputs = INDICATORS[self.indicator].outputs
        return [self.name] if len(outputs) == 1 else [f"{self.name}.{o}" for o in outputs]

    def canonical(self) -> dict[str, Any]:
        """Return the feature as plain JSON-able data, parameters in declaration order."""
        return {"name": self.name, "indicator": self.indicator, "input": self.input, "params": dict(self.params)}


def _param(where: str, key: str, value: Any, kind: type) -> int | float:
    """Check one parameter's type: an int for int parameters, a number for float ones."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (kind is int and not isinstance(value, int)):
        raise ValueError(f"{where}.params.{key}: expected {kind.__name__}, got {value!r}")
    return kind(value)


def _feature(i: int, entry: Any) -> Feature:
    """Validate one feature entry of a config and return it with typed parameters."""
    where = f"features[{i}]"
    if not isinstance(entry, Mapping):
        raise ValueError(f"{where}: expected a mapping with name, indicator, input, params; got {entry!r}")
    keys = {"name", "indicator", "input", "params"}
    if set(entry) != keys:
        raise ValueError(f"{where}: expected keys {sorted(keys)}, got {sorted(entry)}")
    name = entry["name"]
    if not isinstance(name, str) or not name or "." in name:
        raise ValueError(f"{where}.name: expected a non-empty string without '.', got {name!r}")
    where = f"features[{i}] ({name})"
    indicator = INDICATORS.get(entry["indicator"])
    if indicator is None:
        raise ValueError(f"{where}.indicator: {entry['indicator']!r} is not one of {sorted(INDICATORS)}")
    if entry["input"] not in indicator.inputs:
        raise ValueError(f"{where}.input: {entry['indicator']} reads {list(indicator.inputs)}, got {entry['input']!r}")
    given = entry["params"] or {}
    expected = [k for k, _ in indicator.params]
    if not isinstance(given, Mapping) or sorted(given) != sorted(expected):
        raise ValueError(f"{where}.params: {entry['indicator']} takes exactly {expected}, got {given!r}")
    params = tuple((k, _param(where, k, given[k], kind)) for k, kind in indicator.params)
    return Feature(name, entry["indicator"], entry["input"], params)


@dataclass(frozen=True)
class FeatureSet:
    """A validated feature set: build it with ``from_config`` or ``from_yaml``."""

    name: str
    features: tuple[Feature, ...]

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> FeatureSet:
        """Validate a feature-set mapping (``name`` and ``features``; a Hydra node works too),
        failing with the offending key."""
        if not isinstance(config, Mapping) or set(config) != {"name", "features"}:
            raise ValueError(f"feature set: expected keys ['features', 'name'], got {config!r}")
        entries = config["features"]
        if not isinstance(entries, Sequence) or isinstance(entries, str) or not entries:
            raise ValueError("feature set: 'features' must be a non-empty list")
        features = tuple(_feature(i, e) for i, e in enumerate(entries))
        names = [f.name for f in features]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"feature set: duplicate feature names {duplicates}")
        fs = cls(str(config["name"]), features)
        fs.new_state()  # let the indicators check their parameter values now
        return fs

    @classmethod
    def from_yaml(cls, path: str | Path) -> FeatureSet:
        """Load and validate a feature set from a YAML file (``conf/features/<name>.yaml``)."""
        with open(path, encoding="utf-8") as f:
            return cls.from_config(yaml.safe_load(f))

    @property
    def columns(self) -> list[str]:
        """Names of the feature vector's columns, in declared order."""
        return [c for f in self.features for c in f.columns]

    def hash(self) -> str:
        """Return the sha256 of the canonical spec: what a model trained on these features records.

        Covers ``FORMAT_VERSION`` and every feature's name, indicator, input and typed
        parameters, in declared order (the column order); not the set's ``name``,
        which is only a label. Key order and spelling of numbers in the YAML do not
        matter (``k: 2`` and ``k: 2.0`` are the same parameter).
        """
        spec = {"format": FORMAT_VERSION, "features": [f.canonical() for f in self.features]}
        text = json.dumps(spec, sort_keys=True, separators=(",", ":"), allow_nan=False)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    def _states(self) -> list[np.ndarray]:
        states = []
        for f in self.features:
            try:
                states.append(INDICATORS[f.indicator].make_state(*(v for _, v in f.params)))
            except ValueError as e:
                raise ValueError(f"feature {f.name!r} ({f.indicator}): {e}") from None
        return states

    def new_state(self) -> np.ndarray:
        """Allocate a fresh state buffer: every feature's state, one after the other."""
        return np.concatenate(self._states())

    def new_output(self) -> np.ndarray:
        """Allocate a feature vector (all NaN: nothing has warmed up)."""
        return np.full(len(self.columns), np.nan)

    def program(self, instrument_id: int = -1) -> FeatureProgram:
        """Compile the set for the kernels, reading events of ``instrument_id`` only (-1: every one)."""
        states = self._states()
        ops = records(len(self.features), FEATURE_OP_DTYPE)
        columns = []
        offset = 0
        for i, (f, s) in enumerate(zip(self.features, states, strict=True)):
            ops[i] = (INDICATORS[f.indicator].opcode, INPUTS[f.input], offset, s.shape[0])
            columns += [offset + j for j in range(len(INDICATORS[f.indicator].outputs))]
            offset += s.shape[0]
        return FeatureProgram(ops, np.array(columns, dtype=np.int64), int(instrument_id))

    def compute(self, events: np.ndarray, instrument_id: int = -1) -> np.ndarray:
        """Return the feature matrix of a history: row ``t`` is the feature vector after ``events[t]``.

        ``events`` are 64-byte event records (``EVENT_DTYPE`` or one kind's dtype, such as
        ``TRADE_DTYPE``), in the order the pipeline sees them. Columns are ``columns``.
        Row ``t`` depends on ``events[: t + 1]`` only.
        """
        if events.dtype.itemsize != EVENT_DTYPE.itemsize or events.dtype.names is None:
            raise TypeError(f"compute: expected event records of {EVENT_DTYPE.itemsize} bytes, got {events.dtype}")
        evs = kernel_view(np.ascontiguousarray(events).view(EVENT_DTYPE))
        return features_batch_nb(self.program(instrument_id), self.new_state(), self.new_output(), evs)
