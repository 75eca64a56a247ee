"""Order-book synchronisation: Binance's documented procedure, gaps, stale updates, and the real capture."""

from __future__ import annotations

import csv
import gzip
import json

import pytest
from binance_fixtures import GAP_LINE, INSTRUMENT, SYMBOL, SYMBOLS, RecordBook, RefBook, fixed, synthetic_messages
from hypothesis import given, settings
from hypothesis import strategies as st

from framework.events import BookFlag, EventKind, Side
from live.venues.binance.book_sync import BookSync, SyncMode, SyncState
from live.venues.binance.messages import DepthDiff, DepthSnapshot, Rejected, decode, decode_snapshot
from tests.conftest import shared_data_dir

TS = 1_000


def diff(U: int, u: int, pu: int | None, bids=(), asks=()) -> DepthDiff:
    return DepthDiff(SYMBOL, INSTRUMENT, U, u, pu, TS, TS, tuple(bids), tuple(asks))


def snap(last: int, bids=(), asks=()) -> DepthSnapshot:
    return DepthSnapshot(SYMBOL, INSTRUMENT, last, TS, TS, tuple(bids), tuple(asks))


def P(x: float) -> int:
    return round(x * 10) * 100_000_000  # one decimal, exact


# --------------------------------------------------------------------------- the synthetic capture


def _synthetic():
    """The synthetic messages decoded in order, with the JSON beside each for the reference book."""
    out = []
    for i, m in enumerate(synthetic_messages()):
        obj = json.loads(m)
        if "lastUpdateId" in obj:
            out.append((i, obj, decode_snapshot(m, SYMBOL, TS + i, SYMBOLS)))
        elif obj["data"].get("e") == "depthUpdate":
            out.append((i, obj["data"], decode(m, TS + i, SYMBOLS)))
    return out


def test_synthetic_capture_buffers_syncs_detects_the_gap_and_resyncs():
    sync = BookSync(INSTRUMENT)
    down = RecordBook()
    ref = RefBook()
    snapshot_seen = False
    assert not sync.needs_snapshot  # nothing buffered yet: too early to fetch
    for i, obj, msg in _synthetic():
        if isinstance(msg, DepthSnapshot):
            assert sync.needs_snapshot and sync.buffered == 2
            out = sync.on_snapshot(msg)
            # snapshot records, then the buffered diff that bridges it; the older diff is dropped
            assert out["kind"][0] == EventKind.BOOK_SNAPSHOT and out["flags"][0] & BookFlag.CLEAR
            assert set(out["kind"][6:]) == {EventKind.BOOK_DELTA}
            assert sync.counters.stale == 1 and sync.counters.snapshots == 1 and sync.counters.applied == 1
            ref.load_snapshot(obj)
            ref.apply_diff(json.loads(synthetic_messages()[3])["data"])
            snapshot_seen = True
        else:
            out = sync.on_diff(msg)
            if not snapshot_seen:
                assert len(out) == 0 and sync.state is SyncState.BUFFERING
                continue
            if i == GAP_LINE:
                assert sync.counters.gaps == 1 and sync.state is SyncState.BUFFERING and sync.needs_snapshot
                assert len(out) == 2 and all(out["flags"] & BookFlag.CLEAR) and not out["size"].any()
                down.apply(out)
                assert down.empty  # nothing trades on a book known to be wrong
                ref.apply_diff(obj)
                break
            ref.apply_diff(obj)
            assert sync.last_update_id == msg.final_update_id
        down.apply(out)
        assert down.sides == ref.sides, f"after line {i}"

    # the rest of the capture arrives while the feed fetches a new snapshot; the venue's
    # book moved on to u=150 meanwhile
    later = [(i, obj, msg) for i, obj, msg in _synthetic() if i > GAP_LINE]
    for i, obj, msg in later:
        if msg.final_update_id <= 150:
            ref.apply_diff(obj)
        assert len(sync.on_diff(msg)) == 0
    fresh = snap(150, [(p, q) for p, q in ref.sides[Side.BUY].items()], [(p, q) for p, q in ref.sides[Side.SELL].items()])
    down.apply(sync.on_snapshot(fresh))
    for i, obj, msg in later:
        if msg.final_update_id > 150:
            ref.apply_diff(obj)
    assert sync.state is SyncState.SYNCED and sync.counters.resyncs == 1 and sync.counters.gaps == 1
    assert down.sides == ref.sides
    assert sync.last_update_id == 180


