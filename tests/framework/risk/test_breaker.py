"""The circuit breaker: triggers, escalation only, and ACTIVE again only by an operator."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from numba import njit

from framework.events import EVENT_DTYPE, ControlCode, EventKind
from framework.risk.breaker import DAY_NS, trip, watch
from framework.risk.control import apply_control
from framework.risk.records import BreakerState, Trip
from framework.state import PipelineSpec, allocate

B = BreakerState
DAY0 = 20_000 * DAY_NS  # a UTC midnight


def pipeline(**portfolio_limits):
    return allocate(PipelineSpec(initial_capital=1000.0, portfolio_limits=portfolio_limits))


def set_equity(p, equity: float) -> None:
    pf = p.portfolio[0]
    pf["equity"] = equity
    pf["high_water_mark"] = max(pf["high_water_mark"], equity)


def control(code: int, value: int = 0, target: int = 0) -> np.ndarray:
    ev = np.zeros(1, EVENT_DTYPE)
    ev["kind"], ev["control"], ev["value"], ev["target"] = EventKind.CONTROL, code, value, target
    return ev


@njit
def _apply(p, events) -> None:
    apply_control(p, events[0])


def test_daily_loss_trips_once_a_day_and_the_day_rolls_at_midnight():
    p = pipeline(daily_loss_limit=50.0)
    watch(p.risk_state, p.portfolio_limits, p.portfolio, DAY0 + 10)  # the day starts at equity 1000
    set_equity(p, 951.0)
    watch(p.risk_state, p.portfolio_limits, p.portfolio, DAY0 + 20)
    assert p.risk_state[0]["breaker"] == B.ACTIVE  # a loss of 49: within the limit
    set_equity(p, 949.0)
    watch(p.risk_state, p.portfolio_limits, p.portfolio, DAY0 + 30)
    rs = p.risk_state[0]
    assert (rs["breaker"], rs["trip"], rs["trip_ts"], rs["n_trips"]) == (B.REDUCING, Trip.DAILY_LOSS, DAY0 + 30, 1)
    _apply(p, control(ControlCode.BREAKER_RESET))
    watch(p.risk_state, p.portfolio_limits, p.portfolio, DAY0 + 40)
    assert p.risk_state[0]["breaker"] == B.ACTIVE  # the reset holds: the day's loss tripped once
    watch(p.risk_state, p.portfolio_limits, p.portfolio, DAY0 + DAY_NS)  # next day starts at 949
    set_equity(p, 900.0)
    watch(p.risk_state, p.portfolio_limits, p.portfolio, DAY0 + DAY_NS + 1)
    assert p.risk_state[0]["breaker"] == B.ACTIVE  # a loss of 49 on the new day
    set_equity(p, 898.0)
    watch(p.risk_state, p.portfolio_limits, p.portfolio, DAY0 + DAY_NS + 2)
    assert p.risk_state[0]["breaker"] == B.REDUCING


def test_drawdown_trips_on_crossing_and_rearms_after_recovery():
    p = pipeline(max_drawdown=0.1, on_drawdown=B.HALTED)
    set_equity(p, 2000.0)
    set_equity(p, 1801.0)
    watch(p.risk_state, p.portfolio_limits, p.portfolio, DAY0)
    assert p.risk_state[0]["breaker"] == B.ACTIVE
    set_equity(p, 1799.0)
    watch(p.risk_state, p.portfolio_limits, p.portfolio, DAY0 + 1)
    assert p.risk_state[0]["breaker"] == B.HALTED and p.risk_state[0]["trip"] == Trip.DRAWDOWN
    _apply(p, control(ControlCode.BREAKER_RESET))
    watch(p.risk_state, p.portfolio_limits, p.portfolio, DAY0 + 2)
    assert p.risk_state[0]["breaker"] == B.ACTIVE  # still down, but this crossing already tripped
    set_equity(p, 1900.0)
    watch(p.risk_state, p.portfolio_limits, p.portfolio, DAY0 + 3)  # recovered: re-armed
    set_equity(p, 1700.0)
    watch(p.risk_state, p.portfolio_limits, p.portfolio, DAY0 + 4)
    assert p.risk_state[0]["breaker"] == B.HALTED


def test_trip_only_escalates_and_keeps_the_first_cause():
    p = pipeline()
    trip(p.risk_state, B.ACTIVE, Trip.THROTTLE, 1)  # ACTIVE as a target: reject only, no trip
    assert p.risk_state[0]["breaker"] == B.ACTIVE and p.risk_state[0]["n_trips"] == 0
    trip(p.risk_state, B.REDUCING, Trip.DAILY_LOSS, 2)
    trip(p.risk_state, B.REDUCING, Trip.DRAWDOWN, 3)  # not higher: nothing changes
    trip(p.risk_state, B.HALTED, Trip.REJECT_RATE, 4)
    trip(p.risk_state, B.REDUCING, Trip.DRAWDOWN, 5)  # never back down
    rs = p.risk_state[0]
    assert (rs["breaker"], rs["trip"], rs["trip_ts"], rs["n_trips"]) == (B.HALTED, Trip.DAILY_LOSS, 2, 2)


steps = st.lists(
    st.one_of(
        st.tuples(st.just("trip"), st.sampled_from(list(B)), st.sampled_from(list(Trip)[1:])),
        st.tuples(st.just("equity"), st.floats(100.0, 3000.0), st.integers(0, 3 * DAY_NS)),
        st.tuples(st.just("control"), st.sampled_from([ControlCode.KILL_SWITCH_ON, ControlCode.KILL_SWITCH_OFF,
                                                        ControlCode.HALT_INSTRUMENT, ControlCode.SET_MAX_POSITION,
                                                        ControlCode.BREAKER_TRIP, ControlCode.BREAKER_RESET]),
                  st.integers(0, 2)),
    ),
    max_size=40,
)


@settings(max_examples=300, deadline=None)
@given(steps)
def test_the_breaker_returns_to_active_only_through_the_reset_event(ops):
    p = pipeline(daily_loss_limit=100.0, max_drawdown=0.2)
    now = DAY0
    for op in ops:
        before = p.risk_state[0]["breaker"]
        reset = False
        if op[0] == "trip":
            trip(p.risk_state, op[1], op[2], now)
        elif op[0] == "equity":
            now += op[2]
            set_equity(p, op[1])
            watch(p.risk_state, p.portfolio_limits, p.portfolio, now)
        else:
            _apply(p, control(op[1], op[2]))
            reset = op[1] == ControlCode.BREAKER_RESET
        after = p.risk_state[0]["breaker"]
        if reset:
            assert after == B.ACTIVE
        else:
            assert after >= before  # never down, let alone to ACTIVE, without the reset
