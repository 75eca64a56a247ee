"""The order state machine: the TRANSITIONS table against an independently written list."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from framework.order_state import (
    N_ACTION,
    N_STATUS,
    TERMINAL,
    TRANSITIONS,
    OrderAction,
    OrderStatus,
    is_open,
    next_status,
)

S, A = OrderStatus, OrderAction

# Every legal (status, action) -> status, written out from the order life cycle rather than
# from the table's code: requests from the strategy (SUBMIT, CANCEL_REQUEST, MODIFY_REQUEST)
# and reports from the venue. Anything not listed is illegal.
LEGAL = {
    # A new order is sent, or refused by risk before it leaves.
    (S.INITIALIZED, A.SUBMIT): S.SUBMITTED,
    (S.INITIALIZED, A.REJECTED): S.REJECTED,
    # Sent, not yet acknowledged: the venue may answer anything; it can be cancelled, not modified.
    (S.SUBMITTED, A.ACCEPTED): S.ACCEPTED,
    (S.SUBMITTED, A.REJECTED): S.REJECTED,
    (S.SUBMITTED, A.PARTIALLY_FILLED): S.PARTIALLY_FILLED,
    (S.SUBMITTED, A.FILLED): S.FILLED,
    (S.SUBMITTED, A.CANCELED): S.CANCELED,
    (S.SUBMITTED, A.EXPIRED): S.EXPIRED,
    (S.SUBMITTED, A.CANCEL_REQUEST): S.PENDING_CANCEL,
    # Working.
    (S.ACCEPTED, A.ACCEPTED): S.ACCEPTED,
    (S.ACCEPTED, A.PARTIALLY_FILLED): S.PARTIALLY_FILLED,
    (S.ACCEPTED, A.FILLED): S.FILLED,
    (S.ACCEPTED, A.CANCELED): S.CANCELED,
    (S.ACCEPTED, A.EXPIRED): S.EXPIRED,
    (S.ACCEPTED, A.MODIFIED): S.ACCEPTED,
    (S.ACCEPTED, A.CANCEL_REQUEST): S.PENDING_CANCEL,
    (S.ACCEPTED, A.MODIFY_REQUEST): S.PENDING_MODIFY,
    # Working with some filled.
    (S.PARTIALLY_FILLED, A.ACCEPTED): S.PARTIALLY_FILLED,
    (S.PARTIALLY_FILLED, A.PARTIALLY_FILLED): S.PARTIALLY_FILLED,
    (S.PARTIALLY_FILLED, A.FILLED): S.FILLED,
    (S.PARTIALLY_FILLED, A.CANCELED): S.CANCELED,
    (S.PARTIALLY_FILLED, A.EXPIRED): S.EXPIRED,
    (S.PARTIALLY_FILLED, A.MODIFIED): S.PARTIALLY_FILLED,
    (S.PARTIALLY_FILLED, A.CANCEL_REQUEST): S.PENDING_CANCEL,
    (S.PARTIALLY_FILLED, A.MODIFY_REQUEST): S.PENDING_MODIFY,
    # Cancel in flight: it may still trade; a refused cancel puts it back to working.
    (S.PENDING_CANCEL, A.ACCEPTED): S.PENDING_CANCEL,
    (S.PENDING_CANCEL, A.PARTIALLY_FILLED): S.PENDING_CANCEL,
    (S.PENDING_CANCEL, A.MODIFIED): S.PENDING_CANCEL,
    (S.PENDING_CANCEL, A.FILLED): S.FILLED,
    (S.PENDING_CANCEL, A.CANCELED): S.CANCELED,
    (S.PENDING_CANCEL, A.EXPIRED): S.EXPIRED,
    (S.PENDING_CANCEL, A.REJECTED): S.REJECTED,  # the order itself was refused
    (S.PENDING_CANCEL, A.CANCEL_REJECTED): S.ACCEPTED,
    # Modify in flight: confirmed or refused, and it may trade meanwhile; a cancel may follow.
    (S.PENDING_MODIFY, A.MODIFIED): S.ACCEPTED,
    (S.PENDING_MODIFY, A.REJECTED): S.REJECTED,
    (S.PENDING_MODIFY, A.CANCEL_REJECTED): S.ACCEPTED,
    (S.PENDING_MODIFY, A.ACCEPTED): S.PENDING_MODIFY,
    (S.PENDING_MODIFY, A.PARTIALLY_FILLED): S.PENDING_MODIFY,
    (S.PENDING_MODIFY, A.FILLED): S.FILLED,
    (S.PENDING_MODIFY, A.CANCELED): S.CANCELED,
    (S.PENDING_MODIFY, A.EXPIRED): S.EXPIRED,
    (S.PENDING_MODIFY, A.CANCEL_REQUEST): S.PENDING_CANCEL,
    # Recovery (framework/recovery.py). Refused for a passing reason: wait for the backoff.
    (S.SUBMITTED, A.TRANSIENT_REJECT): S.RETRY_WAIT,
    (S.QUERYING, A.TRANSIENT_REJECT): S.RETRY_WAIT,
    # No acknowledgement in time: query, and query again while no answer comes.
    (S.SUBMITTED, A.ACK_TIMEOUT): S.QUERYING,
    (S.QUERYING, A.ACK_TIMEOUT): S.QUERYING,
    # Querying: sent, fate unknown; the venue may answer anything, and "never got it" means retry.
    (S.QUERYING, A.ACCEPTED): S.ACCEPTED,
    (S.QUERYING, A.REJECTED): S.REJECTED,
    (S.QUERYING, A.PARTIALLY_FILLED): S.PARTIALLY_FILLED,
    (S.QUERYING, A.FILLED): S.FILLED,
    (S.QUERYING, A.CANCELED): S.CANCELED,
    (S.QUERYING, A.EXPIRED): S.EXPIRED,
    (S.QUERYING, A.CANCEL_REQUEST): S.PENDING_CANCEL,
    (S.QUERYING, A.NOT_FOUND): S.RETRY_WAIT,
    # A cancel of an order the venue never got: nothing is left of it.
    (S.PENDING_CANCEL, A.NOT_FOUND): S.CANCELED,
    # Waiting to be sent again: not at the venue, so a cancel ends it here; the venue's own word wins.
    (S.RETRY_WAIT, A.RESEND): S.SUBMITTED,
    (S.RETRY_WAIT, A.REJECTED): S.REJECTED,
    (S.RETRY_WAIT, A.CANCEL_REQUEST): S.CANCELED,
    (S.RETRY_WAIT, A.EXPIRED): S.EXPIRED,
    (S.RETRY_WAIT, A.ACCEPTED): S.ACCEPTED,
    (S.RETRY_WAIT, A.PARTIALLY_FILLED): S.PARTIALLY_FILLED,
    (S.RETRY_WAIT, A.FILLED): S.FILLED,
    (S.RETRY_WAIT, A.CANCELED): S.CANCELED,
}
# A refused cancel or modify leaves a working or finished order exactly as it was.
for _status in (S.ACCEPTED, S.PARTIALLY_FILLED, S.FILLED, S.CANCELED, S.REJECTED, S.EXPIRED):
    LEGAL[(_status, A.CANCEL_REJECTED)] = _status
WORKING = {S.SUBMITTED, S.ACCEPTED, S.PARTIALLY_FILLED, S.PENDING_CANCEL, S.PENDING_MODIFY, S.RETRY_WAIT,
           S.QUERYING}


def test_enums_are_dense():
    assert sorted(OrderStatus) == list(range(N_STATUS))
    assert sorted(OrderAction) == list(range(N_ACTION))
    assert TRANSITIONS.shape == (N_STATUS, N_ACTION)
    assert set(TERMINAL) == {S.FILLED, S.CANCELED, S.REJECTED, S.EXPIRED}


def test_table_matches_the_independent_list_exhaustively():
    for status in range(N_STATUS):
        for action in range(N_ACTION):
            expected = LEGAL.get((status, action), -1)
            assert TRANSITIONS[status, action] == expected, (S._fields[status], A._fields[action])
            assert next_status(status, action) == expected


def test_out_of_range_inputs_are_illegal():
    for status, action in [(-1, 0), (N_STATUS, 0), (0, -1), (S.ACCEPTED, N_ACTION), (255, 255)]:
        assert next_status(status, action) == -1


def test_terminal_and_free_statuses_accept_nothing():
    assert np.all(TRANSITIONS[S.FREE] == -1)
    for status in TERMINAL:
        # Only a late refusal of a cancel or modify is expected, and it changes nothing.
        others = [a for a in range(N_ACTION) if a != A.CANCEL_REJECTED]
        assert np.all(TRANSITIONS[status, others] == -1)
        assert TRANSITIONS[status, A.CANCEL_REJECTED] == status


def test_every_working_order_can_still_end():
    # Whatever the strategy asked, a venue's final report is never illegal for a working order.
    for status in WORKING:
        for action in (A.FILLED, A.CANCELED, A.EXPIRED):
            assert next_status(status, action) in TERMINAL


def test_is_open_is_the_working_set():
    for status in range(N_STATUS):
        assert bool(is_open(status)) == (status in WORKING)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(min_value=-2, max_value=N_ACTION + 1), max_size=40))
def test_random_action_sequences_stay_in_the_machine(actions):
    status = S.INITIALIZED
    ended = False
    for action in actions:
        nxt = next_status(status, action)
        assert nxt == LEGAL.get((status, action), -1)
        if ended:
            assert nxt in (-1, status)  # terminal statuses are absorbing
        if nxt < 0:
            continue  # an illegal report leaves the order as it was
        assert 0 <= nxt < N_STATUS
        assert nxt != S.FREE and nxt != S.INITIALIZED
        status = nxt
        ended = status in TERMINAL
        assert bool(is_open(status)) == (not ended)
