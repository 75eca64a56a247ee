"""The wire format: one fixed 56-byte frame header, then ``count`` 64-byte records.

Every message the live runtime sends over ZeroMQ is one frame. The records are the
pipeline's own ``EVENT_DTYPE`` or ``COMMAND_DTYPE`` bytes, so decoding a frame is a
view (``np.frombuffer``) over the received bytes, never a parse, and what the engine
feeds ``step`` is bit for bit what the publisher encoded.

The header carries what the transport needs to deliver a stream in order and to
notice loss: the publisher's id, its epoch (new on every publisher restart) and a
sequence number per publisher and epoch, increasing by one per data frame. A CRC32
covers the whole frame except the CRC field itself, so a corrupted frame is rejected
rather than traded on.

Decoding never raises anything but ``DecodeError`` for any input: every field is
checked before it is trusted (magic, version, message type, record type and size,
length, checksum, record kinds), and the error carries a short reason code that the
transport counts and logs. The layout is written down in ``docs/reference/wire-format.md``.

Both functions are pure and synchronous, so the engine can call them in tight loops
and the asyncio transport (``live.transport``) is a thin layer around them.
"""

from __future__ import annotations

import struct
import zlib
from enum import IntEnum, IntFlag
from typing import NamedTuple

import numpy as np

from framework.events import COMMAND_DTYPE, EVENT_DTYPE, EVENT_SIZE, CommandKind, EventKind

WIRE_VERSION = 1
"""Bumped on any change of the header or of the record dtypes; decoders accept only
their own version, so a mixed deployment fails loudly instead of misreading bytes."""

MAGIC = b"PTWF"
"""First four bytes of every frame ("pipeline-trader wire frame")."""

HEADER_DTYPE = np.dtype(
    {
        "names": [
            "magic", "version", "msg_type", "record_type", "flags", "record_size", "reserved",
            "publisher_id", "count", "crc32", "epoch", "sequence", "aux", "ts_send",
        ],
        "formats": ["<u4", "u1", "u1", "u1", "u1", "<u2", "<u2", "<u4", "<u4", "<u4", "<u8", "<u8", "<u8", "<i8"],
        "offsets": [0, 4, 5, 6, 7, 8, 10, 12, 16, 20, 24, 32, 40, 48],
        "itemsize": 56,
    }
)
"""The frame header as a numpy dtype: the normative layout (little-endian, no padding).
``np.frombuffer(buf, HEADER_DTYPE, 1)`` reads it; the codec uses an identical ``struct``
layout (``_HEADER``) because unpacking 14 scalars that way is several times faster."""

HEADER_SIZE = HEADER_DTYPE.itemsize
RECORD_SIZE = EVENT_SIZE
_CRC_OFFSET = HEADER_DTYPE.fields["crc32"][1]
_CRC_END = _CRC_OFFSET + 4

_HEADER = struct.Struct("<IBBBBHHIIIQQQq")
_PRE = struct.Struct("<IBBBBHHII")  # bytes [0, 20): everything before the CRC
_POST = struct.Struct("<QQQq")  # bytes [24, 56): everything after it
_CRC = struct.Struct("<I")
assert _HEADER.size == HEADER_SIZE and _PRE.size == _CRC_OFFSET and _CRC_END + _POST.size == HEADER_SIZE

_MAGIC_U32 = int.from_bytes(MAGIC, "little")
_U32_MAX = (1 << 32) - 1
_U64_MAX = (1 << 64) - 1
_I64_MIN, _I64_MAX = -(1 << 63), (1 << 63) - 1


class MsgType(IntEnum):
    """What a frame is. The meaning of ``sequence`` and ``aux`` depends on it (see docs)."""

    EVENTS = 1
    """Input events (market data, execution reports, control): EVENT records, sequenced."""
    COMMANDS = 2
    """Commands: COMMAND records, sequenced."""
    SNAPSHOT = 3
    """The publisher's state as of ``sequence`` (the last data frame it covers)."""
    HEARTBEAT = 4
    """No records; ``sequence`` is the publisher's last data sequence, so a subscriber
    that missed the tail of a stream (or joined late) notices it."""
    REPLAY_REQUEST = 5
    """No records; asks a publisher for data frames ``sequence`` .. ``aux`` of ``epoch``."""
    ACK = 6
    """No records; acknowledges commands up to ``sequence`` of sender ``publisher_id``."""
    END = 7
    """No records; the stream is over and ``sequence`` was its last data frame. A finite
    stream (a lockstep session, a replayed day) says so instead of falling silent; the
    publisher repeats it in place of heartbeats, so a subscriber that lost it still learns."""