# --------------------------------------------------------------------------- the procedure, rule by rule


def _synced(mode=SyncMode.FUTURES) -> tuple[BookSync, RecordBook]:
    sync = BookSync(INSTRUMENT, mode)
    down = RecordBook()
    if mode is SyncMode.FUTURES:
        sync.on_diff(diff(95, 105, 94, [(P(10), 1)]))
        down.apply(sync.on_snapshot(snap(100, [(P(10), 5)], [(P(11), 5)])))
    else:
        sync.on_diff(diff(95, 105, None, [(P(10), 1)]))
        down.apply(sync.on_snapshot(snap(100, [(P(10), 5)], [(P(11), 5)])))
    assert sync.state is SyncState.SYNCED and sync.last_update_id == 105
    return sync, down


def test_duplicates_and_old_updates_are_dropped_not_gaps():
    sync, _ = _synced()
    assert len(sync.on_diff(diff(106, 110, 105, [(P(10), 2)]))) == 1
    for old in (diff(106, 110, 105, [(P(10), 9)]), diff(95, 105, 94, [(P(10), 9)]), diff(101, 108, 100)):
        assert len(sync.on_diff(old)) == 0
    assert sync.counters.stale == 3 and sync.counters.gaps == 0 and sync.state is SyncState.SYNCED
    assert len(sync.on_diff(diff(111, 112, 110, [(P(10), 3)]))) == 1


def test_a_missing_diff_is_a_gap_even_if_ids_look_plausible():
    sync, _ = _synced()
    out = sync.on_diff(diff(111, 115, 110))  # pu 110, but the book is at 105
    assert sync.counters.gaps == 1 and sync.needs_snapshot and len(out) == 2
    assert list(out["kind"]) == [EventKind.BOOK_SNAPSHOT] * 2


def test_gap_without_clear_on_gap_publishes_nothing_but_still_resyncs():
    sync = BookSync(INSTRUMENT, clear_on_gap=False)
    sync.on_diff(diff(95, 105, 94))
    sync.on_snapshot(snap(100, [(P(10), 5)]))
    assert len(sync.on_diff(diff(120, 130, 119))) == 0
    assert sync.counters.gaps == 1 and sync.state is SyncState.BUFFERING
    out = sync.on_snapshot(snap(125, [(P(10), 4)]))
    assert out["flags"][0] & BookFlag.CLEAR and sync.counters.resyncs == 1


def test_snapshot_older_than_the_buffered_stream_is_refused():
    sync = BookSync(INSTRUMENT)
    sync.on_diff(diff(96, 105, 95))
    assert len(sync.on_snapshot(snap(90, [(P(10), 1)]))) == 0  # 91..95 are missing between them
    assert sync.counters.stale_snapshots == 1 and sync.needs_snapshot and sync.counters.snapshots == 0
    assert len(sync.on_snapshot(snap(100, [(P(10), 1)]))) == 2  # one bid, the empty ask side's CLEAR; the diff has no level
    assert sync.state is SyncState.SYNCED


def test_snapshot_newer_than_every_buffered_diff_waits_for_the_bridging_one():
    sync = BookSync(INSTRUMENT)
    sync.on_diff(diff(90, 95, 89))
    out = sync.on_snapshot(snap(100, [(P(10), 1)], [(P(11), 1)]))
    assert len(out) == 2 and sync.state is SyncState.SYNCED and sync.counters.stale == 1
    assert len(sync.on_diff(diff(96, 99, 95))) == 0  # still before the snapshot
    assert len(sync.on_diff(diff(100, 104, 99, [(P(10), 2)]))) == 1  # bridges 100
    assert sync.counters.gaps == 0


