"""Keep a downstream order book in step with Binance: snapshot plus diffs, as Binance documents it.

Binance's "How to manage a local order book correctly" (USD-M futures):

1. Open the diff stream and buffer its events.
2. Get a depth snapshot (REST).
3. Drop every event with ``u`` < ``lastUpdateId``.
4. The first event processed must have ``U`` <= ``lastUpdateId`` and ``u`` >= ``lastUpdateId``.
5. Each later event's ``pu`` must equal the previous event's ``u``; otherwise start over
   from step 3 with a fresh snapshot.

Spot differs in two places: events with ``u`` <= ``lastUpdateId`` are dropped, the first
must bridge ``lastUpdateId + 1``, and continuity is ``U`` == previous ``u`` + 1.

This module is that procedure as a pure state machine (no I/O, no clock): the feed
gives it decoded diffs and snapshots and publishes whatever records it returns. It
never lets a book silently drift: a broken chain is a gap, counted, and the downstream
book is cleared at once (``clear_on_gap``) so that nothing trades on a book known to be
wrong, then rebuilt from the next snapshot (a BOOK_SNAPSHOT with CLEAR). Events older
than the book (duplicates, replays) are dropped and counted, not treated as gaps.
"""

from __future__ import annotations

import enum
from collections import deque
from dataclasses import dataclass

import numpy as np

from framework.events import EVENT_DTYPE, EventKind, concat_events
from live.venues.binance.messages import (
    DepthDiff,
    DepthSnapshot,
    Instrument,
    Reason,
    Rejected,
    book_records,
    diff_records,
    snapshot_records,
)

_EMPTY = np.zeros(0, dtype=EVENT_DTYPE)


class SyncMode(enum.Enum):
    """Which of Binance's two documented procedures applies."""

    FUTURES = "futures"  # USD-M / COIN-M: pu chaining, first event bridges lastUpdateId
    SPOT = "spot"  # U == previous u + 1, first event bridges lastUpdateId + 1


class SyncState(enum.Enum):
    BUFFERING = "buffering"  # waiting for a usable snapshot; diffs are kept, nothing is published
    SYNCED = "synced"  # the downstream book equals the venue's as of ``last_update_id``


@dataclass
class SyncCounters:
    """What happened to the diffs of one symbol; every field only grows.

    ``diffs`` received; ``applied`` published as BOOK_DELTA; ``stale`` dropped as older
    than the book (duplicates, ``u`` below the snapshot); ``gaps`` broken chains while
    synced; ``snapshots`` accepted snapshots, of which ``resyncs`` re-initialised a book
    after a gap or reset; ``stale_snapshots`` refused as older than the buffered
    stream; ``buffer_overflows`` diffs evicted from a full buffer.
    """

    diffs: int = 0
    applied: int = 0
    stale: int = 0
    gaps: int = 0
    snapshots: int = 0
    resyncs: int = 0
    stale_snapshots: int = 0
    buffer_overflows: int = 0


