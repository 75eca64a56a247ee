"""Turn Binance market-data JSON into checked event records, or a reasoned rejection.

Parsing is pure: the receive time is a parameter, ids come from a symbol map the
caller gives, and nothing here does I/O or keeps state. The same code decodes a live
WebSocket frame and a line of a recorded capture, so a replay exercises exactly what
production runs.

Field mapping (the same as ``framework.data.loaders.binance`` for the converted CSVs):

* ``trade`` -> TRADE: ``ts_event`` = ``T``, ``side`` the aggressor (``m`` true means the
  buyer was the maker, so the seller hit the bid: SELL), ``trade_id`` = ``t``.
* ``bookTicker`` -> QUOTE: ``ts_event`` = ``T`` (spot has none: ``ts_recv``).
* ``depthUpdate`` -> ``DepthDiff``: the update ids stay visible because the book
  synchroniser (``book_sync``) must check them before any record is released; its
  records are BOOK_DELTA, one per level, bids then asks, ``sequence`` = ``u`` and
  ``BookFlag.LAST`` on the last level of the message.
* REST ``/depth`` reply -> ``DepthSnapshot``: records are BOOK_SNAPSHOT with
  ``BookFlag.CLEAR`` on the first record of each side and ``LAST`` on the final one.

Every failure is a ``Rejected`` carrying one of ``Reason``'s short codes (the label a
counter is kept under) and a detail for the log. Prices and sizes are read from their
decimal text straight into int64 fixed point: never through float.
"""

from __future__ import annotations

import json
import re
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from framework.events import EVENT_DTYPE, PRICE_SCALE, BookFlag, EventKind, Side

_I64_MAX = (1 << 63) - 1
_MS = 1_000_000
_MAX_MS = _I64_MAX // _MS
_MAX_NUMBER_TEXT = 40  # longer than any int64 fixed-point value needs, short enough to keep parsing cheap
_SCALE_DIGITS = len(str(PRICE_SCALE)) - 1
_POW10 = [10**k for k in range(_SCALE_DIGITS + 1)]
_DECIMAL = re.compile(r"([+-]?)([0-9]*)(?:\.([0-9]*))?")
_DIFF_STREAM = re.compile(r"depth(@[0-9]+ms)?")  # diff streams; depth5/10/20 are partial books, not diffs
# EVENT_DTYPE's bytes: header (ts_event, ts_recv, kind, side, flags, venue_id, instrument_id), then the payload
_TRADE = _BOOK = struct.Struct("<qqBbBBiqqq16x")  # price, size, trade_id | sequence
_QUOTE = struct.Struct("<qqBbBBiqqqq8x")  # bid_price, bid_size, ask_price, ask_size


class Reason:
    """Rejection reasons: the labels counters are kept under (stable, snake_case)."""

    BAD_JSON = "bad_json"
    NOT_OBJECT = "not_object"
    MISSING_FIELD = "missing_field"
    BAD_FIELD = "bad_field"
    BAD_NUMBER = "bad_number"
    UNKNOWN_STREAM = "unknown_stream"
    UNKNOWN_SYMBOL = "unknown_symbol"
    VENUE_ERROR = "venue_error"


class Rejected(ValueError):
    """A message that cannot become records: ``reason`` is a ``Reason`` code, ``detail`` says why."""

    def __init__(self, reason: str, detail: str) -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}")


class Instrument(NamedTuple):
    """Where a Binance symbol's records go: the pipeline's instrument and venue ids."""

    instrument_id: int
    venue_id: int


SymbolMap = Mapping[str, Instrument]
"""Upper-case Binance symbol (``BTCUSDT``) -> ``Instrument``."""

Level = tuple[int, int]
"""(price, size) in fixed point; size 0 deletes the level."""


@dataclass(frozen=True, slots=True)
class MarketRecords:
    """Records ready to publish as they are (trades, quotes)."""

    stream: str
    records: np.ndarray


