"""The engine's fast path: from a market-data message to its order message in compiled code.

The layered path (subscriber, codec, engine, runtime, command sender) does in Python
what each layer needs: on a hot core that is about twenty microseconds, but a live
engine is woken by each message, and on a VM a woken thread runs that Python several
times slower than a hot one (``bench/tick_to_order.py`` prints both floors). So the
common case never leaves compiled code between the two sockets. ``_receive`` polls the
feed's SUB socket through libzmq itself (``live.libzmq``) until a message arrives or
its time is up, and for a message that is the next EVENTS frame of its stream, in
``_frame_to_orders``:

1. decodes it (``live.wire_kernels.decode_events_into``) straight into the stepper's input buffer;
2. checks and stamps the records (``live.engine.admit``), steps them (``framework.stepper.step_batch``);
3. appends inputs and commands to the engine's in-memory journal;
4. encodes the venue's commands (SUBMIT, CANCEL, MODIFY, QUERY) as the command sender's
   next frame (``live.wire_kernels.encode_commands_into``); sets timers and alerts aside;

then hands that frame to the command sender's DEALER socket, and only then returns.
Python keeps the books afterwards (sequence numbers, the frame kept for resends,
counters, the latency sample), off the tick-to-order path. Everything else (a gap, a
new epoch, a heartbeat, a snapshot, garbage, a frame of more than ``MAX_RECORDS``
records) is handed to the subscriber unchanged and goes the layered way, so the fast
path is an optimisation of the common case and nothing more: its journal and its
command frames equal the layered path's, byte for byte (tests/live/test_fastpath.py).

Where libzmq cannot be called from compiled code (``live.libzmq.AVAILABLE``), there is
no fast path and the runtime takes the layered one.
"""

from __future__ import annotations

import ctypes
import time
from enum import IntEnum

import numpy as np
import zmq
from numba import carray, njit

from framework.events import COMMAND_DTYPE, EVENT_SIZE, raw_copy, records
from framework.jit import HOT, KERNEL, resolve
from framework.order_table import is_venue_command
from framework.stepper import step_batch
from live import libzmq
from live.engine import Engine, Origin, admit
from live.libzmq import (
    CLOCK_MONOTONIC,
    CLOCK_REALTIME,
    EAGAIN,
    MSG_T_SIZE,
    ZMQ_DONTWAIT,
    clock_gettime,
    zmq_errno,
    zmq_msg_close,
    zmq_msg_data,
    zmq_msg_init,
    zmq_msg_recv,
    zmq_send,
)
from live.transport import CommandSender, Subscriber
from live.wire import HEADER_SIZE
from live.wire_kernels import decode_events_into, encode_commands_into, u32

MAX_RECORDS = 64
"""Most records in a frame the fast path takes: live frames carry one, a simulated venue
batches up to ``live.paper.max_batch`` (64) rows that fall due together. The fast path's
command buffer holds every command this many inputs can make, so a batch is never cut."""

_HEADER_PID = 12
_I64 = 1 << 64

# result fields of _frame_to_orders ...
R_RECORDS, R_KEPT, R_COMMANDS, R_VENUE, R_OTHER, R_FRAME = range(6)
# ... and of _receive: the clocks when the message was taken and its orders handed to the
# socket (CLOCK_MONOTONIC ns), the live clock stamped on it, its publisher and size, where
# its bytes are while it is left open, whether the order frame went out (1), found no
# receiver (0) or failed (-errno), and the errno of a failed receive
R_T_RECEIVED, R_T_SENT, R_NOW, R_PUBLISHER, R_SIZE, R_DATA, R_SENT, R_ERRNO = range(6, 14)
N_RESULTS = 14


class Outcome(IntEnum):
    """What one ``FastPath.poll`` did."""

    IDLE = 0
    """Nothing arrived in time (or the subscriber must be read the ordered way first)."""
    TAKEN = 1
    """A message went through the fast path."""
    HANDED = 2
    """A message arrived that is not the fast path's: the subscriber has it now."""
    FAILED = 3
    """The receive failed (``_receive`` only; ``poll`` raises)."""