class BookSync:
    """The synchronisation state machine for one symbol's book."""

    def __init__(
        self,
        instrument: Instrument,
        mode: SyncMode = SyncMode.FUTURES,
        *,
        max_buffer: int = 10_000,
        clear_on_gap: bool = True,
    ) -> None:
        if max_buffer < 1:
            raise ValueError(f"max_buffer must be at least 1, got {max_buffer}")
        self.instrument = instrument
        self.mode = mode
        self.clear_on_gap = clear_on_gap
        self.counters = SyncCounters()
        self.state = SyncState.BUFFERING
        self.last_update_id: int | None = None
        """Update id the downstream book is at (None before the first snapshot or after a reset)."""
        self._snapshot_id = 0
        self._prev_u: int | None = None  # u of the last applied diff; None right after a snapshot
        self._buffer: deque[DepthDiff] = deque(maxlen=max_buffer)
        self._synced_once = False
        self._published = False  # something went downstream since the last clear

    # ------------------------------------------------------------------ queries

    @property
    def needs_snapshot(self) -> bool:
        """True when a snapshot should be fetched now: buffering, with the stream already open.

        Binance says to note the first buffered event before fetching, so that a snapshot
        older than the stream can be recognised; an empty buffer means "not yet".
        """
        return self.state is SyncState.BUFFERING and len(self._buffer) > 0

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    # ------------------------------------------------------------------ inputs

    def on_diff(self, diff: DepthDiff) -> np.ndarray:
        """Take one diff; return the records to publish (possibly none)."""
        if self.mode is SyncMode.FUTURES and diff.prev_final_update_id is None:
            raise Rejected(Reason.MISSING_FIELD, "no field 'pu' in a futures depth diff")
        self.counters.diffs += 1
        if self.state is SyncState.BUFFERING:
            if len(self._buffer) == self._buffer.maxlen:
                self.counters.buffer_overflows += 1
            self._buffer.append(diff)
            return _EMPTY
        return self._process(diff)

    def on_snapshot(self, snapshot: DepthSnapshot) -> np.ndarray:
        """Take a snapshot; return the records to publish, empty if it cannot be used.

        While synced a snapshot is not needed and is ignored. Otherwise the buffered
        events it already covers are dropped; if the first remaining one does not bridge
        the snapshot, the snapshot is older than the stream: it is refused (counted in
        ``stale_snapshots``) and ``needs_snapshot`` stays true. If it is accepted, the
        snapshot's records come out followed by the buffered diffs that extend it.
        """
        if self.state is SyncState.SYNCED:
            return _EMPTY
        last = snapshot.last_update_id
        while self._buffer and self._older_than_snapshot(self._buffer[0], last):
            self._buffer.popleft()
            self.counters.stale += 1
        if self._buffer and not self._bridges(self._buffer[0], last):
            self.counters.stale_snapshots += 1
            return _EMPTY
        self.counters.snapshots += 1
        if self._synced_once:
            self.counters.resyncs += 1
        self._synced_once = True
        self.state = SyncState.SYNCED
        self._snapshot_id = last
        self._prev_u = None
        self.last_update_id = last
        self._published = True
        parts = [snapshot_records(snapshot)]
        pending, self._buffer = self._buffer, deque(maxlen=self._buffer.maxlen)
        while pending:
            diff = pending.popleft()
            if self.state is SyncState.BUFFERING:  # a gap inside the buffer: keep the rest for the next snapshot
                self._buffer.append(diff)
                continue
            parts.append(self._process(diff))
        return concat_events(parts)

    def reset(self, ts_recv: int) -> np.ndarray:
        """Forget the stream (the connection was lost): buffer again and wait for a new snapshot.

        Return the records that clear the downstream book if anything was published
        and ``clear_on_gap`` is set, else nothing.
        """
        out = self._clear(ts_recv) if self._published and self.clear_on_gap else _EMPTY
        self.state = SyncState.BUFFERING
        self._buffer.clear()
        self._prev_u = None
        self.last_update_id = None
        self._published = False
        return out

    # ------------------------------------------------------------------ internals

    def _older_than_snapshot(self, diff: DepthDiff, last: int) -> bool:
        if self.mode is SyncMode.FUTURES:
            return diff.final_update_id < last
        return diff.final_update_id <= last

    def _bridges(self, diff: DepthDiff, last: int) -> bool:
        target = last if self.mode is SyncMode.FUTURES else last + 1
        return diff.first_update_id <= target <= diff.final_update_id

    def _continues(self, diff: DepthDiff, prev_u: int) -> bool:
        if self.mode is SyncMode.FUTURES:
            return diff.prev_final_update_id == prev_u
        return diff.first_update_id == prev_u + 1

    def _process(self, diff: DepthDiff) -> np.ndarray:
        if self._prev_u is None:  # first event after the snapshot
            if self._older_than_snapshot(diff, self._snapshot_id):
                self.counters.stale += 1
                return _EMPTY
            if not self._bridges(diff, self._snapshot_id):
                return self._gap(diff)
        elif diff.final_update_id <= self._prev_u:  # a duplicate or an old event: already in the book
            self.counters.stale += 1
            return _EMPTY
        elif not self._continues(diff, self._prev_u):
            return self._gap(diff)
        self._prev_u = diff.final_update_id
        self.last_update_id = diff.final_update_id
        self.counters.applied += 1
        return diff_records(diff)

    def _gap(self, diff: DepthDiff) -> np.ndarray:
        """The chain broke: count it, clear downstream, buffer from this event and ask for a snapshot."""
        self.counters.gaps += 1
        out = self._clear(diff.ts_recv) if self.clear_on_gap else _EMPTY
        self.state = SyncState.BUFFERING
        self._buffer.clear()
        self._buffer.append(diff)
        self._prev_u = None
        self.last_update_id = None
        self._published = False
        return out

    def _clear(self, ts_recv: int) -> np.ndarray:
        """Two empty CLEAR records (one per side, LAST on the second): the downstream book becomes empty."""
        seq = self.last_update_id if self.last_update_id is not None else 0
        return book_records(EventKind.BOOK_SNAPSHOT, self.instrument, ts_recv, ts_recv, seq, (), (), clear=True)
