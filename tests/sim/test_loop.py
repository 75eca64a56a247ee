"""The compiled loop and the Backtest driver: tie-break rule, timers, chunking, buffers, equity.

Latencies are constant, feed = 10, order = 20, response = 30 ns unless a test says
otherwise; times are offsets from ``T0``.
"""

from __future__ import annotations

import numpy as np
import pytest
from scripted import (
    T0,
    make_quotes,
    make_script,
    make_trades,
    market,
    merge,
    new_state,
    on_event,
    run_script,
    signed_fill_qty,
    sim_params,
    submit,
    timer,
)

from framework.events import EVENT_DTYPE, CommandKind, EventKind, Side, to_fixed
from framework.state import Counter, PipelineSpec, allocate, events_stepped
from sim.backtest import Backtest, Strategy
from sim.exchange import allocate_exchange
from sim.loop import Status, allocate_loop

LAT = (10, 20, 30)
K = EventKind
BUY, SELL = Side.BUY, Side.SELL


def t(offset: int) -> int:
    return T0 + offset


def fx(x: float) -> int:
    return to_fixed(x)


def test_zero_latency_the_venue_moves_before_anyone_reacts():
    # Zero latency, two quotes at the same ts_event 1000 (ask 101, then ask 102). Rule 1: every row
    # at the exchange at 1000 is applied before anything else at 1000, so when the strategy decides
    # (on the first quote), the exchange already shows the second one: the market buy fills at 102.
    ev = make_quotes([(t(1000), 99, 5, 101, 5), (t(1000), 99, 5, 102, 5)])
    run = run_script(ev, [market(BUY, 1, at=0)], latency=(0, 0, 0))
    assert [int(p) for p in run.fills["price"]] == [fx(102)]
    seen = run.events
    # The strategy got: quote 1, then (rule 3 before 4) the order's reports, then quote 2, all at 1000.
    assert list(seen["kind"]) == [K.QUOTE, K.ACCEPTED, K.FILLED, K.QUOTE]
    assert np.all(seen["ts_recv"] == t(1000))


def test_reports_reach_the_strategy_before_market_data_at_the_same_time():
    # The ACCEPTED of an order decided at 1010 arrives at 1060; the quote with ts_event 1050 also
    # arrives at 1060 (feed 10). Rule 3 (reports) before rule 4 (market data to the strategy).
    ev = make_quotes([(t(1000), 99, 5, 101, 5), (t(1050), 99, 5, 101, 5)])
    run = run_script(ev, [submit(BUY, 1, 100, at=0)], latency=LAT)
    assert list(run.events["kind"]) == [K.QUOTE, K.ACCEPTED, K.QUOTE]
    assert list(run.events["ts_recv"] - T0) == [1010, 1060, 1060]


@pytest.mark.parametrize("chunk_rows", [None, 1])
def test_timers_fire_at_their_time_in_tie_break_order(chunk_rows):
    # On the first quote (seen at 1010) the strategy sets:
    #   timer 8 at 1020; timer 7 at 1050; timer 9 at 5 (in the past: fires at once, at 1010);
    #   timer 6 at 1050 (same time as 7, set after it); timer 5 far after the last data (dropped).
    # The second quote (ts_event 1040) reaches the strategy at 1050: market data (rule 4) goes
    # before the timers at 1050 (rule 5), and timers at equal times fire in the order set.
    ev = make_quotes([(t(1000), 99, 5, 101, 5), (t(1040), 99, 5, 101, 5)])
    script = [
        timer(t(1020), 8, at=0),
        timer(t(1050), 7, at=0),
        timer(t(5), 9, at=0),
        timer(t(1050), 6, at=0),
        timer(t(10_000_000), 5, at=0),
    ]
    run = run_script(ev, script, latency=LAT, chunk_rows=chunk_rows)
    seen = run.events
    assert list(seen["kind"]) == [K.QUOTE, K.TIMER, K.TIMER, K.QUOTE, K.TIMER, K.TIMER]
    assert list(seen["ts_recv"] - T0) == [1010, 1010, 1020, 1050, 1050, 1050]
    timers = seen[seen["kind"] == K.TIMER]
    assert list(timers["timer_id"]) == [9, 8, 7, 6]
    np.testing.assert_array_equal(timers["ts_event"], timers["ts_recv"])
    set_cmds = run.cmds(CommandKind.SET_TIMER)
    assert list(set_cmds["client_order_id"]) == [8, 7, 9, 6, 5]
    assert run.p.counters[Counter.TIMERS] == 4


