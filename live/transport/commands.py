"""The command path: engine to venue gateway, every command exactly once and in order.

Market data may be recovered from a snapshot; a lost or doubled order may not. So
commands do not ride PUB/SUB but a DEALER (sender, connects) to ROUTER (receiver,
binds) pair with acknowledgements, the classic sliding window:

* the sender numbers its COMMANDS frames 1, 2, 3 ... within its epoch and keeps
  every frame until it is acknowledged; ``aux`` of each frame is the sender's oldest
  unacknowledged sequence, so a receiver meeting the sender for the first time (or
  restarted) knows where the stream starts without guessing;
* the receiver delivers frames in sequence order, drops duplicates, buffers frames
  that overtake a lost one, and answers every batch with a cumulative ACK (the last
  sequence delivered), flagged NACK with the gap's end when it holds one, so the
  sender resends exactly the missing frames at once;
* the sender resends what stays unacknowledged for ``resend_after`` seconds, so a lost
  frame, a lost ACK, a receiver that starts late or restarts all end in delivery; the
  timeout doubles (up to ``max_resend_after``) while no ACK makes progress, so a busy
  receiver is not buried under copies of its backlog.

DEALER/ROUTER rather than PUSH/PULL because acknowledgements need a way back to the
one sender that sent the frame: ROUTER addresses the reply by the sender's identity
on the same connection. The DEALER sets ``IMMEDIATE`` so nothing is queued towards a
receiver that is not connected (it would be a stale copy once it is); the sender's own
window is the only queue. An ACK means the receiver process has the command (the
gateway's own journal and client order ids make acting on it idempotent); it does not
mean the venue has it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Self

import numpy as np
import zmq

from framework.events import COMMAND_DTYPE, raw_copy
from live.deadline import within
from live.transport.common import Rejects, bind, context, drain, log, make_socket, now, wait_readable
from live.transport.publisher import new_epoch
from live.wire import DecodeError, Frame, FrameFlag, MsgType, decode_frame, encode_frame

_RESEND_BURST = 1024
"""Most frames resent in one go, so a long outage does not stall the loop."""
_NEVER = float("-inf")
"""Send time of a frame not yet transmitted (no receiver was connected)."""


class CommandBacklogFull(RuntimeError):
    """The receiver has not acknowledged ``max_unacked`` frames: the gateway is gone or
    stuck, and the engine must stop sending orders (halt) rather than queue forever."""


@dataclass
class SenderCounters:
    """What a command sender has done, for metrics."""

    frames_sent: int = 0
    frames_resent: int = 0
    send_deferred: int = 0
    """Sends that found no connected receiver (kept and resent later)."""
    frames_acked: int = 0
    nacks: int = 0
    frames_skipped: int = 0
    """First transmissions deliberately not sent (fault injection)."""

    def as_dict(self) -> dict[str, int]:
        """The counters by name."""
        return asdict(self)


@dataclass
class ReceiverCounters:
    """What a command receiver has seen, for metrics."""

    frames_received: int = 0
    frames_delivered: int = 0
    duplicates_dropped: int = 0
    gaps_detected: int = 0
    buffered: int = 0
    """Frames that arrived ahead of a missing one and waited for it."""
    pending_overflow: int = 0
    stale_dropped: int = 0
    epoch_changes: int = 0
    base_jumps: int = 0
    """Times a sender said frames the receiver never delivered were acknowledged already
    (only after the receiver lost its state); those frames are not delivered here."""
    acks_sent: int = 0
    nacks_sent: int = 0

    def as_dict(self) -> dict[str, int]:
        """The counters by name."""
        return asdict(self)


class CommandSender:
    """Send command records reliably to one ``CommandReceiver``.

    ``send`` is synchronous and never blocks; acknowledgements are read and resends
    made by a task that ``start`` runs on the asyncio loop. ``skip`` (a test hook,
    never set in production) is asked about every sequence: True drops its first
    transmission, as a lossy network would.
    """

    def __init__(
        self,
        sender_id: int,
        endpoint: str,
        *,
        resend_after: float = 0.2,
        max_resend_after: float = 2.0,
        max_unacked: int = 65_536,
        epoch: int | None = None,
        ctx: zmq.Context | None = None,
        skip: Callable[[int], bool] | None = None,
        name: str = "command-sender",
    ) -> None:
        self.sender_id = sender_id
        self.epoch = new_epoch() if epoch is None else epoch
        self.last_sequence = 0
        self.counters = SenderCounters()
        self.rejects = Rejects(name)
        self._resend_after = resend_after
        self._max_resend_after = max(resend_after, max_resend_after)
        self._rto = resend_after  # current resend timeout, backed off while nothing is acknowledged
        self._max_unacked = max_unacked
        self._skip = skip
        self._skipping = (0, False)  # (sequence, whether skip() dropped it), asked once per sequence
        self._unacked: OrderedDict[int, tuple[np.ndarray, float]] = OrderedDict()  # seq -> (records, last sent)
        self._dealer = make_socket(context(ctx), zmq.DEALER, IMMEDIATE=1)
        self._dealer.connect(endpoint)
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task | None = None
        encode_frame(MsgType.ACK, publisher_id=sender_id, epoch=self.epoch, sequence=0)  # fail now on bad id/epoch

    @property
    def connected(self) -> bool:
        """Whether a receiver is connected (frames can go out now), for readiness checks."""
        return bool(self._dealer.getsockopt(zmq.EVENTS) & zmq.POLLOUT)

    @property
    def unacked(self) -> int:
        """Frames sent and not yet acknowledged."""
        return len(self._unacked)

    def send(self, commands: np.ndarray) -> int:
        """Queue ``commands`` (COMMAND_DTYPE) as the next frame, send it, return its sequence."""
        if commands.dtype != COMMAND_DTYPE:
            raise ValueError(f"commands must be COMMAND_DTYPE records, got {commands.dtype}")
        seq, _, transmit = self.next_frame()
        records = raw_copy(commands)  # a byte copy: numpy copies records field by field, far slower
        frame = self._encode(seq, records)  # validates before anything is recorded
        self.sent_encoded(seq, records, transmit and self._hand_over(frame))
        return seq

    @property
    def socket(self) -> zmq.Socket:
        """The DEALER socket frames go out on (``live.fastpath`` sends on it from compiled code)."""
        return self._dealer

    def next_frame(self) -> tuple[int, int, bool]:
        """The sequence and ``aux`` (oldest unacknowledged) of the next frame, and whether to
        transmit it (False only when the ``skip`` hook drops it), for a caller that encodes
        and sends it itself (``live.fastpath``) and then tells ``sent_encoded``."""
        if len(self._unacked) >= self._max_unacked:
            raise CommandBacklogFull(f"{len(self._unacked)} commands unacknowledged by the receiver")
        seq = self.last_sequence + 1
        return seq, next(iter(self._unacked), seq), not self._skips(seq)

    def _skips(self, seq: int) -> bool:
        """Whether the ``skip`` hook drops frame ``seq`` (asked once per sequence)."""
        if self._skip is None:
            return False
        if seq != self._skipping[0]:
            self._skipping = (seq, bool(self._skip(seq)))
        return self._skipping[1]

    def sent_encoded(self, seq: int, records: np.ndarray, transmitted: bool) -> None:
        """Keep ``records`` (for resends) as frame ``seq``, which the caller of ``next_frame``
        encoded and handed to the socket (``transmitted``), or found no receiver for, or was told
        not to transmit."""
        if seq != self.last_sequence + 1:
            raise ValueError(f"frame {seq} is not the next one ({self.last_sequence + 1})")
        self.last_sequence = seq
        self._idle.clear()
        if self._skips(seq):
            self.counters.frames_skipped += 1
            self._unacked[seq] = (records, now())
        elif transmitted:
            self.counters.frames_sent += 1
            self._unacked[seq] = (records, now())
        else:  # no receiver connected: stays in the window, resent later
            self.counters.send_deferred += 1
            self._unacked[seq] = (records, _NEVER)

    def _encode(self, seq: int, records: np.ndarray) -> bytes:
        base = next(iter(self._unacked), seq)
        return encode_frame(
            MsgType.COMMANDS, records, publisher_id=self.sender_id, epoch=self.epoch, sequence=seq, aux=base,
            ts_send=time.time_ns(),
        )

    def _hand_over(self, frame: bytes) -> bool:
        """Give ``frame`` to the socket; False when no receiver is connected (it stays in the
        window and is resent later)."""
        try:
            self._dealer.send(frame, zmq.NOBLOCK)
        except zmq.Again:
            return False
        return True

    def _transmit(self, seq: int, frame: bytes) -> bool:
        """Resend frame ``seq``, noting when."""
        if not self._hand_over(frame):
            self.counters.send_deferred += 1
            return False
        self._unacked[seq] = (self._unacked[seq][0], now())
        return True

    def resend_due(self, everything: bool = False) -> int:
        """Resend frames unacknowledged for the resend timeout (all of them if ``everything``)."""
        cutoff = now() - (0.0 if everything else self._rto)
        due = [seq for seq, (_, sent) in self._unacked.items() if sent <= cutoff][:_RESEND_BURST]
        resent = 0
        for seq in due:
            records, sent = self._unacked[seq]
            # Re-encoded so ``aux`` carries today's oldest unacknowledged sequence.
            if not self._transmit(seq, self._encode(seq, records)):
                break
            if sent == _NEVER:  # deferred at send(): its first transmission
                self.counters.frames_sent += 1
            else:
                resent += 1
        self.counters.frames_resent += resent
        if resent and not everything:
            self._rto = min(self._rto * 2, self._max_resend_after)
        return resent

    def handle_acks(self) -> None:
        """Read every acknowledgement waiting on the socket."""
        for msg in drain(self._dealer):
            raw = msg[-1]
            try:
                ack = decode_frame(raw)
            except DecodeError as err:
                self.rejects.decode_error(err, raw)
                continue
            if len(msg) != 1 or ack.msg_type != MsgType.ACK or ack.publisher_id != self.sender_id:
                self.rejects.reject("UNEXPECTED_FRAME", ack.msg_type.name, raw, ack.publisher_id, ack.sequence)
                continue
            if ack.epoch != self.epoch:
                continue  # an answer to a previous incarnation of this sender
            while self._unacked and next(iter(self._unacked)) <= ack.sequence:
                self._unacked.popitem(last=False)
                self.counters.frames_acked += 1
                self._rto = self._resend_after
            if ack.flags & FrameFlag.NACK:
                self.counters.nacks += 1
                self._resend_range(ack.sequence + 1, ack.aux)
        if not self._unacked:
            self._idle.set()

    def _resend_range(self, first: int, last: int) -> None:
        """On a NACK, resend the gap the receiver named (``first`` .. ``last``), unless
        it was sent within the last quarter ``resend_after`` (already on its way)."""
        cutoff = now() - self._resend_after / 4
        for seq in range(first, min(last, first + _RESEND_BURST - 1) + 1):
            item = self._unacked.get(seq)
            if item is None or item[1] > cutoff:
                continue
            if not self._transmit(seq, self._encode(seq, item[0])):
                break
            self.counters.frames_resent += 1

    async def flush(self, timeout: float) -> bool:
        """Wait until every frame is acknowledged; False if ``timeout`` passes first."""
        try:
            await within(self._idle.wait(), timeout)
        except TimeoutError:
            return False
        return True

    async def start(self) -> CommandSender:
        """Start the acknowledgement and resend task on the running loop."""
        if self._task is None:
            self._task = asyncio.create_task(self._run())
        return self

    async def _run(self) -> None:
        tick = max(0.001, self._resend_after / 2)
        while True:
            await wait_readable((self._dealer,), tick)
            self.handle_acks()
            if self._unacked:
                self.resend_due()

    async def close(self) -> None:
        """Stop the task and close the socket (unacknowledged frames are dropped)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self._dealer.close(linger=0)

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