@dataclass(frozen=True, slots=True)
class DepthDiff:
    """One ``depthUpdate``: update ids ``U``..``u`` (``pu`` on futures) and the levels it changes."""

    symbol: str
    instrument: Instrument
    first_update_id: int
    final_update_id: int
    prev_final_update_id: int | None
    ts_event: int
    ts_recv: int
    bids: tuple[Level, ...]
    asks: tuple[Level, ...]


@dataclass(frozen=True, slots=True)
class DepthSnapshot:
    """A REST depth snapshot: the whole book as of update id ``last_update_id``."""

    symbol: str
    instrument: Instrument
    last_update_id: int
    ts_event: int
    ts_recv: int
    bids: tuple[Level, ...]
    asks: tuple[Level, ...]


@dataclass(frozen=True, slots=True)
class ControlReply:
    """The venue's answer to a SUBSCRIBE/UNSUBSCRIBE request: not market data, not an error."""

    request_id: Any
    result: Any


Message = MarketRecords | DepthDiff | DepthSnapshot | ControlReply


# --------------------------------------------------------------------------- numbers


def parse_fixed(text: object) -> int:
    """Parse a decimal string such as ``"61800.20"`` into int64 fixed point, exactly.

    The per-message twin of ``framework.data.fixed_point.parse_decimal`` (which is
    built for whole columns): same grammar (optional sign, digits, one optional
    point), same refusal of digits that fixed point cannot hold, same int64 range.
    Raise ``Rejected(BAD_NUMBER)`` otherwise; a JSON number is refused too, since
    Binance sends prices as text precisely so that nobody rounds them.
    """
    if type(text) is str and text.isascii():  # fast path for plain "123.45"
        whole, _, frac = text.partition(".")
        if whole.isdigit() and (not frac or frac.isdigit()) and len(frac) <= _SCALE_DIGITS and len(whole) <= 9:
            return int(whole) * PRICE_SCALE + (int(frac) * _POW10[_SCALE_DIGITS - len(frac)] if frac else 0)
    if not isinstance(text, str):
        raise Rejected(Reason.BAD_NUMBER, f"expected a decimal string, got {type(text).__name__} {_clip(text)}")
    if len(text) > _MAX_NUMBER_TEXT:
        raise Rejected(Reason.BAD_NUMBER, f"decimal string too long ({len(text)} characters)")
    m = _DECIMAL.fullmatch(text)
    if m is None:
        raise Rejected(Reason.BAD_NUMBER, f"not a decimal number: {text!r}")
    sign, whole, frac = m.group(1), m.group(2), m.group(3) or ""
    if not whole and not frac:
        raise Rejected(Reason.BAD_NUMBER, f"not a decimal number: {text!r}")
    if len(frac) > _SCALE_DIGITS:
        if frac[_SCALE_DIGITS:].strip("0"):
            raise Rejected(Reason.BAD_NUMBER, f"more than {_SCALE_DIGITS} decimals: {text!r}")
        frac = frac[:_SCALE_DIGITS]
    value = int(whole or "0") * PRICE_SCALE + int(frac.ljust(_SCALE_DIGITS, "0"))
    if value > _I64_MAX:
        raise Rejected(Reason.BAD_NUMBER, f"out of int64 fixed-point range: {text!r}")
    return -value if sign == "-" else value


