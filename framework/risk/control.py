"""Operators' control events: the kill switch, the breaker, instrument halts and limits.

Control events are inputs like any other, so the journal records them and a replay
takes the same decisions. This module changes the risk state only; what the kill
switch then does to orders and positions is ``framework.risk.kill_switch``.
"""

from __future__ import annotations

from numba import njit

from framework.events import ControlCode
from framework.jit import KERNEL
from framework.risk.breaker import reset, trip
from framework.risk.records import KILL_FLATTEN, BreakerState, KillScope, Trip


@njit(**KERNEL)
def _set_kill(p, scope: int, target: int, on: bool) -> bool:
    """Switch the kill switch for a scope; return whether this pipeline is in that scope."""
    rs = p.risk_state[0]
    flag = 1 if on else 0
    if scope == KillScope.ALL:
        rs.kill_all = flag
        return True
    if scope == KillScope.VENUE:
        if target < 0 or target > 62:
            return False
        if on:
            rs.kill_venues |= 1 << target
        else:
            rs.kill_venues &= ~(1 << target)
        return True
    if scope == KillScope.STRATEGY and target == rs.strategy_id:
        rs.kill_strategy = flag
        return True
    return False


@njit(**KERNEL)
def apply_control(p, ev) -> bool:
    """Apply one control event to the risk state; return True when the kill switch was
    engaged for this pipeline (its orders must now be canceled)."""
    code = ev.control
    now = p.exec_state[0].now
    n = p.risk_limits.shape[0]
    if code == ControlCode.KILL_SWITCH_ON:
        engaged = _set_kill(p, ev.value & 0xFF, ev.target, True)
        if engaged:
            p.risk_state[0].kill_ts = now
        return engaged
    if code == ControlCode.KILL_SWITCH_OFF:
        _set_kill(p, ev.value & 0xFF, ev.target, False)
    elif code == ControlCode.BREAKER_RESET:
        reset(p.risk_state)
    elif code == ControlCode.BREAKER_TRIP:
        if BreakerState.REDUCING <= ev.value <= BreakerState.HALTED:
            trip(p.risk_state, ev.value, Trip.OPERATOR, now)
    elif 0 <= ev.target < n:
        i = ev.target
        if code == ControlCode.HALT_INSTRUMENT:
            p.risk_instruments[i].halted = 1
        elif code == ControlCode.RESUME_INSTRUMENT:
            p.risk_instruments[i].halted = 0
        elif code == ControlCode.SET_MAX_POSITION and ev.value >= 0:
            p.risk_limits[i].max_long = ev.value
            p.risk_limits[i].max_short = ev.value
        elif code == ControlCode.SET_MAX_ORDER_SIZE and ev.value >= 0:
            p.risk_limits[i].max_order_size = ev.value
    return False


@njit(**KERNEL)
def wants_flatten(ev) -> bool:
    """Whether a kill switch event also asks to close positions."""
    return ev.control == ControlCode.KILL_SWITCH_ON and (ev.value & KILL_FLATTEN) != 0
