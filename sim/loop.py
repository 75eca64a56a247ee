"""The compiled backtest loop: event merge, simulated clock, ``step`` and the exchange in Numba.

Five sources compete for the next moment, and the earliest wins. At equal times the
fixed priority below decides (the project's tie-break rule, also in docs/concepts):

    1. market data at the exchange   (row ``ex_i`` at its ``ts_event``)
    2. an order command reaching the exchange
    3. an execution report reaching the strategy
    4. market data reaching the strategy (row ``st_i`` at ``ts_event + feed latency``)
    5. a timer the strategy set

and within one source, the sequence order (data rows as the catalog merged them,
messages FIFO, timers by the order they were set). So the venue always moves before
anyone reacts to it, and a strategy never sees a row before its exchange time plus
the feed latency. A timer with a negative id is the pipeline's own
(``framework.recovery``): setting it again replaces it (its place in the order is the
new setting's), and setting it to ``TS_MAX`` cancels it.

With several venues (``sim.exchange``), each venue has its own latencies: orders and
reports travel on one FIFO channel per venue, and the order queue and the report
queue hold them in arrival order across venues (ties in the order sent). Market data
from every venue reaches the strategy through one feed handler: a row arrives at its
venue time plus its venue's feed latency, but never before the row before it, so rows
keep their exchange-time order (a slow venue's row can hold back a fast venue's next
row by at most the difference of their feed latencies).

``run_chunk`` processes one buffer of rows and returns a status when the buffer is
exhausted (``DONE``) or an output buffer needs draining, so Python is called once
per chunk, never per event. All loop state lives in arrays, so a call can resume
exactly where the previous one stopped. The buffer's ``ts_recv`` field is set to the
strategy-side arrival time as the exchange side passes each row: the rows ``step``
sees, and the journal records, carry the time the strategy received them.

Most of the time no message or timer is due and only data rows move: ``_data_rows``
runs those stretches with the messages' and timers' times held fixed, and the full
five-way merge takes each message and timer in turn. Within a stretch the exchange
takes a row, then the strategy takes every row due before the exchange's next one,
so each row costs one comparison of the two sides rather than a pass of the merge.
While no order rests at any venue and the feed latency is constant (a strategy that
is flat, or trades market orders), neither side can affect the other before the next
message, so each row goes through both at once (``_idle_venue_rows``).
"""

from __future__ import annotations

from collections import namedtuple

import numpy as np
from numba import njit

from framework.events import COMMAND_DTYPE, EQUITY_DTYPE, EVENT_DTYPE, TS_MAX, CommandKind, EventKind, records
from framework.jit import HOT, KERNEL
from framework.journal import JOURNAL_COMMAND_DTYPE
from framework.order_table import is_venue_command
from framework.step import step
from sim.exchange import N_VENUES, RQ_HEAD, RQ_OVERFLOW, RQ_TAIL, on_command, on_market, record_row
from sim.models import Channel, LatencyModel, latency_ns

Status = namedtuple("Status", "DONE OUTPUT_FULL ORDER_QUEUE_FULL REPORT_QUEUE_FULL TIMERS_FULL STEP UNKNOWN_ROW")(
    0, 1, 2, 3, 4, 5, 6)
"""Why ``run_chunk`` returned. STEP (remote stepping only): the input in ``handoff[0]`` is due
at the pipeline; its commands go in with ``route_commands`` before the loop resumes.
UNKNOWN_ROW: data row ``ex_i`` names a venue or instrument the simulation was not
allocated for; nothing of it was applied."""

LOOP_DTYPE = np.dtype(
    [
        ("ex_i", "<i8"), ("st_i", "<i8"), ("feed_last", "<i8"),
        ("oq_head", "<i8"), ("oq_tail", "<i8"), ("n_timers", "<i8"), ("timer_seq", "<i8"),
        ("next_sample_ts", "<i8"), ("n_equity", "<i8"),
        ("n_journal_events", "<i8"), ("n_journal_commands", "<i8"), ("n_inputs", "<i8"), ("journal_on", "<i8"),
        ("remote", "<i8"),
    ],
    align=True,
)

