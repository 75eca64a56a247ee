"""The compiled codec agrees with ``live.wire`` on every input.

``decode_events_into`` must accept exactly the EVENTS frames the Python decoder accepts,
of the expected publisher, epoch and sequence, and give the same record bytes; it must
decline (-1) everything else, garbage included, rather than accept what the codec
refuses. ``encode_commands_into`` must write ``encode_frame``'s bytes.
"""

from __future__ import annotations

import zlib

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from test_wire import every_command, every_event, forge

from framework.events import COMMAND_DTYPE, EVENT_DTYPE
from live.wire import DecodeError, MsgType, decode_frame, encode_frame
from live.wire_kernels import crc32, decode_events_into, encode_commands_into

DST = np.zeros(64 * 64, np.uint8)


def as_i64(u: int) -> int:
    """A uint64 as the int64 of the same bits (how the kernels take them)."""
    return u - (1 << 64) if u >= 1 << 63 else u


def decode(raw: bytes, pid: int = 1, epoch: int = 1, seq: int = 1) -> np.ndarray | None:
    buf = np.frombuffer(raw, np.uint8)
    DST[:] = 0
    n = decode_events_into(buf, len(buf), pid, as_i64(epoch), as_i64(seq), DST, 0)
    return None if n < 0 else DST[: n * 64].copy()


@settings(deadline=None)
@given(st.binary(max_size=300), st.integers(0, 2**32 - 1))
def test_crc32_is_zlibs(data, start):
    buf = np.frombuffer(data, np.uint8) if data else np.zeros(0, np.uint8)
    assert crc32(buf, 0, len(buf), start) == zlib.crc32(data, start)


@settings(max_examples=300, deadline=None)
@given(n=st.integers(1, 15), pid=st.integers(0, 2**32 - 1), epoch=st.integers(1, 2**64 - 1),
       seq=st.integers(1, 2**64 - 1), crc=st.booleans(), seed=st.integers(0, 2**32 - 1))
def test_a_valid_next_frame_decodes_to_the_same_bytes(n, pid, epoch, seq, crc, seed):
    events = every_event()[np.random.default_rng(seed).integers(0, 15, n)]
    raw = encode_frame(MsgType.EVENTS, events, publisher_id=pid, epoch=epoch, sequence=seq, crc=crc)
    assert decode(raw, pid, epoch, seq).tobytes() == decode_frame(raw).records.tobytes()
    assert decode(raw, pid ^ 1, epoch, seq) is None  # another publisher's
    assert decode(raw, pid, epoch, seq + 1 if seq < 2**64 - 1 else 1) is None  # not the one expected
    assert decode(raw, pid, epoch - 1 if epoch > 1 else 2, seq) is None


@settings(max_examples=2000, deadline=None)
@given(st.binary(max_size=400))
def test_garbage_is_declined_never_accepted_against_the_codec(raw):
    got = decode(raw)
    if got is not None:
        frame = decode_frame(raw)  # must not raise: the kernel accepted only what the codec accepts
        assert frame.msg_type == MsgType.EVENTS and got.tobytes() == frame.records.tobytes()


@settings(max_examples=500, deadline=None)
@given(st.data())
def test_a_corrupted_frame_is_declined_whenever_the_codec_refuses_it(data):
    raw = bytearray(encode_frame(MsgType.EVENTS, every_event()[:3], publisher_id=1, epoch=1, sequence=1))
    for _ in range(data.draw(st.integers(1, 4))):
        raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
    try:
        frame = decode_frame(bytes(raw))
    except DecodeError:
        assert decode(bytes(raw)) is None
        return
    got = decode(bytes(raw))
    if frame.msg_type == MsgType.EVENTS and frame.publisher_id == 1 and frame.epoch == 1 and frame.sequence == 1:
        assert got is not None and got.tobytes() == frame.records.tobytes()
    else:
        assert got is None


def test_other_frame_types_and_empty_frames_are_left_to_the_codec():
    assert decode(encode_frame(MsgType.HEARTBEAT, publisher_id=1, epoch=1, sequence=1)) is None
    assert decode(encode_frame(MsgType.SNAPSHOT, every_event()[:2], publisher_id=1, epoch=1, sequence=1)) is None
    assert decode(encode_frame(MsgType.EVENTS, np.zeros(0, EVENT_DTYPE), publisher_id=1, epoch=1, sequence=1)) is None
    assert decode(forge(every_event()[:1].tobytes(), reserved=1)) is None


@settings(max_examples=300, deadline=None)
@given(n=st.integers(0, 6), pid=st.integers(0, 2**32 - 1), epoch=st.integers(1, 2**64 - 1),
       seq=st.integers(1, 2**64 - 1), aux=st.integers(0, 2**64 - 1), ts=st.integers(-(2**63), 2**63 - 1))
def test_encoding_commands_writes_encode_frames_bytes(n, pid, epoch, seq, aux, ts):
    commands = np.resize(every_command(), n).astype(COMMAND_DTYPE)
    out = np.zeros(56 + 64 * max(n, 1), np.uint8)
    size = encode_commands_into(out, commands.view(np.uint8), n, pid, as_i64(epoch), as_i64(seq), as_i64(aux), ts)
    expected = encode_frame(MsgType.COMMANDS, commands, publisher_id=pid, epoch=epoch, sequence=seq, aux=aux,
                            ts_send=ts)
    assert out[:size].tobytes() == expected
