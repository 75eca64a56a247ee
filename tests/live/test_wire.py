"""The wire format: bit-exact round trips, one test per rejection reason, and the
promise that no input bytes make the decoder raise anything but DecodeError."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from framework.events import (
    BAR_DTYPE,
    BOOK_DTYPE,
    COMMAND_DTYPE,
    CONTROL_DTYPE,
    EVENT_DTYPE,
    QUOTE_DTYPE,
    REPORT_DTYPE,
    TIMER_DTYPE,
    TRADE_DTYPE,
    CommandKind,
    EventKind,
    Side,
)
from live.wire import (
    HEADER_DTYPE,
    HEADER_SIZE,
    MAGIC,
    WIRE_VERSION,
    DecodeError,
    DecodeReason,
    Frame,
    FrameFlag,
    MsgType,
    RecordType,
    decode_frame,
    encode_frame,
    hex_prefix,
    schema_fingerprint,
)

PINNED_FINGERPRINT = 2755778227
"""schema_fingerprint() for WIRE_VERSION 1. If this test fails, the header or a record
dtype changed: bump WIRE_VERSION, update docs/reference/wire-format.md, then this."""

KIND_DTYPE = {
    EventKind.TRADE: TRADE_DTYPE, EventKind.QUOTE: QUOTE_DTYPE, EventKind.BOOK_DELTA: BOOK_DTYPE,
    EventKind.BOOK_SNAPSHOT: BOOK_DTYPE, EventKind.BAR: BAR_DTYPE, EventKind.TIMER: TIMER_DTYPE,
    EventKind.CONTROL: CONTROL_DTYPE,
}


def event_of_kind(kind: int, i: int = 0) -> np.ndarray:
    """One event of ``kind`` with every payload field set to a distinct non-zero value."""
    dtype = KIND_DTYPE.get(kind, REPORT_DTYPE)
    rec = np.zeros(1, dtype)
    rec["ts_event"] = 1_700_000_000_000_000_000 + i
    rec["ts_recv"] = 1_700_000_000_000_000_123 + i
    rec["kind"] = kind
    rec["side"] = Side.SELL
    rec["flags"] = 0x81
    rec["venue_id"] = 3
    rec["instrument_id"] = -7
    for j, name in enumerate(n for n in dtype.names if dtype.fields[n][1] >= 24):
        rec[name] = (-1) ** j * (123_456_789_012 + 1000 * j + i)
    return rec.view(EVENT_DTYPE)


def every_event() -> np.ndarray:
    out = np.zeros(len(EventKind), EVENT_DTYPE)
    for i, kind in enumerate(EventKind):
        out[i : i + 1] = event_of_kind(kind, i)
    return out


def every_command() -> np.ndarray:
    out = np.zeros(len(CommandKind), COMMAND_DTYPE)
    out["kind"] = list(CommandKind)
    out["ts_event"] = np.arange(len(CommandKind)) + 10**18
    out["client_order_id"] = -5
    out["price"] = 2**62
    out["expire_ts"] = -(2**63)
    return out


def forge(payload: bytes = b"", *, crc: bool = True, **fields: int) -> bytes:
    """A frame with arbitrary header fields and a correct CRC, to reach a specific check."""
    header = np.zeros(1, HEADER_DTYPE)
    defaults = {
        "magic": int.from_bytes(MAGIC, "little"), "version": WIRE_VERSION, "msg_type": MsgType.EVENTS,
        "record_type": RecordType.EVENT, "flags": FrameFlag.CRC if crc else 0, "record_size": 64,
        "publisher_id": 1, "count": len(payload) // 64, "epoch": 1, "sequence": 1,
    }
    for name, value in {**defaults, **fields}.items():
        header[name] = value
    raw = bytearray(header.tobytes() + payload)
    if crc:
        raw[20:24] = struct.pack("<I", zlib.crc32(raw[24:], zlib.crc32(raw[:20])))
    return bytes(raw)


def assert_same_frame(frame: Frame, mtype: MsgType, records: np.ndarray | None, **header: int) -> None:
    assert frame.msg_type == mtype
    for name, value in header.items():
        assert getattr(frame, name) == value, name
    if records is None:
        assert len(frame.records) == 0
    else:
        assert frame.records.dtype == records.dtype
        assert frame.records.tobytes() == records.tobytes()


# -- round trips ------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", list(EventKind), ids=EventKind._fields)
def test_every_event_kind_round_trips_bit_exact(kind: int) -> None:
    records = event_of_kind(kind)
    raw = encode_frame(MsgType.EVENTS, records, publisher_id=4, epoch=99, sequence=12, ts_send=-3)
    frame = decode_frame(raw)
    assert_same_frame(frame, MsgType.EVENTS, records, publisher_id=4, epoch=99, sequence=12, ts_send=-3, aux=0)
    assert frame.record_type == RecordType.EVENT
    assert len(raw) == HEADER_SIZE + 64
    # The kind-specific view reads back every field unchanged.
    dtype = KIND_DTYPE.get(kind, REPORT_DTYPE)
    assert frame.records.view(dtype)[0].tolist() == records.view(dtype)[0].tolist()


def test_every_command_kind_round_trips_bit_exact() -> None:
    commands = every_command()
    frame = decode_frame(encode_frame(MsgType.COMMANDS, commands, publisher_id=2**32 - 1, epoch=2**64 - 1,
                                      sequence=2**64 - 1, aux=2**64 - 1, ts_send=2**63 - 1))
    assert_same_frame(frame, MsgType.COMMANDS, commands, publisher_id=2**32 - 1, epoch=2**64 - 1,
                      sequence=2**64 - 1, aux=2**64 - 1, ts_send=2**63 - 1)


@pytest.mark.parametrize("mtype", [MsgType.HEARTBEAT, MsgType.ACK, MsgType.REPLAY_REQUEST, MsgType.END])
def test_control_frames_round_trip(mtype: MsgType) -> None:
    raw = encode_frame(mtype, publisher_id=1, epoch=5, sequence=7, aux=9, flags=FrameFlag.NACK)
    frame = decode_frame(raw)
    assert_same_frame(frame, mtype, None, sequence=7, aux=9, epoch=5)
    assert frame.flags & FrameFlag.NACK and frame.flags & FrameFlag.CRC
    assert len(raw) == HEADER_SIZE


@pytest.mark.parametrize("records", [every_event(), every_command(), np.zeros(0, EVENT_DTYPE)])
def test_snapshot_frames_carry_events_or_commands(records: np.ndarray) -> None:
    frame = decode_frame(encode_frame(MsgType.SNAPSHOT, records, publisher_id=1, epoch=5, sequence=0))
    assert_same_frame(frame, MsgType.SNAPSHOT, records, sequence=0)


def test_decoding_is_a_view_not_a_copy() -> None:
    records = every_event()
    raw = encode_frame(MsgType.EVENTS, records, publisher_id=1, epoch=1, sequence=1)
    frame = decode_frame(raw)
    assert np.shares_memory(frame.records, np.frombuffer(raw, np.uint8))
    assert frame.records.flags.aligned and not frame.records.flags.writeable
    assert frame.raw is raw
    mutable = bytearray(raw)
    assert decode_frame(memoryview(mutable)).records.tobytes() == records.tobytes()


def test_header_dtype_is_the_layout_the_codec_writes() -> None:
    raw = encode_frame(MsgType.EVENTS, every_event(), publisher_id=6, epoch=77, sequence=8, aux=9, ts_send=10)
    header = np.frombuffer(raw, HEADER_DTYPE, 1)[0]
    assert bytes(raw[:4]) == MAGIC
    assert (header["version"], header["msg_type"], header["record_type"], header["record_size"]) == (1, 1, 1, 64)
    assert (header["publisher_id"], header["count"], header["epoch"], header["sequence"]) == (6, 15, 77, 8)
    assert (header["aux"], header["ts_send"], header["flags"], header["reserved"]) == (9, 10, FrameFlag.CRC, 0)
    assert header["crc32"] == zlib.crc32(raw[24:], zlib.crc32(raw[:20]))
    assert HEADER_SIZE == 56 and HEADER_SIZE % 8 == 0


def test_schema_fingerprint_is_pinned_to_the_wire_version() -> None:
    assert WIRE_VERSION == 1
    assert schema_fingerprint() == PINNED_FINGERPRINT


def test_frames_without_crc_are_accepted_and_checked_otherwise() -> None:
    records = every_event()
    frame = decode_frame(encode_frame(MsgType.EVENTS, records, publisher_id=1, epoch=1, sequence=3, crc=False))
    assert not frame.flags & FrameFlag.CRC and frame.records.tobytes() == records.tobytes()


# -- every rejection reason -----------------------------------------------------------------

_ONE_TRADE = event_of_kind(EventKind.TRADE).tobytes()
_BAD_KIND = bytearray(_ONE_TRADE)
_BAD_KIND[16] = 99
_VALID = encode_frame(MsgType.EVENTS, event_of_kind(EventKind.TRADE), publisher_id=1, epoch=1, sequence=1)

REJECTS = {
    "empty": (b"", DecodeReason.TRUNCATED),
    "short header": (_VALID[:55], DecodeReason.TRUNCATED),
    "magic": (b"XXXX" + _VALID[4:], DecodeReason.BAD_MAGIC),
    "version": (forge(_ONE_TRADE, version=2), DecodeReason.BAD_VERSION),
    "msg type": (forge(_ONE_TRADE, msg_type=0), DecodeReason.BAD_MSG_TYPE),
    "msg type 200": (forge(_ONE_TRADE, msg_type=200), DecodeReason.BAD_MSG_TYPE),
    "record type": (forge(_ONE_TRADE, record_type=7), DecodeReason.BAD_RECORD_TYPE),
    "commands as events": (forge(_ONE_TRADE, msg_type=MsgType.COMMANDS), DecodeReason.BAD_RECORD_TYPE),
    "record size": (forge(_ONE_TRADE, record_size=32), DecodeReason.BAD_RECORD_SIZE),
    "heartbeat with records": (
        forge(_ONE_TRADE, msg_type=MsgType.HEARTBEAT, record_type=0, record_size=0), DecodeReason.BAD_HEADER,
    ),
    "reserved": (forge(_ONE_TRADE, reserved=1), DecodeReason.BAD_HEADER),
    "unknown flag": (forge(_ONE_TRADE, flags=FrameFlag.CRC | 0x40), DecodeReason.BAD_HEADER),
    "epoch zero": (forge(_ONE_TRADE, epoch=0), DecodeReason.BAD_HEADER),
    "sequence zero": (forge(_ONE_TRADE, sequence=0), DecodeReason.BAD_HEADER),
    "replay range empty": (
        forge(msg_type=MsgType.REPLAY_REQUEST, record_type=0, record_size=0, sequence=5, aux=4),
        DecodeReason.BAD_HEADER,
    ),
    "crc without flag": (forge(_ONE_TRADE, crc=False, crc32=1), DecodeReason.BAD_HEADER),
    "count too large": (forge(_ONE_TRADE, count=2), DecodeReason.BAD_LENGTH),
    "count huge": (forge(_ONE_TRADE, count=2**32 - 1), DecodeReason.BAD_LENGTH),
    "trailing bytes": (forge(_ONE_TRADE + b"\0"), DecodeReason.BAD_LENGTH),
    "checksum": (_VALID[:-1] + bytes([_VALID[-1] ^ 1]), DecodeReason.BAD_CHECKSUM),
    "event kind": (forge(bytes(_BAD_KIND)), DecodeReason.BAD_RECORD_KIND),
    "event kind, no crc": (forge(bytes(_BAD_KIND), crc=False), DecodeReason.BAD_RECORD_KIND),
    "command kind": (
        forge(np.zeros(1, COMMAND_DTYPE).tobytes(), msg_type=MsgType.COMMANDS, record_type=RecordType.COMMAND),
        DecodeReason.BAD_RECORD_KIND,
    ),
    "str": ("not bytes", DecodeReason.NOT_BYTES),
    "int": (12, DecodeReason.NOT_BYTES),
    "None": (None, DecodeReason.NOT_BYTES),
    "strided": (memoryview(_VALID * 2)[::2], DecodeReason.NOT_BYTES),
}


@pytest.mark.parametrize("case", list(REJECTS))
def test_each_malformed_frame_is_rejected_with_its_reason(case: str) -> None:
    raw, reason = REJECTS[case]
    with pytest.raises(DecodeError) as info:
        decode_frame(raw)
    assert info.value.reason == reason
    assert reason.name in str(info.value)


def test_decode_error_names_the_publisher_and_sequence_when_readable() -> None:
    with pytest.raises(DecodeError) as info:
        decode_frame(forge(bytes(_BAD_KIND), publisher_id=42, sequence=77))
    assert (info.value.publisher_id, info.value.sequence) == (42, 77)
    assert hex_prefix(_VALID, 4) == MAGIC.hex()
    assert hex_prefix(None) == "<NoneType>"


def test_the_encoder_refuses_what_the_decoder_would_reject() -> None:
    trade = event_of_kind(EventKind.TRADE)
    bad_kind = trade.copy()
    bad_kind["kind"] = 0
    cases = [
        lambda: encode_frame(MsgType.EVENTS, bad_kind, publisher_id=1, epoch=1, sequence=1),
        lambda: encode_frame(MsgType.EVENTS, np.zeros(1, COMMAND_DTYPE), publisher_id=1, epoch=1, sequence=1),
        lambda: encode_frame(MsgType.EVENTS, trade, publisher_id=1, epoch=1, sequence=0),
        lambda: encode_frame(MsgType.EVENTS, trade, publisher_id=1, epoch=0, sequence=1),
        lambda: encode_frame(MsgType.EVENTS, trade, publisher_id=-1, epoch=1, sequence=1),
        lambda: encode_frame(MsgType.EVENTS, trade, publisher_id=1, epoch=2**64, sequence=1),
        lambda: encode_frame(MsgType.EVENTS, trade, publisher_id=1, epoch=1, sequence=1, ts_send=2**63),
        lambda: encode_frame(MsgType.EVENTS, trade, publisher_id=1, epoch=1, sequence=1, flags=0x40),
        lambda: encode_frame(MsgType.HEARTBEAT, trade, publisher_id=1, epoch=1, sequence=1),
        lambda: encode_frame(MsgType.REPLAY_REQUEST, publisher_id=1, epoch=1, sequence=3, aux=2),
        lambda: encode_frame(9, publisher_id=1, epoch=1, sequence=3),
        lambda: encode_frame(MsgType.EVENTS, np.zeros((2, 2), EVENT_DTYPE), publisher_id=1, epoch=1, sequence=1),
        lambda: encode_frame(MsgType.EVENTS, np.zeros(1, TRADE_DTYPE), publisher_id=1, epoch=1, sequence=1),
    ]
    for make in cases:
        with pytest.raises(ValueError):
            make()


# -- properties -----------------------------------------------------------------------------

_EVENT_KINDS = st.sampled_from(list(EventKind))
_COMMAND_KINDS = st.sampled_from(list(CommandKind))


@st.composite
def record_arrays(draw: st.DrawFn) -> np.ndarray:
    """Arbitrary record bytes of either dtype, with valid kinds (every other field free)."""
    command = draw(st.booleans())
    n = draw(st.integers(0, 12))
    raw = draw(st.binary(min_size=64 * n, max_size=64 * n))
    records = np.frombuffer(raw, COMMAND_DTYPE if command else EVENT_DTYPE).copy()
    records["kind"] = draw(st.lists(_COMMAND_KINDS if command else _EVENT_KINDS, min_size=n, max_size=n))
    return records


@st.composite
def valid_frames(draw: st.DrawFn) -> tuple[bytes, dict]:
    records = draw(record_arrays())
    command = records.dtype == COMMAND_DTYPE
    mtype = draw(st.sampled_from([MsgType.COMMANDS if command else MsgType.EVENTS, MsgType.SNAPSHOT]))
    fields = {
        "publisher_id": draw(st.integers(0, 2**32 - 1)),
        "epoch": draw(st.integers(1, 2**64 - 1)),
        "sequence": draw(st.integers(1, 2**64 - 1)),
        "aux": draw(st.integers(0, 2**64 - 1)),
        "ts_send": draw(st.integers(-(2**63), 2**63 - 1)),
    }
    crc = draw(st.booleans())
    raw = encode_frame(mtype, records, crc=crc, **fields)
    return raw, {"mtype": mtype, "records": records, **fields}


def decodes_or_rejects(buf: object) -> Frame | None:
    """The decoder's contract: a Frame consistent with its bytes, or DecodeError."""
    try:
        frame = decode_frame(buf)
    except DecodeError as err:
        assert isinstance(err.reason, DecodeReason)
        return None
    n = memoryview(buf).nbytes
    assert n == HEADER_SIZE + 64 * len(frame.records)
    assert frame.msg_type in MsgType and frame.epoch >= 1
    if len(frame.records):
        allowed = EventKind if frame.record_type == RecordType.EVENT else CommandKind
        assert set(frame.records["kind"].tolist()) <= set(allowed)
    return frame