ONE = np.uint64(1)
"""An unsigned one, to step the unsigned row indices of ``_data_rows`` (adding a plain ``1``
would make Numba compute in floating point)."""

Loop = namedtuple(
    "Loop",
    [
        "st", "orders_q", "orders_q_ts", "order_last", "timer_ts", "timer_id", "timer_seq", "scratch", "out",
        "equity", "journal_events", "journal_commands", "handoff",
    ],
)


def allocate_loop(order_capacity: int, intents: int, *, queue_capacity: int = 1 << 14, timer_capacity: int = 1024,
                  equity_capacity: int = 1 << 16, journal_capacity: int = 1 << 16, journal: bool = False,
                  remote: bool = False) -> Loop:
    """Allocate the loop's queues and output buffers.

    ``remote``: the pipeline runs elsewhere (the lockstep venue server). Every input due
    at the pipeline stops the loop with ``Status.STEP`` and waits in ``handoff[0]``; the
    caller delivers it, hands the commands it produced to ``route_commands`` and resumes.
    """
    st = records(1, LOOP_DTYPE)
    st["journal_on"] = int(journal)
    st["remote"] = int(remote)
    jcap = journal_capacity if journal else 1
    return Loop(
        st=st,
        orders_q=records(queue_capacity, COMMAND_DTYPE),
        orders_q_ts=np.zeros(queue_capacity, np.int64),
        order_last=np.zeros(N_VENUES, np.int64),
        timer_ts=np.zeros(timer_capacity, np.int64),
        timer_id=np.zeros(timer_capacity, np.int64),
        timer_seq=np.zeros(timer_capacity, np.int64),
        scratch=records(1, EVENT_DTYPE),
        out=records(order_capacity + intents, COMMAND_DTYPE),
        equity=records(equity_capacity, EQUITY_DTYPE),
        journal_events=records(jcap, EVENT_DTYPE),
        journal_commands=records(max(jcap, order_capacity + intents + 1) if journal else 1, JOURNAL_COMMAND_DTYPE),
        handoff=records(1, EVENT_DTYPE),
    )


@njit(**KERNEL)
def _next_timer(lp) -> int:
    """Index of the earliest timer (ties: the one set first), or -1."""
    st = lp.st[0]
    best = -1
    for k in range(st.n_timers):
        if best < 0 or lp.timer_ts[k] < lp.timer_ts[best] or (
            lp.timer_ts[k] == lp.timer_ts[best] and lp.timer_seq[k] < lp.timer_seq[best]
        ):
            best = k
    return best


@njit(**KERNEL)
def _drop_timer(lp, timer_id: int) -> None:
    """Remove the pending timer ``timer_id`` if there is one (the pipeline's own timers are
    replaced, not added to)."""
    st = lp.st[0]
    for k in range(st.n_timers):
        if lp.timer_id[k] == timer_id:
            last = st.n_timers - 1
            lp.timer_ts[k] = lp.timer_ts[last]
            lp.timer_id[k] = lp.timer_id[last]
            lp.timer_seq[k] = lp.timer_seq[last]
            st.n_timers = last
            return


@njit(**KERNEL)
def _record_equity(lp, p, t: int) -> None:
    st = lp.st[0]
    pf = p.portfolio[0]
    e = lp.equity[st.n_equity]
    e.ts_event = t
    e.equity = pf.equity
    e.realized_pnl = pf.realized_pnl
    e.unrealized_pnl = pf.unrealized_pnl
    e.fees = pf.fees
    e.gross_exposure = pf.gross_exposure
    e.net_position = pf.net_position
    st.n_equity += 1


@njit(**HOT)
def _sample_equity(lp, p, t: int, interval: int) -> None:
    """Sample the portfolio as it stands before the first input of each interval."""
    st = lp.st[0]
    if interval <= 0 or t < st.next_sample_ts:
        return
    _record_equity(lp, p, t)
    st.next_sample_ts = t - t % interval + interval


