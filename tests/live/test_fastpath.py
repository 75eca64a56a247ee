"""The fast path takes exactly what the layered path would, and does exactly what it would.

Two engines with the same strategy. One is fed as the runtime feeds it: a real publisher
socket, the engine's ``Subscriber``, ``FastPath.poll`` reading the socket from compiled
code, and what it hands back going the layered way; its orders go out through a real
``CommandSender`` to a ROUTER socket. The other is fed the same frames through the
layered path alone (``decode_frame``, ``Engine.process``). Over random streams of quotes
and trades, some malformed, some records the engine must refuse, both must write the
same journal and send the same commands, and the fast path must hand back every frame
the layered path must see (a gap, another epoch, garbage).
"""

from __future__ import annotations

import time

import numpy as np
import pytest
import zmq
from hypothesis import given, settings
from hypothesis import strategies as st
from scripted import T0
from structlog.testing import capture_logs

import strategies.market_maker as mm
from framework.events import EVENT_DTYPE, VENUE_COMMAND_KINDS, EventKind, concat_events, to_fixed
from framework.journal import JournalWriter, read_journal
from framework.state import PipelineSpec, allocate
from framework.stepper import Stepper
from live import libzmq
from live.engine import Engine, Origin
from live.fastpath import MAX_RECORDS, FastPath, Outcome
from live.transport import CommandSender, Source, Subscriber
from live.transport.commands import CommandBacklogFull
from live.wire import MsgType, decode_frame, encode_frame

pytestmark = pytest.mark.skipif(not libzmq.AVAILABLE, reason=f"no fast path here: {libzmq.UNAVAILABLE_BECAUSE}")

VENUE_KINDS = sorted(VENUE_COMMAND_KINDS)
PUBLISHER, EPOCH, SENDER, SENDER_EPOCH = 3, 9, 21, 5
WAIT_NS = 2_000_000_000
"""How long a poll may wait for a frame just published (it comes in microseconds)."""


class Wires:
    """The sockets around one engine: a market-data publisher, its replay socket (never
    answered), the engine's subscriber and command sender, and a ROUTER taking the commands."""

    def __init__(self, folder, command_endpoint: str | None = None, **sender_options) -> None:
        self.ctx = zmq.Context()
        self.pub = self.ctx.socket(zmq.PUB)
        self.pub.bind(f"ipc://{folder}/md.sock")
        self.replay = self.ctx.socket(zmq.ROUTER)
        self.replay.bind(f"ipc://{folder}/replay.sock")
        self.venue = self.ctx.socket(zmq.ROUTER)
        self.venue.bind(f"ipc://{folder}/cmd.sock")
        self.subscriber = Subscriber([Source(PUBLISHER, f"ipc://{folder}/md.sock", f"ipc://{folder}/replay.sock")],
                                     ctx=self.ctx, name="test.feed")
        self.sender = CommandSender(SENDER, command_endpoint or f"ipc://{folder}/cmd.sock", epoch=SENDER_EPOCH,
                                    ctx=self.ctx, **sender_options)
        self._subscribed()

    def _subscribed(self) -> None:
        """Wait (boundedly) until the subscription reached the publisher: heartbeats of the
        epoch's sequence 0 say nothing but that the publisher is there."""
        beat = encode_frame(MsgType.HEARTBEAT, publisher_id=PUBLISHER, epoch=EPOCH, sequence=0)
        sub = self.subscriber.live_socket
        for _ in range(2000):
            self.pub.send(beat)
            if sub.poll(1):
                break
        else:
            raise AssertionError("the subscription never reached the publisher")
        while self.subscriber.recv_nowait() is not None:
            pass
        time.sleep(0.01)
        self.subscriber.pump()  # heartbeats still in flight

    def commands(self) -> list[tuple[int, int, bytes]]:
        """(sequence, aux, records) of every command frame the venue socket received."""
        got = []
        while self.venue.poll(100):
            _, raw = self.venue.recv_multipart()
            f = decode_frame(raw)
            got.append((f.sequence, f.aux, f.records.tobytes()))
        return got

    def close(self) -> None:
        self.subscriber.close()
        self.sender.socket.close(linger=0)
        self.ctx.destroy(linger=0)


