"""The ZeroMQ transport over real sockets (ipc:// in tmp_path and tcp://127.0.0.1):
in-order delivery, gaps detected, counted and recovered by replay or snapshot, epochs,
garbage survived, and commands delivered exactly once in order. Plus the ordering
logic alone under random loss, duplication and reordering (hypothesis).

Every wait is bounded (``asyncio.timeout``); nothing asserts a wall time.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import zmq
from hypothesis import given, settings
from hypothesis import strategies as st
from structlog.testing import capture_logs

from framework.events import COMMAND_DTYPE, EVENT_DTYPE, CommandKind, EventKind, concat_events
from live.transport import (
    CommandBacklogFull,
    CommandReceiver,
    CommandSender,
    Publisher,
    Source,
    Stream,
    Subscriber,
    SubscriberCounters,
)
from live.wire import Frame, MsgType, decode_frame, encode_frame

TIMEOUT = 10.0
"""Upper bound of any one wait: generous for a loaded 2-core machine, never reached when it works."""


def events(first: int, n: int = 1, kind: int = EventKind.TRADE) -> np.ndarray:
    out = np.zeros(n, EVENT_DTYPE)
    out["kind"] = kind
    out["price"] = np.arange(first, first + n) * 1_000_000_000
    out["ts_event"] = np.arange(first, first + n)
    return out


def commands(first: int, n: int = 1) -> np.ndarray:
    out = np.zeros(n, COMMAND_DTYPE)
    out["kind"] = CommandKind.SUBMIT
    out["client_order_id"] = np.arange(first, first + n)
    return out


@pytest.fixture
def ctx() -> Iterator[zmq.Context]:
    context = zmq.Context()
    yield context
    context.destroy(linger=0)


_PORTS = random.SystemRandom()


def free_tcp_endpoint() -> str:
    """A loopback port nobody listens on (for a receiver that binds late): below the
    kernel's ephemeral range, so no ``tcp://...:*`` bind elsewhere takes it meanwhile,
    drawn from the system RNG (tests seed ``random``: parallel runs would pick alike),
    probed with a plain socket, whose close frees the port at once (ZeroMQ's does not)."""
    for _ in range(100):
        port = _PORTS.randrange(20000, 32000)
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
        return f"tcp://127.0.0.1:{port}"
    raise RuntimeError("no free port in 20000-32000")


@pytest.fixture(params=["ipc", "tcp"])
def endpoint(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], str]:
    """Make endpoints to bind: a fresh ipc path, or a free tcp port on loopback."""
    names = itertools.count()
    if request.param == "ipc":
        return lambda: f"ipc://{tmp_path}/{next(names)}.sock"
    return lambda: "tcp://127.0.0.1:*"


def fixed_endpoint(kind: str, tmp_path: Path) -> str:
    """A concrete endpoint nobody listens on yet (for a receiver that starts late)."""
    return f"ipc://{tmp_path}/late.sock" if kind == "ipc" else free_tcp_endpoint()


async def rebind(make: Callable[[], Publisher]) -> Publisher:
    """Bind again where a closed publisher was: ZeroMQ releases a port in the background."""
    async with asyncio.timeout(TIMEOUT):
        while True:
            try:
                return make()
            except zmq.ZMQError as err:
                if err.errno != zmq.EADDRINUSE:
                    raise
                await asyncio.sleep(0.01)


async def take(sub: Subscriber | CommandReceiver, n: int) -> list[Frame]:
    async with asyncio.timeout(TIMEOUT):
        return [await sub.recv() for _ in range(n)]


async def until(cond: Callable[[], bool]) -> None:
    async with asyncio.timeout(TIMEOUT):
        while not cond():
            await asyncio.sleep(0.005)


async def subscribed(sub: Subscriber) -> None:
    """Wait until the SUB socket gets frames (a heartbeat), so nothing is lost to slow joining."""

    def seen() -> bool:
        sub.pump()
        return sub.counters.frames_received > 0

    await until(seen)