@settings(max_examples=300, deadline=None)
@given(valid_frames())
def test_round_trip_of_arbitrary_records_and_header_values(case: tuple[bytes, dict]) -> None:
    raw, sent = case
    frame = decode_frame(raw)
    assert frame.msg_type == sent["mtype"]
    assert frame.records.tobytes() == sent["records"].tobytes()
    for name in ("publisher_id", "epoch", "sequence", "aux", "ts_send"):
        assert getattr(frame, name) == sent[name]


@settings(max_examples=1000, deadline=None)
@given(st.binary(max_size=400))
def test_any_bytes_decode_or_raise_decode_error(raw: bytes) -> None:
    decodes_or_rejects(raw)


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.fixed_dictionaries(
        {
            "version": st.sampled_from([1, 1, 1, 0, 2, 255]),
            "msg_type": st.integers(0, 8),
            "record_type": st.integers(0, 3),
            "flags": st.integers(0, 255),
            "record_size": st.sampled_from([0, 64, 64, 1, 65535]),
            "reserved": st.sampled_from([0, 0, 0, 1]),
            "count": st.integers(0, 4),
            "epoch": st.sampled_from([0, 1, 2**64 - 1]),
            "sequence": st.sampled_from([0, 1, 5, 2**64 - 1]),
            "aux": st.sampled_from([0, 4, 5, 2**64 - 1]),
        }
    ),
    st.binary(max_size=300),
    st.booleans(),
)
def test_forged_headers_decode_or_raise_decode_error(fields: dict, payload: bytes, crc: bool) -> None:
    """Valid magic and a correct CRC, so the fuzz reaches every later check."""
    flags = fields.pop("flags")
    flags = flags | FrameFlag.CRC if crc else flags & ~FrameFlag.CRC
    decodes_or_rejects(forge(payload, crc=crc, flags=flags, **fields))


