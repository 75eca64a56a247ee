"""The subscribing side: one SUB socket for live frames, one DEALER per publisher for
replays, and a ``Stream`` per publisher that puts it all back in order.

``await subscriber.recv()`` returns the next frame to act on, per publisher in
sequence order and without duplicates: a data frame (EVENTS or COMMANDS) or a
SNAPSHOT, after which the consumer replaces what it knew of that publisher's state
with the snapshot's records. Gaps (frames PUB dropped, a late join, a lost tail seen
through a heartbeat, a publisher restart) are detected, counted and recovered by
asking the publisher's replay socket, and frames that arrive meanwhile are buffered.

There is no background task: ``recv`` reads the sockets, answers what it can and
sends replay requests itself, so a subscriber costs nothing while nobody asks for
frames (ZeroMQ queues them up to the high-water mark; beyond that they are dropped
and recovered like any gap). Every rejected message is counted in
``rejects.counts`` by reason and logged; the loop goes on.
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Self

import zmq

from live.transport.common import Rejects, context, drain, make_socket, now, wait_readable
from live.transport.sequencer import Stream, SubscriberCounters
from live.wire import DecodeError, Frame, MsgType, decode_frame, encode_frame


@dataclass(frozen=True)
class Source:
    """Where to find one publisher: its id, its PUB endpoint and its replay (ROUTER) endpoint."""

    publisher_id: int
    data: str
    replay: str


class Subscriber:
    """Receive the frames of several publishers in order, recovering every gap."""

    def __init__(
        self,
        sources: Sequence[Source],
        *,
        replay_timeout: float = 0.5,
        max_pending: int = 100_000,
        rcvhwm: int = 100_000,
        ctx: zmq.Context | None = None,
        name: str = "subscriber",
    ) -> None:
        if not sources:
            raise ValueError("a subscriber needs at least one source")
        ids = [s.publisher_id for s in sources]
        if len(set(ids)) != len(ids):
            raise ValueError(f"publisher ids repeat: {ids}")
        ctx = context(ctx)
        self.counters = SubscriberCounters()
        self.rejects = Rejects(name)
        self._replay_timeout = replay_timeout
        self._sub = make_socket(ctx, zmq.SUB, RCVHWM=rcvhwm)
        self._sub.setsockopt(zmq.SUBSCRIBE, b"")
        self._streams: dict[int, Stream] = {}
        self._dealers: dict[int, zmq.Socket] = {}
        self._deadline: dict[int, float] = {}  # publisher -> when its outstanding replay request times out
        self._heard: dict[int, float] = {}  # publisher -> when a valid frame of it last arrived
        self._answered: list[int] = []
        try:
            for source in sources:
                self._sub.connect(source.data)
                dealer = self._dealers[source.publisher_id] = make_socket(ctx, zmq.DEALER, IMMEDIATE=1)
                dealer.connect(source.replay)
                self._streams[source.publisher_id] = Stream(source.publisher_id, self.counters, max_pending)
        except zmq.ZMQError:  # a malformed endpoint: leave no socket behind
            for sock in (self._sub, *self._dealers.values()):
                sock.close(linger=0)
            raise
        self._sockets = (self._sub, *self._dealers.values())
        self._ready: deque[Frame] = deque()
        self._out: list[Frame] = []
        self._closed = False

    async def recv(self) -> Frame:
        """The next frame in order (data or snapshot). Waits as long as it takes: wrap
        it in ``asyncio.wait_for`` for a deadline (cancelling it loses nothing)."""
        while not self._ready:
            self.pump()
            if self._ready:
                break
            await wait_readable(self._sockets, self._poll_timeout())
        return self._ready.popleft()

    def recv_nowait(self) -> Frame | None:
        """The next frame if one can be had without waiting, else None (for tight loops)."""
        if not self._ready:
            self.pump()
        return self._ready.popleft() if self._ready else None

    # -- the fast path: the next frame of a stream, read and decoded by the caller (live.fastpath) --

    @property
    def live_socket(self) -> zmq.Socket:
        """The SUB socket live frames arrive on (``live.fastpath`` reads it from compiled code)."""
        return self._sub

    def may_take_raw(self) -> bool:
        """Whether the next message on the live socket may be read raw: nothing is queued
        before it and no replay is outstanding (else use ``recv_nowait``, which keeps the order)."""
        return not (self._ready or self._deadline)

    def expects(self, publisher_id: int) -> tuple[int, int] | None:
        """(epoch, sequence) of the frame that would be delivered next for ``publisher_id``, when it
        may be taken straight (the stream started and holds nothing buffered); else None."""
        stream = self._streams.get(publisher_id)
        if stream is None or not stream.started or stream.pending or stream.ended:
            return None
        return stream.epoch, stream.next_seq

    def taken(self, publisher_id: int) -> None:
        """Note that the caller decoded and delivered the frame ``expects`` named."""
        stream = self._streams[publisher_id]
        stream.latest = max(stream.latest, stream.next_seq)
        stream.next_seq += 1
        self.counters.frames_received += 1
        self.counters.frames_delivered += 1
        self._heard[publisher_id] = now()

    def take_raw(self, raw: bytes) -> None:
        """Process a message read raw from ``live_socket`` that the caller did not take (the slow path)."""
        self._take([raw], None, self._out)
        if self._out:
            self._ready.extend(self._out)
            self._out.clear()
        self._request_missing()

    async def wait(self) -> None:
        """Wait until a socket may hold a message, or an outstanding replay request is due
        to be sent again; spurious returns are allowed. For loops that read with
        ``recv_nowait`` and stamp the time each frame was taken."""
        await wait_readable(self._sockets, self._poll_timeout())

    async def __aiter__(self) -> AsyncIterator[Frame]:
        while True:
            yield await self.recv()

    def pump(self) -> None:
        """Read what the sockets hold, order it, and ask for what is missing."""
        out = self._out
        for msg in drain(self._sub):
            self._take(msg, None, out)
        for pid in self._deadline:  # a reply can only come where a request is outstanding
            for msg in drain(self._dealers[pid]):
                self._answered.append(pid)
                for part in msg:
                    self._take([part], pid, out)
        for pid in self._answered:
            self._deadline.pop(pid, None)
        self._answered.clear()
        if out:
            self._ready.extend(out)
            out.clear()
        self._request_missing()

    def _take(self, msg: list[bytes], via: int | None, out: list[Frame]) -> None:
        if len(msg) != 1:
            self.rejects.reject("MULTIPART", f"{len(msg)} parts, expected one frame", msg[0])
            return
        raw = msg[0]
        try:
            frame = decode_frame(raw)
        except DecodeError as err:
            self.rejects.decode_error(err, raw)
            return
        pid = frame.publisher_id
        stream = self._streams.get(pid)
        if stream is None or (via is not None and via != pid):
            self.rejects.reject("UNKNOWN_PUBLISHER", f"publisher {pid} not expected here", raw, pid, frame.sequence)
            return
        if frame.msg_type in (MsgType.REPLAY_REQUEST, MsgType.ACK):
            self.rejects.reject("UNEXPECTED_FRAME", frame.msg_type.name, raw, pid, frame.sequence)
            return
        self.counters.frames_received += 1
        self._heard[pid] = now()
        stream.accept(frame, via is not None, out)

    def _request_missing(self) -> None:
        t = now()
        for pid, stream in self._streams.items():
            deadline = self._deadline.get(pid)
            if deadline is not None and t < deadline:
                continue
            rng = stream.missing()
            if deadline is not None:
                del self._deadline[pid]
                if rng is not None:  # unanswered and still needed
                    self.counters.replay_timeouts += 1
            if rng is None:
                continue
            request = encode_frame(
                MsgType.REPLAY_REQUEST, publisher_id=pid, epoch=stream.epoch, sequence=rng[0], aux=rng[1]
            )
            self._deadline[pid] = t + self._replay_timeout
            try:
                self._dealers[pid].send(request, zmq.NOBLOCK)
            except zmq.Again:  # not connected yet: counts as unanswered, tried again after the timeout
                continue
            self.counters.replay_requests += 1

    def _poll_timeout(self) -> float | None:
        if not self._deadline:
            return None
        return max(0.001, min(self._deadline.values()) - now())

    @property
    def publisher_ids(self) -> list[int]:
        """The publishers this subscriber follows."""
        return list(self._streams)

    def position(self, publisher_id: int) -> tuple[int, int]:
        """(epoch, last delivered sequence) of a publisher's stream."""
        stream = self._streams[publisher_id]
        return stream.epoch, stream.next_seq - 1

    def silence(self, publisher_id: int) -> float:
        """Seconds since a valid frame (heartbeats included) of ``publisher_id`` arrived;
        infinite before the first. Readiness checks compare it with a few heartbeat
        intervals: a silent publisher is down or unreachable, not merely quiet."""
        heard = self._heard.get(publisher_id)
        return float("inf") if heard is None else now() - heard

    def close(self) -> None:
        """Close every socket."""
        if self._closed:
            return
        self._closed = True
        for sock in self._sockets:
            sock.close(linger=0)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()