async def quiet(sub: Subscriber | CommandReceiver, seconds: float = 0.3) -> list[Frame]:
    """Whatever else arrives within ``seconds`` (should be nothing)."""
    extra = []
    try:
        async with asyncio.timeout(seconds):
            while True:
                extra.append(await sub.recv())
    except TimeoutError:
        return extra


def prices(frames: list[Frame]) -> list[int]:
    return [int(p) // 1_000_000_000 for f in frames for p in f.records["price"]]


def publisher(ctx: zmq.Context, endpoint: Callable[[], str], **kw) -> Publisher:
    kw.setdefault("heartbeat_interval", 0.02)
    return Publisher(1, endpoint(), endpoint(), ctx=ctx, **kw)


def subscriber(ctx: zmq.Context, *pubs: Publisher, **kw) -> Subscriber:
    kw.setdefault("replay_timeout", 0.2)
    return Subscriber([Source(p.publisher_id, p.data_endpoint, p.replay_endpoint) for p in pubs], ctx=ctx, **kw)


# -- PUB/SUB --------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_every_event_kind_arrives_bit_exact_and_in_order(ctx, endpoint) -> None:
    async with publisher(ctx, endpoint) as pub, subscriber(ctx, pub) as sub:
        sent = [events(i, kind=kind) for i, kind in enumerate(EventKind, start=1)]
        sent.append(events(100, 500))  # a large frame
        sent.append(commands(7, 3))  # commands published for monitors
        for records in sent:
            pub.publish(records)
        got = await take(sub, len(sent))
        assert [f.sequence for f in got] == list(range(1, len(sent) + 1))
        for frame, records in zip(got, sent, strict=True):
            assert frame.msg_type == (MsgType.COMMANDS if records.dtype == COMMAND_DTYPE else MsgType.EVENTS)
            assert frame.records.tobytes() == records.tobytes()
            assert frame.epoch == pub.epoch and frame.publisher_id == 1
        assert await quiet(sub) == []
        assert sub.counters.duplicates_dropped == 0 and sub.rejects.total == 0


@pytest.mark.asyncio
async def test_forced_gaps_are_detected_counted_and_replayed(ctx, endpoint) -> None:
    skipped = {3, 4, 7}
    async with publisher(ctx, endpoint, skip=lambda s: s in skipped) as pub, subscriber(ctx, pub) as sub:
        await subscribed(sub)
        for i in range(1, 11):
            pub.publish(events(i))
        got = await take(sub, 10)
        assert [f.sequence for f in got] == list(range(1, 11))
        assert prices(got) == list(range(1, 11))
        assert await quiet(sub) == []
        c = sub.counters
        assert (c.gaps_detected, c.messages_missed, c.recovered_by_replay) == (2, 3, 3)
        assert (c.snapshots_taken, c.duplicates_dropped, c.skipped_by_snapshot) == (0, 0, 0)
        assert c.replay_requests >= 2 and pub.counters.frames_replayed >= 3
        assert pub.counters.frames_skipped == 3


@pytest.mark.asyncio
async def test_a_lost_tail_is_noticed_through_heartbeats(ctx, endpoint) -> None:
    async with publisher(ctx, endpoint, skip=lambda s: s >= 4) as pub, subscriber(ctx, pub) as sub:
        await subscribed(sub)
        for i in range(1, 7):
            pub.publish(events(i))
        got = await take(sub, 6)
        assert prices(got) == list(range(1, 7))
        assert (sub.counters.gaps_detected, sub.counters.recovered_by_replay) == (1, 3)


@pytest.mark.asyncio
async def test_a_late_joiner_replays_what_it_missed(ctx, endpoint) -> None:
    async with publisher(ctx, endpoint) as pub:
        for i in range(1, 6):
            pub.publish(events(i))  # nobody subscribed: PUB drops these
        async with subscriber(ctx, pub) as sub:
            got = await take(sub, 5)
            assert prices(got) == [1, 2, 3, 4, 5]
            assert sub.counters.recovered_by_replay == 5 and sub.counters.gaps_detected == 1
            pub.publish(events(6))
            assert prices(await take(sub, 1)) == [6]


@pytest.mark.asyncio
async def test_a_gap_larger_than_the_ring_recovers_through_a_snapshot(ctx, endpoint) -> None:
    book: list[np.ndarray] = []

    def state() -> np.ndarray:  # the publisher's state: its last three events
        return concat_events(book[-3:])

    def publish(pub: Publisher, i: int) -> None:
        book.append(events(i, kind=EventKind.BOOK_SNAPSHOT))
        pub.publish(book[-1])

    pub = publisher(ctx, endpoint, ring_size=4, snapshot=state, skip=lambda s: 2 <= s <= 12)
    async with pub, subscriber(ctx, pub) as sub:
        await subscribed(sub)
        for i in range(1, 16):
            publish(pub, i)
        got = await take(sub, 2)
        assert [(f.msg_type, f.sequence) for f in got] == [(MsgType.EVENTS, 1), (MsgType.SNAPSHOT, 15)]
        assert got[1].records.tobytes() == concat_events(book[12:15]).tobytes()
        publish(pub, 16)
        publish(pub, 17)
        assert [f.sequence for f in await take(sub, 2)] == [16, 17]
        c = sub.counters
        assert (c.snapshots_taken, c.skipped_by_snapshot, c.gaps_detected) == (1, 14, 1)
        assert pub.counters.snapshots_served == 1
        assert await quiet(sub) == []


@pytest.mark.asyncio
async def test_a_publisher_restart_is_a_new_epoch(ctx, endpoint) -> None:
    first = publisher(ctx, endpoint, epoch=10)
    await first.start()
    data, replay = first.data_endpoint, first.replay_endpoint
    sub = subscriber(ctx, first)
    try:
        await subscribed(sub)
        for i in range(1, 4):
            first.publish(events(i))
        assert prices(await take(sub, 3)) == [1, 2, 3]
        await first.close()
        second = await rebind(lambda: Publisher(1, data, replay, epoch=11, heartbeat_interval=0.02, ctx=ctx))
        async with second:
            for i in range(1, 4):
                second.publish(events(100 + i))
            got = await take(sub, 3)  # whatever the SUB missed while reconnecting is replayed
            assert [(f.epoch, f.sequence) for f in got] == [(11, 1), (11, 2), (11, 3)]
            assert prices(got) == [101, 102, 103]
            assert sub.counters.epoch_changes == 1
            assert sub.position(1) == (11, 3)
            # A straggler from the old epoch is stale, not a duplicate and not delivered.
            sub._take([encode_frame(MsgType.EVENTS, events(4), publisher_id=1, epoch=10, sequence=4)], None, [])
            assert sub.counters.stale_dropped == 1
    finally:
        sub.close()


@pytest.mark.asyncio
async def test_two_publishers_each_in_order(ctx, endpoint) -> None:
    a = Publisher(1, endpoint(), endpoint(), heartbeat_interval=0.02, ctx=ctx, skip=lambda s: s == 2)
    b = Publisher(2, endpoint(), endpoint(), heartbeat_interval=0.02, ctx=ctx, skip=lambda s: s == 3)
    async with a, b, subscriber(ctx, a, b) as sub:
        for i in range(1, 6):
            a.publish(events(i))
            b.publish(events(10 + i))
        got = await take(sub, 10)
        by_pub = {pid: [f.sequence for f in got if f.publisher_id == pid] for pid in (1, 2)}
        assert by_pub == {1: [1, 2, 3, 4, 5], 2: [1, 2, 3, 4, 5]}
        assert sub.silence(1) < TIMEOUT and sub.silence(2) < TIMEOUT


@pytest.mark.asyncio
async def test_garbage_is_counted_logged_and_does_not_stop_the_subscriber(ctx, endpoint) -> None:
    async with publisher(ctx, endpoint) as pub:
        rogue, rogue_replay = ctx.socket(zmq.PUB), ctx.socket(zmq.ROUTER)
        for sock in (rogue, rogue_replay):
            sock.bind(endpoint())
        rogue_source = Source(2, *(s.getsockopt_string(zmq.LAST_ENDPOINT) for s in (rogue, rogue_replay)))
        sources = [Source(1, pub.data_endpoint, pub.replay_endpoint), rogue_source]
        with Subscriber(sources, ctx=ctx, replay_timeout=0.2) as sub:

            def probe_arrived() -> bool:
                rogue.send(b"probe")
                sub.pump()
                return sub.rejects.counts["TRUNCATED"] > 0

            await until(probe_arrived)
            valid = encode_frame(MsgType.EVENTS, events(1), publisher_id=2, epoch=1, sequence=1)
            battery = {
                "BAD_MAGIC": [b"\xff" * 200],
                "BAD_CHECKSUM": [valid[:-1] + b"\x01"],
                "BAD_LENGTH": [valid + b"\x00"],
                "UNKNOWN_PUBLISHER": [encode_frame(MsgType.EVENTS, events(1), publisher_id=9, epoch=1, sequence=1)],
                "UNEXPECTED_FRAME": [encode_frame(MsgType.ACK, publisher_id=2, epoch=1, sequence=1)],
                "MULTIPART": [valid, valid],
            }
            before = sub.rejects.counts.copy()
            with capture_logs() as logs:
                for parts in battery.values():
                    rogue.send_multipart(parts)
                for i in range(1, 4):
                    pub.publish(events(i))
                got = await take(sub, 3)
                await until(lambda: (sub.pump(), sub.rejects.total - before.total() >= len(battery))[1])
            assert prices(got) == [1, 2, 3]
            for reason in battery:
                assert sub.rejects.counts[reason] - before[reason] == 1, reason
            logged = {entry["reason"]: entry for entry in logs if entry.get("event") == "frame rejected"}
            assert set(battery) <= set(logged)
            assert logged["BAD_MAGIC"]["head_hex"].startswith("ffff")
            assert logged["BAD_CHECKSUM"]["publisher_id"] == 2 and logged["BAD_CHECKSUM"]["sequence"] == 1
            # A flood is counted in full but logged at a bounded rate.
            with capture_logs() as flood_logs:
                for _ in range(60):
                    rogue.send(b"\xff" * 60)
                await until(lambda: (sub.pump(), sub.rejects.counts["BAD_MAGIC"] >= 61)[1])
            assert len(flood_logs) < 60
            pub.publish(events(4))
            assert prices(await take(sub, 1)) == [4]
        rogue.close(linger=0)
        rogue_replay.close(linger=0)


@pytest.mark.asyncio
async def test_the_replay_service_answers_from_ring_snapshot_or_heartbeat(ctx, endpoint) -> None:
    state = events(0, 2, kind=EventKind.BOOK_SNAPSHOT)
    async with publisher(ctx, endpoint, ring_size=5, max_replay_frames=3, snapshot=lambda: state) as pub:
        sent = [events(i) for i in range(1, 9)]
        for records in sent:
            pub.publish(records)
        client = ctx.socket(zmq.DEALER)
        client.connect(pub.replay_endpoint)

        async def ask(raw: bytes) -> list[Frame]:
            client.send(raw)
            async with asyncio.timeout(TIMEOUT):
                while not client.poll(0):
                    await asyncio.sleep(0.002)
            return [decode_frame(part) for part in client.recv_multipart()]

        def request(first: int, last: int, epoch: int = pub.epoch, pid: int = 1) -> bytes:
            return encode_frame(MsgType.REPLAY_REQUEST, publisher_id=pid, epoch=epoch, sequence=first, aux=last)

        in_ring = await ask(request(4, 8))  # ring holds 4..8; at most 3 frames per reply
        assert [f.sequence for f in in_ring] == [4, 5, 6]
        assert [f.records.tobytes() for f in in_ring] == [r.tobytes() for r in sent[3:6]]
        for reply in (await ask(request(2, 6)), await ask(request(1, 1, epoch=pub.epoch - 1))):
            assert [(f.msg_type, f.sequence) for f in reply] == [(MsgType.SNAPSHOT, 8)]
            assert reply[0].records.tobytes() == state.tobytes() and reply[0].epoch == pub.epoch
        future = await ask(request(9, 20))
        assert [(f.msg_type, f.sequence) for f in future] == [(MsgType.HEARTBEAT, 8)]
        assert (pub.counters.replay_requests, pub.counters.snapshots_served, pub.counters.frames_replayed) == (4, 2, 3)
        # Garbage, a request for another publisher and a multipart message: counted, unanswered.
        client.send(b"nonsense")
        client.send(request(1, 2, pid=7))
        client.send_multipart([b"a", b"b"])
        await until(lambda: (pub.serve_pending(), pub.rejects.total >= 3)[1])
        assert pub.rejects.counts == {"TRUNCATED": 1, "UNEXPECTED_FRAME": 1, "MULTIPART": 1}
        assert not client.poll(50)
        client.close(linger=0)


def test_a_failing_snapshot_provider_is_counted_not_fatal(ctx, tmp_path) -> None:
    def broken() -> np.ndarray:
        raise RuntimeError("no book yet")

    pub = Publisher(1, f"ipc://{tmp_path}/d", f"ipc://{tmp_path}/r", snapshot=broken, ctx=ctx)
    try:
        assert pub._reply(pub.epoch + 1, 1, 1) == []
        assert pub.counters.snapshot_errors == 1
    finally:
        asyncio.run(pub.close())


# -- commands -------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_the_sender_refuses_to_queue_forever(ctx, tmp_path) -> None:
    async with CommandSender(1, f"ipc://{tmp_path}/nobody.sock", max_unacked=3, ctx=ctx) as sender:
        for i in range(3):
            sender.send(commands(i))
        with pytest.raises(CommandBacklogFull):
            sender.send(commands(9))
        with pytest.raises(ValueError):
            sender.send(events(1))
        assert sender.unacked == 3 and not sender.connected
        assert not await sender.flush(0.05)


@pytest.mark.asyncio
@pytest.mark.parametrize("kind", ["ipc", "tcp"])
async def test_commands_reach_a_receiver_that_starts_late(ctx, tmp_path, kind) -> None:
    where = fixed_endpoint(kind, tmp_path)
    async with CommandSender(5, where, resend_after=0.05, ctx=ctx) as sender:
        for i in range(1, 21):
            sender.send(commands(i))
        await asyncio.sleep(0.1)  # nobody is listening yet
        assert sender.unacked == 20
        with CommandReceiver(where, ctx=ctx) as receiver:
            got = await take(receiver, 20)
            assert [int(f.records["client_order_id"][0]) for f in got] == list(range(1, 21))
            assert [f.sequence for f in got] == list(range(1, 21))
            async with asyncio.timeout(TIMEOUT):
                assert await sender.flush(TIMEOUT)
            assert await quiet(receiver) == []


@pytest.mark.asyncio
async def test_lost_commands_are_resent_and_delivered_exactly_once(ctx, endpoint) -> None:
    lost = {2, 5, 6, 30}  # 30 is the last: only the resend timer can recover it
    with CommandReceiver(endpoint(), ctx=ctx) as receiver:
        sender = CommandSender(5, receiver.endpoint, resend_after=0.05, ctx=ctx, skip=lambda s: s in lost)
        async with sender:
            await until(lambda: sender.connected)
            for i in range(1, 31):
                sender.send(commands(10 * i, 2))
            got = await take(receiver, 30)
            assert [f.sequence for f in got] == list(range(1, 31))
            ids = [int(x) for f in got for x in f.records["client_order_id"]]
            assert ids == [10 * i + k for i in range(1, 31) for k in (0, 1)]
            async with asyncio.timeout(TIMEOUT):
                assert await sender.flush(TIMEOUT)
            assert await quiet(receiver) == []
            assert receiver.counters.frames_delivered == 30
            assert receiver.counters.gaps_detected >= 2 and sender.counters.frames_skipped == 4
            assert sender.counters.frames_resent >= 4


@pytest.mark.asyncio
async def test_a_restarted_receiver_continues_where_the_acks_left_off(ctx, tmp_path) -> None:
    where = f"ipc://{tmp_path}/cmd.sock"
    async with CommandSender(5, where, resend_after=0.05, ctx=ctx) as sender:
        with CommandReceiver(where, ctx=ctx) as first:
            for i in range(1, 11):
                sender.send(commands(i))
            assert [f.sequence for f in await take(first, 10)] == list(range(1, 11))
            async with asyncio.timeout(TIMEOUT):
                assert await sender.flush(TIMEOUT)
        for i in range(11, 21):
            sender.send(commands(i))  # the receiver is down
        with CommandReceiver(where, ctx=ctx) as second:
            got = await take(second, 10)
            assert [f.sequence for f in got] == list(range(11, 21))
            async with asyncio.timeout(TIMEOUT):
                assert await sender.flush(TIMEOUT)
            assert await quiet(second, 0.2) == []


@pytest.mark.asyncio
async def test_command_receiver_rejects_garbage_and_keeps_going(ctx, endpoint) -> None:
    with CommandReceiver(endpoint(), ctx=ctx) as receiver:
        rogue = ctx.socket(zmq.DEALER)
        rogue.connect(receiver.endpoint)
        rogue.send(b"garbage")
        rogue.send(encode_frame(MsgType.EVENTS, events(1), publisher_id=3, epoch=1, sequence=1))
        rogue.send_multipart([b"a", b"b"])
        async with CommandSender(3, receiver.endpoint, ctx=ctx) as sender:
            sender.send(commands(1))
            got = await take(receiver, 1)
        assert int(got[0].records["client_order_id"][0]) == 1
        await until(lambda: (receiver.pump(), receiver.rejects.total >= 3)[1])
        assert receiver.rejects.counts == {"TRUNCATED": 1, "UNEXPECTED_FRAME": 1, "MULTIPART": 1}
        rogue.close(linger=0)


# -- the ordering logic alone ----------------------------------------------------------------


def _frames(epoch: int, n: int) -> list[bytes]:
    return [encode_frame(MsgType.EVENTS, events(i), publisher_id=1, epoch=epoch, sequence=i) for i in range(1, n + 1)]


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 40), st.data())
def test_a_stream_delivers_in_order_exactly_once_whatever_the_network_does(n: int, data: st.DataObject) -> None:
    """Frames arrive dropped, doubled and shuffled; replies to ``missing`` come from a
    full ring. Every frame comes out once, in order, and every gap was counted."""
    frames = _frames(7, n)
    arrivals = [i for i in range(n) for _ in range(data.draw(st.integers(0, 2), label=f"copies of {i + 1}"))]
    arrivals = data.draw(st.permutations(arrivals), label="arrival order")
    counters = SubscriberCounters()
    stream = Stream(1, counters, max_pending=data.draw(st.integers(1, 50), label="max_pending"))
    out: list[Frame] = []
    for i in arrivals:
        stream.accept(decode_frame(frames[i]), False, out)
    stream.accept(decode_frame(encode_frame(MsgType.HEARTBEAT, publisher_id=1, epoch=7, sequence=n)), False, out)
    for _ in range(2 * n + 2):  # the subscriber's request loop
        rng = stream.missing()
        if rng is None:
            break
        for seq in range(rng[0], rng[1] + 1):
            stream.accept(decode_frame(frames[seq - 1]), True, out)
    assert [f.sequence for f in out] == list(range(1, n + 1))
    assert stream.missing() is None and not stream.pending
    arrived = len(set(arrivals))
    live = len(out) - counters.recovered_by_replay
    assert live <= arrived
    assert (counters.gaps_detected > 0) == (counters.messages_missed > 0)
    assert n - arrived <= counters.messages_missed <= n
    if arrived < n:
        assert counters.gaps_detected >= 1
    if counters.pending_overflow == 0:  # nothing that arrived was thrown away
        assert live == arrived
        assert counters.duplicates_dropped >= len(arrivals) - arrived


