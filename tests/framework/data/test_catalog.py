"""The Parquet catalog: layout, registry, atomic writes, reads and the merged stream."""

from __future__ import annotations

import json
import tempfile

import numpy as np
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from framework.data.catalog import Catalog
from framework.events import (
    BAR_DTYPE,
    BOOK_DTYPE,
    EVENT_DTYPE,
    KIND_DTYPES,
    QUOTE_DTYPE,
    TRADE_DTYPE,
    BookFlag,
    EventKind,
)

DAY = 86_400_000_000_000
T0 = 1_704_067_200_000_000_000  # 2024-01-01T00:00:00Z


def make(kind: str, ts, /, **fields) -> np.ndarray:
    """Build records of ``kind`` at times ``ts`` with payload ``fields`` (default: row numbers)."""
    ts = np.asarray(ts, dtype=np.int64)
    out = np.zeros(len(ts), dtype=KIND_DTYPES[kind])
    out["ts_event"] = ts
    out["ts_recv"] = ts + 7
    payload = [n for n in out.dtype.names if out.dtype.fields[n][1] >= 24]
    for name in payload:
        out[name] = fields.get(name, np.arange(len(ts)) + 1)
    for name in ("side", "flags", "kind"):
        if name in fields:
            out[name] = fields[name]
    return out


def test_write_partitions_by_utc_date_with_exact_column_types(tmp_path):
    cat = Catalog(tmp_path)
    trades = make("trade", [T0 + DAY + 5, T0 + 1, T0 + DAY - 1], side=[1, -1, 1])
    paths = cat.write("trade", "BTC", trades)
    assert [p.relative_to(tmp_path).as_posix() for p in paths] == [
        "trade/BTC/2024-01-01.parquet",
        "trade/BTC/2024-01-02.parquet",
    ]
    assert cat.dates("trade", "BTC") == ["2024-01-01", "2024-01-02"]
    schema = pq.read_schema(paths[0])
    assert schema.names == ["ts_event", "ts_recv", "side", "flags", "venue_id", "price", "size", "trade_id"]
    assert [str(t) for t in schema.types] == ["int64", "int64", "int8", "uint8", "uint8", "int64", "int64", "int64"]
    assert pq.ParquetFile(paths[0]).metadata.row_group(0).column(0).compression == "ZSTD"
    assert pq.read_table(paths[0]).column("ts_event").to_pylist() == [T0 + 1, T0 + DAY - 1]


def test_book_files_keep_the_kind_column(tmp_path):
    """BOOK_SNAPSHOT vs BOOK_DELTA is not implied by the path, so book files store it."""
    cat = Catalog(tmp_path)
    kinds = [EventKind.BOOK_SNAPSHOT, EventKind.BOOK_SNAPSHOT, EventKind.BOOK_DELTA]
    flags = [BookFlag.CLEAR, BookFlag.CLEAR | BookFlag.LAST, BookFlag.LAST]
    book = make("book", [T0, T0, T0 + 1], kind=kinds, side=[1, -1, 1], flags=flags)
    (path,) = cat.write("book", "X", book)
    assert "kind" in pq.read_schema(path).names
    back = cat.read("book", "X")
    assert back["kind"].tolist() == kinds
    assert back["flags"].tolist() == flags


@pytest.mark.parametrize(("kind", "code"), [("trade", EventKind.TRADE), ("quote", EventKind.QUOTE),
                                            ("bar", EventKind.BAR)])
def test_read_round_trips_and_fills_kind_and_instrument(tmp_path, kind, code):
    cat = Catalog(tmp_path)
    cat.instrument_id("FIRST")
    records = make(kind, T0 + np.arange(5) * 1000, side=[1, -1, 0, 1, -1], flags=[0, 1, 2, 3, 255])
    cat.write(kind, "SECOND", records)
    back = cat.read(kind, "SECOND")
    assert back.dtype == KIND_DTYPES[kind]
    expected = np.zeros(len(records), dtype=records.dtype)  # a structured copy would not zero padding
    for name in records.dtype.names:
        expected[name] = records[name]
    expected["kind"] = code
    expected["instrument_id"] = 1
    assert back.tobytes() == expected.tobytes()


