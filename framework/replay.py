"""Replay a recorded input stream through ``step`` and find where two runs part ways.

A journal holds every input ``step`` was fed, in order, and every command it produced
(``framework.journal``). Because ``step`` is a pure function of its state and inputs,
feeding the same inputs to a fresh pipeline with the same strategy must reproduce every
command, bit for bit, whatever produced the journal: the compiled backtest loop, the
lockstep runtime or a live session. ``replay`` does that through a ``Stepper`` (Python
is called once per block of inputs); ``first_divergence`` compares two command streams and, when they
differ, ``describe_divergence`` tells the story a person needs to debug it: the input
where they part, both commands, and the state of each stage just before that input.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from framework.events import CommandKind, EventKind
from framework.journal import journal_commands
from framework.stepper import Stepper


def replay(p, on_event, params, state, events: np.ndarray, *, first_index: int = 0, stop: int | None = None,
           block: int = 1 << 16) -> np.ndarray:
    """Feed ``events[:stop]`` through ``step`` on pipeline ``p``; return its commands as journal
    records (``JOURNAL_COMMAND_DTYPE``, ``input_index`` counted from ``first_index``).

    ``events`` is changed by nothing here (``step`` reads copies of its inputs), so a
    journal's inputs can be replayed as they were read.
    """
    stepper = Stepper(p, on_event, params, state, batch=block, first_index=first_index)
    commands = stepper.feed(events[:stop])
    return journal_commands(stepper.indexes, commands)


@dataclass(frozen=True)
class Divergence:
    """Where two command streams first differ: the input index, and each side's command
    there (None when that side has no command at that point)."""

    input_index: int
    expected: np.void | None
    actual: np.void | None


def first_divergence(expected: np.ndarray, actual: np.ndarray) -> Divergence | None:
    """The first command where two journal command streams differ, or None if they are equal.

    Commands are compared byte for byte together with the index of the input that
    produced them, so a command emitted one input early is a divergence too."""
    n = min(len(expected), len(actual))
    if n:
        a = np.ascontiguousarray(expected[:n]).view(np.uint8).reshape(n, -1)
        b = np.ascontiguousarray(actual[:n]).view(np.uint8).reshape(n, -1)
        bad = np.flatnonzero((a != b).any(axis=1))
        if len(bad):
            k = int(bad[0])
            index = int(min(expected["input_index"][k], actual["input_index"][k]))
            return Divergence(index, expected[k], actual[k])
    if len(expected) == len(actual):
        return None
    if len(expected) > n:
        return Divergence(int(expected["input_index"][n]), expected[n], None)
    return Divergence(int(actual["input_index"][n]), None, actual[n])


_KIND_NAMES = {v: k for k, v in zip(EventKind._fields, EventKind)} | {v: k for k, v in zip(CommandKind._fields,
                                                                                          CommandKind)}


def format_record(rec: np.void | None) -> str:
    """One line naming every field of an event or command record (kinds by name)."""
    if rec is None:
        return "(none)"
    parts = []
    for name in rec.dtype.names:
        value = rec[name]
        if isinstance(value, np.void):
            parts.append(f"{name}=[{format_record(value)}]")
        elif name == "kind":
            parts.append(f"kind={_KIND_NAMES.get(int(value), int(value))}")
        else:
            parts.append(f"{name}={value}")
    return " ".join(parts)


def stage_states(p, instrument_id: int) -> dict[str, str]:
    """The state of each pipeline stage for one instrument, as text, for a divergence report."""
    from framework.order_state import OrderStatus, is_open

    status = {v: k for k, v in zip(OrderStatus._fields, OrderStatus)}
    open_orders = [
        f"#{int(o['client_order_id'])} {status[int(o['status'])]} side={int(o['side'])} price={int(o['price'])} "
        f"leaves={int(o['leaves'])} venue={int(o['venue_id'])}"
        for o in p.orders if is_open(int(o["status"])) and int(o["instrument_id"]) == instrument_id
    ]
    return {
        "market data": format_record(p.market[instrument_id]),
        "risk": format_record(p.risk_state[0]) + " | " + format_record(p.risk_instruments[instrument_id]),
        "execution": format_record(p.exec_state[0]) + " | open orders: " + ("; ".join(open_orders) or "none"),
        "positions": format_record(p.positions[instrument_id]) + " | " + format_record(p.portfolio[0]),
    }


def describe_divergence(d: Divergence, events: np.ndarray, state_before: dict[str, str] | None = None) -> str:
    """A report of a divergence: the input, both commands and, if given, each stage's state before it."""
    lines = [f"first divergence at input {d.input_index}:"]
    if 0 <= d.input_index < len(events):
        lines.append(f"  input     {format_record(events[d.input_index])}")
    lines.append(f"  expected  {format_record(None if d.expected is None else d.expected['command'])}")
    lines.append(f"  actual    {format_record(None if d.actual is None else d.actual['command'])}")
    for stage, text in (state_before or {}).items():
        lines.append(f"  {stage:<11} {text}")
    return "\n".join(lines)