class RecordType(IntEnum):
    """The dtype of a frame's records."""

    NONE = 0
    EVENT = 1
    COMMAND = 2


class FrameFlag(IntFlag):
    """Bits of the header's ``flags`` byte."""

    CRC = 1
    """``crc32`` holds the checksum; without it the field must be zero."""
    NACK = 2
    """On an ACK: the receiver saw a gap after ``sequence``; resend from there now."""


class DecodeReason(IntEnum):
    """Why a frame was rejected: the label of the rejected-frames counters."""

    NOT_BYTES = 1
    TRUNCATED = 2
    BAD_MAGIC = 3
    BAD_VERSION = 4
    BAD_MSG_TYPE = 5
    BAD_RECORD_TYPE = 6
    BAD_RECORD_SIZE = 7
    BAD_HEADER = 8
    BAD_LENGTH = 9
    BAD_CHECKSUM = 10
    BAD_RECORD_KIND = 11


class DecodeError(ValueError):
    """A frame that must not be used. ``reason`` is the counter label; ``publisher_id``
    and ``sequence`` are filled when the header was long enough to read them (they are
    then unverified, for logging only)."""

    def __init__(
        self, reason: DecodeReason, message: str, publisher_id: int | None = None, sequence: int | None = None
    ) -> None:
        super().__init__(f"{reason.name}: {message}")
        self.reason = reason
        self.publisher_id = publisher_id
        self.sequence = sequence


class Frame(NamedTuple):
    """A decoded frame. ``records`` is a view into ``raw`` (no copy), read-only when
    ``raw`` is ``bytes``; copy it before handing it to code that writes."""

    msg_type: MsgType
    record_type: RecordType
    flags: int
    publisher_id: int
    epoch: int
    sequence: int
    aux: int
    ts_send: int
    records: np.ndarray
    raw: bytes | bytearray | memoryview


# Lookup tables keyed by plain ints: the decoder indexes them with the unpacked header
# fields, and Enum keys would hash through Python code on every frame.
_NONE, _EVENT, _COMMAND = int(RecordType.NONE), int(RecordType.EVENT), int(RecordType.COMMAND)
_DTYPES = {_EVENT: EVENT_DTYPE, _COMMAND: COMMAND_DTYPE}
_EMPTY = {_NONE: np.zeros(0, EVENT_DTYPE), _EVENT: np.zeros(0, EVENT_DTYPE), _COMMAND: np.zeros(0, COMMAND_DTYPE)}
for _arr in _EMPTY.values():
    _arr.setflags(write=False)

_MSG_TYPES = {int(m): m for m in MsgType}
_RECORD_TYPES = {int(r): r for r in RecordType}
_ALLOWED_RECORDS = {
    int(MsgType.EVENTS): (_EVENT,),
    int(MsgType.COMMANDS): (_COMMAND,),
    int(MsgType.SNAPSHOT): (_EVENT, _COMMAND),
    int(MsgType.HEARTBEAT): (_NONE,),
    int(MsgType.REPLAY_REQUEST): (_NONE,),
    int(MsgType.ACK): (_NONE,),
    int(MsgType.END): (_NONE,),
}
_SEQUENCED = (int(MsgType.EVENTS), int(MsgType.COMMANDS))
_REPLAY_REQUEST = int(MsgType.REPLAY_REQUEST)
_KNOWN_FLAGS = int(FrameFlag.CRC | FrameFlag.NACK)
_CRC_FLAG = int(FrameFlag.CRC)
_VALID_KINDS = {_EVENT: bytes(sorted(EventKind)), _COMMAND: bytes(sorted(CommandKind))}
_KIND_OFFSET = {_EVENT: EVENT_DTYPE.fields["kind"][1], _COMMAND: COMMAND_DTYPE.fields["kind"][1]}


def record_type_of(dtype: np.dtype) -> RecordType:
    """Return the wire record type of ``dtype`` (``EVENT_DTYPE`` or ``COMMAND_DTYPE``)."""
    if dtype == EVENT_DTYPE:
        return RecordType.EVENT
    if dtype == COMMAND_DTYPE:
        return RecordType.COMMAND
    raise ValueError(f"records of dtype {dtype} have no wire record type (EVENT_DTYPE or COMMAND_DTYPE expected)")


