"""The one schema: record dtypes shared by the pipeline, Parquet, the journal and the wire.

Every input event is a 64-byte record (one cache line) with a common 24-byte header
and a 40-byte payload whose meaning depends on ``kind``. Each kind has its own plain
dtype (``TRADE_DTYPE``, ``QUOTE_DTYPE``, ...) with the same header and size, and
``EVENT_DTYPE`` is their union: the payload fields of every kind overlay the same
bytes, so ``trades.view(EVENT_DTYPE)`` is free and decoding a record is a view, not a
parse. The pipeline reads ``EVENT_DTYPE`` records and dispatches on ``kind``.

Numbers
-------
* Time is int64 nanoseconds since the Unix epoch, UTC, in fields named ``ts_*``.
  ``ts_event`` is when the venue says it happened; ``ts_recv`` is when the pipeline
  received it. Everything inside ``step`` runs on ``ts_recv``.
* Prices, sizes and fees are int64 fixed point with ``PRICE_SCALE`` = 1e9 units per
  whole unit (nine decimals, exact for every venue in ``../shared/data``), so order-book
  keys compare exactly. ``1.25`` is stored as ``1_250_000_000``. The largest
  representable value is about 9.2e9, far above any price or order size we trade.
  PnL and equity, which are sums of products, are float64 in the quote currency.
* Enumerations are plain integer constants grouped in namedtuples (``EventKind.TRADE``);
  Numba folds them into the compiled code as constants.
"""

from __future__ import annotations

from collections import namedtuple

import numpy as np

PRICE_SCALE = 1_000_000_000
"""Fixed-point units per whole price, size or fee unit."""
INV_PRICE_SCALE = 1.0 / PRICE_SCALE
TS_MAX = np.iinfo(np.int64).max
"""Timestamp that never arrives: "no timer", "end of data"."""
EVENT_SIZE = 64

EventKind = namedtuple(
    "EventKind",
    "TRADE QUOTE BOOK_DELTA BOOK_SNAPSHOT BAR "
    "ACCEPTED REJECTED PARTIALLY_FILLED FILLED CANCELED EXPIRED MODIFIED CANCEL_REJECTED "
    "TIMER CONTROL",
)(1, 2, 3, 4, 5, 10, 11, 12, 13, 14, 15, 16, 17, 20, 30)
"""Input event kinds. 1-9 market data, 10-19 execution reports, 20 timer, 30 control.
REJECTED refuses an order; CANCEL_REJECTED refuses a cancel or modify request and leaves
the order as it was (FIX's OrderCancelReject), so the two can never be confused."""

CommandKind = namedtuple("CommandKind", "SUBMIT CANCEL MODIFY ALERT SET_TIMER QUERY")(40, 41, 42, 43, 44, 45)
"""Output command kinds. SET_TIMER asks the clock adapter for a TIMER event at ``expire_ts``
carrying ``client_order_id`` as its timer id: timers are outputs like orders, so the
journal holds them and the sim and live clocks serve them the same way. A negative
timer id names one of the pipeline's own timers (``EXEC_TIMER_ID``): a SET_TIMER for it
replaces the one pending under that id, and an ``expire_ts`` of ``TS_MAX`` cancels it.
QUERY asks the venue for the current state of order ``client_order_id`` (an order whose
acknowledgement is overdue); the venue answers with a status report (``ReportFlag.STATUS``)."""

VENUE_COMMAND_KINDS = frozenset((CommandKind.SUBMIT, CommandKind.CANCEL, CommandKind.MODIFY, CommandKind.QUERY))
"""The command kinds a venue handles; the rest go to the clock (SET_TIMER) or the operator
(ALERT). Python routes by this set; compiled code by ``framework.order_table.is_venue_command``,
which a test holds equal to it."""

EXEC_TIMER_ID = -1
"""Timer id of the execution stage's one timer (retry backoff, acknowledgement timeout).
Strategies use ids from 0 up; the pipeline's own ids are negative and never reach them."""