def _clip(value: object, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _field(obj: Mapping[str, Any], key: str) -> Any:
    try:
        return obj[key]
    except KeyError:
        raise Rejected(Reason.MISSING_FIELD, f"no field {key!r}") from None


def _int(obj: Mapping[str, Any], key: str, maximum: int = _I64_MAX) -> int:
    value = _field(obj, key)
    if type(value) is not int or not 0 <= value <= maximum:
        raise Rejected(Reason.BAD_FIELD, f"field {key!r} must be an integer in 0..{maximum}, got {_clip(value)}")
    return value


def _ms(obj: Mapping[str, Any], key: str) -> int:
    return _int(obj, key, _MAX_MS) * _MS


def _optional_ms(obj: Mapping[str, Any], key: str, default: int) -> int:
    return _ms(obj, key) if key in obj else default


def _str(obj: Mapping[str, Any], key: str) -> str:
    value = _field(obj, key)
    if not isinstance(value, str):
        raise Rejected(Reason.BAD_FIELD, f"field {key!r} must be a string, got {_clip(value)}")
    return value


def _price(obj: Mapping[str, Any], key: str, *, allow_zero: bool = False) -> int:
    value = parse_fixed(_field(obj, key))
    if value < 0 or (value == 0 and not allow_zero):
        raise Rejected(Reason.BAD_NUMBER, f"field {key!r} must be a positive price, got {obj[key]!r}")
    return value


def _size(obj: Mapping[str, Any], key: str) -> int:
    value = parse_fixed(_field(obj, key))
    if value < 0:
        raise Rejected(Reason.BAD_NUMBER, f"field {key!r} must be a non-negative quantity, got {obj[key]!r}")
    return value


def _levels(obj: Mapping[str, Any], key: str) -> tuple[Level, ...]:
    raw = _field(obj, key)
    if not isinstance(raw, list):
        raise Rejected(Reason.BAD_FIELD, f"field {key!r} must be a list of [price, qty] pairs, got {_clip(raw)}")
    out = []
    for item in raw:
        if not isinstance(item, list) or len(item) != 2:
            raise Rejected(Reason.BAD_FIELD, f"field {key!r} holds {_clip(item)}, not a [price, qty] pair")
        price = parse_fixed(item[0])
        size = parse_fixed(item[1])
        if price <= 0 or size < 0:
            raise Rejected(Reason.BAD_NUMBER, f"field {key!r} holds level {_clip(item)}: price must be > 0, qty >= 0")
        out.append((price, size))
    return tuple(out)


def _instrument(symbols: SymbolMap, symbol: str) -> Instrument:
    try:
        return symbols[symbol]
    except KeyError:
        raise Rejected(Reason.UNKNOWN_SYMBOL, f"symbol {symbol!r} is not in the symbol map") from None


def _load(raw: bytes | bytearray | memoryview | str) -> Any:
    try:
        if isinstance(raw, memoryview):
            raw = raw.tobytes()
        return json.loads(raw)
    except (ValueError, TypeError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise Rejected(Reason.BAD_JSON, f"{type(exc).__name__}: {_clip(str(exc))}") from None


def _object(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise Rejected(Reason.NOT_OBJECT, f"{what} must be a JSON object, got {_clip(value)}")
    return value


# --------------------------------------------------------------------------- records


def _array(data: bytes) -> np.ndarray:
    """Records from packed bytes (writable, like any other array the caller may own)."""
    return np.frombuffer(bytearray(data), dtype=EVENT_DTYPE)


def book_records(
    kind: int,
    instrument: Instrument,
    ts_event: int,
    ts_recv: int,
    sequence: int,
    bids: tuple[Level, ...],
    asks: tuple[Level, ...],
    *,
    clear: bool,
) -> np.ndarray:
    """One BOOK record per level, bids then asks, ``LAST`` on the final record.

    With ``clear`` (snapshots) the first record of each side carries ``CLEAR``; a side
    with no level still gets one record, at price 0 and size 0, so that its CLEAR is
    delivered and the downstream side is emptied rather than left stale.
    """
    if clear:
        bids = bids or ((0, 0),)
        asks = asks or ((0, 0),)
    n = len(bids) + len(asks)
    if n == 0:
        return np.zeros(0, dtype=EVENT_DTYPE)
    pack = _BOOK.pack
    iid, vid = instrument.instrument_id, instrument.venue_id
    parts = []
    i = 0
    for side, levels in ((Side.BUY, bids), (Side.SELL, asks)):
        first = True
        for price, size in levels:
            i += 1
            flags = (BookFlag.CLEAR if clear and first else 0) | (BookFlag.LAST if i == n else 0)
            first = False
            parts.append(pack(ts_event, ts_recv, kind, side, flags, vid, iid, price, size, sequence))
    return _array(b"".join(parts))


def diff_records(diff: DepthDiff) -> np.ndarray:
    """The BOOK_DELTA records of one diff (call only once the synchroniser accepted it)."""
    return book_records(
        EventKind.BOOK_DELTA, diff.instrument, diff.ts_event, diff.ts_recv, diff.final_update_id,
        diff.bids, diff.asks, clear=False,
    )


def snapshot_records(snapshot: DepthSnapshot) -> np.ndarray:
    """The BOOK_SNAPSHOT records that replace the whole downstream book."""
    return book_records(
        EventKind.BOOK_SNAPSHOT, snapshot.instrument, snapshot.ts_event, snapshot.ts_recv,
        snapshot.last_update_id, snapshot.bids, snapshot.asks, clear=True,
    )


# --------------------------------------------------------------------------- events


def _check_symbol(data: Mapping[str, Any], stream_symbol: str | None, symbols: SymbolMap) -> tuple[str, Instrument]:
    symbol = _str(data, "s")
    if stream_symbol is not None and stream_symbol.upper() != symbol:
        raise Rejected(Reason.BAD_FIELD, f"stream symbol {stream_symbol!r} does not match field 's' {symbol!r}")
    return symbol, _instrument(symbols, symbol)


def _check_event_type(data: Mapping[str, Any], expected: str, *, optional: bool = False) -> None:
    if optional and "e" not in data:
        return
    e = _field(data, "e")
    if e != expected:
        raise Rejected(Reason.BAD_FIELD, f"field 'e' is {_clip(e)}, expected {expected!r} on this stream")


def _trade(stream: str, data: Mapping[str, Any], stream_symbol: str | None, ts_recv: int, symbols: SymbolMap):
    _check_event_type(data, "trade")
    _, instrument = _check_symbol(data, stream_symbol, symbols)
    maker = _field(data, "m")
    if not isinstance(maker, bool):
        raise Rejected(Reason.BAD_FIELD, f"field 'm' must be true or false, got {_clip(maker)}")
    rec = _TRADE.pack(
        _ms(data, "T"), ts_recv, EventKind.TRADE, Side.SELL if maker else Side.BUY, 0,
        instrument.venue_id, instrument.instrument_id, _price(data, "p"), _size(data, "q"), _int(data, "t"),
    )
    return MarketRecords(stream, _array(rec))


def _book_ticker(stream: str, data: Mapping[str, Any], stream_symbol: str | None, ts_recv: int, symbols: SymbolMap):
    _check_event_type(data, "bookTicker", optional=True)  # spot's bookTicker carries no 'e'
    _, instrument = _check_symbol(data, stream_symbol, symbols)
    _int(data, "u")  # present on both venues; checked so a truncated message is refused
    bid_size, ask_size = _size(data, "B"), _size(data, "A")
    bid, ask = _price(data, "b", allow_zero=bid_size == 0), _price(data, "a", allow_zero=ask_size == 0)
    rec = _QUOTE.pack(
        _optional_ms(data, "T", ts_recv), ts_recv, EventKind.QUOTE, Side.NONE, 0,
        instrument.venue_id, instrument.instrument_id, bid, bid_size, ask, ask_size,
    )
    return MarketRecords(stream, _array(rec))


def _depth(data: Mapping[str, Any], stream_symbol: str | None, ts_recv: int, symbols: SymbolMap) -> DepthDiff:
    _check_event_type(data, "depthUpdate")
    symbol, instrument = _check_symbol(data, stream_symbol, symbols)
    first, final = _int(data, "U"), _int(data, "u")
    if first > final:
        raise Rejected(Reason.BAD_FIELD, f"first update id U={first} is after final update id u={final}")
    prev = _int(data, "pu") if "pu" in data else None
    ts_event = _ms(data, "T") if "T" in data else _ms(data, "E")
    return DepthDiff(symbol, instrument, first, final, prev, ts_event, ts_recv, _levels(data, "b"), _levels(data, "a"))


def decode(raw: bytes | bytearray | memoryview | str, ts_recv: int, symbols: SymbolMap) -> Message:
    """Decode one WebSocket frame received at ``ts_recv`` (ns, the caller's clock).

    Accept the combined-stream wrapper ``{"stream", "data"}`` (dispatched on the stream
    name, whose event type and symbol must agree with the data), a bare event from a
    single-stream connection (dispatched on ``e``) and a subscription reply. Raise
    ``Rejected`` for anything else; no other exception escapes.
    """
    obj = _object(_load(raw), "a message")
    if "stream" in obj or "data" in obj:
        stream = _str(obj, "stream")
        data = _object(_field(obj, "data"), "field 'data'")
        stream_symbol, _, channel = stream.partition("@")
        if channel == "trade":
            return _trade(stream, data, stream_symbol, ts_recv, symbols)
        if channel == "bookTicker":
            return _book_ticker(stream, data, stream_symbol, ts_recv, symbols)
        if _DIFF_STREAM.fullmatch(channel):
            return _depth(data, stream_symbol, ts_recv, symbols)
        raise Rejected(Reason.UNKNOWN_STREAM, f"stream {_clip(stream)} is not a trade, bookTicker or depth diff stream")
    if "result" in obj and "id" in obj:
        return ControlReply(obj["id"], obj["result"])
    if "error" in obj or "code" in obj:
        raise Rejected(Reason.VENUE_ERROR, f"the venue reports an error: {_clip(obj, 200)}")
    event = obj.get("e")
    if event == "trade":
        return _trade("", obj, None, ts_recv, symbols)
    if event == "bookTicker":
        return _book_ticker("", obj, None, ts_recv, symbols)
    if event == "depthUpdate":
        return _depth(obj, None, ts_recv, symbols)
    raise Rejected(Reason.UNKNOWN_STREAM, f"neither a stream wrapper nor a known event: {_clip(obj)}")


def decode_snapshot(
    raw: bytes | bytearray | memoryview | str, symbol: str, ts_recv: int, symbols: SymbolMap
) -> DepthSnapshot:
    """Decode a REST ``/depth`` reply for ``symbol`` (the reply does not name it).

    ``ts_event`` is the transaction time ``T`` (futures), else ``E``, else ``ts_recv``
    (spot's snapshot carries no time). Raise ``Rejected`` for anything malformed,
    including an error body such as ``{"code": -1121, "msg": "Invalid symbol."}``.
    """
    obj = _object(_load(raw), "a depth snapshot")
    if "code" in obj and "lastUpdateId" not in obj:
        raise Rejected(Reason.VENUE_ERROR, f"the venue reports an error: {_clip(obj, 200)}")
    instrument = _instrument(symbols, symbol)
    last = _int(obj, "lastUpdateId")
    ts_event = _ms(obj, "T") if "T" in obj else _optional_ms(obj, "E", ts_recv)
    return DepthSnapshot(symbol, instrument, last, ts_event, ts_recv, _levels(obj, "bids"), _levels(obj, "asks"))


def split_capture_line(line: bytes | str) -> tuple[int, bytes]:
    """Split a capture line ``<local_receive_ns> <json>`` into its receive time and payload.

    Raise ``Rejected(BAD_FIELD)`` when the line does not start with a time.
    """
    if isinstance(line, str):
        line = line.encode("utf-8", "surrogateescape")
    head, sep, payload = line.rstrip(b"\r\n").partition(b" ")
    if not sep or not head.isdigit() or len(head) > 19 or int(head) > _I64_MAX:
        raise Rejected(Reason.BAD_FIELD, f"capture line does not start with '<receive_ns> ': {_clip(line[:60])}")
    return int(head), payload