@njit(**KERNEL)
def _make_room(lp, arrival: int) -> int:
    """Shift the orders arriving after ``arrival`` one place back (an order to a faster venue
    overtakes one to a slower venue); return the free place. Rare: only with venues of
    different latencies."""
    st = lp.st[0]
    cap = lp.orders_q.shape[0]
    pos = st.oq_tail
    while pos > st.oq_head and lp.orders_q_ts[(pos - 1) % cap] > arrival:
        lp.orders_q[pos % cap] = lp.orders_q[(pos - 1) % cap]
        lp.orders_q_ts[pos % cap] = lp.orders_q_ts[(pos - 1) % cap]
        pos -= 1
    return pos


@njit(**HOT)
def _send_order(lp, ex, c, now: int) -> None:
    """Queue command ``c`` on its venue's order channel: FIFO per venue, and across venues
    in arrival order (ties in the order sent)."""
    st = lp.st[0]
    cap = lp.orders_q.shape[0]
    v = c.venue_id
    arrival = now + latency_ns(ex.prm[v if v < ex.prm.shape[0] else 0], ex.rng, Channel.ORDER)
    if arrival < lp.order_last[v]:
        arrival = lp.order_last[v]
    lp.order_last[v] = arrival
    pos = st.oq_tail
    if pos > st.oq_head and lp.orders_q_ts[(pos - 1) % cap] > arrival:
        pos = _make_room(lp, arrival)
    lp.orders_q[pos % cap] = c
    lp.orders_q_ts[pos % cap] = arrival
    st.oq_tail += 1


@njit(**HOT)
def _route(lp, ex, ev, n_out: int) -> int:
    """Journal input ``ev`` with the ``n_out`` commands it produced (in ``lp.out``), and send
    them on: orders onto their venue's channel, timers to the clock.

    Returns ``n_out``, or ``-status`` when a queue is full.
    """
    st = lp.st[0]
    index = st.n_inputs
    st.n_inputs = index + 1
    if st.journal_on != 0:
        lp.journal_events[st.n_journal_events] = ev
        st.n_journal_events += 1
    if n_out == 0:
        return 0
    now = ev.ts_recv
    cap = lp.orders_q.shape[0]
    for k in range(n_out):
        c = lp.out[k]
        if st.journal_on != 0:
            j = lp.journal_commands[st.n_journal_commands]
            j.input_index = index
            j.command = c
            st.n_journal_commands += 1
        kind = c.kind
        if is_venue_command(kind):
            if st.oq_tail - st.oq_head >= cap:
                return -2  # Status.ORDER_QUEUE_FULL
            _send_order(lp, ex, c, now)
        elif kind == CommandKind.SET_TIMER:
            if c.client_order_id < 0:
                _drop_timer(lp, c.client_order_id)
                if c.expire_ts == TS_MAX:
                    continue
            if st.n_timers >= lp.timer_ts.shape[0]:
                return -4  # Status.TIMERS_FULL
            lp.timer_ts[st.n_timers] = c.expire_ts if c.expire_ts > now else now
            lp.timer_id[st.n_timers] = c.client_order_id
            lp.timer_seq[st.n_timers] = st.timer_seq
            st.timer_seq += 1
            st.n_timers += 1
    return n_out


@njit(**HOT)
def _feed(lp, p, ev, ex, on_event, params, state, remote: bool) -> int:
    """Run one input through ``step`` and route its commands (``_route``); with a remote
    pipeline (``remote``, the loop's ``st.remote`` as the caller read it), park it in
    ``handoff`` instead and stop the loop.

    Returns how many commands ``step`` produced, or ``-status`` when the loop must stop.
    """
    if remote:
        lp.handoff[0] = ev
        return -5  # Status.STEP
    return _route(lp, ex, ev, step(p, ev, lp.out, on_event, params, state))


@njit(**KERNEL)
def route_commands(lp, ex, n_out: int) -> int:
    """Take the commands a remote pipeline produced for ``handoff[0]`` (in ``lp.out[:n_out]``)
    exactly as ``_feed`` takes those of a local one; return 0 or a ``Status`` to stop on."""
    sent = _route(lp, ex, lp.handoff[0], n_out)
    return -sent if sent < 0 else 0