class _Peer:
    """What a receiver knows of one sender."""

    __slots__ = ("dirty", "epoch", "identity", "next_seq", "pending")

    def __init__(self, epoch: int, base: int) -> None:
        self.epoch = epoch
        self.next_seq = base
        self.pending: dict[int, Frame] = {}
        self.identity = b""
        self.dirty = False


class CommandReceiver:
    """Receive commands from any number of senders, each exactly once and in order.

    ``endpoint`` is bound. Like the subscriber it has no background task: ``recv``
    reads, orders, acknowledges and returns the next frame.
    """

    def __init__(
        self,
        endpoint: str,
        *,
        max_pending: int = 65_536,
        ctx: zmq.Context | None = None,
        name: str = "command-receiver",
    ) -> None:
        self.counters = ReceiverCounters()
        self.rejects = Rejects(name)
        self._max_pending = max_pending
        self._router = make_socket(context(ctx), zmq.ROUTER)
        try:
            self.endpoint = bind(self._router, endpoint)
        except zmq.ZMQError:
            self._router.close(linger=0)
            raise
        self._peers: dict[int, _Peer] = {}
        self._ready: deque[Frame] = deque()

    async def recv(self) -> Frame:
        """The next command frame in order; wrap in ``asyncio.wait_for`` for a deadline."""
        while not self._ready:
            self.pump()
            if self._ready:
                break
            await wait_readable((self._router,))
        return self._ready.popleft()

    def recv_nowait(self) -> Frame | None:
        """The next command frame if one is ready, else None."""
        if not self._ready:
            self.pump()
        return self._ready.popleft() if self._ready else None

    async def wait(self, timeout: float | None = None) -> None:
        """Wait until a frame may be ready, or ``timeout`` seconds; spurious returns allowed.

        With ``recv_nowait`` this gives a loop that waits on several things without
        wrapping ``recv`` in a task: a ``recv`` that completes just as its task is
        cancelled (a timeout, a stop) takes a frame with it."""
        if not self._ready:
            await wait_readable((self._router,), timeout)

    def pump(self) -> None:
        """Read the socket, deliver in order, acknowledge each sender once per batch."""
        for msg in drain(self._router):
            if len(msg) != 2:
                self.rejects.reject("MULTIPART", f"{len(msg)} parts, expected identity and one frame", msg[-1])
                continue
            identity, raw = msg
            try:
                frame = decode_frame(raw)
            except DecodeError as err:
                self.rejects.decode_error(err, raw)
                continue
            if frame.msg_type != MsgType.COMMANDS:
                self.rejects.reject("UNEXPECTED_FRAME", frame.msg_type.name, raw, frame.publisher_id, frame.sequence)
                continue
            self.counters.frames_received += 1
            self._accept(frame, identity)
        for sender_id, peer in self._peers.items():
            if peer.dirty:
                self._ack(sender_id, peer)

    def _accept(self, frame: Frame, identity: bytes) -> None:
        peer = self._peers.get(frame.publisher_id)
        if peer is None or frame.epoch > peer.epoch:
            if peer is not None:
                self.counters.epoch_changes += 1
            peer = self._peers[frame.publisher_id] = _Peer(frame.epoch, max(1, frame.aux))
        elif frame.epoch < peer.epoch:
            self.counters.stale_dropped += 1
            return
        peer.identity = identity
        peer.dirty = True
        if frame.aux > peer.next_seq:
            self.counters.base_jumps += 1
            log.warning(
                "command sender skipped ahead", sender_id=frame.publisher_id, expected=peer.next_seq, base=frame.aux
            )
            for seq in [s for s in peer.pending if s < frame.aux]:
                del peer.pending[seq]
            peer.next_seq = frame.aux
            self._flush(peer)
        seq = frame.sequence
        if seq < peer.next_seq or seq in peer.pending:
            self.counters.duplicates_dropped += 1
        elif seq == peer.next_seq:
            self._deliver(peer, frame)
            self._flush(peer)
        elif len(peer.pending) >= self._max_pending:
            self.counters.pending_overflow += 1
        else:
            if seq > max(peer.pending, default=peer.next_seq - 1) + 1:
                self.counters.gaps_detected += 1
            peer.pending[seq] = frame
            self.counters.buffered += 1

    def _deliver(self, peer: _Peer, frame: Frame) -> None:
        self._ready.append(frame)
        peer.next_seq += 1
        self.counters.frames_delivered += 1

    def _flush(self, peer: _Peer) -> None:
        while peer.pending:
            frame = peer.pending.pop(peer.next_seq, None)
            if frame is None:
                return
            self._deliver(peer, frame)

    def _ack(self, sender_id: int, peer: _Peer) -> None:
        peer.dirty = False
        # With a gap, NACK it: ``aux`` is the last sequence missing before the buffered ones.
        flags, gap_end = (int(FrameFlag.NACK), min(peer.pending) - 1) if peer.pending else (0, 0)
        ack = encode_frame(
            MsgType.ACK, publisher_id=sender_id, epoch=peer.epoch, sequence=peer.next_seq - 1, aux=gap_end,
            flags=flags, ts_send=time.time_ns(),
        )
        try:
            self._router.send_multipart([peer.identity, ack], zmq.NOBLOCK)
        except zmq.ZMQError:  # the sender is gone; it resends and gets a fresh ACK
            return
        self.counters.acks_sent += 1
        if flags:
            self.counters.nacks_sent += 1

    def close(self) -> None:
        """Close the socket."""
        self._router.close(linger=0)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()