@settings(max_examples=200, deadline=None)
@given(st.integers(2, 30), st.data())
def test_a_snapshot_replaces_what_it_covers(n: int, data: st.DataObject) -> None:
    frames = _frames(3, n)
    seen = sorted(data.draw(st.sets(st.integers(1, n)), label="arrived"))
    as_of = data.draw(st.integers(0, n), label="snapshot as of")
    counters = SubscriberCounters()
    stream = Stream(1, counters)
    out: list[Frame] = []
    for seq in seen:
        stream.accept(decode_frame(frames[seq - 1]), False, out)
    delivered_before = len(out)
    last_before = stream.next_seq - 1
    snap = encode_frame(MsgType.SNAPSHOT, events(0), publisher_id=1, epoch=3, sequence=as_of)
    stream.accept(decode_frame(snap), True, out)
    if as_of < last_before or (as_of == last_before and delivered_before):
        assert len(out) == delivered_before and counters.duplicates_dropped == 1
        return
    assert out[delivered_before].msg_type == MsgType.SNAPSHOT
    after = [f.sequence for f in out[delivered_before + 1 :]]
    # After the snapshot: the buffered frames that follow it without a hole, in order.
    expected = list(itertools.takewhile(lambda s: s in set(seen), itertools.count(as_of + 1)))
    assert after == expected
    assert counters.skipped_by_snapshot == as_of - last_before


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 20), st.data())
def test_an_end_frame_is_delivered_once_right_after_the_last_frame(n: int, data: st.DataObject) -> None:
    frames = _frames(4, n)
    end = decode_frame(encode_frame(MsgType.END, publisher_id=1, epoch=4, sequence=n))
    arrivals = data.draw(st.permutations([*range(n), "end", "end"]), label="arrival order")
    counters = SubscriberCounters()
    stream = Stream(1, counters)
    out: list[Frame] = []
    for i in arrivals:
        stream.accept(end if i == "end" else decode_frame(frames[i]), False, out)
    assert [(f.msg_type, f.sequence) for f in out] == [*((MsgType.EVENTS, s) for s in range(1, n + 1)),
                                                      (MsgType.END, n)]
    assert stream.ended and stream.missing() is None