@njit(**HOT)
def _known_ids(ex, venue_id: int, instrument_id: int) -> bool:
    """Whether a data row's venue and instrument exist in the simulation. Checked as the
    exchange takes each row, which reads it anyway: a separate pass over a chunk costs
    more than the SMA pipeline's whole step, and an unchecked id would index past the books.
    The instrument is compared unsigned: one test refuses a negative id too."""
    return venue_id < ex.n_active.shape[0] and np.uint64(instrument_id) < np.uint64(ex.n_active.shape[1])


@njit(**HOT)
def _drawn_feed_latency(ex, ev) -> int:
    """A feed latency for row ``ev``, drawn from its venue's model."""
    return latency_ns(ex.prm[ev.venue_id], ex.rng, Channel.FEED)


@njit(**HOT)
def _fifo_arrival(ts_event: int, latency: int, feed_last: int) -> int:
    """When the strategy receives a row sent at ``ts_event``: after ``latency``, but never
    before the row before it (``feed_last``), as on the FIFO link the feed models."""
    arrival = ts_event + latency
    return arrival if arrival > feed_last else feed_last


@njit(**HOT)
def _feed_arrival(ev, latency: int, feed_last: int) -> int:
    """Stamp a row with the time the strategy receives it (``_fifo_arrival``); return that time.

    Takes the latency, not the model, so that where the latency is one constant
    (``_idle_venue_rows``) the compiled loop tests nothing per row: the test and the
    registers it held cost the SMA 4% of its instructions."""
    arrival = _fifo_arrival(ev.ts_event, latency, feed_last)
    ev.ts_recv = arrival
    return arrival


@njit(**HOT)
def _outputs_full(ex, lp) -> bool:
    """Whether a buffer Python drains (fills, equity samples, journal) might not hold
    what one more input adds."""
    st = lp.st[0]
    if ex.n_fills[0] > ex.fills.shape[0] - ex.orders.shape[0] - 8 or st.n_equity > lp.equity.shape[0] - 2:
        return True
    return st.journal_on != 0 and (
        st.n_journal_events > lp.journal_events.shape[0] - 1
        or st.n_journal_commands > lp.journal_commands.shape[0] - lp.out.shape[0]
    )


@njit(**HOT)
def _inputs_room(lp) -> int:
    """How many more inputs without commands the equity and journal buffers hold for
    sure (each adds at most one equity sample and one journal event)."""
    st = lp.st[0]
    room = lp.equity.shape[0] - 2 - st.n_equity
    if st.journal_on != 0:
        room = min(room, lp.journal_events.shape[0] - 1 - st.n_journal_events)
    return room + 1 if room >= 0 else 0


@njit(**KERNEL)
def _constant_feed_ns(prm) -> int:
    """The feed latency when it is one constant for every venue, else -1 (draw per row)."""
    if prm[0].latency_model != LatencyModel.CONSTANT:
        return -1
    for v in range(1, prm.shape[0]):
        if prm[v].feed_ns != prm[0].feed_ns:
            return -1
    return prm[0].feed_ns


@njit(**HOT)
def _nothing_rests(ex) -> bool:
    """Whether no order rests at any venue, so market data changes nothing but the venues'
    last prices and quotes. Asked before every stretch of rows, so a plain loop: with
    ``n_active.any()`` the market maker ran 2% more instructions."""
    n_active = ex.n_active
    for v in range(n_active.shape[0]):
        for i in range(n_active.shape[1]):
            if n_active[v, i] != 0:
                return False
    return True


@njit(**HOT)
def _first_arrival(events, n_events: int, st, feed_ns: int) -> int:
    """When the strategy receives its next row (``TS_MAX`` if the buffer has none), with
    the feed latency the constant ``feed_ns``.

    Asked before calling ``_idle_venue_rows``, which is not inlined: the call passes the
    pipeline's, the exchange's and the loop's arrays word by word (some 450 words), and
    around an order most stretches are empty (the next message is due before the next
    row). Skipping those calls took 600 of the 5,400 instructions an SMA crossing cost,
    and 2.1% of the SMA backtest's time (``bench/paired_ab.py``). Only speed rides on the
    answer: where the call is skipped, ``run_chunk``'s full merge takes the rows, in the
    same order."""
    if st.st_i >= n_events:
        return TS_MAX
    row = events[st.st_i]
    if st.st_i < st.ex_i:
        return row.ts_recv  # stamped by the exchange already
    return _fifo_arrival(row.ts_event, feed_ns, st.feed_last)