def new_engine(tmp_path, name: str) -> Engine:
    p = allocate(PipelineSpec(max_order_size=(to_fixed(10),), max_position=(to_fixed(10),), price_collar=(0.5,)))
    params, state = mm.make(mm.Params(instrument="X", tick_size=0.01, half_spread_ticks=1, order_size=1.0,
                                      max_inventory=3.0, skew_ticks=1.0, requote_ticks=1), {"X": 0})
    journal = JournalWriter(tmp_path / f"{name}.bin", {"test": name}, in_place=True)
    return Engine(Stepper(p, mm.on_event, params, state), n_venues=1, journal=journal)


def stream(seed: int, n: int) -> list[np.ndarray]:
    """Frames of one to three quotes or trades around 100.00, now and then one longer than the
    fast path takes; a few records malformed."""
    rng = np.random.default_rng(seed)
    frames, mid, ts = [], 10_000, T0
    for _ in range(n):
        k = int(rng.integers(1, 4)) if rng.random() < 0.95 else MAX_RECORDS + 1
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


def venue_commands(engine: Engine, records: np.ndarray, now: int) -> np.ndarray:
    """The layered path: what ``engine`` sends its venue for ``records``."""
    commands = engine.process(records, Origin.MARKET_DATA, now)
    return commands[np.isin(commands["kind"], VENUE_KINDS)]


def frame(events: np.ndarray, sequence: int, **header) -> bytes:
    return encode_frame(MsgType.EVENTS, events, **{"publisher_id": PUBLISHER, "epoch": EPOCH, **header},
                        sequence=sequence)


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 60))
def test_the_fast_path_writes_the_journal_and_sends_the_commands_the_layered_path_does(tmp_path_factory, seed, n):
    tmp = tmp_path_factory.mktemp("fast")
    fast_engine, slow_engine = new_engine(tmp, "fast"), new_engine(tmp, "slow")
    wires = Wires(tmp)
    expected, taken, short = [], 0, 0
    try:
        path = FastPath(fast_engine, wires.subscriber, wires.sender)
        with capture_logs():
            for k, events in enumerate(stream(seed, n)):
                raw = frame(events, k + 1)
                wires.pub.send(raw)
                outcome = path.poll(WAIT_NS)
                if outcome == Outcome.TAKEN:
                    now = path.stamped_ns
                    taken += 1
                else:  # the stream's first frame, or longer than the fast path takes: the layered way
                    assert outcome == Outcome.HANDED and (k == 0 or len(events) > MAX_RECORDS)
                    delivered = wires.subscriber.recv_nowait()
                    assert delivered is not None and delivered.sequence == k + 1
                    now = time.time_ns()
                    venue = venue_commands(fast_engine, delivered.records, now)
                    if len(venue):
                        wires.sender.send(venue)
                short += k > 0 and len(events) <= MAX_RECORDS
                venue = venue_commands(slow_engine, decode_frame(raw).records, now)
                if len(venue):
                    expected.append(venue.tobytes())
        sent = wires.commands()
    finally:
        wires.close()
    assert taken == short and path.taken == short
    assert wires.subscriber.position(PUBLISHER) == (EPOCH, n)
    assert [records for _, _, records in sent] == expected
    assert [seq for seq, _, _ in sent] == list(range(1, len(expected) + 1))
    assert len(expected) > 0 or n < 20  # a long stream makes the market maker quote
    assert fast_engine.counters == slow_engine.counters
    fast_engine.close_journal()
    slow_engine.close_journal()
    _, ev_f, cm_f = read_journal(tmp / "fast.bin")
    _, ev_s, cm_s = read_journal(tmp / "slow.bin")
    assert ev_f.tobytes() == ev_s.tobytes() and cm_f.tobytes() == cm_s.tobytes()


DECLINED = {
    "a gap": lambda ev: frame(ev, 3),
    "a new epoch": lambda ev: frame(ev, 1, epoch=EPOCH + 1),
    "another publisher": lambda ev: frame(ev, 2, publisher_id=PUBLISHER + 1),
    "a heartbeat": lambda ev: encode_frame(MsgType.HEARTBEAT, publisher_id=PUBLISHER, epoch=EPOCH, sequence=1),
    "a long frame": lambda ev: frame(concat_events([ev] * (MAX_RECORDS + 1)), 2),
    "garbage": lambda ev: b"garbage" * 20,
    "an empty message": lambda ev: b"",
}