def test_futures_boundaries_are_exactly_the_documented_ones():
    """Drop u < lastUpdateId; the first processed event has U <= lastUpdateId <= u (u == lastUpdateId counts)."""
    sync = BookSync(INSTRUMENT)
    sync.on_diff(diff(95, 99, 94, [(P(1), 1)]))
    sync.on_diff(diff(100, 100, 99, [(P(2), 1)]))
    sync.on_diff(diff(101, 103, 100, [(P(3), 1)]))
    out = sync.on_snapshot(snap(100, [(P(9), 1)]))
    assert sync.counters.stale == 1 and sync.counters.applied == 2
    assert list(out["price"][-2:]) == [P(2), P(3)]
    sync = BookSync(INSTRUMENT)
    sync.on_diff(diff(101, 103, 100))
    assert len(sync.on_snapshot(snap(100))) == 0 and sync.counters.stale_snapshots == 1  # U = lastUpdateId + 1


def test_first_diff_after_snapshot_that_skips_it_is_a_gap():
    sync = BookSync(INSTRUMENT)
    sync.on_diff(diff(90, 95, 89))
    sync.on_snapshot(snap(100))
    sync.on_diff(diff(101, 110, 100))  # U > lastUpdateId: the event containing 100 never came
    assert sync.counters.gaps == 1 and sync.needs_snapshot


def test_spot_rules():
    sync = BookSync(INSTRUMENT, SyncMode.SPOT)
    sync.on_diff(diff(90, 100, None))  # u <= lastUpdateId: dropped for spot
    sync.on_diff(diff(101, 105, None, [(P(10), 2)]))  # bridges lastUpdateId + 1
    out = sync.on_snapshot(snap(100, [(P(10), 1)]))
    assert sync.counters.stale == 1 and sync.counters.applied == 1 and out["size"][-1] == 2
    assert len(sync.on_diff(diff(106, 110, None, [(P(9), 1)]))) == 1  # U == previous u + 1
    assert len(sync.on_diff(diff(106, 110, None))) == 0 and sync.counters.stale == 2
    sync.on_diff(diff(112, 115, None))  # 111 missing
    assert sync.counters.gaps == 1


def test_spot_refuses_a_snapshot_that_the_first_diff_does_not_follow():
    sync = BookSync(INSTRUMENT, SyncMode.SPOT)
    sync.on_diff(diff(102, 105, None))
    assert len(sync.on_snapshot(snap(100))) == 0 and sync.counters.stale_snapshots == 1


def test_futures_diff_without_pu_is_rejected():
    with pytest.raises(Rejected) as err:
        BookSync(INSTRUMENT).on_diff(diff(1, 2, None))
    assert err.value.reason == "missing_field"


def test_buffer_is_bounded_and_overflow_counted():
    sync = BookSync(INSTRUMENT, max_buffer=3)
    for k in range(5):
        sync.on_diff(diff(10 * k + 1, 10 * k + 10, 10 * k))
    assert sync.buffered == 3 and sync.counters.buffer_overflows == 2
    assert len(sync.on_snapshot(snap(5))) == 0  # the evicted diffs left a hole: refused, not papered over
    assert len(sync.on_snapshot(snap(25))) > 0 and sync.counters.applied == 3


def test_reset_clears_downstream_once_and_the_next_snapshot_is_a_resync():
    sync, down = _synced()
    out = sync.reset(TS)
    down.apply(out)
    assert down.empty and sync.state is SyncState.BUFFERING and not sync.needs_snapshot
    assert len(sync.reset(TS)) == 0  # nothing published since: nothing to clear
    sync.on_diff(diff(200, 210, 199))
    sync.on_snapshot(snap(205, [(P(10), 1)]))
    assert sync.counters.resyncs == 1 and sync.counters.snapshots == 2


# --------------------------------------------------------------------------- property


@st.composite
def _scenarios(draw):
    n = draw(st.integers(3, 30))
    prices = st.integers(1, 12).map(lambda k: k * 100_000_000)
    level = st.tuples(prices, st.integers(0, 3).map(lambda k: k * 1_000_000))
    diffs = []
    u = 1000
    for _ in range(n):
        U = u + 1
        u = U + draw(st.integers(0, 4))
        bids = draw(st.lists(level, min_size=1, max_size=3, unique_by=lambda x: x[0]))
        asks = draw(st.lists(level, max_size=3, unique_by=lambda x: x[0]))
        diffs.append((U, u, bids, asks))
    actions = draw(st.lists(st.sampled_from(["deliver"] * 6 + ["drop", "dup", "old", "snapshot"]), min_size=n,
                            max_size=3 * n))
    return diffs, actions