@njit(**KERNEL)
def _idle_venue_rows(events, n_events: int, t_stop: int, feed_ns: int, p, ex, lp, on_event, params,
                     state) -> int:
    """``_data_rows`` while nothing rests at any venue and the feed latency is one constant.

    Then the exchange only records each row, nothing it does reaches the strategy, and
    nothing the strategy does reaches it before the next message (after ``t_stop``): the
    two sides commute, so each row goes through both at once, the exchange first. A row
    is stamped with its arrival time as the strategy takes it (rows before ``ex_i`` the
    exchange has stamped already). Stops, with the exchange at the strategy's row, where
    ``_data_rows`` would: a row due at or after ``t_stop``, the inputs' room, a row with
    an unknown venue or instrument (the full merge reports it), or a command. Never
    taken for a remote pipeline, which stops the loop at every input anyway: the rows
    then need no test of it.

    A separate function, not inlined like ``_data_rows``: it is called once per stretch,
    and inlined it left the loop of a strategy whose orders always rest (the market
    maker) 2.7% more instructions, from register allocation alone.
    """
    st = lp.st[0]
    interval = ex.prm[0].equity_interval_ns
    next_sample = st.next_sample_ts if interval > 0 else TS_MAX
    st_i = np.uint64(st.st_i)
    stamped = np.uint64(st.ex_i)  # rows before this one the exchange has taken and stamped
    n_rows = np.uint64(n_events)
    st_end = min(st_i + np.uint64(_inputs_room(lp)), n_rows)
    feed_last = st.feed_last
    status = 0
    # Rows the exchange has stamped already (a stretch of ``_data_rows`` left them), then
    # fresh ones: two loops, so that a fresh row is not asked which it is (that test and
    # the registers it held cost the SMA 6% of its instructions). Each loop, and
    # ``_data_rows``, spells out the equity sample, ``_feed`` and the stop: the same lines
    # as an inlined helper returning (sent, next sample) made the SMA 7.7% slower
    # (``bench/paired_ab.py``, 2 rounds of 30 s).
    backlog_end = min(stamped, st_end)
    while st_i < backlog_end:
        row = events[st_i]
        t_st = row.ts_recv
        if t_st >= t_stop:
            st_end = st_i  # and take no fresh row either
            break
        st_i += ONE
        if t_st >= next_sample:
            _sample_equity(lp, p, t_st, interval)
            next_sample = st.next_sample_ts
        sent = _feed(lp, p, row, ex, on_event, params, state, False)
        if sent != 0:
            status = -sent if sent < 0 else 0
            st_end = st_i
            break
    while st_i < st_end:
        row = events[st_i]
        v = row.venue_id
        i = np.uint64(row.instrument_id)  # unsigned: indexes the books with no wraparound test
        if not _known_ids(ex, v, i):
            break
        # Stamped before the stop check: a row left here is stamped again, to the same
        # time, by whoever takes it next, since feed_last is only kept for rows taken.
        t_st = _feed_arrival(row, feed_ns, feed_last)
        if t_st >= t_stop:
            break
        record_row(ex.market[v, i], row)
        feed_last = t_st
        st_i += ONE
        if t_st >= next_sample:
            _sample_equity(lp, p, t_st, interval)
            next_sample = st.next_sample_ts
        sent = _feed(lp, p, row, ex, on_event, params, state, False)
        if sent != 0:
            status = -sent if sent < 0 else 0
            break
    st.st_i = np.int64(st_i)
    if st_i > stamped:
        st.ex_i = np.int64(st_i)
        st.feed_last = feed_last
    return status


