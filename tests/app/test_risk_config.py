"""The risk config group becomes the pipeline's limit records, or a clear error."""

from __future__ import annotations

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from app.backtest import pipeline_spec
from app.risk_config import instrument_limits, portfolio_limits
from framework.config import register_configs
from framework.risk.records import BreakerState, Reference
from framework.state import allocate

CONF = str((__import__("pathlib").Path(__file__).resolve().parents[2] / "conf"))
U = 1_000_000_000


def config(*overrides: str) -> DictConfig:
    register_configs()
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides))


def test_defaults_and_per_symbol_overrides_reach_the_limit_records():
    cfg = config("risk.instrument.max_long=3", "risk.instrument.collar_reference=last",
                 "risk.instrument.max_data_age_s=1.5", "+risk.instruments.BBB.max_short=7",
                 "risk.portfolio.day_offset_h=2", "risk.breaker.on_throttle=active")
    p = allocate(pipeline_spec(cfg, {"AAA": 0, "BBB": 1}))
    lim = p.risk_limits
    assert list(lim["max_long"]) == [3 * U, 3 * U]
    assert list(lim["max_short"]) == [10 * U, 7 * U]
    assert list(lim["collar_reference"]) == [Reference.LAST] * 2
    assert list(lim["max_data_age_ns"]) == [1_500_000_000] * 2
    plim = p.portfolio_limits[0]
    assert plim["day_offset_ns"] == 2 * 3600 * 10**9
    assert plim["on_throttle"] == BreakerState.ACTIVE and plim["on_reject_rate"] == BreakerState.HALTED


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("risk.instrument.max_long=-1", "risk.instrument.max_long: must be >= 0, got -1"),
        ("risk.portfolio.max_reject_rate=1.5", "risk.portfolio.max_reject_rate: a fraction in [0, 1], got 1.5"),
        ("+risk.instruments.ZZZ.max_long=1", "risk.instruments: no instrument named 'ZZZ'"),
        ("+risk.instruments.AAA.max_lung=1", "risk.instruments.AAA.max_lung: not a limit"),
    ],
)
def test_bad_values_name_the_key_and_the_value(override, message):
    cfg = config(override)
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        instrument_limits(cfg.risk, {"AAA": 0})
        portfolio_limits(cfg.risk)


def test_a_throttle_beyond_what_can_be_counted_is_refused():
    cfg = config("risk.instrument.max_messages_per_s=5000")
    with pytest.raises(ValueError, match="at most 1024 per second"):
        allocate(pipeline_spec(cfg, {"AAA": 0}))
