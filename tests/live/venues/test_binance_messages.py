"""Binance JSON -> event records: exact values, the documented field mapping, and rejection of anything else."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pytest
from binance_fixtures import SYMBOL, SYMBOLS, T0_MS, capture_lines, fixed, synthetic_messages
from hypothesis import given, settings
from hypothesis import strategies as st

from framework.data.fixed_point import ParseError, parse_decimal
from framework.events import EVENT_DTYPE, BookFlag, EventKind, Side, concat_events
from live.venues.binance.messages import (
    ControlReply,
    DepthDiff,
    DepthSnapshot,
    Instrument,
    MarketRecords,
    Reason,
    Rejected,
    decode,
    decode_snapshot,
    diff_records,
    parse_fixed,
    snapshot_records,
    split_capture_line,
)

TS = 1_723_161_255_123_456_789
MS = 1_000_000
IID, VID = SYMBOLS[SYMBOL]


def _trade(**over):
    data = {"e": "trade", "E": 1723161256322, "T": 1723161256321, "s": "BTCUSDT", "t": 5266583935,
            "p": "61800.30", "q": "0.006", "X": "MARKET", "m": False}
    data.update(over)
    return {"stream": "btcusdt@trade", "data": data}


def _ticker(**over):
    data = {"e": "bookTicker", "u": 5123107839020, "s": "BTCUSDT", "b": "61800.20", "B": "2.507",
            "a": "61800.30", "A": "2.510", "T": 1723161256313, "E": 1723161256314}
    data.update(over)
    return {"stream": "btcusdt@bookTicker", "data": data}


def _depth(**over):
    data = {"e": "depthUpdate", "E": 1723161256299, "T": 1723161256298, "s": "BTCUSDT", "U": 5123107832006,
            "u": 5123107837557, "pu": 5123107831937, "b": [["58710.20", "0.014"], ["61510.90", "0.000"]],
            "a": [["61800.30", "2.510"]]}
    data.update(over)
    return {"stream": "btcusdt@depth@0ms", "data": data}


def _dec(obj) -> object:
    return decode(json.dumps(obj).encode(), TS, SYMBOLS)


# --------------------------------------------------------------------------- numbers


@pytest.mark.parametrize(
    "text, value",
    [("61800.20", 61_800_200_000_000), ("0.000", 0), ("0.1", 100_000_000), (".5", 500_000_000), ("5.", 5 * 10**9),
     ("1.123456789", 1_123_456_789), ("1.1234567890000", 1_123_456_789), ("-2.5", -2_500_000_000),
     ("+7", 7 * 10**9), ("9223372036.854775807", 2**63 - 1), ("0000012.30", 12_300_000_000)],
)
def test_parse_fixed_is_exact(text, value):
    assert parse_fixed(text) == value


@pytest.mark.parametrize(
    "text", ["", ".", "+", "-", "1e5", "1.2.3", " 1", "1 ", "0x10", "1.0000000001", "9223372036.854775808",
             "٣", "1_000", "nan", "inf", "9" * 41, 1.5, 2, None, ["1"]],
)
def test_parse_fixed_refuses_what_fixed_point_cannot_hold(text):
    with pytest.raises(Rejected) as err:
        parse_fixed(text)
    assert err.value.reason == Reason.BAD_NUMBER


@settings(max_examples=300, deadline=None)
@given(st.from_regex(r"[+-]?[0-9]{0,12}(\.[0-9]{0,12})?", fullmatch=True))
def test_parse_fixed_agrees_with_the_batch_parser(text):
    """The per-message parser accepts and refuses exactly what framework.data.fixed_point does."""
    try:
        expected = int(parse_decimal([text])[0])
    except ParseError:
        expected = None
    try:
        got = parse_fixed(text)
    except Rejected:
        got = None
    assert got == expected
    if got is not None:
        assert got == fixed(text)


# --------------------------------------------------------------------------- field mapping


@pytest.mark.parametrize("maker, side", [(False, Side.BUY), (True, Side.SELL)])
def test_trade_becomes_a_trade_record_with_the_aggressor_side(maker, side):
    msg = _dec(_trade(m=maker))
    assert isinstance(msg, MarketRecords) and msg.stream == "btcusdt@trade"
    (rec,) = msg.records
    assert msg.records.dtype == EVENT_DTYPE
    assert rec["kind"] == EventKind.TRADE and rec["side"] == side
    assert rec["ts_event"] == 1723161256321 * MS and rec["ts_recv"] == TS
    assert (rec["instrument_id"], rec["venue_id"]) == (IID, VID)
    assert rec["price"] == 61_800_300_000_000 and rec["size"] == 6_000_000 and rec["trade_id"] == 5266583935
    assert rec["flags"] == 0


def test_book_ticker_becomes_a_quote_record():
    (rec,) = _dec(_ticker()).records
    assert rec["kind"] == EventKind.QUOTE and rec["side"] == Side.NONE
    assert rec["ts_event"] == 1723161256313 * MS and rec["ts_recv"] == TS
    assert (rec["bid_price"], rec["bid_size"]) == (61_800_200_000_000, 2_507_000_000)
    assert (rec["ask_price"], rec["ask_size"]) == (61_800_300_000_000, 2_510_000_000)


def test_spot_book_ticker_without_venue_time_uses_the_receive_time():
    obj = _ticker()
    for key in ("e", "E", "T"):
        del obj["data"][key]
    (rec,) = _dec(obj).records
    assert rec["ts_event"] == TS


def test_quote_side_with_zero_size_may_have_zero_price_but_a_sized_side_may_not():
    (rec,) = _dec(_ticker(a="0", A="0")).records
    assert rec["ask_price"] == 0 and rec["ask_size"] == 0
    with pytest.raises(Rejected):
        _dec(_ticker(a="0", A="1.0"))


def test_depth_update_keeps_its_update_ids_and_makes_one_record_per_level():
    diff = _dec(_depth())
    assert isinstance(diff, DepthDiff)
    assert (diff.first_update_id, diff.final_update_id, diff.prev_final_update_id) == (
        5123107832006, 5123107837557, 5123107831937)
    recs = diff_records(diff)
    assert recs.dtype == EVENT_DTYPE and len(recs) == 3
    assert list(recs["kind"]) == [EventKind.BOOK_DELTA] * 3
    assert list(recs["side"]) == [Side.BUY, Side.BUY, Side.SELL]
    assert list(recs["price"]) == [58_710_200_000_000, 61_510_900_000_000, 61_800_300_000_000]
    assert list(recs["size"]) == [14_000_000, 0, 2_510_000_000]
    assert list(recs["flags"]) == [0, 0, BookFlag.LAST]
    assert set(recs["sequence"]) == {5123107837557}
    assert set(recs["ts_event"]) == {1723161256298 * MS} and set(recs["ts_recv"]) == {TS}
    assert set(recs["instrument_id"]) == {IID} and set(recs["venue_id"]) == {VID}


def test_spot_depth_update_has_no_pu_and_falls_back_to_event_time():
    obj = _depth()
    del obj["data"]["pu"], obj["data"]["T"]
    obj["stream"] = "btcusdt@depth@100ms"
    diff = _dec(obj)
    assert diff.prev_final_update_id is None and diff.ts_event == 1723161256299 * MS


def test_snapshot_clears_each_side_and_ends_with_last():
    body = json.dumps({"lastUpdateId": 42, "E": T0_MS + 1, "T": T0_MS, "bids": [["10.0", "1"], ["9.5", "2"]],
                       "asks": [["11.0", "3"]]})
    snap = decode_snapshot(body, SYMBOL, TS, SYMBOLS)
    assert isinstance(snap, DepthSnapshot) and snap.last_update_id == 42 and snap.ts_event == T0_MS * MS
    recs = snapshot_records(snap)
    assert list(recs["kind"]) == [EventKind.BOOK_SNAPSHOT] * 3
    assert list(recs["flags"]) == [BookFlag.CLEAR, 0, BookFlag.CLEAR | BookFlag.LAST]
    assert list(recs["side"]) == [Side.BUY, Side.BUY, Side.SELL]
    assert set(recs["sequence"]) == {42}


def test_snapshot_with_an_empty_side_still_clears_it():
    snap = decode_snapshot('{"lastUpdateId": 7, "bids": [], "asks": [["11.0", "3"]]}', SYMBOL, TS, SYMBOLS)
    assert snap.ts_event == TS  # spot snapshots carry no time
    recs = snapshot_records(snap)
    assert list(recs["side"]) == [Side.BUY, Side.SELL]
    assert (recs["price"][0], recs["size"][0]) == (0, 0)
    assert list(recs["flags"]) == [BookFlag.CLEAR, BookFlag.CLEAR | BookFlag.LAST]


def test_subscription_reply_and_bare_events():
    assert _dec({"result": None, "id": 1}) == ControlReply(1, None)
    assert isinstance(_dec(_trade()["data"]), MarketRecords)  # single-stream connections send bare events
    assert isinstance(_dec(_depth()["data"]), DepthDiff)


def test_capture_line_split():
    assert split_capture_line(b"123 {}\n") == (123, b"{}")
    for bad in (b"{}", b"12a {}", b" {}", b"99999999999999999999 {}"):
        with pytest.raises(Rejected):
            split_capture_line(bad)


# --------------------------------------------------------------------------- rejections


@pytest.mark.parametrize(
    "raw, reason",
    [
        (b"not json", Reason.BAD_JSON),
        (b"\xff\xfe\x00garbage", Reason.BAD_JSON),
        (b"[" * 100_000, Reason.BAD_JSON),
        (b"[1, 2]", Reason.NOT_OBJECT),
        (json.dumps({"stream": "btcusdt@trade", "data": [1]}), Reason.NOT_OBJECT),
        (json.dumps({"stream": "btcusdt@trade"}), Reason.MISSING_FIELD),
        (json.dumps(_trade(p=None)), Reason.BAD_NUMBER),
        (json.dumps(_trade(p="abc")), Reason.BAD_NUMBER),
        (json.dumps(_trade(p=61800.3)), Reason.BAD_NUMBER),
        (json.dumps(_trade(p="-1")), Reason.BAD_NUMBER),
        (json.dumps(_trade(q="-0.1")), Reason.BAD_NUMBER),
        (json.dumps(_trade(m="false")), Reason.BAD_FIELD),
        (json.dumps(_trade(T=-1)), Reason.BAD_FIELD),
        (json.dumps(_trade(T=10**20)), Reason.BAD_FIELD),
        (json.dumps(_trade(t=True)), Reason.BAD_FIELD),
        (json.dumps(_trade(e="aggTrade")), Reason.BAD_FIELD),
        (json.dumps(_trade(s="ETHUSDT")), Reason.BAD_FIELD),
        (json.dumps({**_trade(s="ETHUSDT"), "stream": "ethusdt@trade"}), Reason.UNKNOWN_SYMBOL),
        (json.dumps({**_trade(), "stream": "btcusdt@aggTrade"}), Reason.UNKNOWN_STREAM),
        (json.dumps({**_depth(), "stream": "btcusdt@depth20@100ms"}), Reason.UNKNOWN_STREAM),
        (json.dumps(_depth(U=10, u=9)), Reason.BAD_FIELD),
        (json.dumps(_depth(b=[["1.0"]])), Reason.BAD_FIELD),
        (json.dumps(_depth(b="1.0,2.0")), Reason.BAD_FIELD),
        (json.dumps(_depth(a=[["0", "1.0"]])), Reason.BAD_NUMBER),
        (json.dumps(_ticker(B="1e3")), Reason.BAD_NUMBER),
        (json.dumps({"code": -1121, "msg": "Invalid symbol."}), Reason.VENUE_ERROR),
        (json.dumps({"hello": "world"}), Reason.UNKNOWN_STREAM),
    ],
)
def test_malformed_messages_are_rejected_with_a_reason(raw, reason):
    with pytest.raises(Rejected) as err:
        decode(raw, TS, SYMBOLS)
    assert err.value.reason == reason and err.value.detail


def test_malformed_snapshots_are_rejected():
    for body, reason in [
        ('{"code": -1121, "msg": "Invalid symbol."}', Reason.VENUE_ERROR),
        ('{"lastUpdateId": "1", "bids": [], "asks": []}', Reason.BAD_FIELD),
        ('{"lastUpdateId": 1, "bids": [["x", "1"]], "asks": []}', Reason.BAD_NUMBER),
        ('{"lastUpdateId": 1, "asks": []}', Reason.MISSING_FIELD),
        ("<html>", Reason.BAD_JSON),
    ]:
        with pytest.raises(Rejected) as err:
            decode_snapshot(body, SYMBOL, TS, SYMBOLS)
        assert err.value.reason == reason
    with pytest.raises(Rejected) as err:
        decode_snapshot('{"lastUpdateId": 1, "bids": [], "asks": []}', "ETHUSDT", TS, SYMBOLS)
    assert err.value.reason == Reason.UNKNOWN_SYMBOL


def _decodes_or_rejects(raw) -> None:
    try:
        msg = decode(raw, TS, SYMBOLS)
    except Rejected as rej:
        assert rej.reason in vars(Reason).values()
        return
    assert isinstance(msg, (MarketRecords, DepthDiff, ControlReply))
    if isinstance(msg, DepthDiff):
        assert diff_records(msg).dtype == EVENT_DTYPE


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=300))
def test_decoder_survives_any_bytes(raw):
    _decodes_or_rejects(raw)


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=5),
    max_leaves=20,
)


@settings(max_examples=400, deadline=None)
@given(_json)
def test_decoder_survives_any_json(value):
    _decodes_or_rejects(json.dumps(value))


@settings(max_examples=400, deadline=None)
@given(
    st.sampled_from([_trade(), _ticker(), _depth()]),
    st.sampled_from(["e", "E", "T", "s", "t", "p", "q", "m", "u", "U", "pu", "b", "a", "B", "A"]),
    st.one_of(st.just("<missing>"), _json, st.text(alphabet="0123456789.-+e", max_size=25)),
)
def test_decoder_survives_any_mutation_of_a_valid_message(obj, key, value):
    obj = json.loads(json.dumps(obj))
    if value == "<missing>":
        obj["data"].pop(key, None)
    else:
        obj["data"][key] = value
    _decodes_or_rejects(json.dumps(obj))


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(synthetic_messages()), st.data())
def test_decoder_survives_truncation_and_bit_flips(message, data):
    raw = bytearray(message.encode())
    cut = data.draw(st.integers(0, len(raw)))
    flips = data.draw(st.lists(st.tuples(st.integers(0, max(0, cut - 1)), st.integers(0, 255)), max_size=3))
    raw = raw[:cut]
    for pos, byte in flips:
        if pos < len(raw):
            raw[pos] = byte
    _decodes_or_rejects(bytes(raw))


# --------------------------------------------------------------------------- captures


def _decode_capture(lines: list[bytes], symbols) -> np.ndarray:
    parts = []
    for line in lines:
        ts, payload = split_capture_line(line)
        if payload.startswith(b'{"lastUpdateId'):
            parts.append(snapshot_records(decode_snapshot(payload, SYMBOL, ts, symbols)))
            continue
        msg = decode(payload, ts, symbols)
        parts.append(msg.records if isinstance(msg, MarketRecords) else diff_records(msg))
    return concat_events(parts)


def test_synthetic_capture_decodes_line_by_line():
    messages = synthetic_messages()
    events = _decode_capture(capture_lines(messages), SYMBOLS)
    kinds = events["kind"]
    assert (kinds == EventKind.TRADE).sum() == sum('"e":"trade"' in m for m in messages)
    assert (kinds == EventKind.QUOTE).sum() == sum('"e":"bookTicker"' in m for m in messages)
    trades = events[kinds == EventKind.TRADE]
    assert list(trades["trade_id"]) == list(range(1, 10))
    assert list(trades["side"][:2]) == [Side.BUY, Side.SELL]
    assert np.all(np.diff(events["ts_recv"]) >= 0)


def test_real_capture_matches_the_converted_csv_files(shared_data):
    """Every line of the raw capture decodes, and gives record for record what the CSV loaders give.

    The one difference is documented in the loader: it raises the snapshot's ts_event to
    the running maximum of the diffs before it (file order), whereas live decoding keeps
    the snapshot's own transaction time.
    """
    from framework.data.loaders.binance import load_depth, load_quotes, load_trades

    path = shared_data / "depth/binance_usdm_btcusdt_raw_ws_20240808.jsonl.gz"
    with gzip.open(path, "rb") as f:
        lines = f.read().splitlines()
    assert len(lines) == 93_954
    events = _decode_capture(lines, {SYMBOL: Instrument(0, 0)})
    refs = {
        (EventKind.TRADE,): load_trades(shared_data / "trades/binance_usdm_btcusdt_trades_20240808.csv.gz")["trade"],
        (EventKind.QUOTE,): load_quotes(shared_data / "quotes/binance_usdm_btcusdt_quotes_20240808.csv.gz")["quote"],
        (EventKind.BOOK_DELTA, EventKind.BOOK_SNAPSHOT): load_depth(
            shared_data / "depth/binance_usdm_btcusdt_depth_20240808.csv.gz")["book"],
    }
    assert sum(len(r) for r in refs.values()) == len(events)
    for kinds, ref in refs.items():
        mine = events[np.isin(events["kind"], kinds)]
        assert len(mine) == len(ref)
        for name in ref.dtype.names:
            if name == "ts_event" and EventKind.BOOK_SNAPSHOT in kinds:
                delta = mine["kind"] == EventKind.BOOK_DELTA
                assert np.array_equal(mine[name][delta], ref[name][delta])
                assert np.all(mine[name][~delta] <= ref[name][~delta])
                continue
            assert np.array_equal(mine[name], ref[name]), name