@pytest.mark.parametrize("mode", [SyncMode.FUTURES, SyncMode.SPOT])
@settings(max_examples=150, deadline=None)
@given(scenario=_scenarios())
def test_whenever_synced_the_downstream_book_is_the_venues_book_at_that_update(mode, scenario):
    """Drops, duplicates, replays and snapshots at any moment: the book is right or the sync says it is not."""
    diffs, actions = scenario
    truth = {Side.BUY: {P(5): 7}, Side.SELL: {P(8): 2}}
    books = {1000: {s: dict(v) for s, v in truth.items()}}  # the venue's book after each update id
    for U, u, bids, asks in diffs:
        for side, levels in ((Side.BUY, bids), (Side.SELL, asks)):
            for p, q in levels:
                if q:
                    truth[side][p] = q
                else:
                    truth[side].pop(p, None)
        books[u] = {s: dict(v) for s, v in truth.items()}

    def make(k: int) -> DepthDiff:
        U, u, bids, asks = diffs[k]
        prev = diffs[k - 1][1] if k else 1000
        return diff(U, u, prev if mode is SyncMode.FUTURES else None, bids, asks)

    def venue_snapshot() -> DepthSnapshot:
        last = diffs[sent - 1][1] if sent else 1000  # the venue is at least as far as the stream
        return snap(last, sorted(books[last][Side.BUY].items()), sorted(books[last][Side.SELL].items()))

    sync = BookSync(INSTRUMENT, mode)
    down = RecordBook()
    sent = 0
    hole = False  # a diff was lost while synced and no gap has been reported since
    for action in actions:
        if action == "snapshot":
            if sync.needs_snapshot:
                down.apply(sync.on_snapshot(venue_snapshot()))
        elif action == "old":
            if sent >= 2:
                down.apply(sync.on_diff(make(sent - 2)))  # a late or repeated delivery
        elif sent < len(diffs):
            if action == "drop":
                hole |= sync.state is SyncState.SYNCED
                sent += 1
                continue
            gaps, was_synced = sync.counters.gaps, sync.state is SyncState.SYNCED
            down.apply(sync.on_diff(make(sent)))
            if hole and was_synced:
                assert sync.counters.gaps == gaps + 1, "a lost diff went unnoticed"
            if action == "dup":
                down.apply(sync.on_diff(make(sent)))
            sent += 1
        if sync.state is not SyncState.SYNCED:
            hole = False  # the gap was reported (or the book awaits a snapshot that covers the loss)
        if sync.state is SyncState.SYNCED:
            assert down.sides == books[sync.last_update_id]
        elif down.messages:
            assert down.empty  # out of sync: downstream was cleared


# --------------------------------------------------------------------------- the real capture


@pytest.fixture(scope="module")
def real_depth():
    """The raw capture's depth lines and snapshot (decoded), and the converted CSV's messages."""
    root = shared_data_dir()
    raw_path = root / "depth/binance_usdm_btcusdt_raw_ws_20240808.jsonl.gz"
    csv_path = root / "depth/binance_usdm_btcusdt_depth_20240808.csv.gz"
    if not (raw_path.is_file() and csv_path.is_file()):
        pytest.skip(f"real Binance capture not found under {root} (set SHARED_DATA to the data folder)")
    msgs = []
    with gzip.open(raw_path, "rb") as f:
        for line in f:
            ts, _, payload = line.rstrip().partition(b" ")
            if payload.startswith(b'{"lastUpdateId'):
                msgs.append(decode_snapshot(payload, SYMBOL, int(ts), SYMBOLS))
            elif b"@depth" in payload[:40]:
                msgs.append(decode(payload, int(ts), SYMBOLS))
    # the CSV, one message per run of rows sharing (msg_type, final_update_id, local_ts_ns)
    csv_msgs = []
    with gzip.open(csv_path, "rt", newline="") as f:
        for row in csv.DictReader(f):
            key = (row["msg_type"], int(row["final_update_id"]), row["local_ts_ns"])
            if not csv_msgs or csv_msgs[-1][0] != key:
                csv_msgs.append((key, int(row["first_update_id"] or 0), []))
            csv_msgs[-1][2].append((Side.BUY if row["side"] == "bid" else Side.SELL, fixed(row["price"]),
                                    fixed(row["qty"])))
    return msgs, csv_msgs


