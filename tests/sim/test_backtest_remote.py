"""A remote pipeline: the loop stops at every input and the pipeline is stepped elsewhere.

That is how the lockstep venue server runs the simulated exchange while the live
runtime's engine runs ``step`` at the other end of a socket. Stepping the same
strategy from Python, one input per stop, must give exactly the run of the compiled
loop: the same inputs at the same times, the same commands, the same fills, whatever
the latency model, faults, venues or chunking.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from scripted import make_quotes, new_state, on_event, run_strategy
from test_backtest_properties import SETTINGS, build_script, build_stream, run_options, script_knobs, stream_knobs

import strategies.market_maker as mm
import strategies.sma_crossover as sma
from sim.backtest import Backtest, Strategy
from sim.loop import allocate_loop


def _same_run(local, remote) -> None:
    assert remote.journal_hash == local.journal_hash
    assert remote.result.n_inputs == local.result.n_inputs == len(local.events)
    assert remote.fills.tobytes() == local.fills.tobytes()


@given(knobs=stream_knobs, opts=run_options(), script=script_knobs,
       faults=st.sampled_from([(0.0, 0.0, 0.0), (0.3, 0.2, 0.2)]), chunk_rows=st.sampled_from([None, 7]))
@SETTINGS
def test_a_remote_pipeline_runs_exactly_as_the_compiled_loop(knobs, opts, script, faults, chunk_rows):
    events = build_stream(knobs)
    plan = build_script(script)
    kw = dict(max_order_size=2.5, max_position=6, collar=0.03, faults=faults, chunk_rows=chunk_rows,
              execution={"max_attempts": 3, "backoff_base_ns": 50, "ack_timeout_ns": 200}, **opts)
    local = run_strategy(on_event, plan, new_state(len(plan)), events, **kw)
    remote = run_strategy(on_event, plan.copy(), new_state(len(plan)), events, remote=True, **kw)
    _same_run(local, remote)


@pytest.mark.parametrize("which", ["sma", "mm"])
@given(knobs=stream_knobs, opts=run_options())
@SETTINGS
def test_shipped_strategies_run_remotely_as_in_the_loop(which, knobs, opts):
    events = build_stream(knobs, "trades" if which == "sma" else "both")
    if which == "sma":
        make = lambda: sma.make(sma.Params(instrument="X", fast=2, slow=4, order_size=1.0), {"X": 0})  # noqa: E731
        kernel = sma.on_event
    else:
        make = lambda: mm.make(mm.Params(instrument="X", tick_size=0.01, half_spread_ticks=1, order_size=1.0,  # noqa: E731
                                         max_inventory=3.0, skew_ticks=1.0, requote_ticks=1), {"X": 0})
        kernel = mm.on_event
    runs = [run_strategy(kernel, *make(), events, max_order_size=10, max_position=10, remote=r, **opts)
            for r in (False, True)]
    _same_run(*runs)


def test_a_remote_loop_needs_its_pipeline_and_only_it_has_one():
    plan = build_script({"seed": 1, "n_orders": 1, "horizon": 5})
    strategy = Strategy(on_event, plan, new_state(len(plan)))
    events = make_quotes([(10**18, 99, 1, 101, 1)])
    bt = Backtest(None, None, allocate_loop(256, 64, remote=True), strategy)
    with pytest.raises(RuntimeError, match="remote"):
        bt.run([events])
    with pytest.raises(ValueError, match="remote"):
        Backtest(None, None, allocate_loop(256, 64), strategy, remote=lambda ev: ev)


def test_every_input_stops_a_remote_loop_once():
    events = make_quotes([(10**18 + k, 99, 1, 101, 1) for k in range(5)])
    plan = build_script({"seed": 1, "n_orders": 2, "horizon": 3})
    run = run_strategy(on_event, plan, new_state(len(plan)), events, remote=True)
    assert run.result.n_inputs == len(run.events) >= 5
