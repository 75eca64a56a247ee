"""The order state machine: which report may move an order from which status to which.

The table is data, not code, so it can be printed, tested exhaustively and reasoned
about. ``next_status(status, action)`` returns -1 for an illegal transition; the
execution stage then leaves the order untouched and counts the anomaly (a late or
duplicated report is a fact of life on real venues, never a reason to corrupt state).

Two statuses belong to the execution stage's recovery (docs/concepts/execution.md):
RETRY_WAIT, an order the venue refused for a passing reason (VENUE_BUSY) or never got,
waiting for its backoff to be sent again under the same client order id; and QUERYING,
an order whose acknowledgement is overdue, whose state has been asked of the venue.
Both count as working: the order's size stays reserved against the risk limits.
"""

from __future__ import annotations

from collections import namedtuple

import numpy as np
from numba import njit

from framework.jit import HOT

OrderStatus = namedtuple(
    "OrderStatus",
    "FREE INITIALIZED SUBMITTED ACCEPTED PARTIALLY_FILLED FILLED CANCELED REJECTED EXPIRED "
    "PENDING_CANCEL PENDING_MODIFY RETRY_WAIT QUERYING",
)(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12)
"""FREE marks an unused slot of the order table."""

OrderAction = namedtuple(
    "OrderAction",
    "SUBMIT ACCEPTED REJECTED PARTIALLY_FILLED FILLED CANCELED EXPIRED MODIFIED CANCEL_REQUEST MODIFY_REQUEST "
    "CANCEL_REJECTED TRANSIENT_REJECT ACK_TIMEOUT NOT_FOUND RESEND",
)(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14)
"""What happens to an order: the strategy's requests, the venue's reports and the
execution stage's own recovery steps. TRANSIENT_REJECT: the venue refused it for a
passing reason (VENUE_BUSY) and attempts are left. ACK_TIMEOUT: no acknowledgement in
time, the venue is queried. NOT_FOUND: the venue says it never got the order (the
answer to a query, or to the cancel of an order it never acknowledged). RESEND: the
backoff is over and the order goes out again under the same client order id."""

N_STATUS = len(OrderStatus)
N_ACTION = len(OrderAction)

TERMINAL = (OrderStatus.FILLED, OrderStatus.CANCELED, OrderStatus.REJECTED, OrderStatus.EXPIRED)


def _build_table() -> np.ndarray:
    s, a = OrderStatus, OrderAction
    t = np.full((N_STATUS, N_ACTION), -1, dtype=np.int8)
    t[s.INITIALIZED, a.SUBMIT] = s.SUBMITTED
    t[s.INITIALIZED, a.REJECTED] = s.REJECTED
    live = {
        # status: what it becomes when the venue says it is still working
        s.SUBMITTED: s.ACCEPTED,
        s.ACCEPTED: s.ACCEPTED,
        s.PARTIALLY_FILLED: s.PARTIALLY_FILLED,
    }
    for st in (s.SUBMITTED, s.QUERYING, s.ACCEPTED, s.PARTIALLY_FILLED):  # QUERYING: sent, fate unknown
        t[st, a.PARTIALLY_FILLED] = s.PARTIALLY_FILLED
        t[st, a.FILLED] = s.FILLED
        t[st, a.CANCELED] = s.CANCELED
        t[st, a.EXPIRED] = s.EXPIRED
        t[st, a.CANCEL_REQUEST] = s.PENDING_CANCEL
    t[s.SUBMITTED, a.ACCEPTED] = s.ACCEPTED
    t[s.SUBMITTED, a.REJECTED] = s.REJECTED
    t[s.ACCEPTED, a.ACCEPTED] = s.ACCEPTED  # duplicated acknowledgement: harmless
    t[s.PARTIALLY_FILLED, a.ACCEPTED] = s.PARTIALLY_FILLED  # late acknowledgement after a fill
    for st in (s.ACCEPTED, s.PARTIALLY_FILLED):
        t[st, a.MODIFY_REQUEST] = s.PENDING_MODIFY
        t[st, a.MODIFIED] = live[st]
    # Pending cancel: the order may still fill; a rejected cancel returns it to working.
    pc = s.PENDING_CANCEL
    t[pc, a.ACCEPTED] = pc
    t[pc, a.PARTIALLY_FILLED] = pc
    t[pc, a.MODIFIED] = pc
    t[pc, a.FILLED] = s.FILLED
    t[pc, a.CANCELED] = s.CANCELED
    t[pc, a.EXPIRED] = s.EXPIRED
    t[pc, a.REJECTED] = s.REJECTED  # the order itself was refused while our cancel was on its way
    t[pc, a.CANCEL_REJECTED] = s.ACCEPTED  # cancel refused; the stage restores PARTIALLY_FILLED if filled > 0
    # Pending modify: the replace may be confirmed or refused, and the order may fill meanwhile.
    pm = s.PENDING_MODIFY
    t[pm, a.MODIFIED] = s.ACCEPTED
    t[pm, a.REJECTED] = s.REJECTED
    t[pm, a.CANCEL_REJECTED] = s.ACCEPTED
    t[pm, a.ACCEPTED] = pm
    t[pm, a.PARTIALLY_FILLED] = pm
    t[pm, a.FILLED] = s.FILLED
    t[pm, a.CANCELED] = s.CANCELED
    t[pm, a.EXPIRED] = s.EXPIRED
    t[pm, a.CANCEL_REQUEST] = pc
    # A refused cancel or modify of a working order changes nothing; after the order has
    # finished it is the expected end of a race (the fill won), not an anomaly.
    for st in (s.ACCEPTED, s.PARTIALLY_FILLED, s.FILLED, s.CANCELED, s.REJECTED, s.EXPIRED):
        t[st, a.CANCEL_REJECTED] = st
    _recovery(t)
    return t


