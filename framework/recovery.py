"""Execution recovery: retries of transient refusals, and orders whose fate is unknown.

A venue may refuse an order for a passing reason (``RejectReason.VENUE_BUSY``: a rate
limit, an overload), and a message may be lost either way. The execution stage then
acts by these rules (docs/concepts/execution.md has the whole picture):

* A refused order waits (RETRY_WAIT) and goes out again under the same client order id
  after an exponential backoff, at most ``max_attempts`` sends in all; after the last it
  is REJECTED for good and an ALERT says so. Each re-send passes the risk checks again
  (limits may have changed, the kill switch may be on), with its size still reserved.
* An order with no acknowledgement within ``ack_timeout_ns`` is never sent blindly
  again: the venue is asked (QUERY, status QUERYING), and asked again each timeout
  while no answer comes. The answer is the order's state at the venue; only "unknown
  order" lets it go out again, as an attempt like any other. Because the venue treats
  a SUBMIT of a client order id it already holds as a duplicate, even a re-send that
  crosses the original on the wire cannot make a second order.

Everything runs on the event clock and is deterministic: a backoff's jitter is a hash
of (client order id, attempt), not a random stream, so it does not depend on what
other orders did. Deadlines are derived from the order's status and ``ts_updated``,
and the stage keeps a single timer (``EXEC_TIMER_ID``) at or before the earliest one,
moved with SET_TIMER (which replaces it) as deadlines come and go: an order
acknowledged in time costs no timer event, and an expired timer scans the table once.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from framework.events import EXEC_TIMER_ID, TS_MAX, CommandKind, EventKind, RejectReason, ReportFlag, TimeInForce
from framework.jit import HOT, KERNEL
from framework.order_state import OrderAction, OrderStatus, is_open, next_status
from framework.order_table import close_order, emit, set_status, waits
from framework.risk.checks import check_order, record_acceptance, record_rejection, record_venue_rejection
from framework.state import Counter

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_UNIT = 1.0 / 9007199254740992.0  # 2**-53


@njit(**KERNEL)
def _mix64(x: np.uint64) -> np.uint64:
    """The splitmix64 finalizer: a fixed bijection that scatters nearby inputs."""
    z = x + _GOLDEN
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


@njit(**KERNEL)
def jitter_unit(client_order_id: int, attempt: int) -> float:
    """A number in [0, 1) fixed by the order and the attempt, the same in every run and mode."""
    h = _mix64(np.uint64(client_order_id) * _GOLDEN + np.uint64(attempt))
    return (h >> np.uint64(11)) * _UNIT


@njit(**KERNEL)
def backoff_ns(lim, client_order_id: int, retry: int) -> int:
    """The wait before re-send number ``retry`` (1 for the first) of an order.

    ``backoff_base_ns * backoff_multiplier ** (retry - 1)``, capped at ``backoff_max_ns``,
    less ``jitter`` times a share of it drawn from ``jitter_unit``: jitter spreads the
    re-sends of orders refused together, so they do not hit the venue together again.
    """
    cap = lim.backoff_max_ns
    delay = float(lim.backoff_base_ns)
    for _ in range(1, retry):
        if cap > 0 and delay >= cap:
            break
        delay *= lim.backoff_multiplier
    if cap > 0 and delay > cap:
        delay = float(cap)
    if lim.jitter > 0.0:
        delay -= delay * lim.jitter * jitter_unit(client_order_id, retry)
    return np.int64(delay)


@njit(**KERNEL)
def deadline(p, o) -> int:
    """When a waiting order (``waits``) is next due: its backoff's end, or its acknowledgement's timeout."""
    if o.status == OrderStatus.RETRY_WAIT:
        return o.ts_updated + backoff_ns(p.exec_limits[0], o.client_order_id, o.attempts)
    return o.ts_updated + p.exec_limits[0].ack_timeout_ns


@njit(**HOT)
def expect(p, ts: int) -> None:
    """Note a new deadline at ``ts``: the stage must look again by then."""
    es = p.exec_state[0]
    if es.wake_ts == 0 or ts < es.wake_ts:
        es.wake_ts = ts


@njit(**KERNEL)
def _set_timer(p, out, n_out: int) -> int:
    es = p.exec_state[0]
    if n_out >= out.shape[0]:
        return n_out  # no room (a kill switch over a full table): the next sync sets it
    c = out[n_out]
    c.ts_event = es.now
    c.kind = CommandKind.SET_TIMER
    c.side = 0
    c.flags = 0
    c.venue_id = 0
    c.instrument_id = 0
    c.order_type = 0
    c.tif = 0
    c.reason = 0
    c.client_order_id = EXEC_TIMER_ID
    c.price = 0
    c.size = 0
    c.trigger_price = 0
    c.expire_ts = es.wake_ts if es.wake_ts > 0 else TS_MAX
    es.timer_ts = es.wake_ts
    return n_out + 1


@njit(**HOT)
def sync_timer(p, out, n_out: int) -> int:
    """Move the stage's timer to ``wake_ts`` (cancel it when nothing waits) if it is not there."""
    es = p.exec_state[0]
    if es.n_waiting == 0:
        es.wake_ts = 0
    if es.wake_ts == es.timer_ts:
        return n_out
    return _set_timer(p, out, n_out)