@njit(**HOT)
def _data_rows(events, n_events: int, end: int, t_msg: int, t_tim: int, p, ex, lp, on_event, params, state) -> int:
    """Move data rows until the next pending message or timer is due; return a Status.

    Between two messages (an order reaching the exchange or a report reaching the
    strategy, the earliest at ``t_msg``) and timers (the earliest at ``t_tim``), only
    data rows move: each step is the exchange's next row or, when it is strictly
    earlier, the strategy's (rows before ``end`` only). This is the full merge's order
    with the messages' and timers' times held fixed, so the loop skips the merge's
    bookkeeping. It stops as soon as that no longer holds (a row filled a resting
    order, or the strategy sent an order or set a timer), or an output buffer may need
    draining (a fill, a journaled command, ``_inputs_room`` inputs); ``run_chunk`` then
    takes the next step with the full merge.

    What every row touches is kept in locals here (the feed's FIFO time, the next
    equity sample time, a constant feed latency): stores into the state records
    would otherwise force the compiled code to reload them on every row.
    """
    st = lp.st[0]
    feed_ns = _constant_feed_ns(ex.prm)
    # The strategy stops at a row at or after the buffer's end or a message, or after a timer.
    t_stop = min(end, t_msg, t_tim + 1 if t_tim < TS_MAX else TS_MAX)
    if feed_ns >= 0 and st.remote == 0 and _nothing_rests(ex):
        if _first_arrival(events, n_events, st, feed_ns) >= t_stop:
            return 0
        return _idle_venue_rows(events, n_events, t_stop, feed_ns, p, ex, lp, on_event, params, state)
    rq = ex.rq
    prm = ex.prm[0]
    interval = prm.equity_interval_ns
    next_sample = st.next_sample_ts if interval > 0 else TS_MAX
    fill_room = ex.fills.shape[0] - ex.orders.shape[0] - 8
    remote = st.remote != 0
    t_other = min(t_msg, t_tim)
    # Row indices are unsigned here: a signed index costs a wraparound select on every access.
    ex_i = np.uint64(st.ex_i)
    st_i = np.uint64(st.st_i)
    n_rows = np.uint64(n_events)
    st_end = st_i + np.uint64(_inputs_room(lp))  # the strategy's rows stop short of this one
    feed_last = st.feed_last
    status = 0
    running = True
    while running:
        t_ex = events[ex_i].ts_event if ex_i < n_rows else TS_MAX
        # The strategy's rows that reach it before the exchange's next row (ties: the exchange).
        while st_i < ex_i:
            row = events[st_i]
            t_st = row.ts_recv
            if t_st >= t_ex:
                break
            if t_st >= t_stop or st_i >= st_end:
                running = False
                break
            st_i += ONE
            if t_st >= next_sample:
                _sample_equity(lp, p, t_st, interval)
                next_sample = st.next_sample_ts
            sent = _feed(lp, p, row, ex, on_event, params, state, remote)
            if sent != 0:
                status = -sent if sent < 0 else 0
                running = False
                break
        if not running or ex_i >= n_rows or t_ex > t_other:
            break
        ev = events[ex_i]
        v = ev.venue_id
        i = np.uint64(ev.instrument_id)
        if not _known_ids(ex, v, i):
            status = Status.UNKNOWN_ROW
            break
        if ex.n_active[v, i] == 0:
            record_row(ex.market[v, i], ev)  # nothing rests here: no fill, no report
        else:
            if ex.n_fills[0] > fill_room:
                break
            n_reports = rq[RQ_TAIL]
            on_market(ex, ev)
            if rq[RQ_TAIL] != n_reports or rq[RQ_OVERFLOW] != 0:
                running = False
        ex_i += ONE
        latency = feed_ns if feed_ns >= 0 else _drawn_feed_latency(ex, ev)
        feed_last = _feed_arrival(ev, latency, feed_last)
    st.ex_i = np.int64(ex_i)
    st.st_i = np.int64(st_i)
    st.feed_last = feed_last
    return status