def test_write_sorts_stably_and_replaces_an_existing_date(tmp_path):
    cat = Catalog(tmp_path)
    cat.write("trade", "X", make("trade", [T0 + 5, T0 + 1, T0 + 5, T0 + 1], price=[1, 2, 3, 4]))
    assert cat.read("trade", "X")["price"].tolist() == [2, 4, 1, 3]
    cat.write("trade", "X", make("trade", [T0 + 9], price=[42]))
    assert cat.read("trade", "X")["price"].tolist() == [42]
    assert sorted(p.name for p in (tmp_path / "trade" / "X").iterdir()) == ["2024-01-01.parquet"]


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    cat = Catalog(tmp_path)
    cat.write("trade", "X", make("trade", [T0], price=[1]))

    def broken(table, where, **kwargs):
        with open(where, "wb") as f:
            f.write(b"half a file")
        raise OSError("disk full")

    monkeypatch.setattr(pq, "write_table", broken)
    with pytest.raises(OSError, match="disk full"):
        cat.write("trade", "X", make("trade", [T0], price=[2]))
    monkeypatch.undo()
    assert cat.read("trade", "X")["price"].tolist() == [1]
    assert [p.name for p in (tmp_path / "trade" / "X").iterdir()] == ["2024-01-01.parquet"]


def test_registry_assigns_dense_ids_and_keeps_metadata(tmp_path):
    cat = Catalog(tmp_path)
    assert cat.instrument_id("B") == 0
    assert cat.register("A", tick_size=10_000_000) == 1
    assert cat.instrument_id("B") == 0
    assert cat.register("B", lot_size=1_000_000) == 0
    assert cat.symbols() == ["B", "A"]
    assert cat.instrument("A") == {"id": 1, "tick_size": 10_000_000}
    assert json.loads((tmp_path / "instruments.json").read_text()) == {
        "A": {"id": 1, "tick_size": 10_000_000},
        "B": {"id": 0, "lot_size": 1_000_000},
    }
    with pytest.raises(KeyError, match="not registered"):
        cat.instrument_id("C", create=False)
    assert [p.name for p in tmp_path.iterdir()] == ["instruments.json"]


def test_write_rejects_wrong_dtypes_kinds_and_symbols(tmp_path):
    cat = Catalog(tmp_path)
    with pytest.raises(TypeError, match="dtype"):
        cat.write("trade", "X", make("quote", [T0]))
    with pytest.raises(ValueError, match="unknown kind"):
        cat.write("report", "X", np.zeros(1, KIND_DTYPES["report"]))
    with pytest.raises(ValueError, match="directory"):
        cat.write("trade", "../X", make("trade", [T0]))
    assert not cat.has("trade", "X") and cat.dates("trade", "NONE") == []