@pytest.mark.parametrize("case", DECLINED)
def test_what_is_not_the_next_frame_of_its_stream_is_handed_back_and_changes_nothing(tmp_path, case):
    engine = new_engine(tmp_path, "e")
    wires = Wires(tmp_path)
    try:
        path = FastPath(engine, wires.subscriber, wires.sender)
        events = stream(1, 1)[0]
        wires.pub.send(frame(events, 1))
        assert path.poll(WAIT_NS) == Outcome.HANDED  # the stream has not started: the subscriber starts it
        venue_commands(engine, wires.subscriber.recv_nowait().records, time.time_ns())
        inputs = engine.counters["inputs"]
        raw = DECLINED[case](events)
        wires.pub.send(raw)
        with capture_logs():
            assert path.poll(WAIT_NS) == Outcome.HANDED
    finally:
        wires.close()
    assert engine.counters["inputs"] == inputs and path.taken == 0 and wires.sender.last_sequence == 0


def trade_then_quotes(n: int) -> list[np.ndarray]:
    """A trade (which starts the stream, the layered way) and then frames of one quote each:
    the market maker quotes on the first (and then waits for its venue's answer)."""
    trade = np.zeros(1, EVENT_DTYPE)
    trade["ts_event"], trade["kind"] = T0 - 1, EventKind.TRADE
    trade["price"], trade["size"] = to_fixed(100), to_fixed(1)
    frames = [trade]
    for k in range(n):
        ev = np.zeros(1, EVENT_DTYPE)
        ev["ts_event"], ev["kind"] = T0 + 1000 * k, EventKind.QUOTE
        ev["bid_price"], ev["ask_price"] = to_fixed(99.99 + k / 100), to_fixed(100.01 + k / 100)
        ev["bid_size"], ev["ask_size"] = to_fixed(5), to_fixed(5)
        frames.append(ev)
    return frames


def test_a_full_command_window_stops_the_fast_path_before_it_reads_anything(tmp_path):
    engine = new_engine(tmp_path, "e")
    wires = Wires(tmp_path, max_unacked=0)
    try:
        path = FastPath(engine, wires.subscriber, wires.sender)
        wires.pub.send(frame(trade_then_quotes(1)[0], 1))
        time.sleep(0.01)
        with pytest.raises(CommandBacklogFull):
            path.poll(WAIT_NS)
        assert wires.subscriber.recv_nowait().sequence == 1  # still there, for the layered path
    finally:
        wires.close()
    assert engine.counters["inputs"] == 0 and path.taken == 0


@pytest.mark.parametrize("receiver", ["absent", "told to skip"])
def test_an_order_frame_that_does_not_go_out_is_kept_for_resending(tmp_path, receiver):
    if receiver == "absent":
        wires = Wires(tmp_path, command_endpoint=f"ipc://{tmp_path}/nobody.sock")
    else:
        wires = Wires(tmp_path, skip=lambda seq: seq == 1)
    engine = new_engine(tmp_path, "e")
    ordered = 0
    try:
        path = FastPath(engine, wires.subscriber, wires.sender)
        for k, events in enumerate(trade_then_quotes(3)):
            wires.pub.send(frame(events, k + 1))
            outcome = path.poll(WAIT_NS)
            if outcome == Outcome.HANDED:
                venue = venue_commands(engine, wires.subscriber.recv_nowait().records, time.time_ns())
                if len(venue):
                    wires.sender.send(venue)
            ordered += outcome == Outcome.TAKEN and path.sent_orders
        sent = wires.commands()
    finally:
        wires.close()
    counters = wires.sender.counters
    assert ordered > 0 and wires.sender.unacked == wires.sender.last_sequence
    if receiver == "absent":
        assert counters.send_deferred == wires.sender.last_sequence and counters.frames_sent == 0 and not sent
    else:
        assert counters.frames_skipped == 1 and counters.frames_sent == wires.sender.last_sequence - 1
        assert [seq for seq, _, _ in sent] == list(range(2, wires.sender.last_sequence + 1))


def test_the_tick_to_order_time_is_stamped_on_the_runtimes_clock(tmp_path):
    engine = new_engine(tmp_path, "e")
    wires = Wires(tmp_path)
    stamps = []
    try:
        path = FastPath(engine, wires.subscriber, wires.sender)
        for k, events in enumerate(trade_then_quotes(3)):
            before = time.perf_counter_ns()
            wires.pub.send(frame(events, k + 1))
            outcome = path.poll(WAIT_NS)
            after = time.perf_counter_ns()
            if outcome == Outcome.HANDED:
                venue_commands(engine, wires.subscriber.recv_nowait().records, time.time_ns())
            elif path.sent_orders:
                stamps.append((before, path.received_ns, path.tick_to_order_ns, after))
    finally:
        wires.close()
    assert stamps
    for before, received, tick_to_order, after in stamps:
        assert before <= received <= received + tick_to_order <= after
