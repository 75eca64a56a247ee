"""The publishing side of a stream: PUB for live frames, ROUTER for replay and snapshots.

A publisher numbers its data frames 1, 2, 3 ... within an epoch (a new epoch on every
start), sends each on a PUB socket and keeps the last ``ring_size`` of them. PUB/SUB
drops frames when a subscriber is slow (high-water mark) or not yet subscribed (the
slow-joiner problem), so subscribers ask for what they missed on the replay socket:

* a range still in the ring is answered with the original frames, byte for byte;
* a range older than the ring, or of an older epoch, is answered with a snapshot
  frame: the records the ``snapshot`` callback returns (e.g. the current book, or a
  status report per open order), as of the last published sequence;
* a range not yet published is answered with a heartbeat (nothing to send).

Every reply is one multipart message, so it arrives whole or not at all. Heartbeats
on the PUB socket carry the last sequence, so a subscriber that missed the tail of
the stream, or joined after it went quiet, notices and asks. A finite stream ends with
``end()``: an END frame, repeated in place of heartbeats (and sent in answer to a
request beyond the last sequence), so every subscriber learns where it stopped.

``publish`` is synchronous and never blocks (the engine may call it in a tight
loop); the heartbeat and replay service run as tasks on the asyncio loop after
``start``. The snapshot callback runs on that loop between two ``publish`` calls, so
it sees the state exactly as of ``last_sequence``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Self

import numpy as np
import zmq

from framework.events import EVENT_DTYPE
from live.transport.common import Rejects, bind, context, drain, log, make_socket, wait_readable
from live.wire import DecodeError, MsgType, RecordType, decode_frame, encode_frame, record_type_of

SnapshotProvider = Callable[[], np.ndarray]
"""Returns the publisher's state as records (``EVENT_DTYPE`` or ``COMMAND_DTYPE``)."""


@dataclass
class PublisherCounters:
    """What a publisher has done, for metrics."""

    frames_published: int = 0
    frames_skipped: int = 0
    """Frames numbered and kept for replay but deliberately not sent (fault injection)."""
    heartbeats: int = 0
    replay_requests: int = 0
    frames_replayed: int = 0
    snapshots_served: int = 0
    snapshot_errors: int = 0

    def as_dict(self) -> dict[str, int]:
        """The counters by name."""
        return asdict(self)


def new_epoch() -> int:
    """An epoch for a publisher starting now: wall-clock nanoseconds, so a restarted
    publisher's epoch is larger than its previous one's (given a sane clock)."""
    return time.time_ns()


