"""A Parquet catalog of market data, partitioned by kind, symbol and UTC date.

Layout::

    root/instruments.json                      {symbol: {"id": int, ...metadata}}
    root/<kind>/<SYMBOL>/<YYYY-MM-DD>.parquet  one UTC day of one kind of one symbol

``kind`` is one of ``trade``, ``quote``, ``book``, ``bar``. A file holds the columns of
``KIND_DTYPES[kind]`` with their exact integer types, minus ``instrument_id`` (the
path names the symbol, the registry its id) and minus ``kind`` (the path names it),
except for ``book``, whose records are either BOOK_DELTA or BOOK_SNAPSHOT and so keep
their ``kind`` column. Rows are sorted by ``ts_event`` (stably, so same-time records
keep their input order) and split into row groups, so a reader never holds more than
a row group of one file per stream. Every file is written to a temporary name in its
own directory and then renamed over the target, so readers never see half a file.
"""

from __future__ import annotations

import json
import os
import queue
import re
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import numba as nb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from framework.events import EVENT_DTYPE, KIND_DTYPES, EventKind

KINDS: tuple[str, ...] = ("trade", "quote", "book", "bar")
"""Kinds of market data a catalog stores."""

T = TypeVar("T")
_KIND_CODE = {"trade": EventKind.TRADE, "quote": EventKind.QUOTE, "bar": EventKind.BAR}
_DAY_NS = 86_400_000_000_000
_DATE_FILE = re.compile(r"^(\d{4}-\d{2}-\d{2})\.parquet$")
_ARROW_TYPES = {"<i8": pa.int64(), "<i4": pa.int32(), "|u1": pa.uint8(), "|i1": pa.int8()}
_WORDS = EVENT_DTYPE.itemsize // 8
_WORD = {name: off // 8 for name, (fmt, off) in EVENT_DTYPE.fields.items() if fmt == np.dtype("<i8")}
"""Int64 fields by their 8-byte word in a record; the byte fields share header word 2."""
_HEADER_WORD = EVENT_DTYPE.fields["kind"][1] // 8
_BYTE_SHIFT = {"kind": 0, "side": 8, "flags": 16, "venue_id": 24}
_HEADER_BYTES = [EVENT_DTYPE.fields[f][1] - 8 * _HEADER_WORD for f in ("kind", "side", "flags", "venue_id")]
if _HEADER_BYTES != [shift // 8 for shift in _BYTE_SHIFT.values()] or not np.little_endian:
    raise ImportError("catalog packs record headers as little-endian kind, side, flags, venue_id, instrument_id")


def _columns(kind: str) -> list[str]:
    """Return the stored columns of ``kind``: its fields less those the path implies."""
    implied = {"instrument_id"} if kind == "book" else {"instrument_id", "kind"}
    return [name for name in KIND_DTYPES[kind].names if name not in implied]


def _schema(kind: str) -> pa.Schema:
    dtype = KIND_DTYPES[kind]
    return pa.schema([(name, _ARROW_TYPES[dtype.fields[name][0].str]) for name in _columns(kind)])


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; expected one of {', '.join(KINDS)}")


def _check_symbol(symbol: str) -> None:
    if not symbol or symbol in (".", "..") or "/" in symbol or "\\" in symbol or symbol != symbol.strip():
        raise ValueError(f"symbol {symbol!r} cannot name a directory")


def _atomic_write(path: Path, write: Callable[[str], object]) -> None:
    """Call ``write(tmp_path)`` and rename the result over ``path``; clean up on failure."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def _date_of_day(day: int) -> str:
    return str(np.datetime64(day, "D"))


def _day_of_date(date: str) -> int:
    return int(np.datetime64(date, "D").astype(np.int64))


class Catalog:
    """Store and replay market data as date-partitioned Parquet files.

    ``row_group_rows`` bounds how many rows a reader decodes at once; keep it near the
    chunk sizes you stream with.
    """

    def __init__(self, root: str | Path, *, row_group_rows: int = 262_144) -> None:
        self.root = Path(root)
        self.row_group_rows = row_group_rows

    # ------------------------------------------------------------------ instruments

    @property
    def _registry_path(self) -> Path:
        return self.root / "instruments.json"

    def _registry(self) -> dict[str, dict]:
        try:
            return json.loads(self._registry_path.read_text())
        except FileNotFoundError:
            return {}

    def register(self, symbol: str, **metadata: int | str | float) -> int:
        """Register ``symbol`` (if new) and merge ``metadata`` into its entry; return its id.

        Ids are dense from 0 in registration order, so they index arrays directly.
        Keep prices and sizes in metadata as fixed-point ints (e.g. ``tick_size``).
        The registry is rewritten atomically; concurrent writers are not supported.
        """
        _check_symbol(symbol)
        if "id" in metadata:
            raise ValueError("the instrument id is assigned by the catalog")
        registry = self._registry()
        entry = registry.get(symbol)
        if entry is None:
            entry = {"id": len(registry)}
        elif all(entry.get(k) == v for k, v in metadata.items()):
            return int(entry["id"])
        registry[symbol] = {**entry, **metadata}
        self.root.mkdir(parents=True, exist_ok=True)
        text = json.dumps(registry, indent=1, sort_keys=True)
        _atomic_write(self._registry_path, lambda tmp: Path(tmp).write_text(text))
        return int(registry[symbol]["id"])

    def instrument_id(self, symbol: str, create: bool = True) -> int:
        """Return the id of ``symbol``, registering it when ``create`` (else KeyError)."""
        entry = self._registry().get(symbol)
        if entry is not None:
            return int(entry["id"])
        if not create:
            raise KeyError(f"symbol {symbol!r} is not registered in {self._registry_path}")
        return self.register(symbol)

    def instrument(self, symbol: str) -> dict:
        """Return the registry entry of ``symbol`` (id and metadata)."""
        try:
            return dict(self._registry()[symbol])
        except KeyError:
            raise KeyError(f"symbol {symbol!r} is not registered in {self._registry_path}") from None

    def symbols(self) -> list[str]:
        """Return the registered symbols in id order."""
        registry = self._registry()
        return sorted(registry, key=lambda s: registry[s]["id"])

    # ----------------------------------------------------------------------- files

    def _dir(self, kind: str, symbol: str) -> Path:
        _check_kind(kind)
        _check_symbol(symbol)
        return self.root / kind / symbol

    def dates(self, kind: str, symbol: str) -> list[str]:
        """Return the stored UTC dates (``YYYY-MM-DD``) of one stream, ascending."""
        folder = self._dir(kind, symbol)
        if not folder.is_dir():
            return []
        return sorted(m.group(1) for p in folder.iterdir() if (m := _DATE_FILE.match(p.name)))

    def has(self, kind: str, symbol: str) -> bool:
        """Return whether any data of this kind is stored for ``symbol``."""
        return bool(self.dates(kind, symbol))

    def write(self, kind: str, symbol: str, records: np.ndarray) -> list[Path]:
        """Store ``records`` (of ``KIND_DTYPES[kind]``) and return the files written.

        Records are stably sorted by ``ts_event`` and split by its UTC date; each date
        file is replaced whole, so write a day's complete data at once. The symbol is
        registered if new.
        """
        folder = self._dir(kind, symbol)
        if records.dtype != KIND_DTYPES[kind]:
            raise TypeError(f"{kind} records must have dtype KIND_DTYPES[{kind!r}], got {records.dtype}")
        self.instrument_id(symbol)
        if len(records) == 0:
            return []
        records = np.ascontiguousarray(records)
        ts = records["ts_event"]
        if np.any(ts[1:] < ts[:-1]):
            order = np.argsort(ts, kind="stable")
            records = records.view(np.int64).reshape(len(records), _WORDS)[order].view(records.dtype).ravel()
            ts = records["ts_event"]
        folder.mkdir(parents=True, exist_ok=True)
        days = ts // _DAY_NS
        cuts = np.flatnonzero(days[1:] != days[:-1]) + 1
        bounds = np.concatenate(([0], cuts, [len(records)]))
        schema = _schema(kind)
        words = records.view(np.int64).reshape(len(records), _WORDS)
        paths = []
        for lo, hi in zip(bounds[:-1], bounds[1:]):
            table = pa.Table.from_arrays(_split(words[lo:hi], schema.names), schema=schema)
            path = folder / f"{_date_of_day(int(days[lo]))}.parquet"
            _atomic_write(
                path,
                lambda tmp, table=table: pq.write_table(
                    table,
                    tmp,
                    compression="zstd",
                    row_group_size=self.row_group_rows,
                    use_dictionary=False,
                    column_encoding={name: "DELTA_BINARY_PACKED" for name in schema.names},
                ),
            )
            paths.append(path)
        return paths

    # ----------------------------------------------------------------------- reads

    def _batches(
        self, kind: str, symbol: str, start_ns: int | None, end_ns: int | None, batch_rows: int
    ) -> Iterator[pa.RecordBatch]:
        """Yield one stream's record batches in time order, restricted to [start, end)."""
        folder = self._dir(kind, symbol)
        lo_ts = np.iinfo(np.int64).min if start_ns is None else start_ns
        hi_ts = np.iinfo(np.int64).max if end_ns is None else end_ns
        columns = _columns(kind)
        for date in self.dates(kind, symbol):
            day = _day_of_date(date)
            if (day + 1) * _DAY_NS <= lo_ts or day * _DAY_NS >= hi_ts:
                continue
            pf = pq.ParquetFile(folder / f"{date}.parquet")
            ts_col = pf.schema_arrow.get_field_index("ts_event")
            groups = []
            for g in range(pf.metadata.num_row_groups):
                stats = pf.metadata.row_group(g).column(ts_col).statistics
                if stats is not None and stats.has_min_max and (stats.max < lo_ts or stats.min >= hi_ts):
                    continue
                groups.append(g)
            if not groups:
                continue
            for batch in pf.iter_batches(batch_size=batch_rows, row_groups=groups, columns=columns):
                ts = batch.column("ts_event").to_numpy()
                if ts[0] < lo_ts or ts[-1] >= hi_ts:
                    a, b = np.searchsorted(ts, (lo_ts, hi_ts))
                    batch = batch.slice(a, max(b - a, 0))  # an empty window (end before start) keeps nothing
                if batch.num_rows:
                    yield batch

    def read(self, kind: str, symbol: str, start_ns: int | None = None, end_ns: int | None = None) -> np.ndarray:
        """Return one stream's records in [start_ns, end_ns) as ``KIND_DTYPES[kind]``.

        ``kind`` and ``instrument_id`` are filled in. This loads the whole range into
        memory; use ``stream`` to replay long histories.
        """
        iid = self.instrument_id(symbol, create=False) if self.has(kind, symbol) else 0
        batches = list(self._batches(kind, symbol, start_ns, end_ns, self.row_group_rows))
        out = np.empty(sum(b.num_rows for b in batches), dtype=EVENT_DTYPE)
        pos = 0
        for batch in batches:
            _fill(out[pos : pos + batch.num_rows], batch, kind, iid)
            pos += batch.num_rows
        return out.view(KIND_DTYPES[kind])

    def stream(
        self,
        streams: list[tuple[str, str]],
        start_ns: int | None = None,
        end_ns: int | None = None,
        chunk_rows: int = 1_000_000,
    ) -> Iterator[np.ndarray]:
        """Replay several (kind, symbol) streams as one time-ordered EVENT_DTYPE sequence.

        Tie-break rule (the project's rule for ordering market data): records are
        ordered by ``ts_event``; records with equal ``ts_event`` from different
        streams come in the order of their streams in ``streams``; records with equal
        ``ts_event`` in one stream keep their stored row order (the stable order in
        which they were written). The result equals a stable sort by ``ts_event`` of
        the streams concatenated in list order.

        Yield arrays of exactly ``chunk_rows`` records, except a shorter last one;
        yielded arrays are never reused or written by later iterations, so callers
        may keep them. Only [start_ns, end_ns) is replayed. Memory stays
        O(chunk_rows x len(streams)): each stream is read a bounded batch at a time
        (background threads decode up to two batches ahead), never as a whole
        history. One stream takes a fast path that converts Arrow columns straight
        into the output chunks.
        """
        if chunk_rows < 1:
            raise ValueError(f"chunk_rows must be positive, got {chunk_rows}")
        if len(set(streams)) != len(streams):
            raise ValueError(f"streams must be distinct, got {streams}")
        batch_rows = min(chunk_rows, self.row_group_rows)
        sources = [
            (kind, self.instrument_id(symbol, create=False) if self.has(kind, symbol) else 0,
             self._batches(kind, symbol, start_ns, end_ns, batch_rows))
            for kind, symbol in streams
        ]
        if len(sources) == 1:
            kind, iid, batches = sources[0]
            return _single(kind, iid, _prefetch(batches), chunk_rows)
        return _merge([_prefetch(_events(*s)) for s in sources], chunk_rows)


def _split(words: np.ndarray, names: list[str]) -> list[np.ndarray]:
    """Return the named fields of records (as an (n, 8) int64 view) as contiguous columns.

    One compiled row-major pass reads each record once; a per-field strided copy
    would read every cache line once per field.
    """
    index = np.array(sorted({_WORD.get(name, _HEADER_WORD) for name in names}), dtype=np.int64)
    split = _split_rows(words, index)
    row = {int(w): r for r, w in enumerate(index)}
    columns = []
    for name in names:
        if name in _WORD:
            columns.append(split[row[_WORD[name]]])
        else:
            byte = (split[row[_HEADER_WORD]] >> _BYTE_SHIFT[name]) & 0xFF
            columns.append(byte.astype(np.uint8).view(EVENT_DTYPE.fields[name][0]))
    return columns


@nb.njit(cache=True, nogil=True)
def _split_rows(words, index):  # pragma: no cover - compiled
    out = np.empty((index.shape[0], words.shape[0]), dtype=np.int64)
    for i in range(words.shape[0]):
        for c in range(index.shape[0]):
            out[c, i] = words[i, index[c]]
    return out


def _fill(out: np.ndarray, batch: pa.RecordBatch, kind: str, iid: int) -> None:
    """Write an Arrow batch into EVENT_DTYPE records in one compiled row-major pass.

    Arrow's int columns are read zero-copy; every word of every record is written
    (unused payload words as 0), so ``out`` may come from ``np.empty``.
    """
    names = batch.schema.names
    n = batch.num_rows
    column = {name: batch.column(i).to_numpy() for i, name in enumerate(names)}
    words = tuple(column[name] for name in names if name in _WORD)
    none = np.zeros(n, dtype=np.uint8)
    _fill_rows(
        out.view(np.int64).reshape(n, _WORDS),
        words,
        np.array([_WORD[name] for name in names if name in _WORD], dtype=np.int64),
        column.get("kind", none),
        column.get("side", none.view(np.int8)),
        column.get("flags", none),
        column.get("venue_id", none),
        _KIND_CODE.get(kind, 0),
        iid,
    )


@nb.njit(cache=True, nogil=True)
def _fill_rows(out, words, word_index, kind_col, side, flags, venue, kind_const, iid):  # pragma: no cover
    has_kind = kind_const == 0
    used = np.zeros(out.shape[1], dtype=np.bool_)
    for c in range(len(word_index)):
        used[word_index[c]] = True
    for i in range(out.shape[0]):
        for w in range(out.shape[1]):
            if not used[w]:
                out[i, w] = 0
        for c in range(len(words)):
            out[i, word_index[c]] = words[c][i]
        k = np.int64(kind_col[i]) if has_kind else np.int64(kind_const)
        out[i, _HEADER_WORD] = (
            k
            | ((np.int64(side[i]) & 0xFF) << 8)  # shifts as in _BYTE_SHIFT, checked at import
            | (np.int64(flags[i]) << 16)
            | (np.int64(venue[i]) << 24)
            | ((np.int64(iid) & 0xFFFFFFFF) << 32)
        )


def _single(kind: str, iid: int, batches: Iterator[pa.RecordBatch], chunk_rows: int) -> Iterator[np.ndarray]:
    """Fast path for one stream: convert batches straight into the output chunks."""
    out = np.empty(chunk_rows, dtype=EVENT_DTYPE)
    fill = 0
    for batch in batches:
        while batch.num_rows:
            take = min(chunk_rows - fill, batch.num_rows)
            _fill(out[fill : fill + take], batch.slice(0, take), kind, iid)
            fill += take
            batch = batch.slice(take)
            if fill == chunk_rows:
                yield out
                out = np.empty(chunk_rows, dtype=EVENT_DTYPE)
                fill = 0
    if fill:
        yield out[:fill]


def _events(kind: str, iid: int, batches: Iterator[pa.RecordBatch]) -> Iterator[np.ndarray]:
    for batch in batches:
        out = np.empty(batch.num_rows, dtype=EVENT_DTYPE)
        _fill(out, batch, kind, iid)
        yield out


def _words(records: np.ndarray) -> np.ndarray:
    """View contiguous 64-byte records as (n, 8) int64, so copies are plain memcpy.

    NumPy copies a structured dtype field by field, which is slow for the union.
    """
    return records.view(np.int64).reshape(len(records), _WORDS)


def _records(words: np.ndarray) -> np.ndarray:
    """View (n, 8) int64 words as EVENT_DTYPE records (inverse of ``_words``)."""
    return words.view(EVENT_DTYPE).reshape(len(words))


def _prefetch(items: Iterator[T], depth: int = 2) -> Iterator[T]:
    """Produce ``items`` in a background thread up to ``depth`` ahead of the consumer.

    Parquet decoding and the compiled fill release the GIL, so reading the next batch
    overlaps with using the current one. Errors are re-raised in the consumer; closing
    the consumer stops the producer.
    """
    results: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: object) -> bool:
        while not stop.is_set():
            try:
                results.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put(item):
                    return
            put(_DONE)
        except BaseException as exc:  # handed to the consumer, re-raised there
            put(_Failure(exc))

    worker = threading.Thread(target=produce, daemon=True)
    worker.start()
    try:
        while True:
            item = results.get()
            if item is _DONE:
                return
            if isinstance(item, _Failure):
                raise item.exc
            yield item
    finally:
        stop.set()
        worker.join()


_DONE = object()


class _Failure:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


def _merge(sources: list[Iterator[np.ndarray]], chunk_rows: int) -> Iterator[np.ndarray]:
    """Merge time-sorted EVENT_DTYPE streams by (ts_event, stream position, row).

    Each round may emit every buffered record whose key is at most the horizon: the
    smallest (last buffered ts_event, stream position) over streams that may still
    produce data. No later record can sort before such a record, and the stream that
    defines the horizon empties its buffer, so every round makes progress. Records
    are copied once, straight into output chunks of ``chunk_rows``; choosing the
    next run scans the stream heads, which is cheap for the tens of streams a
    replay merges.
    """
    k = len(sources)
    buffers = [np.empty((0, _WORDS), dtype=np.int64)] * k
    heads = np.zeros(k, dtype=np.int64)
    alive = [True] * k
    out = np.empty((chunk_rows, _WORDS), dtype=np.int64)
    fill = 0
    while True:
        for j in range(k):
            while alive[j] and heads[j] == len(buffers[j]):
                nxt = next(sources[j], None)
                if nxt is None:
                    alive[j] = False
                else:
                    buffers[j] = _words(nxt)
                    heads[j] = 0
        live = [(int(buffers[j][-1, 0]), j) for j in range(k) if alive[j]]
        if live:
            horizon_ts, horizon_j = min(live)
            limits = np.array(
                [_count_upto(buffers[j], heads[j], horizon_ts, j <= horizon_j) for j in range(k)], dtype=np.int64
            )
        else:
            limits = np.array([len(b) for b in buffers], dtype=np.int64)
        if (limits == heads).all():
            break
        typed = nb.typed.List(buffers)
        while (limits > heads).any():
            fill = _merge_rows(out, fill, typed, heads, limits)
            if fill == chunk_rows:
                yield _records(out)
                out = np.empty((chunk_rows, _WORDS), dtype=np.int64)
                fill = 0
    if fill:
        yield _records(out[:fill])


@nb.njit(cache=True, nogil=True)
def _count_upto(words, head, ts, inclusive):  # pragma: no cover - compiled
    """Return the end of the rows from ``head`` with ts_event < ts (<= when inclusive)."""
    lo = head
    hi = words.shape[0]
    while lo < hi:
        mid = (lo + hi) // 2
        t = words[mid, 0]
        if t < ts or (inclusive and t == ts):
            lo = mid + 1
        else:
            hi = mid
    return lo


@nb.njit(cache=True, nogil=True)
def _merge_rows(out, fill, buffers, heads, limits):  # pragma: no cover - compiled
    """Copy records into ``out`` from ``fill`` in merge order until out is full or the
    rows below ``limits`` run out; advance ``heads``; return the new fill.

    The head with the smallest (ts_event, stream) goes next; a run of records from
    that stream is copied until the next competing head would sort first.
    """
    k = len(buffers)
    while fill < out.shape[0]:
        best = -1
        best_ts = 0
        rival = -1
        rival_ts = 0
        for j in range(k):
            if heads[j] < limits[j]:
                t = buffers[j][heads[j], 0]
                if best < 0 or t < best_ts:
                    rival, rival_ts = best, best_ts
                    best, best_ts = j, t
                elif rival < 0 or t < rival_ts:
                    rival, rival_ts = j, t
        if best < 0:
            break
        src = buffers[best]
        h = heads[best]
        while h < limits[best] and fill < out.shape[0]:
            t = src[h, 0]
            if rival >= 0 and (t > rival_ts or (t == rival_ts and rival < best)):
                break
            out[fill, :] = src[h, :]
            fill += 1
            h += 1
        heads[best] = h
    return fill
