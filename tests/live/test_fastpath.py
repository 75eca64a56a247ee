"""The fast path takes exactly what the layered path would, and does exactly what it would.

Two engines with the same strategy: one is fed through ``FastPath.take`` (raw frames, one
compiled call), the other through the layered path (``decode_frame``, ``Engine.process``,
``encode_frame``). Over random streams of quotes and trades, some malformed, some
records the engine must refuse, both must write the same journal and send the same
command frames, byte for byte (the send time aside), and the fast path must decline
every frame the layered path must see (a gap, another epoch, garbage).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scripted import T0
from structlog.testing import capture_logs

import strategies.market_maker as mm
from framework.events import COMMAND_DTYPE, EVENT_DTYPE, CommandKind, EventKind, concat_events, to_fixed
from framework.journal import JournalWriter, read_journal
from framework.state import PipelineSpec, allocate
from framework.stepper import Stepper
from live.engine import Engine, Origin
from live.fastpath import MAX_RECORDS, FastPath
from live.transport.commands import CommandBacklogFull
from live.wire import MsgType, decode_frame, encode_frame

VENUE_KINDS = (CommandKind.SUBMIT, CommandKind.CANCEL, CommandKind.MODIFY, CommandKind.QUERY)


class FakeFeed:
    """The subscriber as the fast path sees it: which frame comes next, and that it was taken."""

    def __init__(self, publisher_id: int = 3, epoch: int = 9) -> None:
        self.publisher_id, self.epoch, self.next_seq = publisher_id, epoch, 1

    def expects(self, publisher_id: int):
        return (self.epoch, self.next_seq) if publisher_id == self.publisher_id else None

    def taken(self, publisher_id: int) -> None:
        self.next_seq += 1


class FakeSender:
    """The command sender: numbers frames and keeps what was sent."""

    sender_id, epoch = 21, 5

    def __init__(self) -> None:
        self.last_sequence = 0
        self.frames: list[bytes] = []

    def next_frame(self):
        return self.last_sequence + 1, 1

    def send_encoded(self, seq: int, frame: bytes, records: np.ndarray) -> None:
        assert seq == self.last_sequence + 1 and records.dtype == COMMAND_DTYPE
        self.last_sequence = seq
        self.frames.append(frame)


def new_engine(tmp_path, name: str) -> Engine:
    p = allocate(PipelineSpec(max_order_size=(to_fixed(10),), max_position=(to_fixed(10),), price_collar=(0.5,)))
    params, state = mm.make(mm.Params(instrument="X", tick_size=0.01, half_spread_ticks=1, order_size=1.0,
                                      max_inventory=3.0, skew_ticks=1.0, requote_ticks=1), {"X": 0})
    journal = JournalWriter(tmp_path / f"{name}.bin", {"test": name}, in_place=True)
    return Engine(Stepper(p, mm.on_event, params, state), n_venues=1, journal=journal)


def stream(seed: int, n: int) -> list[np.ndarray]:
    """Frames of one to three quotes or trades around 100.00; a few records malformed."""
    rng = np.random.default_rng(seed)
    frames, mid, ts = [], 10_000, T0
    for _ in range(n):
        k = int(rng.integers(1, 4))
        ev = np.zeros(k, EVENT_DTYPE)
        for i in range(k):
            ts += int(rng.integers(1, 1000))
            mid += int(rng.integers(-2, 3))
            ev[i]["ts_event"] = ts
            if rng.random() < 0.7:
                ev[i]["kind"] = EventKind.QUOTE
                ev[i]["bid_price"], ev[i]["ask_price"] = to_fixed((mid - 1) / 100), to_fixed((mid + 1) / 100)
                ev[i]["bid_size"], ev[i]["ask_size"] = to_fixed(5), to_fixed(5)
            else:
                ev[i]["kind"] = EventKind.TRADE
                ev[i]["price"], ev[i]["size"] = to_fixed(mid / 100), to_fixed(1)
            if rng.random() < 0.05:
                ev[i]["instrument_id"] = 7  # refused by the engine, whichever path
        frames.append(ev)
    return frames


def layered(engine: Engine, sender: FakeSender, raw: bytes, now: int) -> None:
    commands = engine.process(decode_frame(raw).records, Origin.MARKET_DATA, now)
    venue = commands[np.isin(commands["kind"], VENUE_KINDS)]
    if len(venue):
        seq, aux = sender.next_frame()
        sender.send_encoded(seq, encode_frame(MsgType.COMMANDS, venue, publisher_id=sender.sender_id,
                                              epoch=sender.epoch, sequence=seq, aux=aux, ts_send=now), venue.copy())


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 60))
def test_the_fast_path_writes_the_journal_and_sends_the_frames_the_layered_path_does(tmp_path_factory, seed, n):
    tmp = tmp_path_factory.mktemp("fast")
    fast_engine, slow_engine = new_engine(tmp, "fast"), new_engine(tmp, "slow")
    feed, fast_sender, slow_sender = FakeFeed(), FakeSender(), FakeSender()
    path = FastPath(fast_engine, feed, fast_sender)
    short = 0
    with capture_logs():
        for k, events in enumerate(stream(seed, n)):
            raw = encode_frame(MsgType.EVENTS, events, publisher_id=3, epoch=9, sequence=k + 1)
            now = T0 + 10**9 + 1000 * k
            if path.take(raw, now) is None:  # longer than the fast path takes: the layered way, as the runtime does
                assert len(events) > MAX_RECORDS
                layered(fast_engine, fast_sender, raw, now)
                feed.taken(3)
            short += len(events) <= MAX_RECORDS
            layered(slow_engine, slow_sender, raw, now)
    assert path.taken == short and feed.next_seq == n + 1
    assert fast_sender.frames == slow_sender.frames
    assert len(fast_sender.frames) > 0 or n < 20  # a long stream makes the market maker quote
    assert fast_engine.counters == slow_engine.counters
    fast_engine.close_journal()
    slow_engine.close_journal()
    _, ev_f, cm_f = read_journal(tmp / "fast.bin")
    _, ev_s, cm_s = read_journal(tmp / "slow.bin")
    assert ev_f.tobytes() == ev_s.tobytes() and cm_f.tobytes() == cm_s.tobytes()


def test_what_is_not_the_next_frame_of_the_stream_is_declined_and_changes_nothing(tmp_path):
    engine = new_engine(tmp_path, "e")
    feed, sender = FakeFeed(), FakeSender()
    path = FastPath(engine, feed, sender)
    events = stream(1, 1)[0]
    declined = [
        encode_frame(MsgType.EVENTS, events, publisher_id=3, epoch=9, sequence=2),  # a gap
        encode_frame(MsgType.EVENTS, events, publisher_id=3, epoch=10, sequence=1),  # a new epoch
        encode_frame(MsgType.EVENTS, events, publisher_id=4, epoch=9, sequence=1),  # another publisher
        encode_frame(MsgType.HEARTBEAT, publisher_id=3, epoch=9, sequence=0),
        encode_frame(MsgType.EVENTS, concat_events([events] * 3), publisher_id=3, epoch=9, sequence=1),  # long
        b"garbage" * 20,
        b"",
    ]
    for raw in declined:
        assert path.take(raw, T0) is None
    assert engine.counters["inputs"] == 0 and feed.next_seq == 1 and not sender.frames and path.taken == 0


def test_a_full_command_window_stops_the_fast_path_before_it_takes_anything(tmp_path):
    class FullSender(FakeSender):
        def next_frame(self):
            raise CommandBacklogFull("gone")

    engine = new_engine(tmp_path, "e")
    feed = FakeFeed()
    path = FastPath(engine, feed, FullSender())
    raw = encode_frame(MsgType.EVENTS, stream(1, 1)[0][:1], publisher_id=3, epoch=9, sequence=1)
    with pytest.raises(CommandBacklogFull):
        path.take(raw, T0)
    assert engine.counters["inputs"] == 0 and feed.next_seq == 1 and path.taken == 0