Side = namedtuple("Side", "NONE BUY SELL")(0, 1, -1)
"""Order side, trade aggressor side, book side (BUY = bid). SELL is -1 so that
``side * qty`` is the signed position change."""

OrderType = namedtuple("OrderType", "MARKET LIMIT STOP STOP_LIMIT")(1, 2, 3, 4)

TimeInForce = namedtuple("TimeInForce", "GTC IOC FOK GTD")(1, 2, 3, 4)

OrderFlag = namedtuple("OrderFlag", "POST_ONLY REDUCE_ONLY FLATTEN")(1, 2, 4)
"""Bit flags of a command's ``flags`` field. FLATTEN marks the kill switch's own closing
orders (exempt from the kill switch and the breaker); the execution stage strips it
from every strategy intent, so no strategy can set it."""

BookFlag = namedtuple("BookFlag", "CLEAR LAST")(1, 2)
"""Bit flags of a book record: CLEAR empties that side before applying the level
(the first record of a snapshot), LAST marks the last record of one venue message,
the only point where the book is consistent."""

Liquidity = namedtuple("Liquidity", "NONE MAKER TAKER")(0, 1, 2)
"""``flags`` of a fill report: who provided the liquidity."""

RejectReason = namedtuple(
    "RejectReason",
    "NONE MAX_ORDER_SIZE MAX_POSITION PRICE_COLLAR KILL_SWITCH INVALID_ORDER "
    "POST_ONLY_WOULD_TAKE FOK_NOT_FILLABLE UNKNOWN_ORDER ORDER_TABLE_FULL NO_MARKET "
    "MAX_ORDER_NOTIONAL MAX_GROSS_EXPOSURE PRICE_BAND MAX_OPEN_ORDERS DUPLICATE_ORDER THROTTLE STALE_DATA "
    "BREAKER_REDUCING BREAKER_HALTED INSTRUMENT_HALTED REDUCE_ONLY VENUE_BUSY",
)(*range(23))
"""``flags`` of a REJECTED report and ``reason`` of an ALERT command. VENUE_BUSY is the
venue's transient refusal (rate limit, overload): the one reason worth a retry."""

ReportFlag = namedtuple("ReportFlag", "STATUS REASON_MASK")(0x80, 0x7F)
"""Bits of a report's ``flags`` above its Liquidity or RejectReason. STATUS marks the
venue's answer to a QUERY (or to a SUBMIT of an order it already holds): the order's
current state, not a new event. A status report's kind is that state (ACCEPTED while
the order works, else how it ended; REJECTED with UNKNOWN_ORDER when the venue never
got it), ``size`` the quantity filled so far, which is never booked again."""

ControlCode = namedtuple(
    "ControlCode",
    "KILL_SWITCH_ON KILL_SWITCH_OFF SET_MAX_POSITION SET_MAX_ORDER_SIZE BREAKER_RESET BREAKER_TRIP "
    "HALT_INSTRUMENT RESUME_INSTRUMENT",
)(1, 2, 3, 4, 5, 6, 7, 8)
"""``control`` field of a CONTROL event. KILL_SWITCH_ON/OFF: ``value`` is the scope
(``framework.risk.records.KillScope``, plus KILL_FLATTEN) and ``target`` the venue or
strategy id. BREAKER_TRIP: ``value`` is the state to trip to. HALT/RESUME_INSTRUMENT and
SET_*: ``target`` is the instrument."""

_HEADER = [
    ("ts_event", "<i8", 0),
    ("ts_recv", "<i8", 8),
    ("kind", "u1", 16),
    ("side", "i1", 17),
    ("flags", "u1", 18),
    ("venue_id", "u1", 19),
    ("instrument_id", "<i4", 20),
]


def _record(payload: list[tuple[str, str, int]]) -> np.dtype:
    fields = _HEADER + payload
    return np.dtype(
        {
            "names": [f[0] for f in fields],
            "formats": [f[1] for f in fields],
            "offsets": [f[2] for f in fields],
            "itemsize": EVENT_SIZE,
            "aligned": True,
        }
    )