def test_read_and_stream_select_a_half_open_time_range_across_row_groups(tmp_path):
    cat = Catalog(tmp_path, row_group_rows=7)
    ts = T0 + np.arange(100) * (DAY // 40)  # 2.5 days, many row groups per file
    cat.write("trade", "X", make("trade", ts))
    start, end = int(ts[13]), int(ts[77])
    assert cat.read("trade", "X", start, end)["ts_event"].tolist() == ts[13:77].tolist()
    streamed = np.concatenate(list(cat.stream([("trade", "X")], start, end, chunk_rows=10)), dtype=EVENT_DTYPE)
    assert streamed["ts_event"].tolist() == ts[13:77].tolist()
    assert cat.read("trade", "X", end_ns=T0)["ts_event"].tolist() == []


def test_single_stream_yields_exact_chunks_of_event_records(tmp_path):
    cat = Catalog(tmp_path, row_group_rows=16)
    records = make("quote", T0 + np.arange(103) * 1_000_000_000_000)
    cat.write("quote", "X", records)
    chunks = list(cat.stream([("quote", "X")], chunk_rows=25))
    assert [len(c) for c in chunks] == [25, 25, 25, 25, 3]
    events = np.concatenate(chunks, dtype=EVENT_DTYPE)  # plain concatenate repacks the union
    assert events.dtype == EVENT_DTYPE
    assert (events["kind"] == EventKind.QUOTE).all() and (events["instrument_id"] == 0).all()
    assert events["ts_recv"].tolist() == records["ts_recv"].tolist()
    assert events.view(QUOTE_DTYPE)["ask_price"].tolist() == records["ask_price"].tolist()


def test_stream_of_nothing_yields_nothing(tmp_path):
    cat = Catalog(tmp_path)
    assert list(cat.stream([("trade", "X")])) == []
    assert list(cat.stream([("trade", "X"), ("quote", "Y")])) == []


def test_stream_can_be_abandoned_midway(tmp_path):
    cat = Catalog(tmp_path, row_group_rows=10)
    cat.write("trade", "X", make("trade", T0 + np.arange(1000)))
    cat.write("quote", "X", make("quote", T0 + np.arange(1000)))
    for streams in ([("trade", "X")], [("trade", "X"), ("quote", "X")]):
        it = cat.stream(streams, chunk_rows=10)
        assert len(next(it)) == 10
        it.close()  # must not hang on the background readers


def test_stream_reports_a_corrupt_file(tmp_path):
    cat = Catalog(tmp_path)
    (path,) = cat.write("trade", "X", make("trade", [T0]))
    cat.write("quote", "X", make("quote", [T0]))
    path.write_bytes(b"PAR1 not really parquet PAR1")
    with pytest.raises(Exception, match="(?i)parquet|magic|metadata|size"):
        list(cat.stream([("quote", "X"), ("trade", "X")]))


STREAMS = [("trade", "A"), ("quote", "A"), ("trade", "B"), ("bar", "A"), ("book", "B")]


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    contents=st.lists(st.lists(st.integers(0, 12), max_size=60), min_size=1, max_size=len(STREAMS)),
    chunk_rows=st.integers(1, 40),
    row_group_rows=st.integers(1, 20),
    window=st.tuples(st.integers(-1, 13), st.integers(-1, 13)),
)
def test_stream_equals_a_stable_sort_of_the_streams_in_list_order(contents, chunk_rows, row_group_rows, window):
    """The tie-break rule: by ts_event, then position in ``streams``, then row order."""
    slot = DAY // 4  # few distinct times, spread over four UTC dates: many ties
    with tempfile.TemporaryDirectory() as root:
        cat = Catalog(root, row_group_rows=row_group_rows)
        streams = STREAMS[: len(contents)]
        expected = []
        for (kind, symbol), slots in zip(streams, contents):
            records = make(kind, T0 + np.asarray(slots, dtype=np.int64) * slot)
            if kind == "book":
                records["kind"] = EventKind.BOOK_DELTA
            cat.write(kind, symbol, records)
            stored = cat.read(kind, symbol)  # stably sorted by the catalog
            expected.append(stored.view(EVENT_DTYPE))
        start = None if window[0] < 0 else T0 + window[0] * slot
        end = None if window[1] < 0 else T0 + window[1] * slot
        merged = np.concatenate(expected, dtype=EVENT_DTYPE)
        merged = merged[np.argsort(merged["ts_event"], kind="stable")]
        keep = np.ones(len(merged), dtype=bool)
        if start is not None:
            keep &= merged["ts_event"] >= start
        if end is not None:
            keep &= merged["ts_event"] < end
        merged = merged[keep]
        chunks = list(cat.stream(streams, start, end, chunk_rows=chunk_rows))
        assert all(len(c) == chunk_rows for c in chunks[:-1])
        assert all(0 < len(c) <= chunk_rows for c in chunks)
        got = np.concatenate(chunks, dtype=EVENT_DTYPE) if chunks else np.zeros(0, EVENT_DTYPE)
        assert got.tobytes() == merged.tobytes()


def test_stream_merges_real_dtypes_bytewise(tmp_path):
    """Merged records keep every payload byte of their kind (no field is dropped)."""
    cat = Catalog(tmp_path)
    trades = make("trade", [T0 + 2, T0 + 4], side=[1, -1])
    quotes = make("quote", [T0 + 1, T0 + 2])
    bars = make("bar", [T0 + 3])
    book = make("book", [T0 + 2], kind=[EventKind.BOOK_SNAPSHOT], flags=[BookFlag.CLEAR | BookFlag.LAST])
    for kind, records in [("trade", trades), ("quote", quotes), ("bar", bars), ("book", book)]:
        cat.write(kind, "S", records)
    events = np.concatenate(
        list(cat.stream([("book", "S"), ("quote", "S"), ("trade", "S"), ("bar", "S")])), dtype=EVENT_DTYPE
    )
    assert events["kind"].tolist() == [EventKind.QUOTE, EventKind.BOOK_SNAPSHOT, EventKind.QUOTE,
                                       EventKind.TRADE, EventKind.BAR, EventKind.TRADE]
    assert events[1:2].view(BOOK_DTYPE)[["price", "size", "sequence", "flags"]].tolist() == \
        book[["price", "size", "sequence", "flags"]].tolist()
    assert events[3:4].view(TRADE_DTYPE)[["price", "size", "trade_id", "side"]].tolist() == \
        trades[:1][["price", "size", "trade_id", "side"]].tolist()
    assert events[4:5].view(BAR_DTYPE)["volume"].tolist() == bars["volume"].tolist()