@settings(max_examples=500, deadline=None)
@given(valid_frames(), st.data())
def test_mutated_frames_never_raise_anything_else(case: tuple[bytes, dict], data: st.DataObject) -> None:
    raw, _ = case
    op = data.draw(st.sampled_from(["flip", "truncate", "extend", "splice"]))
    if op == "flip":
        pos = data.draw(st.integers(0, len(raw) - 1))
        mask = data.draw(st.integers(1, 255))
        mutated = raw[:pos] + bytes([raw[pos] ^ mask]) + raw[pos + 1 :]
    elif op == "truncate":
        mutated = raw[: data.draw(st.integers(0, len(raw) - 1))]
    elif op == "extend":
        mutated = raw + data.draw(st.binary(min_size=1, max_size=130))
    else:
        pos = data.draw(st.integers(0, len(raw)))
        mutated = raw[:pos] + data.draw(st.binary(min_size=1, max_size=64)) + raw[pos:]
    frame = decodes_or_rejects(mutated)
    if op in ("truncate", "extend"):
        assert frame is None  # the header still says how long the frame is
    if op == "flip" and raw[7] & FrameFlag.CRC:
        # Under the CRC every single-byte change is caught (the checksum field included).
        assert frame is None


@settings(max_examples=200, deadline=None)
@given(valid_frames())
def test_decoder_accepts_any_byte_buffer_type(case: tuple[bytes, dict]) -> None:
    raw, _ = case
    for buf in (raw, bytearray(raw), memoryview(raw), np.frombuffer(raw, np.uint8)):
        assert decode_frame(buf).records.tobytes() == decode_frame(raw).records.tobytes()
    assume(len(raw) > HEADER_SIZE)
    as_u8_2d = np.frombuffer(raw[: HEADER_SIZE + 64], np.uint8).reshape(-1, 8)
    decodes_or_rejects(as_u8_2d)