_IDLE, _TAKEN, _HANDED, _FAILED = (int(o) for o in Outcome)  # as the kernel returns them


@njit(**KERNEL)
def _frame_to_orders(buf, n_buf: int, publisher_id: int, epoch: int, sequence: int, now: int, last_ts: int,
                     first_index: int, sender_seq: int, sender_aux: int,
                     p, inputs, inputs_u8, allowed, n_instruments: int, n_venues: int, reasons, out, commands,
                     indexes, on_event, params, state, journal_on: bool, jev, jcmd, jidx, jn, venue, venue_u8, other,
                     frame_u8, sender_id: int, sender_epoch: int, result) -> int:
    """The fast path of one frame (module docstring); 0 when taken, -1 when the slow path must
    take it (nothing was changed then). ``result`` gets the counts (``R_*``)."""
    count = decode_events_into(buf, n_buf, publisher_id, epoch, sequence, inputs_u8, 0)
    if count < 0 or count > MAX_RECORDS:
        return -1
    kept = admit(inputs, count, allowed, n_instruments, n_venues, True, False, True, now, last_ts, reasons)
    result[R_RECORDS] = count
    result[R_KEPT] = kept
    _, n_cmd = step_batch(p, inputs, 0, kept, out, commands, indexes, 0, first_index, on_event, params, state)
    result[R_COMMANDS] = n_cmd
    if journal_on:
        for i in range(kept):
            jev[jn[0] + i] = inputs[i]
        jn[0] += kept
        for k in range(n_cmd):
            jcmd[jn[1] + k] = commands[k]
            jidx[jn[1] + k] = indexes[k]
        jn[1] += n_cmd
    n_venue = 0
    n_other = 0
    for k in range(n_cmd):
        if is_venue_command(commands[k].kind):
            venue[n_venue] = commands[k]
            n_venue += 1
        else:
            other[n_other] = commands[k]
            n_other += 1
    result[R_VENUE] = n_venue
    result[R_OTHER] = n_other
    result[R_FRAME] = 0
    if n_venue:
        result[R_FRAME] = encode_commands_into(frame_u8, venue_u8, n_venue, sender_id, sender_epoch, sender_seq,
                                               sender_aux, now)
    return 0


@njit(**HOT)
def _clock_ns(clock: int, timespec) -> int:
    clock_gettime(clock, timespec.ctypes.data)
    return timespec[0] * 1_000_000_000 + timespec[1]