TRADE_DTYPE = _record([("price", "<i8", 24), ("size", "<i8", 32), ("trade_id", "<i8", 40)])
"""A print. ``side`` is the aggressor (NONE when the venue does not say)."""

QUOTE_DTYPE = _record(
    [("bid_price", "<i8", 24), ("bid_size", "<i8", 32), ("ask_price", "<i8", 40), ("ask_size", "<i8", 48)]
)
"""Best bid and offer (L1). A side with size 0 is absent."""

BOOK_DTYPE = _record([("price", "<i8", 24), ("size", "<i8", 32), ("sequence", "<i8", 40)])
"""One L2 level, for kinds BOOK_DELTA and BOOK_SNAPSHOT: ``side`` is the book side,
``size`` the new absolute size at ``price`` (0 deletes the level), ``flags`` BookFlag,
``sequence`` the venue's update id."""

BAR_DTYPE = _record(
    [("open", "<i8", 24), ("high", "<i8", 32), ("low", "<i8", 40), ("close", "<i8", 48), ("volume", "<i8", 56)]
)
"""An OHLCV bar; ``ts_event`` is the bar's close time."""

REPORT_DTYPE = _record(
    [
        ("price", "<i8", 24),
        ("size", "<i8", 32),
        ("client_order_id", "<i8", 40),
        ("leaves_qty", "<i8", 48),
        ("fee", "<i8", 56),
    ]
)
"""An execution report (kinds ACCEPTED .. CANCEL_REJECTED). For fills ``price``/``size`` are the
last fill and ``fee`` its fee (negative is a rebate), ``flags`` the Liquidity; for
ACCEPTED and MODIFIED ``price``/``leaves_qty`` are the order's working price and size;
for REJECTED and CANCEL_REJECTED ``flags`` is the RejectReason. ``side`` is the order's side."""

ORDER_REPORT_DTYPE = _record(
    [
        ("price", "<i8", 24),
        ("size", "<i8", 32),
        ("client_order_id", "<i8", 40),
        ("leaves_qty", "<i8", 48),
        ("venue_order_id", "<i8", 56),
    ]
)
"""The layout of every report that is not a fill (ACCEPTED, REJECTED, CANCELED, EXPIRED,
MODIFIED, CANCEL_REJECTED and status reports): ``venue_order_id``, the id the venue gave
the order (0 before it had one), overlays ``fee``, which only fills carry. A report with
no client order id is mapped back to its order through it."""

TIMER_DTYPE = _record([("timer_id", "<i8", 24)])
"""A timer the pipeline set has fired; ``ts_event`` is its scheduled time."""

CONTROL_DTYPE = _record([("control", "<i8", 24), ("value", "<i8", 32), ("target", "<i8", 40)])
"""An operator's instruction (ControlCode), e.g. the kill switch."""

KIND_DTYPES: dict[str, np.dtype] = {
    "trade": TRADE_DTYPE,
    "quote": QUOTE_DTYPE,
    "book": BOOK_DTYPE,
    "bar": BAR_DTYPE,
    "report": REPORT_DTYPE,
    "timer": TIMER_DTYPE,
    "control": CONTROL_DTYPE,
}


def _union(dtypes: list[np.dtype]) -> np.dtype:
    names: list[str] = []
    formats: list[np.dtype] = []
    offsets: list[int] = []
    seen: dict[str, tuple[np.dtype, int]] = {}
    for dt in dtypes:
        for name, (fmt, off) in dt.fields.items():
            if name in seen:
                if seen[name] != (fmt, off):
                    raise TypeError(f"field {name!r} has two layouts in the event union")
                continue
            seen[name] = (fmt, off)
            names.append(name)
            formats.append(fmt)
            offsets.append(off)
    return np.dtype({"names": names, "formats": formats, "offsets": offsets, "itemsize": EVENT_SIZE, "aligned": True})


EVENT_DTYPE = _union([*KIND_DTYPES.values(), ORDER_REPORT_DTYPE])
"""The union of every input kind: what ``step`` consumes and the journal records.
``KIND_DTYPES`` lists the kinds stored in the catalog; ``ORDER_REPORT_DTYPE`` is a
second view of a stored report."""

