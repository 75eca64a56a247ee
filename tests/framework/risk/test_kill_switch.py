"""The kill switch's scopes, flattening, and that nothing new goes out after it.

Backtests run the scripted strategy (tests/sim/scripted.py) with constant latencies
feed 10, order 20, response 30 ns; times are offsets from ``T0``.
"""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from risk_cases import BUY, LAT, SELL, R, alerts, t
from scripted import make_control, make_quotes, market, merge, run_script, submit

from framework.events import CommandKind, ControlCode, OrderFlag, OrderType
from framework.order_state import OrderStatus
from framework.risk.records import KILL_FLATTEN, KillScope

QUOTES = make_quotes([(t(1000 * k), 99, 50, 101, 50) for k in range(1, 10)])


def test_a_venue_scope_covers_that_venue_only():
    # Orders go to venue 0. Killing venue 1 changes nothing; killing venue 0 cancels and blocks.
    ev = merge(QUOTES, make_control(t(2000), ControlCode.KILL_SWITCH_ON, KillScope.VENUE, 1),
               make_control(t(4000), ControlCode.KILL_SWITCH_ON, KillScope.VENUE, 0))
    run = run_script(ev, [submit(BUY, 1, 99, at=0), submit(BUY, 1, 99.5, ts=t(3010)),
                          submit(BUY, 1, 99.6, ts=t(5010))], latency=LAT)
    a, b, c = run.coids
    assert run.p.risk_state[0]["kill_venues"] == 0b11  # venues 1 and 0
    cancels = run.cmds(CommandKind.CANCEL)
    assert list(cancels["client_order_id"]) == [a, b] and np.all(cancels["ts_event"] == t(4010))
    assert alerts(run) == [(c, R.KILL_SWITCH)]


def test_a_strategy_scope_covers_only_the_named_strategy():
    ev = merge(QUOTES, make_control(t(2000), ControlCode.KILL_SWITCH_ON, KillScope.STRATEGY, 7),
               make_control(t(4000), ControlCode.KILL_SWITCH_ON, KillScope.STRATEGY, 0))
    run = run_script(ev, [submit(BUY, 1, 99, ts=t(3010)), submit(BUY, 1, 99, ts=t(5010))], latency=LAT)
    a, b = run.coids
    assert run.order(a)["status"] == OrderStatus.CANCELED  # canceled at 4010 by strategy 0's kill
    assert alerts(run) == [(b, R.KILL_SWITCH)]
    assert run.p.risk_state[0]["kill_strategy"] == 1


def test_flatten_closes_the_position_in_pieces_despite_the_kill_switch():
    # Long 5 (bought at 101). Kill with flatten at 3000: order size limit 2 -> sells 2, 2, 1,
    # reduce-only market orders that the kill switch lets through; a new buy is refused.
    ev = merge(QUOTES, make_control(t(3000), ControlCode.KILL_SWITCH_ON, KillScope.ALL | KILL_FLATTEN))
    run = run_script(ev, [market(BUY, 2, at=0), market(BUY, 2, at=1), market(BUY, 1, at=2),
                          submit(BUY, 1, 99, ts=t(4010))], latency=LAT, max_order_size=2, max_position=10)
    submits = run.cmds(CommandKind.SUBMIT)
    closing = submits[submits["ts_event"] == t(3010)]
    assert list(closing["side"]) == [SELL, SELL, SELL]
    assert list(closing["size"]) == [2 * 10**9, 2 * 10**9, 10**9]
    assert np.all(closing["flags"] == OrderFlag.REDUCE_ONLY | OrderFlag.FLATTEN)
    assert np.all(closing["order_type"] == OrderType.MARKET)
    assert run.p.positions[0]["qty"] == 0
    assert alerts(run) == [(run.coids[3], R.KILL_SWITCH)]


def test_a_strategy_cannot_flag_its_own_orders_as_flattening():
    ev = merge(QUOTES, make_control(t(500), ControlCode.KILL_SWITCH_ON))
    run = run_script(ev, [submit(SELL, 1, 0, ts=t(1010), order_type=OrderType.MARKET,
                                 flags=OrderFlag.REDUCE_ONLY | OrderFlag.FLATTEN)], latency=LAT)
    assert alerts(run) == [(run.coids[0], R.KILL_SWITCH)]


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 8), st.lists(st.tuples(st.integers(0, 9000), st.sampled_from([BUY, SELL]),
                                             st.integers(98, 102), st.booleans()), min_size=1, max_size=12))
def test_after_the_kill_switch_no_new_order_goes_out(kill_at, orders):
    kill_ts = t(1000 * kill_at + 5)
    ev = merge(QUOTES, make_control(kill_ts, ControlCode.KILL_SWITCH_ON))
    script = [market(side, 1, ts=t(ts)) if is_market else submit(side, 1, price, ts=t(ts))
              for ts, side, price, is_market in orders]
    run = run_script(ev, script, latency=LAT, max_order_size=5, max_position=100)
    seen = kill_ts + LAT[0]  # the pipeline learns of the kill when the control event arrives
    submits = run.cmds(CommandKind.SUBMIT)
    assert np.all(submits["ts_event"] < seen)
    modifies = run.cmds(CommandKind.MODIFY)
    assert np.all(modifies["ts_event"] < seen)
    # Every order still working when the kill arrived was asked to cancel at that moment.
    open_at_kill = {int(c) for c in submits["client_order_id"]}
    finished_before = {int(e["client_order_id"]) for e in run.events
                       if e["ts_recv"] < seen and e["kind"] in (13, 14, 15, 11)}  # FILLED CANCELED EXPIRED REJECTED
    cancels = run.cmds(CommandKind.CANCEL)
    assert {int(c) for c in cancels["client_order_id"]} == open_at_kill - finished_before
    assert np.all(cancels["ts_event"] == seen)