@njit(cache=True)  # KERNEL but for reference counting: numba's carray needs it (and allocates nothing)
def _receive(sub: int, dealer: int, msg, deadline: int, streams, transmit: bool, timespec, first_index: int,
             last_ts: int, sender_seq: int, sender_aux: int,
             p, inputs, inputs_u8, allowed, n_instruments: int, n_venues: int, reasons, out, commands,
             indexes, on_event, params, state, journal_on: bool, jev, jcmd, jidx, jn, venue, venue_u8, other,
             frame_u8, sender_id: int, sender_epoch: int, result) -> int:
    """Poll ``sub`` until a message arrives or CLOCK_MONOTONIC reaches ``deadline`` (at least
    once); take it through ``_frame_to_orders`` if it is the next frame of a stream in
    ``streams`` (rows of publisher, epoch, next sequence), and send its order frame on
    ``dealer`` (if ``transmit``). Returns an ``Outcome``; ``result`` gets the ``R_*`` fields.

    A message handed back (HANDED), or taken with records ``admit`` refused, is left open in
    ``msg`` at ``result[R_DATA]`` for the caller to read and close."""
    address = msg.ctypes.data
    while True:
        zmq_msg_init(address)
        size = zmq_msg_recv(address, sub, ZMQ_DONTWAIT)
        if size >= 0:
            break
        errno = zmq_errno()
        zmq_msg_close(address)
        if errno != EAGAIN:
            result[R_ERRNO] = errno
            return _FAILED
        if _clock_ns(CLOCK_MONOTONIC, timespec) >= deadline:
            return _IDLE
    result[R_T_RECEIVED] = _clock_ns(CLOCK_MONOTONIC, timespec)
    now = _clock_ns(CLOCK_REALTIME, timespec)
    data = carray(zmq_msg_data(address), size, np.uint8)
    result[R_NOW] = now
    result[R_SIZE] = size
    result[R_DATA] = data.ctypes.data
    publisher = -1
    if size >= HEADER_SIZE:
        publisher = u32(data, _HEADER_PID)
    result[R_PUBLISHER] = publisher
    row = -1
    for k in range(streams.shape[0]):
        if streams[k, 0] == publisher:
            row = k
    if row < 0 or _frame_to_orders(data, size, publisher, streams[row, 1], streams[row, 2], now, last_ts,
                                   first_index, sender_seq, sender_aux, p, inputs, inputs_u8, allowed,
                                   n_instruments, n_venues, reasons, out, commands, indexes, on_event, params,
                                   state, journal_on, jev, jcmd, jidx, jn, venue, venue_u8, other, frame_u8,
                                   sender_id, sender_epoch, result) < 0:
        return _HANDED
    sent = 0
    if result[R_VENUE] and transmit:
        if zmq_send(dealer, frame_u8.ctypes.data, result[R_FRAME], ZMQ_DONTWAIT) >= 0:
            sent = 1
        else:
            errno = zmq_errno()
            if errno != EAGAIN:
                sent = -errno
    result[R_T_SENT] = _clock_ns(CLOCK_MONOTONIC, timespec)
    result[R_SENT] = sent
    if result[R_KEPT] == result[R_RECORDS]:
        zmq_msg_close(address)
    return _TAKEN


def _i64(u: int) -> int:
    """A uint64 of the wire as the int64 of the same bits (the kernels' arguments)."""
    return u - _I64 if u >= 1 << 63 else u