def _busy_history():
    """Quotes and trades with many equal timestamps, and a script that trades on them."""
    quotes = [(t(100 * (k // 3)), 99 + (k % 4) * 0.5, 3, 101 + (k % 4) * 0.5, 3) for k in range(40)]
    trades = [(t(100 * (k // 2) + 30), 99.5 + (k % 5) * 0.5, 2) for k in range(30)]
    ev = merge(make_quotes(quotes), make_trades(trades))
    script = []
    for k in range(0, 60, 4):
        script.append(submit(BUY if k % 8 == 0 else SELL, 1, 100 + (k % 3) * 0.5, at=k))
        script.append(market(SELL if k % 8 == 0 else BUY, 1, at=k + 1))
    return ev, script


@pytest.mark.parametrize("latency", [(0, 0, 0), LAT, (35, 5, 60)])
def test_chunking_does_not_change_the_run(latency):
    ev, script = _busy_history()
    ref = run_script(ev, script, latency=latency)
    assert len(ref.fills) > 3  # the scenario really trades
    for chunk_rows in (1, 2, 3, 7, 16, 69):
        run = run_script(ev, script, latency=latency, chunk_rows=chunk_rows)
        assert run.journal_hash == ref.journal_hash, chunk_rows
        np.testing.assert_array_equal(run.fills, ref.fills)
        assert run.p.positions[0]["qty"] == ref.p.positions[0]["qty"]
        assert run.result.n_events == len(ev)
        assert run.result.n_inputs == ref.result.n_inputs == len(run.events)


def test_small_output_buffers_are_drained_without_changing_the_run():
    ev, script = _busy_history()
    ref = run_script(ev, script, latency=LAT, equity_interval_ns=50)
    small = run_script(ev, script, latency=LAT, equity_interval_ns=50, journal_capacity=4,
                       fill_capacity=256 + 8 + 2, equity_capacity=4)
    assert small.n_journal_blocks > ref.n_journal_blocks
    assert small.journal_hash == ref.journal_hash
    np.testing.assert_array_equal(small.fills, ref.fills)
    np.testing.assert_array_equal(small.result.equity, ref.result.equity)
    np.testing.assert_array_equal(small.commands, ref.commands)


def test_an_empty_chunk_does_not_change_the_run():
    # Quotes at 1000, 1015, 1100; market buy on the first. Chunks [q1], [], [q2, q3]: expected the
    # same run as one chunk. Actual: the order's reports (1060) are delivered before the quote of
    # 1015 (seen at 1025), which step then refuses (OUT_OF_ORDER = 1).
    ev = make_quotes([(t(1000), 99, 5, 101, 5), (t(1015), 99, 5, 101, 5), (t(1100), 99, 5, 101, 5)])
    ref = run_script(ev, [market(BUY, 1, at=0)], latency=LAT)
    run = run_script(ev, [market(BUY, 1, at=0)], latency=LAT, split_at=[1, 1])
    assert run.p.counters[Counter.OUT_OF_ORDER] == 0
    assert run.journal_hash == ref.journal_hash


def test_no_data_at_all():
    run = run_script(np.zeros(0, EVENT_DTYPE), [market(BUY, 1, at=0)], latency=LAT)
    assert run.result.n_events == 0 and run.result.n_inputs == 0
    assert len(run.fills) == 0 and len(run.events) == 0


def test_chunk_with_the_wrong_dtype_is_refused():
    ev = make_quotes([(t(1000), 99, 5, 101, 5)])
    joined = np.concatenate([ev, ev])  # what concat_events exists to avoid
    if joined.dtype == EVENT_DTYPE:
        pytest.skip("this numpy keeps the union dtype through np.concatenate")
    bt = Backtest(allocate(PipelineSpec(order_capacity=8)),
                  allocate_exchange(1, 8, sim_params(), np.zeros(1, np.int64)),
                  allocate_loop(8, 64), Strategy(on_event, make_script([]), new_state(0)))
    with pytest.raises(TypeError, match="EVENT_DTYPE"):
        bt.run([joined])


@pytest.mark.parametrize("field, value, second_chunk", [
    ("venue_id", 1, False), ("venue_id", 255, True), ("instrument_id", 1, False), ("instrument_id", -1, True),
])
def test_a_row_of_an_unknown_venue_or_instrument_is_refused_by_name(field, value, second_chunk):
    """One venue and one instrument are allocated: a row naming another would index past the
    exchange's books, so the loop stops at it and the error names the row's ids."""
    ev = make_quotes([(t(1000), 99, 5, 101, 5), (t(2000), 99, 5, 101, 5), (t(3000), 99, 5, 101, 5)])
    ev[field][1] = value
    bt = Backtest(allocate(PipelineSpec(order_capacity=8)),
                  allocate_exchange(1, 8, sim_params(), np.zeros(1, np.int64)),
                  allocate_loop(8, 64), Strategy(on_event, make_script([]), new_state(0)))
    chunks = [ev[:1], ev[1:]] if second_chunk else [ev]
    with pytest.raises(ValueError, match=f"names venue {ev['venue_id'][1]} and instrument "
                                         f"{ev['instrument_id'][1]}, but the simulation runs 1 venue"):
        bt.run(chunks)


def test_a_pipeline_and_an_exchange_of_different_instruments_are_refused():
    """Rows are checked against the exchange's instruments only, so the pipeline must hold as many."""
    with pytest.raises(ValueError, match="pipeline holds 1 instrument.* exchange 2"):
        Backtest(allocate(PipelineSpec(order_capacity=8)),
                 allocate_exchange(2, 8, sim_params(), np.zeros(1, np.int64)),
                 allocate_loop(8, 64), Strategy(on_event, make_script([]), new_state(0)))


def test_equity_is_sampled_before_the_first_input_of_each_interval():
    # interval 1000 ns. Quote at 1000 (mid 100, ask 101), market buy 1 -> fill 1 @ 101 at 1030
    # (reports at 1060). Quotes at 2500 (mid 102) and 2600.
    # Inputs at 1010 (quote), 1060 (ACCEPTED, FILLED), 2510 (quote), 2610 (quote).
    # Samples: 1010 (first input: 1e6), 2510 (first input at or after 2000; before that quote the
    # position 1 @ 101 is marked at mid 100: 1e6 - 1), and the final one at 2610 (mid 102: 1e6 + 1).
    ev = make_quotes([(t(1000), 99, 5, 101, 5), (t(2500), 101, 5, 103, 5), (t(2600), 101, 5, 103, 5)])
    run = run_script(ev, [market(BUY, 1, at=0)], latency=LAT, equity_interval_ns=1000)
    eq = run.result.equity
    assert list(eq["ts_event"] - T0) == [1010, 2510, 2610]
    np.testing.assert_allclose(eq["equity"], [1_000_000.0, 999_999.0, 1_000_001.0], rtol=0, atol=1e-6)
    np.testing.assert_allclose(eq["net_position"], [0.0, 1.0, 1.0])
    np.testing.assert_allclose(eq["unrealized_pnl"], [0.0, -1.0, 1.0], atol=1e-9)


def test_loop_status_codes_are_distinct():
    assert len(set(Status)) == len(Status)
    assert Status.DONE == 0


def test_result_counts_and_consistency():
    ev, script = _busy_history()
    run = run_script(ev, script, latency=LAT)
    r = run.result
    assert r.n_events == len(ev)
    assert r.n_inputs == len(run.events) == events_stepped(run.p.counters)
    assert run.p.positions[0]["qty"] == signed_fill_qty(run.fills)
    # Every data row was seen exactly once by the strategy, in ts_event order.
    seen = run.events
    data = seen[(seen["kind"] == K.QUOTE) | (seen["kind"] == K.TRADE)]
    assert len(data) == len(ev)
    assert np.all(np.diff(data["ts_event"]) >= 0)
    assert np.all(np.diff(seen["ts_recv"]) >= 0)