def test_an_end_frame_before_what_it_follows_is_a_gap() -> None:
    frames = _frames(4, 3)
    stream = Stream(1, SubscriberCounters())
    out: list[Frame] = []
    stream.accept(decode_frame(frames[0]), False, out)
    stream.accept(decode_frame(encode_frame(MsgType.END, publisher_id=1, epoch=4, sequence=3)), False, out)
    assert [f.sequence for f in out] == [1] and not stream.ended
    assert stream.missing() == (2, 3) and stream.counters.gaps_detected == 1
    for raw in frames[1:]:
        stream.accept(decode_frame(raw), True, out)
    assert [f.msg_type for f in out] == [MsgType.EVENTS] * 3 + [MsgType.END] and stream.ended


@pytest.mark.asyncio
async def test_a_subscriber_learns_that_a_stream_ended(tmp_path: Path) -> None:
    async with Publisher(3, f"ipc://{tmp_path}/d", f"ipc://{tmp_path}/r", heartbeat_interval=0.02) as pub:
        async with Subscriber([Source(3, pub.data_endpoint, pub.replay_endpoint)], replay_timeout=0.05) as sub:
            for k in range(3):
                pub.publish(events(k))
            pub.end()
            with pytest.raises(RuntimeError, match="ended"):
                pub.publish(events(9))
            got = [await asyncio.wait_for(sub.recv(), 5) for _ in range(4)]
    assert [(f.msg_type, f.sequence) for f in got] == [*((MsgType.EVENTS, s) for s in (1, 2, 3)), (MsgType.END, 3)]
