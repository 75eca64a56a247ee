"""Risk properties over whole backtests: random order scripts on random markets, with
operators' control events mixed in.

* the position never exceeds its long or short limit, working orders (in flight
  included) counted, at any input;
* no order above the size limit ever goes out;
* the breaker never leaves a tripped state except on the input carrying the reset.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from numba import njit

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "sim"))

import scripted
from scripted import T0, make_control, merge, new_state, run_strategy
from test_backtest_properties import build_script, build_stream, run_options, script_knobs, stream_knobs

from framework.events import CommandKind, ControlCode, EventKind, to_fixed
from framework.risk.records import BreakerState, KillScope

WATCH_DTYPE = np.dtype([("worst_long", "<i8"), ("worst_short", "<i8"), ("illegal_breaker_moves", "<i8"),
                        ("last_breaker", "<i8")], align=True)
MAX_LONG, MAX_SHORT, MAX_ORDER = to_fixed(4), to_fixed(2.5), to_fixed(2.5)


@njit(cache=True)
def watched(p, params, state, ev) -> None:
    """The scripted strategy, plus a record of the worst exposure and breaker moves seen."""
    w = state[3][0]
    pos = p.positions[0]
    long_side = pos.qty + pos.open_buy
    short_side = -(pos.qty - pos.open_sell)
    w.worst_long = max(w.worst_long, long_side)
    w.worst_short = max(w.worst_short, short_side)
    breaker = p.risk_state[0].breaker
    is_reset = ev.kind == EventKind.CONTROL and ev.control == ControlCode.BREAKER_RESET
    if breaker < w.last_breaker and not is_reset:
        w.illegal_breaker_moves += 1
    w.last_breaker = breaker
    scripted.on_event(p, params, (state[0], state[1], state[2]), ev)


controls = st.lists(
    st.tuples(st.integers(0, 2000), st.sampled_from([
        (ControlCode.BREAKER_TRIP, BreakerState.REDUCING), (ControlCode.BREAKER_TRIP, BreakerState.HALTED),
        (ControlCode.BREAKER_RESET, 0), (ControlCode.KILL_SWITCH_ON, KillScope.ALL),
        (ControlCode.KILL_SWITCH_OFF, KillScope.ALL)])),
    max_size=6,
)


@settings(max_examples=60, deadline=None)
@given(knobs=stream_knobs, opts=run_options(), script=script_knobs, ctl=controls)
def test_limits_hold_at_every_input_whatever_the_operators_do(knobs, opts, script, ctl):
    events = build_stream(knobs)
    parts = [events] + [make_control(T0 + 1000 + at, code, value) for at, (code, value) in ctl]
    events = merge(*parts)
    rows = build_script(script)
    watch = np.zeros(1, WATCH_DTYPE)
    state = (*new_state(len(rows)), watch)
    run = run_strategy(watched, rows, state, events, max_order_size=2.5, max_position=4, collar=0.03, **opts,
                       instrument_limits={"max_short": (MAX_SHORT,)})
    w = watch[0]
    assert w["worst_long"] <= MAX_LONG and w["worst_short"] <= MAX_SHORT
    pos = run.p.positions[0]
    assert pos["qty"] + pos["open_buy"] <= MAX_LONG and -(pos["qty"] - pos["open_sell"]) <= MAX_SHORT
    assert np.all(run.cmds(CommandKind.SUBMIT)["size"] <= MAX_ORDER)
    assert w["illegal_breaker_moves"] == 0