COMMAND_DTYPE = np.dtype(
    {
        "names": [
            "ts_event", "kind", "side", "flags", "venue_id", "instrument_id", "order_type", "tif", "reason",
            "reserved", "client_order_id", "price", "size", "trigger_price", "expire_ts",
        ],
        "formats": ["<i8", "u1", "i1", "u1", "u1", "<i4", "u1", "u1", "<u2", "<u4", "<i8", "<i8", "<i8", "<i8", "<i8"],
        "offsets": [0, 8, 9, 10, 11, 12, 16, 17, 18, 20, 24, 32, 40, 48, 56],
        "itemsize": EVENT_SIZE,
        "aligned": True,
    }
)
"""What ``step`` emits: SUBMIT, CANCEL, MODIFY (``client_order_id`` names the order), ALERT
(``reason`` is a RejectReason), SET_TIMER and QUERY. ``ts_event`` is the decision time, ``flags``
OrderFlag. For MODIFY, ``price`` and ``size`` are the new price and new total size.
``reserved`` is always zero: it names the record's only spare bytes, because numpy
copies (``np.concatenate``, fancy indexing) do not carry unnamed padding, and the
journal hashes commands byte for byte."""

FILL_DTYPE = np.dtype(
    [
        ("ts_event", "<i8"),
        ("client_order_id", "<i8"),
        ("price", "<i8"),
        ("size", "<i8"),
        ("fee", "<i8"),
        ("instrument_id", "<i4"),
        ("venue_id", "u1"),
        ("side", "i1"),
        ("liquidity", "u1"),
        ("order_type", "u1"),
    ],
    align=True,
)
"""One fill as the venue made it, for reports and Parquet."""

EQUITY_DTYPE = np.dtype(
    [
        ("ts_event", "<i8"),
        ("equity", "<f8"),
        ("realized_pnl", "<f8"),
        ("unrealized_pnl", "<f8"),
        ("fees", "<f8"),
        ("gross_exposure", "<f8"),
        ("net_position", "<f8"),
    ],
    align=True,
)
"""A sample of the portfolio, quote currency; ``net_position`` sums instrument quantities
in whole units (meaningful for a single instrument)."""


def to_fixed(value: float | np.ndarray) -> np.ndarray | int:
    """Convert whole units to fixed point, rounding to the nearest unit of 1e-9."""
    out = np.rint(np.asarray(value, dtype=np.float64) * PRICE_SCALE).astype(np.int64)
    return int(out) if out.ndim == 0 else out


def from_fixed(value: int | np.ndarray) -> float | np.ndarray:
    """Convert fixed point to whole units as float64 (for display and statistics)."""
    out = np.asarray(value, dtype=np.float64) * INV_PRICE_SCALE
    return float(out) if out.ndim == 0 else out


def empty_events(n: int) -> np.ndarray:
    """Allocate ``n`` zeroed input events."""
    return np.zeros(n, dtype=EVENT_DTYPE)


def concat_records(parts: list[np.ndarray], dtype: np.dtype) -> np.ndarray:
    """Concatenate record arrays byte for byte, keeping ``dtype`` exactly.

    ``np.concatenate`` promotes a dtype with overlapping fields to one without them
    (``EVENT_DTYPE`` becomes a 184-byte record) and drops unnamed padding bytes; both
    would silently change what the journal hashes. Copy the bytes instead.
    """
    n = sum(len(p) for p in parts)
    out = np.zeros(n, dtype=dtype)
    raw = out.view(np.uint8)
    pos = 0
    for p in parts:
        if p.dtype.itemsize != dtype.itemsize:
            raise TypeError(f"cannot join records of {p.dtype.itemsize} bytes into {dtype.itemsize}-byte records")
        size = len(p) * dtype.itemsize
        raw[pos : pos + size] = np.ascontiguousarray(p).view(np.uint8).reshape(-1)
        pos += size
    return out


_RAW = np.dtype((np.void, EVENT_SIZE))


