"""The Binance feed against a real loopback replay server: records in order, book sync, reconnects, garbage.

Every test runs its scenario under one ``asyncio.wait_for`` (a few seconds at most) and
waits on conditions, never on wall-clock durations, so nothing can hang or flake on
timing. The replay server's ``pause_before`` makes the interleavings that matter
(book synchronised before a gap arrives, a kill mid-stream) deterministic.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import random
from collections.abc import Callable

import numpy as np
import pytest
from binance_fixtures import SYMBOL, SYMBOLS, RecordBook, capture_lines, fixed, synthetic_messages

from framework.events import EVENT_DTYPE, BookFlag, EventKind, Side, concat_events
from live.venues.binance.book_sync import SyncState
from live.venues.binance.feed import Backoff, BinanceFeed, FeedConfig, require_tls
from live.venues.binance.messages import Instrument, MarketRecords, decode, split_capture_line
from live.venues.binance.replay_server import Capture, ReplayServer
from tests.conftest import shared_data_dir

TIMEOUT = 10.0  # per scenario; each finishes in well under a second on a quiet machine


def run(coro, timeout: float = TIMEOUT):
    return asyncio.run(asyncio.wait_for(coro, timeout))


async def until(condition: Callable[[], bool], what: str, timeout: float = 5.0) -> None:
    """Poll ``condition`` (cheap, in-process state) until it holds; fail naming ``what``."""
    try:
        async with asyncio.timeout(timeout):
            while not condition():
                await asyncio.sleep(0.002)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for: {what}") from None


def config(server: ReplayServer, **over) -> FeedConfig:
    kw = {
        "symbols": SYMBOLS, "ws_url": server.ws_url, "rest_url": server.rest_url, "receive_timeout": 5.0,
        "backoff_initial": 0.02, "backoff_max": 0.1, "snapshot_retry_initial": 0.01, "snapshot_retry_max": 0.05,
        "open_timeout": 2.0, "close_timeout": 0.5,
    }
    return FeedConfig(**(kw | over))


class Collector:
    """The sink: keeps every record array the feed publishes."""

    def __init__(self) -> None:
        self.parts: list[np.ndarray] = []

    async def __call__(self, records: np.ndarray) -> None:
        assert records.dtype == EVENT_DTYPE and len(records) > 0
        self.parts.append(records)

    @property
    def events(self) -> np.ndarray:
        return concat_events(self.parts) if self.parts else np.zeros(0, EVENT_DTYPE)

    def book(self) -> RecordBook:
        book = RecordBook()
        book.apply(self.events)
        return book


def server_book(server: ReplayServer) -> dict:
    """The replay server's own book (the venue's truth) in the shape of ``RecordBook.sides``."""
    return {Side.BUY: {p: fixed(q) for p, (_, q) in server.book.bids.items()},
            Side.SELL: {p: fixed(q) for p, (_, q) in server.book.asks.items()}}


def expected_market_records(lines: list[bytes]) -> np.ndarray:
    """Trades and quotes decoded straight from the capture: what the feed must deliver, in order."""
    parts = []
    for line in lines:
        ts, payload = split_capture_line(line)
        if b"@trade" in payload[:40] or b"@bookTicker" in payload[:40]:
            msg = decode(payload, ts, SYMBOLS)
            assert isinstance(msg, MarketRecords)
            parts.append(msg.records)
    return concat_events(parts)


def same_except_ts_recv(got: np.ndarray, want: np.ndarray) -> bool:
    got, want = got.copy(), want.copy()
    got["ts_recv"] = 0
    want["ts_recv"] = 0
    return got.tobytes() == want.tobytes()


async def start_feed(feed: BinanceFeed) -> asyncio.Task:
    return asyncio.create_task(feed.run(), name="feed")


async def stop_feed(task: asyncio.Task) -> None:
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 3.0)


# --------------------------------------------------------------------------- configuration


@pytest.mark.parametrize(
    "url, ok",
    [("wss://fstream.binance.com/stream", True), ("ws://127.0.0.1:9000/stream", True), ("ws://localhost:1/x", True),
     ("ws://[::1]:9000/stream", True), ("ws://fstream.binance.com/stream", False), ("ws://10.0.0.1/stream", False),
     ("http://127.0.0.1/stream", False), ("wss:///stream", False)],
)
def test_tls_is_required_except_towards_loopback(url, ok):
    if ok:
        require_tls("ws_url", url, "wss", "ws")
    else:
        with pytest.raises(ValueError, match="ws_url="):
            require_tls("ws_url", url, "wss", "ws")


def test_config_names_the_bad_setting_and_value():
    with pytest.raises(ValueError, match=r"rest_url='http://fapi.binance.com/fapi/v1/depth'.*https://"):
        FeedConfig(symbols=SYMBOLS, rest_url="http://fapi.binance.com/fapi/v1/depth")
    with pytest.raises(ValueError, match=r"ws_url='ws://fstream.binance.com/stream'.*wss://"):
        FeedConfig(symbols=SYMBOLS, ws_url="ws://fstream.binance.com/stream")
    with pytest.raises(ValueError, match="sync_mode"):
        FeedConfig(symbols=SYMBOLS, sync_mode="margin")
    with pytest.raises(ValueError, match="channels"):
        FeedConfig(symbols=SYMBOLS, channels=("depth20@100ms",))
    with pytest.raises(ValueError, match="symbols"):
        FeedConfig(symbols={"btcusdt": Instrument(1, 1)})
    with pytest.raises(ValueError, match="venue_id"):
        FeedConfig(symbols={"BTCUSDT": Instrument(1, 300)})
    cfg = FeedConfig(symbols={"ETHUSDT": Instrument(2, 1), "BTCUSDT": Instrument(1, 1)})
    assert cfg.stream_url() == (
        "wss://fstream.binance.com/stream?streams=btcusdt@depth@0ms/btcusdt@bookTicker/btcusdt@trade/"
        "ethusdt@depth@0ms/ethusdt@bookTicker/ethusdt@trade"
    )


def test_backoff_is_jittered_exponential_bounded_and_reproducible():
    a = Backoff(0.5, 4.0, 2.0, random.Random(3))
    b = Backoff(0.5, 4.0, 2.0, random.Random(3))
    delays = [a.next_delay() for _ in range(8)]
    assert delays == [b.next_delay() for _ in range(8)]
    ceilings = [0.5, 1, 2, 4, 4, 4, 4, 4]
    assert all(c / 2 <= d <= c for d, c in zip(delays, ceilings))
    assert len(set(delays)) == 8  # jittered, not a fixed ladder
    a.reset()
    assert 0.25 <= a.next_delay() <= 0.5


# --------------------------------------------------------------------------- replays


def test_synthetic_replay_delivers_every_record_in_order_and_syncs_through_the_gap():
    lines = capture_lines(synthetic_messages())
    capture = Capture.from_lines(lines)

    async def scenario():
        # hold before the second line: the feed has buffered one diff and fetched its snapshot
        async with ReplayServer(capture, pause_before={1}) as server:
            sink = Collector()
            feed = BinanceFeed(config(server), sink, rng=random.Random(1), retry_rng=random.Random(2))
            task = await start_feed(feed)
            book = feed.books[SYMBOL]
            await until(lambda: server.paused.is_set() and book.state is SyncState.SYNCED, "initial sync")
            server.resume()
            await until(lambda: server.finished.is_set() and feed.counters.messages == server.sent, "all lines")
            await until(lambda: book.state is SyncState.SYNCED, "resync after the gap")
            await stop_feed(task)
            return feed, sink, server

    feed, sink, server = run(scenario())
    events = sink.events
    market = events[np.isin(events["kind"], [EventKind.TRADE, EventKind.QUOTE])]
    assert same_except_ts_recv(market, expected_market_records(lines))
    assert np.all(np.diff(events["ts_recv"]) >= 0)
    c, b = feed.counters, feed.sync_totals()
    assert (c.messages, c.trades, c.quotes, c.diffs, c.rejected) == (29, 9, 9, 11, {})
    assert (c.connects, c.reconnects, c.disconnects, c.receive_timeouts) == (1, 0, 0, 0)
    assert (b.gaps, b.resyncs, b.snapshots, b.stale_snapshots) == (1, 1, 2, 0)
    # the gap cleared the downstream book at once, then a snapshot rebuilt it
    book_recs = events[np.isin(events["kind"], [EventKind.BOOK_DELTA, EventKind.BOOK_SNAPSHOT])]
    clears = np.flatnonzero((book_recs["flags"] & BookFlag.CLEAR) != 0)
    assert len(clears) == 6  # first snapshot (2 sides), the gap's clear (2), the resync snapshot (2)
    assert sink.book().sides == server_book(server)


def test_real_capture_replay_first_20k_lines():
    path = shared_data_dir() / "depth/binance_usdm_btcusdt_raw_ws_20240808.jsonl.gz"
    if not path.is_file():
        pytest.skip(f"real Binance capture not found at {path} (set SHARED_DATA to the data folder)")
    capture = Capture.load(path, max_lines=20_000)
    with gzip.open(path, "rb") as f:
        lines = [next(f) for _ in range(20_000)]
    stream_lines = [ln for ln in lines if b'"stream"' in ln[:60]]
    depth_lines = sum(b"@depth" in ln[:60] for ln in stream_lines)

    async def scenario():
        async with ReplayServer(capture, pause_before={1}) as server:
            sink = Collector()
            feed = BinanceFeed(config(server), sink, rng=random.Random(1), retry_rng=random.Random(2))
            task = await start_feed(feed)
            book = feed.books[SYMBOL]
            await until(lambda: server.paused.is_set() and book.state is SyncState.SYNCED, "initial sync")
            server.resume()
            await until(lambda: server.finished.is_set() and feed.counters.messages == server.sent, "all lines", 20)
            await stop_feed(task)
            return feed, sink, server

    feed, sink, server = run(scenario(), 30)
    events = sink.events
    market = events[np.isin(events["kind"], [EventKind.TRADE, EventKind.QUOTE])]
    assert same_except_ts_recv(market, expected_market_records(stream_lines))
    c, b = feed.counters, feed.sync_totals()
    assert c.messages == len(stream_lines) == server.sent and c.rejected == {}
    assert c.diffs == depth_lines and b.applied + b.stale == depth_lines
    assert (b.gaps, b.resyncs, b.snapshots) == (0, 0, 1)
    assert sink.book().sides == server_book(server)


def test_dropped_connection_reconnects_with_backoff_and_resyncs():
    capture = Capture.from_lines(capture_lines(synthetic_messages()))

    async def scenario():
        # the first connection dies after 8 frames; two lines pass while the client is away
        async with ReplayServer(capture, pause_before={1}, drop_after=(8,), skip_on_reconnect=2) as server:
            sink = Collector()
            feed = BinanceFeed(config(server), sink, rng=random.Random(5), retry_rng=random.Random(6))
            task = await start_feed(feed)
            book = feed.books[SYMBOL]
            await until(lambda: server.paused.is_set() and book.state is SyncState.SYNCED, "initial sync")
            server.resume()
            await until(lambda: feed.counters.reconnects == 1, "reconnect")
            await until(lambda: server.finished.is_set() and feed.counters.messages == server.sent, "all lines")
            await until(lambda: book.state is SyncState.SYNCED, "resync")
            await stop_feed(task)
            return feed, sink, server

    feed, sink, server = run(scenario())
    c, b = feed.counters, feed.sync_totals()
    assert (c.connects, c.reconnects, c.disconnects) == (2, 1, 1)
    assert feed.backoff.delays == [Backoff(0.02, 0.1, 2.0, random.Random(5)).next_delay()]
    assert b.resyncs >= 1 and sink.book().sides == server_book(server)
    # the trades that were sent arrived once each, in order
    ids = sink.events["trade_id"][sink.events["kind"] == EventKind.TRADE]
    assert list(ids) == sorted(set(ids))


def test_killed_server_is_retried_with_growing_backoff_until_it_returns():
    capture = Capture.from_lines(capture_lines(synthetic_messages()))

    async def scenario():
        server = ReplayServer(capture, pause_before={1, 10})
        await server.start()
        try:
            sink = Collector()
            feed = BinanceFeed(config(server), sink, rng=random.Random(9), retry_rng=random.Random(10))
            task = await start_feed(feed)
            book = feed.books[SYMBOL]
            await until(lambda: server.paused.is_set() and book.state is SyncState.SYNCED, "initial sync")
            server.resume()
            await until(lambda: server.paused.is_set(), "second pause")
            await server.stop()  # the venue goes away mid-stream
            await until(lambda: feed.counters.connect_failures >= 3, "failed reconnects")
            assert book.state is SyncState.BUFFERING and sink.book().empty  # cleared, not left stale
            await server.start()  # same ports
            await until(lambda: server.finished.is_set() and feed.counters.messages == server.sent, "all lines")
            await until(lambda: book.state is SyncState.SYNCED, "resync")
            await stop_feed(task)
            return feed, sink, server
        finally:
            await server.stop()

    feed, sink, server = run(scenario())
    c = feed.counters
    assert c.reconnects == 1 and c.disconnects == 1 and c.connect_failures >= 3
    ref = Backoff(0.02, 0.1, 2.0, random.Random(9))
    assert feed.backoff.delays == [ref.next_delay() for _ in feed.backoff.delays]
    assert max(feed.backoff.delays) <= 0.1
    assert feed.sync_totals().resyncs == 1 and sink.book().sides == server_book(server)


def test_unanswered_pings_drop_the_connection():
    capture = Capture.from_lines(capture_lines(synthetic_messages()))

    async def scenario():
        async with ReplayServer(capture, pause_before={5}) as server:
            sink = Collector()
            cfg = config(server, ping_interval=0.05, ping_timeout=0.1, receive_timeout=30.0)
            feed = BinanceFeed(cfg, sink, rng=random.Random(1), retry_rng=random.Random(2))
            task = await start_feed(feed)
            await until(lambda: server.paused.is_set(), "pause")
            server.stall_connections()
            await until(lambda: feed.counters.disconnects == 1, "keepalive failure")
            server.resume()
            await until(lambda: feed.counters.reconnects == 1, "reconnect")
            await stop_feed(task)
            return feed

    feed = run(scenario())
    assert feed.counters.receive_timeouts == 0


def test_silence_triggers_a_reconnect_and_clears_the_book():
    capture = Capture.from_lines(capture_lines(synthetic_messages()))

    async def scenario():
        async with ReplayServer(capture) as server:  # after the last line the server stays silent
            sink = Collector()
            feed = BinanceFeed(config(server, receive_timeout=0.5), sink, rng=random.Random(1),
                               retry_rng=random.Random(2))
            task = await start_feed(feed)
            await until(lambda: feed.counters.receive_timeouts >= 1 and feed.counters.reconnects >= 1, "timeout")
            await stop_feed(task)
            return feed, sink

    feed, sink = run(scenario())
    assert feed.counters.disconnects == 0
    assert feed.sync_totals().snapshots >= 1  # the book was built ...
    assert sink.book().empty  # ... and cleared when the stream went quiet


def test_garbage_is_counted_by_reason_and_the_feed_goes_on(tmp_path):
    messages = synthetic_messages()
    bad_price = json.loads(messages[1])
    bad_price["data"]["p"] = "61,800.3"
    garbage = {
        2: "this is not json",
        4: json.dumps(bad_price),
        8: json.dumps({"stream": "btcusdt@trade", "data": {"e": "trade"}}),
        12: json.dumps({"stream": "btcusdt@bookTicker", "data": [1, 2, 3]}),
        20: '{"result": null, "id": 1}',
    }
    lines = capture_lines(messages)
    for offset, (at, text) in enumerate(sorted(garbage.items())):
        lines.insert(at + offset, f"{1_723_161_255_000_000_000 + at} {text}".encode())
    lines.insert(6, b"1723161255000000006 \xff\xfe binary junk")  # not UTF-8: sent as a binary frame
    path = tmp_path / "garbage.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    capture = Capture.load(path)

    async def scenario():
        async with ReplayServer(capture, snapshot_failures=2) as server:
            sink = Collector()
            feed = BinanceFeed(config(server), sink, rng=random.Random(1), retry_rng=random.Random(2))
            task = await start_feed(feed)
            await until(lambda: server.finished.is_set() and feed.counters.messages == server.sent, "all lines")
            await until(lambda: feed.books[SYMBOL].state is SyncState.SYNCED, "sync")
            await stop_feed(task)
            return feed, sink, server

    feed, sink, server = run(scenario())
    c = feed.counters
    assert c.rejected == {"bad_json": 2, "bad_number": 1, "missing_field": 1, "not_object": 1}
    assert c.control == 1 and c.snapshot_failures == 2 and c.snapshot_requests >= 3
    assert c.trades == 9 and c.quotes == 9 and c.diffs == 11  # every good message still arrived
    assert sink.book().sides == server_book(server)


def test_queue_sink_and_clean_cancellation_mid_snapshot():
    capture = Capture.from_lines(capture_lines(synthetic_messages()))

    async def scenario():
        # snapshots keep failing: the feed is inside its retry loop when it is cancelled
        async with ReplayServer(capture, snapshot_failures=10**6) as server:
            queue: asyncio.Queue = asyncio.Queue()
            feed = BinanceFeed(config(server), queue, rng=random.Random(1), retry_rng=random.Random(2))
            task = await start_feed(feed)
            await until(lambda: feed.counters.snapshot_failures >= 2 and server.finished.is_set(), "retrying")
            published = queue.qsize()
            await stop_feed(task)
            await until(lambda: server.open_connections == 0, "server sees the close")
            leftovers = [t for t in asyncio.all_tasks() if t.get_name().startswith("binance-snapshot")]
            return feed, queue, published, leftovers

    feed, queue, published, leftovers = run(scenario())
    assert leftovers == [] and not feed.connected.is_set()
    assert queue.qsize() == published  # nothing is published after cancellation
    first = queue.get_nowait()
    assert first.dtype == EVENT_DTYPE and first["kind"][0] == EventKind.TRADE
    assert feed.counters.trades == 9 and feed.sync_totals().snapshots == 0


def test_a_failing_sink_stops_the_feed_with_its_error():
    capture = Capture.from_lines(capture_lines(synthetic_messages()))

    async def scenario():
        async with ReplayServer(capture) as server:
            async def sink(records: np.ndarray) -> None:
                raise RuntimeError("downstream is broken")

            feed = BinanceFeed(config(server), sink, rng=random.Random(1), retry_rng=random.Random(2))
            with pytest.raises(RuntimeError, match="downstream is broken"):
                await feed.run()
            await until(lambda: server.open_connections == 0, "server sees the close")
            return feed

    feed = run(scenario())
    assert feed.counters.connects == 1 and not feed.connected.is_set()
