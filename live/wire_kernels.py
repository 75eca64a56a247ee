"""The wire format's hot cases, compiled: decode the next EVENTS frame, encode a COMMANDS frame.

``live.wire`` is the codec's definition: it decodes any frame and refuses anything else
with a reason. On the live engine's path from a market-data message to its order, the
same work done in Python (struct unpacking, three CRC32 calls, a numpy view, a named
tuple, then the encoding back) costs more than ``step`` itself, and on a VM a woken
thread pays for every microsecond of it several times over. These kernels do the two
cases that path meets, on raw bytes, inside the compiled engine call
(``live.fastpath``):

* ``decode_events_into``: accept only a well-formed EVENTS frame of the expected
  publisher, epoch and sequence whose record kinds are all known, and copy its records
  out; anything else (a gap, a new epoch, a heartbeat, a snapshot, garbage) returns -1
  and goes to ``live.wire.decode_frame`` and the subscriber as before, so the kernel
  never has to name a reason and never accepts what the codec would refuse;
* ``encode_commands_into``: write a COMMANDS frame byte for byte as ``encode_frame``
  writes it.

Both agree with ``live.wire`` on every input (property tests in
tests/live/test_wire_kernels.py). The CRC is zlib's CRC-32, table-driven.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from framework.events import CommandKind, EventKind
from live.wire import (
    _CRC_END,
    _CRC_OFFSET,
    _MAGIC_U32,
    HEADER_SIZE,
    RECORD_SIZE,
    WIRE_VERSION,
    FrameFlag,
    MsgType,
    RecordType,
)


def _crc_table() -> np.ndarray:
    table = np.zeros(256, np.uint32)
    for n in range(256):
        c = n
        for _ in range(8):
            c = (0xEDB88320 ^ (c >> 1)) if c & 1 else c >> 1
        table[n] = c
    return table


CRC_TABLE = _crc_table()
EVENT_KINDS = np.zeros(256, np.uint8)
EVENT_KINDS[list(EventKind)] = 1
COMMAND_KINDS = np.zeros(256, np.uint8)
COMMAND_KINDS[list(CommandKind)] = 1

_EVENTS, _COMMANDS = int(MsgType.EVENTS), int(MsgType.COMMANDS)
_RT_EVENT, _RT_COMMAND = int(RecordType.EVENT), int(RecordType.COMMAND)
_CRC_FLAG = int(FrameFlag.CRC)
_KNOWN_FLAGS = int(FrameFlag.CRC | FrameFlag.NACK)
_KIND_OFFSET = 16  # of ``kind`` in both EVENT_DTYPE and COMMAND_DTYPE


@njit(cache=True)
def crc32(buf, start: int, stop: int, crc: int) -> int:
    """zlib's CRC-32 of ``buf[start:stop]`` continuing from ``crc`` (``zlib.crc32(data, crc)``)."""
    c = np.uint32(crc) ^ np.uint32(0xFFFFFFFF)
    for i in range(start, stop):
        c = CRC_TABLE[(c ^ np.uint32(buf[i])) & np.uint32(0xFF)] ^ (c >> np.uint32(8))
    return np.int64(c ^ np.uint32(0xFFFFFFFF))


@njit(cache=True)
def _u16(buf, at: int) -> int:
    return np.int64(buf[at]) | (np.int64(buf[at + 1]) << 8)


@njit(cache=True)
def u32(buf, at: int) -> int:
    """A little-endian uint32, as int64 (numba would make a uint64 of it, and a uint64
    returned beside a -1 comes back as a float)."""
    return (np.int64(buf[at]) | (np.int64(buf[at + 1]) << 8) | (np.int64(buf[at + 2]) << 16)
            | (np.int64(buf[at + 3]) << 24))


@njit(cache=True)
def _u64(buf, at: int) -> np.uint64:
    v = np.uint64(0)
    for k in range(7, -1, -1):
        v = (v << np.uint64(8)) | np.uint64(buf[at + k])
    return v


@njit(cache=True)
def _put(buf, at: int, value: np.uint64, n: int) -> None:
    v = np.uint64(value)
    for k in range(n):
        buf[at + k] = np.uint8(v & np.uint64(0xFF))
        v = v >> np.uint64(8)


@njit(cache=True)
def decode_events_into(buf, n: int, publisher_id: int, epoch: int, sequence: int, dst, dst_start: int) -> int:
    """Copy the records of ``buf[:n]`` into the bytes ``dst`` from record ``dst_start`` on, if it
    is a valid EVENTS frame of ``publisher_id`` numbered ``sequence`` in ``epoch``; return how
    many, or -1 for any other input (the caller decodes it the slow way).

    ``epoch`` and ``sequence`` are unsigned 64-bit on the wire and int64 here, compared as
    bit patterns (numba would compare a uint64 with an int64 through float)."""
    if n < HEADER_SIZE or u32(buf, 0) != _MAGIC_U32 or buf[4] != WIRE_VERSION or buf[5] != _EVENTS:
        return -1
    flags = int(buf[7])
    if buf[6] != _RT_EVENT or _u16(buf, 8) != RECORD_SIZE or _u16(buf, 10) != 0 or flags & ~_KNOWN_FLAGS:
        return -1
    count = u32(buf, 16)
    if count == 0 or n != HEADER_SIZE + count * RECORD_SIZE or dst_start + count > dst.shape[0] // RECORD_SIZE:
        return -1
    if u32(buf, 12) != publisher_id or np.int64(_u64(buf, 24)) != epoch or np.int64(_u64(buf, 32)) != sequence:
        return -1
    checksum = u32(buf, _CRC_OFFSET)
    if flags & _CRC_FLAG:
        if crc32(buf, _CRC_END, n, crc32(buf, 0, _CRC_OFFSET, 0)) != checksum:
            return -1
    elif checksum != 0:
        return -1
    for r in range(count):
        if EVENT_KINDS[buf[HEADER_SIZE + r * RECORD_SIZE + _KIND_OFFSET]] == 0:
            return -1
    base = dst_start * RECORD_SIZE
    for i in range(count * RECORD_SIZE):
        dst[base + i] = buf[HEADER_SIZE + i]
    return count


@njit(cache=True)
def encode_commands_into(out, records, n_records: int, publisher_id: int, epoch: int, sequence: int, aux: int,
                         ts_send: int) -> int:
    """Write a COMMANDS frame of the raw command records ``records[:n_records * 64]`` into the
    bytes ``out``, exactly as ``live.wire.encode_frame`` does (CRC on); return its length.
    ``epoch``, ``sequence`` and ``aux`` are the wire's uint64 as int64 bit patterns."""
    _put(out, 0, np.uint64(_MAGIC_U32), 4)
    out[4] = WIRE_VERSION
    out[5] = _COMMANDS
    out[6] = _RT_COMMAND
    out[7] = _CRC_FLAG
    _put(out, 8, np.uint64(RECORD_SIZE), 2)
    _put(out, 10, np.uint64(0), 2)
    _put(out, 12, np.uint64(publisher_id), 4)
    _put(out, 16, np.uint64(n_records), 4)
    _put(out, 24, np.uint64(epoch), 8)
    _put(out, 32, np.uint64(sequence), 8)
    _put(out, 40, np.uint64(aux), 8)
    _put(out, 48, np.uint64(ts_send), 8)
    size = n_records * RECORD_SIZE
    for i in range(size):
        out[HEADER_SIZE + i] = records[i]
    n = HEADER_SIZE + size
    _put(out, _CRC_OFFSET, np.uint64(crc32(out, _CRC_END, n, crc32(out, 0, _CRC_OFFSET, 0))), 4)
    return n