def copy_records(dst: np.ndarray, src: np.ndarray) -> None:
    """Copy ``src`` into ``dst[:len(src)]`` byte for byte (both of one 64-byte record dtype).

    Assigning union records field by field is how numpy copies them, 28 fields one after
    the other: six microseconds for a single event, which the live engine cannot spend.
    As raw 64-byte items it is one memcpy, and every byte (padding included) is kept.
    """
    if src.dtype.itemsize != EVENT_SIZE or dst.dtype.itemsize != EVENT_SIZE:
        raise TypeError(f"copy_records copies {EVENT_SIZE}-byte records, got {src.dtype} into {dst.dtype}")
    dst[: len(src)].view(_RAW)[:] = np.ascontiguousarray(src).view(_RAW)


def raw_copy(src: np.ndarray, index: np.ndarray | list | None = None) -> np.ndarray:
    """A contiguous copy of records (``src[index]`` if an index or mask is given), byte for byte.

    numpy copies structured records field by field: slowly (microseconds per record), and
    without the padding bytes between fields, which a fresh array then holds as garbage,
    so two copies of equal records need not be equal bytes. As raw items it is one
    memcpy, and every byte is kept."""
    raw = np.ascontiguousarray(src).view(_RAW if src.dtype.itemsize == EVENT_SIZE
                                         else np.dtype((np.void, src.dtype.itemsize)))
    return (raw[index] if index is not None else raw.copy()).view(src.dtype)


def concat_events(parts: list[np.ndarray]) -> np.ndarray:
    """Concatenate event arrays, keeping ``EVENT_DTYPE`` (see ``concat_records``)."""
    return concat_records(parts, EVENT_DTYPE)


class FieldRecord(np.record):
    """A record whose fields win over numpy's own attributes (``size``, ``flags``, ...).

    Used only when Numba's JIT is disabled (``NUMBA_DISABLE_JIT=1``), so that the kernels
    run as plain Python with the same ``rec.field`` syntax Numba compiles.
    """

    def __getattribute__(self, attr: str):
        fields = np.void.__getattribute__(self, "dtype").fields
        if fields is not None and attr in fields:
            return self.getfield(*fields[attr][:2])
        return np.record.__getattribute__(self, attr)


def _jit_disabled() -> bool:
    from numba.core import config

    return bool(config.DISABLE_JIT)


def kernel_view(arr: np.ndarray) -> np.ndarray:
    """Return ``arr`` as the kernels should see it: itself when compiled, field-first records when not."""
    if arr.dtype.names is None or not _jit_disabled():
        return arr
    return arr.view(np.dtype((FieldRecord, arr.dtype)))


INSTRUMENT_RECORD_BYTES = 128
"""Size of each per-instrument state record indexed on every event: the pipeline's
market data, positions and risk state, and the simulated exchange's book. A power of two
makes a record's address one shift of the instrument id: at 120, 72 and 40 bytes each
took a multiply or two adds on the path to every trade's loads. Padding the pipeline's
three took the SMA backtest from 13.2 to 12.6-12.9 ns per row (fastest of 9 runs,
several series), and the exchange's from 12.3 to 12.0 (``bench/backtest_throughput.py
--quick --repeat 5``, twice each)."""


def padded(dtype: np.dtype, itemsize: int = INSTRUMENT_RECORD_BYTES) -> np.dtype:
    """``dtype`` with its fields where they are and unnamed padding up to ``itemsize`` bytes."""
    if dtype.itemsize > itemsize:
        raise ValueError(f"a record of {dtype.itemsize} bytes does not fit in {itemsize}")
    names = list(dtype.names)
    return np.dtype({"names": names, "formats": [dtype.fields[n][0] for n in names],
                     "offsets": [dtype.fields[n][1] for n in names], "itemsize": itemsize, "aligned": True})


def records(n: int, dtype: np.dtype) -> np.ndarray:
    """Allocate ``n`` zeroed records of ``dtype`` for the compiled kernels (see ``kernel_view``)."""
    return kernel_view(np.zeros(n, dtype=dtype))
