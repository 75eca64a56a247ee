"""Per-publisher ordering: turn frames that arrive lost, late, twice or out of order
into one in-order stream without duplicates, and say what is missing.

This is the subscriber's logic without sockets, so it can be proven on its own (a
property test drops, duplicates and reorders frames at random). A ``Stream`` tracks
one publisher's ``(epoch, sequence)``:

* sequences start at 1 in every epoch; a larger epoch means the publisher restarted,
  so the stream starts over (frames of a smaller epoch are stale and dropped);
* a frame at the next expected sequence is delivered at once, with any buffered
  frames that follow it; a frame beyond it is buffered, and the range in between is
  a gap: counted once when first seen, then asked for (``missing``) until it is filled;
* a heartbeat carries the publisher's last sequence, so a lost tail (or a late join)
  is a gap too, and so is a first frame numbered above 1;
* a snapshot as of sequence S replaces everything up to S: it is delivered, buffered
  frames up to S are dropped, and delivery continues from S + 1;
* an END frame says the stream stopped at sequence S: it is delivered, once, right
  after frame S (anything missing before it is a gap like any other).

Every frame is accounted for in ``SubscriberCounters``; nothing is dropped silently.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from live.wire import Frame, MsgType


@dataclass
class SubscriberCounters:
    """What a subscriber has seen, for metrics (``_total`` counters in Prometheus)."""

    frames_received: int = 0
    """Valid frames decoded, live and from replay replies."""
    frames_delivered: int = 0
    """Data and snapshot frames handed to the consumer."""
    gaps_detected: int = 0
    """Ranges of missing sequence numbers found (one per range, however long)."""
    messages_missed: int = 0
    """Sequence numbers found missing, summed over all gaps."""
    recovered_by_replay: int = 0
    """Frames delivered from a replay reply."""
    snapshots_taken: int = 0
    """Snapshots delivered (each replaces the stream's state)."""
    skipped_by_snapshot: int = 0
    """Sequence numbers covered by a snapshot instead of being delivered."""
    duplicates_dropped: int = 0
    """Frames (and redundant snapshots) already delivered or buffered."""
    stale_dropped: int = 0
    """Frames of an epoch older than the publisher's current one."""
    epoch_changes: int = 0
    """Publisher restarts seen (a larger epoch after a smaller one)."""
    pending_overflow: int = 0
    """Out-of-order frames not buffered because the buffer was full (asked for again later)."""
    replay_requests: int = 0
    """Replay requests sent."""
    replay_timeouts: int = 0
    """Replay requests that got no reply in time (and were sent again)."""

    def as_dict(self) -> dict[str, int]:
        """The counters by name."""
        return asdict(self)


class Stream:
    """The ordering state of one publisher."""

    def __init__(self, publisher_id: int, counters: SubscriberCounters, max_pending: int = 100_000) -> None:
        self.publisher_id = publisher_id
        self.counters = counters
        self.max_pending = max_pending
        self.epoch = 0
        """Current epoch; 0 until the first frame."""
        self.next_seq = 1
        """The sequence to deliver next."""
        self.latest = 0
        """The highest sequence known to exist in this epoch (from frames or heartbeats)."""
        self.started = False
        """Whether anything was delivered in this epoch."""
        self.pending: dict[int, tuple[Frame, bool]] = {}
        """Buffered frames beyond ``next_seq``, with whether each came from a replay."""
        self.end: Frame | None = None
        """The END frame of this epoch, once seen."""
        self.ended = False
        """Whether the END frame was delivered: the stream is over."""

    def accept(self, frame: Frame, from_replay: bool, out: list[Frame]) -> None:
        """Take one decoded frame of this publisher; append what can be delivered to ``out``."""
        if not self._same_epoch(frame.epoch):
            return
        mtype = frame.msg_type
        if mtype == MsgType.EVENTS or mtype == MsgType.COMMANDS:
            self._data(frame, from_replay, out)
        elif mtype == MsgType.HEARTBEAT:
            self._saw(frame.sequence, frame.sequence)
        elif mtype == MsgType.SNAPSHOT:
            self._snapshot(frame, out)
        elif mtype == MsgType.END:
            if self.end is None:
                self.end = frame
                self._saw(frame.sequence, frame.sequence)
            self._deliver_end(out)

    def missing(self) -> tuple[int, int] | None:
        """The first range of sequences known to exist but neither delivered nor buffered."""
        if self.epoch == 0 or self.next_seq > self.latest:
            return None
        end = min(self.pending) - 1 if self.pending else self.latest
        return self.next_seq, end

    def _same_epoch(self, epoch: int) -> bool:
        if epoch == self.epoch:
            return True
        if epoch < self.epoch:
            self.counters.stale_dropped += 1
            return False
        if self.epoch:
            self.counters.epoch_changes += 1
        self.epoch, self.next_seq, self.latest, self.started = epoch, 1, 0, False
        self.end, self.ended = None, False
        self.pending.clear()
        return True

    def _saw(self, top_missing: int, top: int) -> None:
        """Note that sequences up to ``top`` exist, and that ``top_missing`` and below should
        already be here: anything between what was known and it is a new gap."""
        known = max(self.latest, self.next_seq - 1)
        if top_missing > known:
            self.counters.gaps_detected += 1
            self.counters.messages_missed += top_missing - known
        self.latest = max(self.latest, top)

    def _data(self, frame: Frame, from_replay: bool, out: list[Frame]) -> None:
        seq = frame.sequence
        if seq < self.next_seq or seq in self.pending:
            self.counters.duplicates_dropped += 1
            return
        self._saw(seq - 1, seq)
        if seq == self.next_seq:
            self._deliver(frame, from_replay, out)
            self._flush(out)
        elif len(self.pending) >= self.max_pending:
            self.counters.pending_overflow += 1
        else:
            self.pending[seq] = (frame, from_replay)

    def _snapshot(self, frame: Frame, out: list[Frame]) -> None:
        as_of = frame.sequence
        if as_of < self.next_seq - 1 or (as_of == self.next_seq - 1 and self.started):
            self.counters.duplicates_dropped += 1
            return
        self.counters.snapshots_taken += 1
        self.counters.skipped_by_snapshot += as_of - (self.next_seq - 1)
        for seq in [s for s in self.pending if s <= as_of]:
            del self.pending[seq]
        self.next_seq = as_of + 1
        self.latest = max(self.latest, as_of)
        self.started = True
        out.append(frame)
        self.counters.frames_delivered += 1
        self._flush(out)

    def _deliver(self, frame: Frame, from_replay: bool, out: list[Frame]) -> None:
        out.append(frame)
        self.next_seq += 1
        self.started = True
        self.counters.frames_delivered += 1
        if from_replay:
            self.counters.recovered_by_replay += 1

    def _flush(self, out: list[Frame]) -> None:
        pending = self.pending
        while pending:
            item = pending.pop(self.next_seq, None)
            if item is None:
                break
            self._deliver(item[0], item[1], out)
        if self.end is not None:
            self._deliver_end(out)

    def _deliver_end(self, out: list[Frame]) -> None:
        if not self.ended and self.next_seq > self.end.sequence:
            self.ended = True
            out.append(self.end)
            self.counters.frames_delivered += 1