@njit(**KERNEL)
def _query(p, o, out, n_out: int) -> int:
    """An acknowledgement is overdue: ask the venue for the order's state."""
    now = p.exec_state[0].now
    set_status(p, o, next_status(o.status, OrderAction.ACK_TIMEOUT))
    o.ts_updated = now
    expect(p, now + p.exec_limits[0].ack_timeout_ns)
    if o.queries == 255:
        return n_out  # 255 answers still due: wait for them rather than lose count
    o.queries += 1
    p.counters[Counter.QUERIES] += 1
    return emit(out, n_out, now, CommandKind.QUERY, o, 0)


@njit(**KERNEL)
def _give_up(p, o, out, n_out: int, reason: int) -> int:
    """A re-send the risk checks refuse: the order ends REJECTED, with an ALERT naming why."""
    record_rejection(p, reason)
    p.counters[Counter.REJECTS_RISK] += 1
    o.reject_reason = reason
    close_order(p, o)
    set_status(p, o, OrderStatus.REJECTED)
    return emit(out, n_out, p.exec_state[0].now, CommandKind.ALERT, o, reason)


@njit(**KERNEL)
def _resend(p, o, out, n_out: int) -> int:
    """The backoff is over: send the order again under its client order id, if risk still allows it."""
    now = p.exec_state[0].now
    if o.tif == TimeInForce.GTD and o.expire_ts <= now:
        close_order(p, o)  # its time passed while it waited: the venue would refuse it
        set_status(p, o, OrderStatus.EXPIRED)
        o.ts_updated = now
        return n_out
    o.ts_updated = now
    reason = check_order(p, o.instrument_id, o.side, o.order_type, o.price, o.trigger_price, o.size, 0, o.flags,
                         o.venue_id, False)
    if reason != RejectReason.NONE:
        return _give_up(p, o, out, n_out, reason)
    record_acceptance(p, o.instrument_id, o.side, o.price, o.size, False)
    set_status(p, o, next_status(o.status, OrderAction.RESEND))
    o.attempts += 1
    o.stale_answers = o.queries  # answers to earlier queries cannot know of this send
    p.counters[Counter.RETRIES] += 1
    if waits(p, o.status):
        expect(p, now + p.exec_limits[0].ack_timeout_ns)
    return emit(out, n_out, now, CommandKind.SUBMIT, o, 0)


@njit(**KERNEL)
def on_exec_timer(p, ev, out, n_out: int) -> int:
    """The stage's timer fired: act on every order whose deadline has come, then move the timer.

    One pass over the table, stopping once every waiting order has been seen.
    """
    es = p.exec_state[0]
    if ev.ts_event == es.timer_ts:
        es.timer_ts = 0  # this was the timer set; an older one (a clock that does not replace) is harmless
    es.wake_ts = 0
    n_left = es.n_waiting
    orders = p.orders
    now = es.now
    for slot in range(orders.shape[0]):
        if n_left == 0:
            break
        o = orders[slot]
        if not waits(p, o.status):
            continue
        n_left -= 1
        due = deadline(p, o)
        if due > now:
            expect(p, due)
        elif o.status == OrderStatus.RETRY_WAIT:
            n_out = _resend(p, o, out, n_out)
        else:
            n_out = _query(p, o, out, n_out)
    return sync_timer(p, out, n_out)


