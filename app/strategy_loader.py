"""Find a strategy module by name and build its typed parameters from config.

A strategy is one module in ``strategies/`` with a frozen ``Params`` dataclass, a
``make(params, instrument_ids)`` that returns its compiled parameter record and state,
and an ``on_event`` kernel. Nothing else in the project needs to know it exists.
"""

from __future__ import annotations

import dataclasses
import importlib
from types import ModuleType
from typing import Any

REQUIRED = ("Params", "make", "on_event")


def load_strategy(name: str) -> ModuleType:
    """Import ``strategies.<name>`` and check it has what a strategy needs."""
    try:
        module = importlib.import_module(f"strategies.{name}")
    except ModuleNotFoundError as exc:
        if exc.name == f"strategies.{name}":
            raise ValueError(f"strategy.name: no module strategies/{name}.py") from None
        raise
    missing = [attr for attr in REQUIRED if not hasattr(module, attr)]
    if missing:
        raise ValueError(f"strategy.name: strategies/{name}.py lacks {', '.join(missing)}")
    return module


def build_params(params_cls: type, values: dict[str, Any]) -> Any:
    """Build ``params_cls`` from config values, refusing unknown keys and wrong types."""
    fields = {f.name: f for f in dataclasses.fields(params_cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ValueError(f"strategy.params: unknown key(s) {unknown}; expected some of {sorted(fields)}")
    typed: dict[str, Any] = {}
    for key, value in values.items():
        default = getattr(params_cls, key, None)
        expected = type(default) if default is not None else None
        if expected is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if expected is not None and not isinstance(value, expected):
            raise ValueError(
                f"strategy.params.{key}: {value!r} is a {type(value).__name__}, expected {expected.__name__}"
            )
        typed[key] = value
    return params_cls(**typed)