def _recovery(t: np.ndarray) -> None:
    """Retries and unknown outcomes (docs/concepts/execution.md)."""
    s, a = OrderStatus, OrderAction
    # Refused for a passing reason, or never received: wait, then go out again.
    t[s.SUBMITTED, a.TRANSIENT_REJECT] = s.RETRY_WAIT
    t[s.QUERYING, a.TRANSIENT_REJECT] = s.RETRY_WAIT
    t[s.QUERYING, a.NOT_FOUND] = s.RETRY_WAIT
    # A cancel requested before the venue had the order: the venue never will.
    t[s.PENDING_CANCEL, a.NOT_FOUND] = s.CANCELED
    rw = s.RETRY_WAIT
    t[rw, a.RESEND] = s.SUBMITTED
    t[rw, a.REJECTED] = s.REJECTED  # attempts exhausted, or the retry failed the risk checks
    t[rw, a.CANCEL_REQUEST] = s.CANCELED  # not at the venue: canceled here, nothing to send
    t[rw, a.EXPIRED] = s.EXPIRED  # a GTD order whose time passed while it waited
    # The venue had it after all (a report that overtook the refusal): believe the venue.
    t[rw, a.ACCEPTED] = s.ACCEPTED
    t[rw, a.PARTIALLY_FILLED] = s.PARTIALLY_FILLED
    t[rw, a.FILLED] = s.FILLED
    t[rw, a.CANCELED] = s.CANCELED
    # No acknowledgement in time: ask the venue, and ask again while no answer comes.
    t[s.SUBMITTED, a.ACK_TIMEOUT] = s.QUERYING
    q = s.QUERYING
    t[q, a.ACK_TIMEOUT] = q
    t[q, a.ACCEPTED] = s.ACCEPTED
    t[q, a.REJECTED] = s.REJECTED


TRANSITIONS = _build_table()
"""TRANSITIONS[status, action] -> next status, or -1 when illegal."""


@njit(**HOT)
def next_status(status: int, action: int) -> int:
    """Return the status an order moves to, or -1 if ``action`` is illegal in ``status``."""
    if status < 0 or status >= N_STATUS or action < 0 or action >= N_ACTION:
        return -1
    return TRANSITIONS[status, action]


@njit(**HOT)
def is_open(status: int) -> bool:
    """Whether an order may still trade (it counts towards exposure and open orders)."""
    return (
        status == OrderStatus.SUBMITTED
        or status == OrderStatus.ACCEPTED
        or status == OrderStatus.PARTIALLY_FILLED
        or status == OrderStatus.PENDING_CANCEL
        or status == OrderStatus.PENDING_MODIFY
        or status == OrderStatus.RETRY_WAIT
        or status == OrderStatus.QUERYING
    )
