"""What must survive a restart: breaker, kill switch, halts and changed limits."""

from __future__ import annotations

import pytest

from framework.risk.records import RING, BreakerState, Trip, allocate_risk, restore_risk_state, risk_state_bytes
from framework.state import PipelineSpec, allocate


def test_risk_state_round_trips_through_bytes():
    spec = PipelineSpec(n_instruments=3, max_order_size=(5,), max_position=(9,))
    before = allocate(spec)
    rs = before.risk_state[0]
    rs["breaker"], rs["trip"], rs["trip_ts"], rs["n_trips"] = BreakerState.HALTED, Trip.DRAWDOWN, 123, 2
    rs["kill_venues"] = 0b101
    before.risk_instruments[1]["halted"] = 1
    before.risk_limits[2]["max_long"] = 1
    blob = risk_state_bytes(before)
    after = allocate(spec)
    restore_risk_state(after, blob)
    for name in ("risk_state", "risk_instruments", "risk_limits", "portfolio_limits"):
        assert getattr(after, name).tobytes() == getattr(before, name).tobytes()


def test_restoring_into_another_shape_is_refused():
    blob = risk_state_bytes(allocate(PipelineSpec(n_instruments=2)))
    with pytest.raises(ValueError, match="risk state: .* bytes, expected"):
        restore_risk_state(allocate(PipelineSpec(n_instruments=3)), blob)


def test_limits_beyond_what_the_windows_count_are_refused():
    p = allocate(PipelineSpec())
    p.risk_limits["max_fills_per_s"] = RING + 1
    with pytest.raises(ValueError, match="max_fills_per_s"):
        allocate_risk(p.risk_limits, p.portfolio_limits)
