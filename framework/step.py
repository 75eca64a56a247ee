"""``step``: the whole trading pipeline as one pure function of its state and one event.

    step(p, ev, out, on_event, params, state) -> number of commands written to ``out``

Stages run in the contract's order, inbound work first: market data updates the
books; execution applies venue reports and positions book their fills and revalue;
risk applies control events; then the strategy (the signal stage) sees the event
and states intents, and each intent passes risk and execution on its way out as a
command. Time is the event's ``ts_recv`` and nothing else: no wall clock, no
randomness, no containers of unknown order. An event older than the last one is
refused and counted, never applied, and so is an event naming an instrument the
pipeline has no room for (``UNKNOWN_INSTRUMENT``, the live engine's admission rule
too: the sim's loop and the live engine check ids before ``step``, so this is the last
guard, for a replayed journal, say). Past that check the instrument is an unsigned
index, which Numba does not wrap around: as a signed one it cost a negative-index
select at each look-up in the books, positions and limits, some 25 instructions on
every trade of the SMA.

``on_event(p, params, state, ev)`` is the strategy's kernel; ``step`` is compiled once
per strategy (Numba specialises on the kernel) and cached.

``step``, the market-data path, the reports' way in and the intents' way out
(``_outbound``, with risk and execution) are ``framework.jit.HOT``: inlined into the
loop that calls them, strategy included, because a call that passes the pipeline's
twenty arrays costs more than the risk checks it would call (``framework.jit``).
Control events and the L2 book are separate functions, called only when there is
work for them.

Risk's work on market data is mostly time-driven (a price band's window ends, the day
rolls) or follows equity (the loss and drawdown triggers, which an unchanged equity
would find as the last check left them). So a market-data event checks the loss
triggers only when it moved equity, and the rest at its instrument's ``due_ts``
(``_risk_due``): the common trade costs risk one comparison of times, not five tests in
three arrays (each of marking, the band and the breaker cost the SMA backtest 0.4 to
1.5 ns per trade, measured by leaving it out). Reports, timers and control events are
always followed by the full check.

Timers with a negative id are the pipeline's own (``EXEC_TIMER_ID``: the execution
stage's retries and acknowledgement timeouts, ``framework.recovery``): they go to the
execution stage and the strategy never sees them, nor may it set one.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from framework.events import CommandKind, EventKind
from framework.execution import apply_report, cancel_order_and_legs, modify, submit
from framework.jit import HOT, KERNEL
from framework.market_data import apply_bar, apply_book, apply_quote, apply_trade, reference_of
from framework.positions import mark_to_market
from framework.recovery import on_exec_timer, sync_timer
from framework.risk.breaker import watch
from framework.routing import consolidate_quote, routing_on
from framework.risk.checks import track_band
from framework.risk.control import apply_control, wants_flatten
from framework.risk.kill_switch import cancel_in_scope, flatten
from framework.risk.records import KillScope
from framework.state import Counter

MIN_REPORT_KIND = EventKind.ACCEPTED
MAX_REPORT_KIND = EventKind.CANCEL_REJECTED


@njit(**KERNEL)
def _control(p, ev, out, n_out: int) -> int:
    """An operator's control event: change the risk state; on the kill switch, cancel
    what it covers and, if asked, close the positions."""
    if not apply_control(p, ev):
        return n_out
    scope = ev.value & 0xFF
    n_out = cancel_in_scope(p, out, n_out, scope, ev.target)
    if wants_flatten(ev):
        n_out = flatten(p, out, n_out, ev.target if scope == KillScope.VENUE else 0)
    return sync_timer(p, out, n_out)


@njit(**HOT)
def _book_event(p, ev, kind: int, i: int) -> None:
    """Quotes, L2 levels and bars into the books (trades are ``step``'s first test)."""
    c = p.counters
    if kind == EventKind.QUOTE:
        c[Counter.QUOTES] += 1
        if routing_on(p):
            consolidate_quote(p, ev)
        else:
            apply_quote(p.market, i, ev)
    elif kind == EventKind.BOOK_DELTA or kind == EventKind.BOOK_SNAPSHOT:
        c[Counter.BOOK] += 1
        if not apply_book(p.market, p.book, p.book_depth, ev):
            c[Counter.BOOK_LEVELS_DROPPED] += 1
    else:
        apply_bar(p.market, i, ev)
        c[Counter.BARS] += 1


@njit(**KERNEL)
def _risk_due(p, i: int, now: int) -> None:
    """A market-data event of instrument ``i`` at or after its ``due_ts``: re-anchor the
    price band if its window ended, roll the day and check the loss triggers, and set
    the next due time: the end of the band's window or of the day, whichever is first.
    Until then the instrument's events test that one time rather than each of these
    (a band never anchored, for want of a price, stays due)."""
    track_band(p, i, now)
    watch(p.risk_state, p.portfolio_limits, p.portfolio, now)
    ri = p.risk_instruments[i]
    due = p.risk_state[0].day_end_ts
    if p.risk_limits[i].price_band > 0.0 and ri.band_end_ts < due:
        due = ri.band_end_ts
    ri.due_ts = due


@njit(**HOT)
def _inbound_other(p, ev, out, n_out: int) -> int:
    """Reports, timers, control events and kinds no stage handles (counted, and left to
    the strategy)."""
    kind = ev.kind
    c = p.counters
    if kind >= MIN_REPORT_KIND and kind <= MAX_REPORT_KIND:
        c[Counter.REPORTS] += 1
        n_out = sync_timer(p, out, apply_report(p, ev, out, n_out))
    elif kind == EventKind.TIMER:
        if ev.timer_id < 0:
            c[Counter.EXEC_TIMERS] += 1
            n_out = on_exec_timer(p, ev, out, n_out)
        else:
            c[Counter.TIMERS] += 1
    elif kind == EventKind.CONTROL:
        c[Counter.CONTROLS] += 1
        n_out = _control(p, ev, out, n_out)
    else:
        c[Counter.OTHER_KINDS] += 1
    return n_out


@njit(**HOT)
def _outbound(p, out, n_out: int) -> int:
    """Pass the strategy's intents, in order, through risk and execution into commands.

    A timer id below zero is the pipeline's own: a strategy's is dropped and counted."""
    es = p.exec_state[0]
    for k in range(es.n_intents):
        intent = p.intents[k]
        kind = intent.kind
        if kind == CommandKind.SUBMIT:
            n_out = submit(p, intent, out, n_out)
        elif kind == CommandKind.CANCEL:
            n_out = cancel_order_and_legs(p, intent, out, n_out)
        elif kind == CommandKind.MODIFY:
            n_out = modify(p, intent, out, n_out)
        elif kind == CommandKind.SET_TIMER:
            if intent.client_order_id < 0:
                p.counters[Counter.INTENTS_DROPPED] += 1
                continue
            c = out[n_out]
            c.ts_event = es.now
            c.kind = CommandKind.SET_TIMER
            c.client_order_id = intent.client_order_id
            c.expire_ts = intent.expire_ts
            n_out += 1
    es.n_intents = 0
    return sync_timer(p, out, n_out)


@njit(**HOT)
def step(p, ev, out, on_event, params, state) -> int:
    """Feed one event through the five stages; write the resulting commands to ``out``.

    ``out`` must hold at least ``len(p.orders) + len(p.intents)`` records (the kill
    switch may cancel every order, an expired timer re-send or query every waiting
    one). Returns how many commands were written.
    """
    es = p.exec_state[0]
    if ev.ts_recv < es.now:
        p.counters[Counter.OUT_OF_ORDER] += 1
        return 0
    kind = ev.kind
    i = np.uint64(ev.instrument_id)
    if i >= np.uint64(p.market.shape[0]):
        p.counters[Counter.UNKNOWN_INSTRUMENT] += 1
        return 0
    now = ev.ts_recv
    es.now = now
    # Trades first, on their own test: as one chain with the other kinds, LLVM built a
    # range check and three more tests before a trade's turn.
    m = p.market[i]  # here, where it dominates both its uses: LLVM then computes it once
    market_data = True
    if kind == EventKind.TRADE:
        apply_trade(p.market, i, ev)  # before the count: a store there would make it read ev again
        p.counters[Counter.TRADES] += 1
    elif kind >= EventKind.QUOTE and kind <= EventKind.BAR:
        _book_event(p, ev, kind, i)
    else:
        market_data = False
    if market_data:
        n_out = 0
        moved = mark_to_market(p.positions, p.portfolio, i, reference_of(m))
        if now >= p.risk_instruments[i].due_ts:
            _risk_due(p, i, now)
        elif moved:
            watch(p.risk_state, p.portfolio_limits, p.portfolio, now)
    else:
        n_out = _inbound_other(p, ev, out, 0)
        watch(p.risk_state, p.portfolio_limits, p.portfolio, now)
        if kind == EventKind.TIMER and ev.timer_id < 0:
            return n_out  # the execution stage's own timer, not the strategy's
    on_event(p, params, state, ev)  # n_intents is 0 here: _outbound leaves it so
    if es.n_intents == 0:
        return n_out
    return _outbound(p, out, n_out)
