"""Turn the ``risk`` config group into the pipeline's limit records.

Config speaks in whole units, seconds and names; the risk stage in fixed point,
nanoseconds and integer codes. This module is the one translation between the two,
and it refuses what would silently weaken a limit: a negative value, an override for
a symbol the data does not have, a key the stage does not know.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from omegaconf import DictConfig, OmegaConf

from framework.events import to_fixed

SIZE_KEYS = ("max_order_size", "max_long", "max_short")
SECOND_KEYS = {"band_window_s": "band_window_ns", "duplicate_window_s": "duplicate_window_ns",
               "max_data_age_s": "max_data_age_ns"}
ENUM_KEYS = ("collar_reference",)


def _instrument_value(key: str, value: Any, where: str) -> tuple[str, int | float]:
    if key in ENUM_KEYS:
        return key, int(getattr(value, "value", value))
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{where}.{key}: expected a number, got {value!r}")
    if value < 0:
        raise ValueError(f"{where}.{key}: must be >= 0, got {value}")
    if key in SIZE_KEYS:
        return key, int(to_fixed(value))
    if key in SECOND_KEYS:
        return SECOND_KEYS[key], round(value * 1e9)
    return key, value


def instrument_limits(risk: DictConfig, instruments: Mapping[str, int]) -> dict[str, tuple]:
    """Per-instrument limit columns, one value per dense instrument id, overrides applied."""
    base = OmegaConf.to_container(risk.instrument, resolve=False, structured_config_mode=0)
    overrides = OmegaConf.to_container(risk.instruments, resolve=True) or {}
    unknown = sorted(set(overrides) - set(instruments))
    if unknown:
        raise ValueError(f"risk.instruments: no instrument named {unknown[0]!r} in the data (have {sorted(instruments)})")
    n = max(instruments.values()) + 1 if instruments else 1
    columns: dict[str, list] = {}
    for key, value in risk.instrument.items():
        name, converted = _instrument_value(key, value, "risk.instrument")
        columns[name] = [converted] * n
    for symbol, fields in overrides.items():
        for key, value in (fields or {}).items():
            if key not in base:
                raise ValueError(f"risk.instruments.{symbol}.{key}: not a limit (have {sorted(base)})")
            if key in ENUM_KEYS:
                value = risk.instrument[key].__class__[value]
            name, converted = _instrument_value(key, value, f"risk.instruments.{symbol}")
            columns[name][instruments[symbol]] = converted
    return {name: tuple(values) for name, values in columns.items()}


def portfolio_limits(risk: DictConfig) -> dict[str, float]:
    """The portfolio limits and the breaker's trip targets as the risk stage stores them."""
    out: dict[str, float] = {}
    for key, value in risk.portfolio.items():
        if value < 0:
            raise ValueError(f"risk.portfolio.{key}: must be >= 0, got {value}")
        if key == "day_offset_h":
            out["day_offset_ns"] = round(value * 3600e9)
        else:
            out[key] = value
    if not 0.0 <= risk.portfolio.max_reject_rate <= 1.0:
        raise ValueError(f"risk.portfolio.max_reject_rate: a fraction in [0, 1], got {risk.portfolio.max_reject_rate}")
    for key, state in risk.breaker.items():
        out[key] = int(state.value)
    return out


def limits_summary(p) -> dict[str, Any]:
    """What the report states about risk at the end of a run: breaker, kill switch, halts."""
    from framework.risk.records import BreakerState, Trip

    rs = p.risk_state[0]
    return {
        "breaker": BreakerState._fields[int(rs["breaker"])].lower(),
        "breaker_trip": Trip._fields[int(rs["trip"])].lower(),
        "breaker_trip_ts": int(rs["trip_ts"]),
        "breaker_trips": int(rs["n_trips"]),
        "kill_switch": bool(rs["kill_all"] or rs["kill_strategy"] or rs["kill_venues"]),
        "halted_instruments": [int(i) for i in np.flatnonzero(p.risk_instruments["halted"])],
    }