@njit(**KERNEL)
def on_refused(p, o, reason: int, action: int, out, n_out: int) -> int:
    """The venue refused an order for a passing reason (TRANSIENT_REJECT) or never got it
    (NOT_FOUND): wait and send it again while attempts are left, else end it.

    A refusal that would have been retried but has no attempt left ends REJECTED with
    an ALERT; a cancel requested before the venue had the order ends CANCELED.
    """
    now = p.exec_state[0].now
    lim = p.exec_limits[0]
    nxt = next_status(o.status, action)
    max_attempts = max(1, lim.max_attempts)
    if nxt == OrderStatus.RETRY_WAIT and o.attempts < max_attempts:
        p.counters[Counter.TRANSIENT_REJECTS] += 1
        set_status(p, o, nxt)
        o.ts_updated = now
        o.reject_reason = reason
        expect(p, deadline(p, o))
        return n_out
    o.ts_updated = now
    if nxt == OrderStatus.CANCELED:
        close_order(p, o)
        set_status(p, o, nxt)
        return n_out
    final = next_status(o.status, OrderAction.REJECTED)
    if final < 0:
        p.counters[Counter.ILLEGAL_TRANSITIONS] += 1
        return n_out
    p.counters[Counter.REJECTS_VENUE] += 1
    record_venue_rejection(p)
    o.reject_reason = reason
    if is_open(o.status):
        close_order(p, o)
    set_status(p, o, final)
    if nxt != OrderStatus.RETRY_WAIT:
        return n_out
    p.counters[Counter.RETRIES_EXHAUSTED] += 1
    return emit(out, n_out, now, CommandKind.ALERT, o, reason)


@njit(**KERNEL)
def _answers_us(o, kind: int, reason: int) -> bool:
    """Whether a status report is the answer the order is waiting for (see ``apply_status``)."""
    if o.queries > 0:
        o.queries -= 1
        if o.stale_answers > 0:
            o.stale_answers -= 1
            return False
        return o.queries == 0 and (o.status == OrderStatus.QUERYING or o.status == OrderStatus.PENDING_CANCEL)
    return o.status == OrderStatus.SUBMITTED and not (kind == EventKind.REJECTED and reason == RejectReason.UNKNOWN_ORDER)


@njit(**KERNEL)
def apply_status(p, o, ev, action: int, out, n_out: int) -> int:
    """Apply the venue's status report (the answer to a QUERY, or to a re-send it already held).

    Only the answer to the latest query counts (channels are FIFO, so it is the last to
    arrive), and only if that query was sent after the order's latest send; an earlier
    one, or one that comes after the order has moved on, is counted and ignored. Nothing is booked from it: fills are booked from fill reports alone, so
    a finished state whose fills have not all arrived yet is ignored too, and the next
    timeout asks again. "Unknown order" lets the order be sent again (``on_refused``).
    """
    kind = ev.kind
    reason = ev.flags & ReportFlag.REASON_MASK
    if not _answers_us(o, kind, reason):
        p.counters[Counter.STALE_STATUS_REPORTS] += 1
        return n_out
    if kind == EventKind.REJECTED and reason == RejectReason.UNKNOWN_ORDER:
        return on_refused(p, o, reason, OrderAction.NOT_FOUND, out, n_out)
    nxt = next_status(o.status, action)
    finished = kind != EventKind.ACCEPTED
    if nxt < 0 or (finished and ev.size != o.filled):
        p.counters[Counter.STALE_STATUS_REPORTS] += 1
        return n_out
    if ev.venue_order_id > 0:
        o.venue_order_id = ev.venue_order_id
    if kind == EventKind.REJECTED:
        p.counters[Counter.REJECTS_VENUE] += 1
        record_venue_rejection(p)
        o.reject_reason = reason
    if nxt == OrderStatus.ACCEPTED and o.filled > 0:
        nxt = OrderStatus.PARTIALLY_FILLED
    if is_open(o.status) and not is_open(nxt):
        close_order(p, o)
    o.ts_updated = p.exec_state[0].now
    set_status(p, o, nxt)
    return n_out