def _first_bad_kind(payload: bytes | memoryview, record_type: int) -> int:
    """Return the index of the first record whose ``kind`` is unknown, or -1.

    Works on the raw bytes: the kinds are every 64th byte, and ``bytes.translate``
    deleting the valid ones leaves nothing when all are known (C speed, no numpy
    call overhead on the small frames that dominate live traffic)."""
    kinds = bytes(payload[_KIND_OFFSET[record_type] :: RECORD_SIZE])
    if not kinds.translate(None, _VALID_KINDS[record_type]):
        return -1
    valid = _VALID_KINDS[record_type]
    return next(i for i, k in enumerate(kinds) if k not in valid)


def encode_frame(
    msg_type: MsgType,
    records: np.ndarray | None = None,
    *,
    publisher_id: int,
    epoch: int,
    sequence: int,
    aux: int = 0,
    ts_send: int = 0,
    flags: int = 0,
    crc: bool = True,
) -> bytes:
    """Encode one frame. Raises ``ValueError`` for anything ``decode_frame`` would refuse,
    so a frame that encodes always decodes (to the same header and record bytes)."""
    msg_type = int(msg_type)
    if msg_type not in _ALLOWED_RECORDS:
        raise ValueError(f"unknown message type {msg_type}")
    if records is None:
        record_type = _NONE
        payload = b""
        count = 0
    else:
        if records.ndim != 1:
            raise ValueError(f"records must be one-dimensional, got shape {records.shape}")
        record_type = int(record_type_of(records.dtype))
        payload = records.tobytes()
        bad = _first_bad_kind(payload, record_type)
        if bad >= 0:
            kind = payload[bad * RECORD_SIZE + _KIND_OFFSET[record_type]]
            raise ValueError(f"record {bad} has unknown {RecordType(record_type).name.lower()} kind {kind}")
        count = len(records)
    if record_type not in _ALLOWED_RECORDS[msg_type]:
        raise ValueError(f"{MsgType(msg_type).name} frames cannot carry {RecordType(record_type).name} records")
    flags = int(flags)
    if flags & ~_KNOWN_FLAGS:
        raise ValueError(f"unknown flag bits {flags:#x}")
    flags = flags | _CRC_FLAG if crc else flags & ~_CRC_FLAG
    _check_header_values(msg_type, publisher_id, epoch, sequence, aux, ts_send, count)
    pre = _PRE.pack(
        _MAGIC_U32, WIRE_VERSION, msg_type, record_type, flags,
        0 if record_type == _NONE else RECORD_SIZE, 0, publisher_id, count,
    )
    post = _POST.pack(epoch, sequence, aux, ts_send)
    checksum = zlib.crc32(payload, zlib.crc32(post, zlib.crc32(pre))) if crc else 0
    return b"".join((pre, _CRC.pack(checksum), post, payload))


def _check_header_values(
    msg_type: int, publisher_id: int, epoch: int, sequence: int, aux: int, ts_send: int, count: int
) -> None:
    if not 0 <= publisher_id <= _U32_MAX:
        raise ValueError(f"publisher_id {publisher_id} out of range")
    if not 0 <= count <= _U32_MAX:
        raise ValueError(f"{count} records do not fit one frame")
    if not (0 <= epoch <= _U64_MAX and 0 <= sequence <= _U64_MAX and 0 <= aux <= _U64_MAX):
        raise ValueError("epoch, sequence and aux must be unsigned 64-bit integers")
    if not _I64_MIN <= ts_send <= _I64_MAX:
        raise ValueError("ts_send must be a signed 64-bit integer")
    problem = _header_problem(msg_type, epoch, sequence, aux)
    if problem:
        raise ValueError(problem)


def _header_problem(msg_type: int, epoch: int, sequence: int, aux: int) -> str:
    """The per-type rules on epoch, sequence and aux (empty string when they hold)."""
    if epoch == 0:
        return "epoch must be at least 1"
    if sequence == 0 and msg_type in _SEQUENCED:
        return "data frames are numbered from 1"
    if msg_type == _REPLAY_REQUEST and not 1 <= sequence <= aux:
        return f"replay range {sequence}..{aux} is empty or starts at 0"
    return ""


