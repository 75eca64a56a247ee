"""Failed ccxt calls classified: what each means for the order (``Outcome``) and the RejectReason to report.

Binance's error code decides where it is known, ccxt's exception class otherwise. What
matters most is whether the request may have taken effect: only one that certainly did
not is retried (``BUSY``); one that may have (``UNKNOWN``) is asked about instead.
"""

from __future__ import annotations

import re
import socket

import aiohttp
import ccxt.async_support as ccxt

from framework.events import RejectReason


class Outcome:
    """What a failed request means for the order (the labels counters are kept under)."""

    BUSY = "busy"  # refused for a passing reason, nothing happened: retry later
    UNKNOWN = "unknown"  # the request may have taken effect: ask, do not repeat
    NOT_FOUND = "not_found"  # the venue does not have the order
    DUPLICATE = "duplicate"  # the venue already has an open order with this client id
    REFUSED = "refused"  # refused for good, ``reason`` says why
    MALFORMED = "malformed"  # the answer could not be read: as UNKNOWN, and counted


class Failure(Exception):
    """A request that failed: its ``outcome``, the RejectReason to report, and a redacted ``detail``."""

    def __init__(self, outcome: str, reason: int, detail: str) -> None:
        super().__init__(f"{outcome}: {detail}")
        self.outcome = outcome
        self.reason = reason
        self.detail = detail


_CODE = re.compile(r'"code"\s*:\s*"?(-?\d+)')
_CODE_OUTCOMES: dict[int, tuple[str, int]] = {
    -1003: (Outcome.BUSY, RejectReason.VENUE_BUSY),  # too many requests (weight)
    -1008: (Outcome.BUSY, RejectReason.VENUE_BUSY),  # server busy
    -1015: (Outcome.BUSY, RejectReason.VENUE_BUSY),  # too many new orders
    -1021: (Outcome.BUSY, RejectReason.VENUE_BUSY),  # timestamp outside recvWindow: refused, clock resyncs
    -1000: (Outcome.UNKNOWN, RejectReason.VENUE_BUSY),  # unknown error
    -1001: (Outcome.UNKNOWN, RejectReason.VENUE_BUSY),  # internal error
    -1006: (Outcome.UNKNOWN, RejectReason.VENUE_BUSY),  # unexpected response, execution status unknown
    -1007: (Outcome.UNKNOWN, RejectReason.VENUE_BUSY),  # backend timeout, execution status unknown
    -2011: (Outcome.NOT_FOUND, RejectReason.UNKNOWN_ORDER),  # unknown order sent (cancel)
    -2013: (Outcome.NOT_FOUND, RejectReason.UNKNOWN_ORDER),  # order does not exist (query, modify)
    -4116: (Outcome.DUPLICATE, RejectReason.DUPLICATE_ORDER),  # futures: client order id is duplicated
    -5021: (Outcome.REFUSED, RejectReason.FOK_NOT_FILLABLE),
    -5022: (Outcome.REFUSED, RejectReason.POST_ONLY_WOULD_TAKE),
    -2022: (Outcome.REFUSED, RejectReason.REDUCE_ONLY),  # reduce-only order rejected
    -4118: (Outcome.REFUSED, RejectReason.REDUCE_ONLY),  # reduce-only margin check failed
    -2025: (Outcome.REFUSED, RejectReason.MAX_OPEN_ORDERS),
    -2027: (Outcome.REFUSED, RejectReason.MAX_POSITION),  # maximum position at the current leverage
    -2018: (Outcome.REFUSED, RejectReason.MAX_GROSS_EXPOSURE),  # balance is insufficient
    -2019: (Outcome.REFUSED, RejectReason.MAX_GROSS_EXPOSURE),  # margin is insufficient
}
_SPOT_REJECTS = (  # spot's -2010 NEW_ORDER_REJECTED says why in its message
    ("Duplicate order sent", (Outcome.DUPLICATE, RejectReason.DUPLICATE_ORDER)),
    ("immediately match and take", (Outcome.REFUSED, RejectReason.POST_ONLY_WOULD_TAKE)),
    ("insufficient balance", (Outcome.REFUSED, RejectReason.MAX_GROSS_EXPOSURE)),
)


def _binance_code(text: str) -> int | None:
    m = _CODE.search(text)
    return int(m.group(1)) if m else None


def _never_sent(exc: BaseException) -> bool:
    """Whether an ExchangeNotAvailable certainly did not reach the matching engine.

    A failed connection (refused, DNS) or a 4xx answer (a gateway refusing the request)
    did not; a 5xx answer or a connection dropped mid-request may have: Binance
    documents that a 5xx leaves the execution status unknown.
    """
    cause = exc.__cause__
    if isinstance(cause, (aiohttp.ClientConnectorError, socket.gaierror)):
        return True
    if cause is not None:
        return False
    parts = str(exc).split(" ", 4)  # ccxt: "<id> <method> <url> <status> <reason> <body>"
    return len(parts) > 3 and parts[3].isdigit() and parts[3].startswith("4")


def classify(exc: BaseException) -> tuple[str, int]:
    """Map a failed ccxt call to (Outcome, RejectReason).

    Binance's error code decides where it is known (the same in production and against a
    loopback fake, where ccxt applies only its market-independent error table); otherwise
    ccxt's exception class does. Anything that is not a ccxt error is an answer ccxt could
    not read: MALFORMED.
    """
    if not isinstance(exc, ccxt.BaseError):
        return Outcome.MALFORMED, RejectReason.VENUE_BUSY
    text = str(exc)
    code = _binance_code(text)
    if code == -2010:
        for needle, outcome in _SPOT_REJECTS:
            if needle in text:
                return outcome
    if code in _CODE_OUTCOMES:
        return _CODE_OUTCOMES[code]
    return _class_outcome(exc)


def _class_outcome(exc: BaseException) -> tuple[str, int]:
    if isinstance(exc, (ccxt.RateLimitExceeded, ccxt.DDoSProtection, ccxt.OnMaintenance, ccxt.InvalidNonce)):
        return Outcome.BUSY, RejectReason.VENUE_BUSY
    if isinstance(exc, ccxt.ExchangeNotAvailable):
        return (Outcome.BUSY if _never_sent(exc) else Outcome.UNKNOWN), RejectReason.VENUE_BUSY
    if isinstance(exc, ccxt.BadResponse):
        return Outcome.MALFORMED, RejectReason.VENUE_BUSY
    if isinstance(exc, ccxt.OperationFailed):  # RequestTimeout, NetworkError and the rest
        return Outcome.UNKNOWN, RejectReason.VENUE_BUSY
    if isinstance(exc, ccxt.OrderNotFound):
        return Outcome.NOT_FOUND, RejectReason.UNKNOWN_ORDER
    if isinstance(exc, ccxt.DuplicateOrderId):
        return Outcome.DUPLICATE, RejectReason.DUPLICATE_ORDER
    if isinstance(exc, ccxt.InsufficientFunds):
        return Outcome.REFUSED, RejectReason.MAX_GROSS_EXPOSURE
    return Outcome.REFUSED, RejectReason.INVALID_ORDER  # InvalidOrder, BadRequest, AuthenticationError, ...


def cancel_reason(failure: Failure) -> int:
    """The RejectReason of a refused cancel or modify: a lost answer leaves the order as the venue has it."""
    if failure.outcome in (Outcome.UNKNOWN, Outcome.MALFORMED, Outcome.BUSY):
        return RejectReason.VENUE_BUSY
    return failure.reason