def _csv_books(csv_msgs, every: int = 0, until: int | None = None):
    """Apply the converted CSV by the README's rules, independently of the code under test.

    Diffs before the snapshot in file order are buffered; after it, those with
    u < lastUpdateId are dropped. Return the book after the last diff (or the last with
    u <= ``until``) and, every ``every`` applied diffs, {u: top-20 book}.
    """
    book = {Side.BUY: {}, Side.SELL: {}}
    last = None
    early = []
    applied = 0
    tops = {}

    def apply(rows):
        for side, price, qty in rows:
            if qty:
                book[side][price] = qty
            else:
                book[side].pop(price, None)

    for (kind, u, _), _, rows in csv_msgs:
        if kind == "snapshot":
            last = u
            apply(rows)
            todo = [(v, r) for v, r in early if v >= last]
        elif last is None:
            early.append((u, rows))
            continue
        elif u < last:
            continue
        else:
            todo = [(u, rows)]
        for v, r in todo:
            if until is not None and v > until:
                return book, tops
            apply(r)
            applied += 1
            if every and applied % every == 0:
                tops[v] = _top(book)
    return book, tops


def _top(sides, n: int = 20):
    return (sorted(sides[Side.BUY].items(), reverse=True)[:n], sorted(sides[Side.SELL].items())[:n])


def _run(sync: BookSync, msgs, down: RecordBook, every: int, tops: dict | None = None) -> int:
    checked = 0
    for msg in msgs:
        out = sync.on_snapshot(msg) if isinstance(msg, DepthSnapshot) else sync.on_diff(msg)
        down.apply(out)
        if tops is not None and sync.state is SyncState.SYNCED and sync.last_update_id in tops and len(out):
            assert _top(down.sides) == tops[sync.last_update_id], sync.last_update_id
            checked += 1
    return checked


def test_real_capture_gives_the_same_book_as_the_converted_csv(real_depth):
    msgs, csv_msgs = real_depth
    final, tops = _csv_books(csv_msgs, every=50)
    sync = BookSync(INSTRUMENT)
    down = RecordBook()
    checked = _run(sync, msgs, down, 50, tops)
    assert checked >= 100
    c = sync.counters
    assert (c.diffs, c.snapshots, c.gaps, c.resyncs, c.stale_snapshots) == (6551, 1, 0, 0, 0)
    assert c.applied + c.stale == 6551 and c.stale == 4  # the diffs before the snapshot's lastUpdateId
    assert down.sides == final  # every level, not only the top
    bid, ask = _top(down.sides, 1)
    assert bid[0][0] < ask[0][0]  # never crossed


def test_real_capture_with_a_lost_diff_resyncs_to_the_same_book(real_depth):
    msgs, csv_msgs = real_depth
    final, _ = _csv_books(csv_msgs)
    diffs = [m for m in msgs if isinstance(m, DepthDiff)]
    lost = diffs[3000]
    stream = [m for m in msgs if m is not lost]
    cut = stream.index(diffs[3001])
    sync = BookSync(INSTRUMENT)
    down = RecordBook()
    _run(sync, stream[:cut], down, 0)
    assert sync.state is SyncState.SYNCED and sync.counters.gaps == 0
    out = sync.on_diff(diffs[3001])
    down.apply(out)
    assert sync.counters.gaps == 1 and down.empty and sync.needs_snapshot
    # more diffs arrive and are buffered while the REST snapshot is in flight
    pending = stream[cut + 1 : cut + 21]
    _run(sync, pending, down, 0)
    assert down.empty and sync.buffered == 21
    # the venue's book at diff 3010, rebuilt from the CSV (the venue never lost anything)
    at = diffs[3010].final_update_id
    book, _ = _csv_books(csv_msgs, until=at)
    fresh = snap(at, sorted(book[Side.BUY].items(), reverse=True), sorted(book[Side.SELL].items()))
    down.apply(sync.on_snapshot(fresh))
    assert sync.state is SyncState.SYNCED and sync.counters.resyncs == 1
    _run(sync, stream[cut + 21 :], down, 0)
    # a duplicate at the end changes nothing
    down.apply(sync.on_diff(diffs[-2]))
    assert sync.counters.gaps == 1 and sync.counters.stale >= 1 + 4
    assert down.sides == final