def decode_frame(buf: bytes | bytearray | memoryview) -> Frame:
    """Validate ``buf`` and return it as a ``Frame`` whose records view its bytes.

    Raises ``DecodeError`` (and nothing else) for any input that is not a valid frame.
    """
    try:
        mv = memoryview(buf)
        if mv.ndim != 1 or mv.itemsize != 1 or not mv.c_contiguous:
            mv = mv.cast("B")
    except (TypeError, ValueError, BufferError) as exc:
        raise DecodeError(DecodeReason.NOT_BYTES, f"not a contiguous byte buffer ({type(buf).__name__})") from exc
    n = len(mv)
    if n < HEADER_SIZE:
        raise DecodeError(DecodeReason.TRUNCATED, f"{n} bytes, shorter than the {HEADER_SIZE}-byte header")
    (
        magic, version, msg_type, record_type, flags, record_size, reserved,
        publisher_id, count, checksum, epoch, sequence, aux, ts_send,
    ) = _HEADER.unpack_from(mv)
    if magic != _MAGIC_U32:
        raise DecodeError(DecodeReason.BAD_MAGIC, f"magic {bytes(mv[:4])!r}, expected {MAGIC!r}")
    reason, message = _header_fault(n, version, msg_type, record_type, flags, record_size, reserved, count, epoch,
                                    sequence, aux)
    if reason is None and flags & _CRC_FLAG:
        actual = zlib.crc32(mv[_CRC_END:], zlib.crc32(mv[:_CRC_OFFSET]))
        if actual != checksum:
            reason, message = DecodeReason.BAD_CHECKSUM, f"crc32 {actual:#010x}, header says {checksum:#010x}"
    elif reason is None and checksum:
        reason, message = DecodeReason.BAD_HEADER, "crc32 set without the CRC flag"
    if reason is None and count:
        bad = _first_bad_kind(mv[HEADER_SIZE:], record_type)
        if bad >= 0:
            kind = mv[HEADER_SIZE + bad * RECORD_SIZE + _KIND_OFFSET[record_type]]
            reason, message = DecodeReason.BAD_RECORD_KIND, f"record {bad} has unknown kind {kind}"
    if reason is not None:
        raise DecodeError(reason, message, publisher_id, sequence)
    if count:
        records = np.frombuffer(mv, dtype=_DTYPES[record_type], count=count, offset=HEADER_SIZE)
    else:
        records = _EMPTY[record_type]
    return Frame(
        _MSG_TYPES[msg_type], _RECORD_TYPES[record_type], flags, publisher_id, epoch, sequence, aux, ts_send,
        records, buf,
    )


def _header_fault(
    n: int, version: int, msg_type: int, record_type: int, flags: int, record_size: int, reserved: int,
    count: int, epoch: int, sequence: int, aux: int,
) -> tuple[DecodeReason | None, str]:
    """Check every header field against the rules; return the first broken one."""
    if version != WIRE_VERSION:
        return DecodeReason.BAD_VERSION, f"wire version {version}, this decoder reads {WIRE_VERSION}"
    allowed = _ALLOWED_RECORDS.get(msg_type)
    if allowed is None:
        return DecodeReason.BAD_MSG_TYPE, f"unknown message type {msg_type}"
    if record_type not in allowed:
        return DecodeReason.BAD_RECORD_TYPE, f"record type {record_type} not allowed in message type {msg_type}"
    expected_size = 0 if record_type == _NONE else RECORD_SIZE
    if record_size != expected_size:
        return DecodeReason.BAD_RECORD_SIZE, f"record size {record_size}, expected {expected_size}"
    if record_type == _NONE and count:
        return DecodeReason.BAD_HEADER, f"message type {msg_type} carries no records, header says {count}"
    if flags & ~_KNOWN_FLAGS or reserved:
        return DecodeReason.BAD_HEADER, f"unknown flags {flags:#x} or reserved {reserved:#x}"
    problem = _header_problem(msg_type, epoch, sequence, aux)
    if problem:
        return DecodeReason.BAD_HEADER, problem
    expected_len = HEADER_SIZE + count * record_size
    if n != expected_len:
        return DecodeReason.BAD_LENGTH, f"{n} bytes, header says {count} records = {expected_len} bytes"
    return None, ""


def hex_prefix(buf: object, n: int = 32) -> str:
    """The first ``n`` bytes of ``buf`` as hex, for logging a rejected frame."""
    try:
        head = bytes(memoryview(buf).cast("B")[:n])  # type: ignore[arg-type]
    except (TypeError, ValueError, BufferError):
        return f"<{type(buf).__name__}>"
    return head.hex()


def schema_fingerprint() -> int:
    """CRC32 of the header and record layouts. A test pins it: when it changes, the
    layout on the wire changed and ``WIRE_VERSION`` must be bumped."""
    parts = []
    for dt in (HEADER_DTYPE, EVENT_DTYPE, COMMAND_DTYPE):
        fields = sorted((off, name, fmt.str) for name, (fmt, off, *_) in dt.fields.items())
        parts.append(repr((dt.itemsize, fields)))
    return zlib.crc32("|".join(parts).encode())