@njit(**KERNEL)
def run_chunk(events, n_events: int, next_ts: int, final: bool, p, ex, lp, on_event, params, state) -> int:
    """Advance the simulation through ``events[:n_events]``; see the module docstring.

    Items other than this buffer's exchange-side rows are processed only while they
    are earlier than ``next_ts``, the first exchange time of the next buffer (ties go to
    market data at the exchange, which comes first). With ``final`` every queue is
    drained and timers stop at the last data time.

    Each round first lets data rows move up to the next message or timer
    (``_data_rows``), then takes one step of the full merge of the five sources.
    """
    st = lp.st[0]
    interval = ex.prm[0].equity_interval_ns
    rq = ex.rq
    rcap = ex.reports.shape[0]
    ocap = lp.orders_q.shape[0]
    end = TS_MAX if final else next_ts
    while True:
        if _outputs_full(ex, lp):
            return Status.OUTPUT_FULL
        if rq[RQ_OVERFLOW] != 0:
            return Status.REPORT_QUEUE_FULL
        t_ord = lp.orders_q_ts[st.oq_head % ocap] if st.oq_tail > st.oq_head else TS_MAX
        t_rep = ex.reports[rq[RQ_HEAD] % rcap].ts_recv if rq[RQ_TAIL] > rq[RQ_HEAD] else TS_MAX
        k_tim = _next_timer(lp) if st.n_timers > 0 else -1
        t_tim = lp.timer_ts[k_tim] if k_tim >= 0 else TS_MAX
        status = _data_rows(events, n_events, end, min(t_ord, t_rep), t_tim, p, ex, lp, on_event, params, state)
        if status != 0:
            return status
        if _outputs_full(ex, lp):
            return Status.OUTPUT_FULL
        if rq[RQ_OVERFLOW] != 0:
            return Status.REPORT_QUEUE_FULL
        ex_i = st.ex_i
        t_ex = events[ex_i].ts_event if ex_i < n_events else TS_MAX
        t_ord = lp.orders_q_ts[st.oq_head % ocap] if st.oq_tail > st.oq_head else TS_MAX
        t_rep = ex.reports[rq[RQ_HEAD] % rcap].ts_recv if rq[RQ_TAIL] > rq[RQ_HEAD] else TS_MAX
        t_st = events[st.st_i].ts_recv if st.st_i < ex_i else TS_MAX
        k_tim = _next_timer(lp) if st.n_timers > 0 else -1
        t_tim = lp.timer_ts[k_tim] if k_tim >= 0 else TS_MAX
        if ex_i < n_events and t_ex <= t_ord and t_ex <= t_rep and t_ex <= t_st and t_ex <= t_tim:
            row = events[ex_i]
            if not _known_ids(ex, row.venue_id, row.instrument_id):
                return Status.UNKNOWN_ROW
            on_market(ex, row)
            st.feed_last = _feed_arrival(row, _drawn_feed_latency(ex, row), st.feed_last)
            st.ex_i = ex_i + 1
            continue
        t = min(t_ord, t_rep, t_st, t_tim)
        if t == TS_MAX:
            return Status.DONE
        if final:
            data_left = ex_i < n_events or st.st_i < ex_i
            if not data_left and t == t_tim and t_ord > t and t_rep > t and t_tim > st.feed_last:
                st.n_timers = 0  # after the last data, timers have nothing left to see
                continue
        elif t >= next_ts:
            return Status.DONE
        if t_ord == t:
            slot = st.oq_head % ocap
            st.oq_head += 1
            on_command(ex, t, lp.orders_q[slot])
            continue
        if t_rep == t:
            ev = ex.reports[rq[RQ_HEAD] % rcap]
            rq[RQ_HEAD] += 1
        elif t_st == t:
            ev = events[st.st_i]
            st.st_i += 1
        else:
            ev = lp.scratch[0]
            ev.ts_event = t
            ev.ts_recv = t
            ev.kind = EventKind.TIMER
            ev.timer_id = lp.timer_id[k_tim]
            last = st.n_timers - 1
            lp.timer_ts[k_tim] = lp.timer_ts[last]
            lp.timer_id[k_tim] = lp.timer_id[last]
            lp.timer_seq[k_tim] = lp.timer_seq[last]
            st.n_timers = last
        _sample_equity(lp, p, t, interval)
        sent = _feed(lp, p, ev, ex, on_event, params, state, st.remote != 0)
        if sent < 0:
            return -sent


@njit(**KERNEL)
def final_sample(lp, p) -> None:
    """Write one last equity sample at the pipeline's current time."""
    _record_equity(lp, p, p.exec_state[0].now)