class FastPath:
    """The fast path between one market-data subscriber, the engine and one command sender."""

    def __init__(self, engine: Engine, feed: Subscriber, sender: CommandSender) -> None:
        if not libzmq.AVAILABLE:
            raise RuntimeError(f"no fast path: {libzmq.UNAVAILABLE_BECAUSE}")
        if engine.lockstep:
            raise ValueError("the fast path is for wall-clock sessions; lockstep answers every input")
        stepper = engine.stepper
        if len(stepper.inputs) < MAX_RECORDS:
            raise ValueError(f"the stepper's input buffer holds {len(stepper.inputs)} records, less than "
                             f"a frame the fast path takes ({MAX_RECORDS})")
        self.engine = engine
        self.feed = feed
        self.sender = sender
        capacity = len(stepper.out) * MAX_RECORDS
        self.commands = records(capacity + len(stepper.out), COMMAND_DTYPE)  # step_batch's room: capacity
        self.indexes = np.zeros(len(self.commands), np.int64)
        self.venue = records(capacity, COMMAND_DTYPE)
        self.other = records(capacity, COMMAND_DTYPE)
        self.frame = np.zeros(HEADER_SIZE + EVENT_SIZE * capacity, np.uint8)
        self.result = np.zeros(N_RESULTS, np.int64)
        self.taken = 0
        """Frames the fast path took."""
        self._publishers = feed.publisher_ids
        self._streams = np.full((len(self._publishers), 3), -1, np.int64)
        self._msg = np.zeros(MSG_T_SIZE, np.uint8)
        room = engine.journal_room(MAX_RECORDS, capacity)
        if room is None:
            room = (stepper.inputs[:1], records(1, COMMAND_DTYPE), np.zeros(1, np.int64), np.zeros(2, np.int64))
        self._journal_counts = room[3]
        self._journal_limits = (len(room[0]) - MAX_RECORDS, len(room[1]) - capacity)
        self._sockets = (feed.live_socket.underlying, sender.socket.underlying, self._msg)
        self._static = (stepper.p, stepper.inputs, stepper.inputs.view(np.uint8), engine.allowed(Origin.MARKET_DATA),
                        engine.n_instruments, engine.n_venues, engine.reasons, stepper.out, self.commands,
                        self.indexes, stepper.on_event, stepper.params, stepper.state,
                        engine.journal is not None, *room, self.venue, self.venue.view(np.uint8), self.other,
                        self.frame, sender.sender_id, _i64(sender.epoch), self.result)
        self._timespec = np.zeros(2, np.int64)
        self._receive = resolve(_receive, (*self._sockets, 0, self._streams, True, self._timespec, 0, 0, 1, 1,
                                           *self._static))

    def poll(self, budget_ns: int) -> Outcome:
        """Wait up to ``budget_ns`` (spinning; 0: look once) for a message on the feed's live
        socket and deal with it: through the fast path (TAKEN: its order frame is sent, the
        timers and alerts it made are in ``others``), or handed to the subscriber (HANDED).
        IDLE when nothing came, or when the subscriber must first be read in order
        (``Subscriber.may_take_raw``). Raises ``CommandBacklogFull`` before reading anything
        when the command window is full, and ``zmq.ZMQError`` when a socket fails."""
        feed = self.feed
        if not feed.may_take_raw():
            return Outcome.IDLE
        engine, stepper = self.engine, self.engine.stepper
        jn, (max_events, max_commands) = self._journal_counts, self._journal_limits
        if jn[0] > max_events or jn[1] > max_commands:
            engine.flush_journal()
        seq, aux, transmit = self.sender.next_frame()
        streams = self._streams
        for row, pid in enumerate(self._publishers):
            expected = feed.expects(pid)
            streams[row] = (pid, _i64(expected[0]), _i64(expected[1])) if expected is not None else (-1, 0, 0)
        deadline = time.perf_counter_ns() + budget_ns
        outcome = Outcome(self._receive(*self._sockets, deadline, streams, transmit, self._timespec,
                                        stepper.n_inputs, engine.last_ts, _i64(seq), _i64(aux), *self._static))
        r = self.result
        if outcome == Outcome.IDLE:
            return outcome
        if outcome == Outcome.FAILED:
            raise zmq.ZMQError(int(r[R_ERRNO]))
        if outcome == Outcome.HANDED:
            feed.take_raw(self._release_message())
            return outcome
        self.taken += 1
        feed.taken(int(r[R_PUBLISHER]))
        count, kept, n_venue = int(r[R_RECORDS]), int(r[R_KEPT]), int(r[R_VENUE])
        if kept:
            stepper.n_inputs += kept
            engine.note_fed(kept)
        if kept < count:
            raw = self._release_message()
            engine.report_rejects(np.frombuffer(raw, stepper.inputs.dtype, count, HEADER_SIZE), count,
                                  Origin.MARKET_DATA)
        if n_venue:
            self.sender.sent_encoded(seq, raw_copy(self.venue[:n_venue]), r[R_SENT] > 0)
            if r[R_SENT] < 0:
                raise zmq.ZMQError(-int(r[R_SENT]))
        return outcome

    def _release_message(self) -> bytes:
        raw = ctypes.string_at(int(self.result[R_DATA]), int(self.result[R_SIZE]))
        libzmq.close_message(self._msg.ctypes.data)
        return raw

    @property
    def sent_orders(self) -> bool:
        """Whether the message the last ``poll`` took made orders."""
        return bool(self.result[R_VENUE])

    @property
    def received_ns(self) -> int:
        """When the last message was taken from the socket (``time.perf_counter_ns`` clock)."""
        return int(self.result[R_T_RECEIVED])

    @property
    def tick_to_order_ns(self) -> int:
        """From taking the last message to handing its orders to the socket."""
        return int(self.result[R_T_SENT] - self.result[R_T_RECEIVED])

    @property
    def stamped_ns(self) -> int:
        """The live clock the last message's records were stamped with (``ts_recv``)."""
        return int(self.result[R_NOW])

    @property
    def others(self) -> np.ndarray:
        """The timers and alerts the last message taken made, in order."""
        return self.other[: int(self.result[R_OTHER])]