class Publisher:
    """Publish sequenced frames and serve replays of them.

    ``data_endpoint`` and ``replay_endpoint`` are bound (``ipc://path`` or
    ``tcp://host:port``; port ``*`` picks a free one, see the ``*_endpoint``
    attributes for the result). ``skip``, when given, is asked about every sequence
    before it is sent: True keeps the frame in the ring but does not send it (a test
    hook to force gaps; never set in production).
    """

    def __init__(
        self,
        publisher_id: int,
        data_endpoint: str,
        replay_endpoint: str,
        *,
        snapshot: SnapshotProvider | None = None,
        ring_size: int = 65_536,
        heartbeat_interval: float = 0.25,
        max_replay_frames: int = 4096,
        epoch: int | None = None,
        sndhwm: int = 100_000,
        ctx: zmq.Context | None = None,
        skip: Callable[[int], bool] | None = None,
        name: str = "publisher",
    ) -> None:
        if ring_size < 1 or max_replay_frames < 1:
            raise ValueError("ring_size and max_replay_frames must be at least 1")
        self.publisher_id = publisher_id
        self.epoch = new_epoch() if epoch is None else epoch
        self.last_sequence = 0
        self.counters = PublisherCounters()
        self.rejects = Rejects(f"{name}.replay")
        self._snapshot = snapshot
        self._ring: deque[bytes] = deque(maxlen=ring_size)
        self._heartbeat_interval = heartbeat_interval
        self._max_replay = max_replay_frames
        self._skip = skip
        self._last_send = 0.0
        self.ended = False
        ctx = context(ctx)
        self._pub = make_socket(ctx, zmq.PUB, SNDHWM=sndhwm)
        self._router = make_socket(ctx, zmq.ROUTER)
        try:
            self.data_endpoint = bind(self._pub, data_endpoint)
            self.replay_endpoint = bind(self._router, replay_endpoint)
        except zmq.ZMQError:  # release the other endpoint, so a retry can bind it
            self._pub.close(linger=0)
            self._router.close(linger=0)
            raise
        self._tasks: list[asyncio.Task] = []
        # Fail now, not at the first publish, on an id or epoch the header cannot carry.
        encode_frame(MsgType.HEARTBEAT, publisher_id=publisher_id, epoch=self.epoch, sequence=0)

    # -- publishing ---------------------------------------------------------------------------

    def publish(self, records: np.ndarray) -> int:
        """Send ``records`` (EVENT_DTYPE -> EVENTS, COMMAND_DTYPE -> COMMANDS) as the
        next frame; return its sequence. Never blocks: a frame PUB drops is replayed."""
        if self.ended:
            raise RuntimeError(f"publisher {self.publisher_id} ended its stream at {self.last_sequence}")
        mtype = MsgType.EVENTS if record_type_of(records.dtype) == RecordType.EVENT else MsgType.COMMANDS
        seq = self.last_sequence + 1
        frame = encode_frame(
            mtype, records, publisher_id=self.publisher_id, epoch=self.epoch, sequence=seq, ts_send=time.time_ns()
        )
        self._ring.append(frame)
        self.last_sequence = seq
        if self._skip is not None and self._skip(seq):
            self.counters.frames_skipped += 1
            return seq
        self._send(frame)
        self.counters.frames_published += 1
        return seq

    def heartbeat(self) -> None:
        """Announce the last sequence (sent by the heartbeat task when the stream is quiet),
        or, once the stream ended, that it is over."""
        self._send(self._control(self._idle_type, self.last_sequence))
        self.counters.heartbeats += 1

    def end(self) -> None:
        """End the stream after the last published frame: nothing is published after this."""
        self.ended = True
        self.heartbeat()

    @property
    def _idle_type(self) -> MsgType:
        return MsgType.END if self.ended else MsgType.HEARTBEAT

    def _send(self, frame: bytes) -> None:
        try:
            self._pub.send(frame, zmq.NOBLOCK)
        except zmq.Again:  # PUB drops rather than blocks; subscribers recover the frame
            pass
        self._last_send = time.monotonic()

    def _control(self, mtype: MsgType, sequence: int, records: np.ndarray | None = None) -> bytes:
        return encode_frame(
            mtype, records, publisher_id=self.publisher_id, epoch=self.epoch, sequence=sequence, ts_send=time.time_ns()
        )

    # -- replay service -------------------------------------------------------------------------

    @property
    def oldest_sequence(self) -> int:
        """The oldest sequence still in the ring (``last_sequence + 1`` when it is empty)."""
        return self.last_sequence - len(self._ring) + 1

    def serve_pending(self) -> int:
        """Answer every replay request waiting on the socket; return how many were answered."""
        answered = 0
        for msg in drain(self._router):
            if len(msg) != 2:
                self.rejects.reject("MULTIPART", f"{len(msg)} parts, expected identity and one frame", msg[-1])
                continue
            identity, raw = msg
            try:
                req = decode_frame(raw)
            except DecodeError as err:
                self.rejects.decode_error(err, raw)
                continue
            if req.msg_type != MsgType.REPLAY_REQUEST or req.publisher_id != self.publisher_id:
                self.rejects.reject(
                    "UNEXPECTED_FRAME", f"{req.msg_type.name} for publisher {req.publisher_id}", raw,
                    req.publisher_id, req.sequence,
                )
                continue
            self.counters.replay_requests += 1
            parts = self._reply(req.epoch, req.sequence, req.aux)
            if parts:
                self._router.send_multipart([identity, *parts], zmq.NOBLOCK)
                answered += 1
        return answered

    def _reply(self, epoch: int, first: int, last: int) -> list[bytes]:
        if epoch == self.epoch and first > self.last_sequence:
            return [self._control(self._idle_type, self.last_sequence)]
        oldest = self.oldest_sequence
        if epoch == self.epoch and first >= oldest:
            end = min(last, self.last_sequence, first + self._max_replay - 1)
            self.counters.frames_replayed += end - first + 1
            return [self._ring[i - oldest] for i in range(first, end + 1)]
        try:
            records = self._snapshot() if self._snapshot is not None else np.zeros(0, EVENT_DTYPE)
            frame = self._control(MsgType.SNAPSHOT, self.last_sequence, records)
        except Exception:  # noqa: BLE001 - a broken provider must not take the publisher down; the subscriber asks again
            self.counters.snapshot_errors += 1
            log.exception("snapshot provider failed", publisher_id=self.publisher_id, epoch=self.epoch)
            return []
        self.counters.snapshots_served += 1
        return [frame]

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> Publisher:
        """Start the heartbeat and replay tasks on the running loop."""
        if not self._tasks:
            self._tasks = [asyncio.create_task(self._serve()), asyncio.create_task(self._beat())]
        return self

    async def _serve(self) -> None:
        while True:
            await wait_readable((self._router,))
            try:
                self.serve_pending()
            except zmq.ZMQError:  # e.g. a reply to a peer that just went away; the next request retries
                log.exception("replay service error", publisher_id=self.publisher_id)

    async def _beat(self) -> None:
        while True:
            idle = time.monotonic() - self._last_send
            if idle >= self._heartbeat_interval:
                self.heartbeat()
                idle = 0.0
            await asyncio.sleep(self._heartbeat_interval - idle)

    async def close(self) -> None:
        """Stop the tasks and close the sockets (unsent frames are dropped)."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        self._pub.close(linger=0)
        self._router.close(linger=0)

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
