"""The engine's fast path: a market-data frame to its order frame in one compiled call.

The layered path (subscriber, codec, engine, runtime, command sender) does in Python
what each layer needs: on a hot core that is about twenty microseconds, but a live
engine is woken by each message, and on a VM a woken thread runs that Python several
times slower than a hot one (``bench/tick_to_order.py`` prints both floors). So the
common case goes through one compiled function, ``_frame_to_orders``, over raw bytes:

1. decode the frame if it is the next EVENTS frame of its stream
   (``live.wire_kernels.decode_events_into``), straight into the stepper's input buffer;
2. check and stamp the records (``live.engine.admit``), step them (``framework.stepper.step_batch``);
3. append inputs and commands to the engine's in-memory journal;
4. encode the venue's commands (SUBMIT, CANCEL, MODIFY, QUERY) as the command sender's
   next frame (``live.wire_kernels.encode_commands_into``); set timers and alerts aside.

Python then only sends that frame and keeps the books (sequence numbers, counters, the
latency sample). Everything else (a gap, a new epoch, a heartbeat, a snapshot, garbage,
a frame of more than ``MAX_RECORDS`` records) goes the layered way, unchanged, so
the fast path is an optimisation of the common case and nothing more: its journal and
its command frames equal the layered path's, byte for byte but the send time
(tests/live/test_fastpath.py).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from framework.events import COMMAND_DTYPE, EVENT_SIZE, raw_copy, records
from framework.jit import KERNEL, entry_point
from framework.order_table import is_venue_command
from framework.stepper import step_batch
from live.engine import Engine, Origin, admit
from live.transport import CommandSender, Subscriber
from live.wire import HEADER_SIZE
from live.wire_kernels import decode_events_into, encode_commands_into

MAX_RECORDS = 2
"""Most records in a frame the fast path takes (live frames carry one). The stepper's
command buffer holds every command this many inputs can make, so a batch is never cut."""

_HEADER_PID = slice(12, 16)
_I64 = 1 << 64

# result fields of _frame_to_orders
R_RECORDS, R_KEPT, R_COMMANDS, R_VENUE, R_OTHER, R_FRAME = range(6)


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


def _i64(u: int) -> int:
    """A uint64 of the wire as the int64 of the same bits (the kernels' arguments)."""
    return u - _I64 if u >= 1 << 63 else u


class FastPath:
    """The fast path between one market-data subscriber, the engine and one command sender."""

    def __init__(self, engine: Engine, feed: Subscriber, sender: CommandSender) -> None:
        if engine.lockstep:
            raise ValueError("the fast path is for wall-clock sessions; lockstep answers every input")
        stepper = engine.stepper
        if len(stepper.commands) - len(stepper.out) < MAX_RECORDS * len(stepper.out):
            raise ValueError("the stepper's command buffer cannot hold what MAX_RECORDS inputs may produce")
        self.engine = engine
        self.feed = feed
        self.sender = sender
        capacity = len(stepper.out) * MAX_RECORDS
        self.venue = records(capacity, COMMAND_DTYPE)
        self.other = records(capacity, COMMAND_DTYPE)
        self.frame = np.zeros(HEADER_SIZE + EVENT_SIZE * capacity, np.uint8)
        self.result = np.zeros(6, np.int64)
        self.taken = 0
        """Frames the fast path took."""
        room = engine.journal_room(MAX_RECORDS, capacity)
        if room is None:
            room = (stepper.inputs[:1], records(1, COMMAND_DTYPE), np.zeros(1, np.int64), np.zeros(2, np.int64))
        self._journal_counts = room[3]
        self._journal_limits = (len(room[0]) - MAX_RECORDS, len(room[1]) - capacity)
        self._static = (stepper.p, stepper.inputs, stepper.inputs.view(np.uint8), engine.allowed(Origin.MARKET_DATA),
                        engine.n_instruments, engine.n_venues, engine.reasons, stepper.out, stepper.commands,
                        stepper.command_indexes, stepper.on_event, stepper.params, stepper.state,
                        engine.journal is not None, *room, self.venue, self.venue.view(np.uint8), self.other,
                        self.frame, sender.sender_id, _i64(sender.epoch), self.result)
        self._call = entry_point(_frame_to_orders, (np.zeros(HEADER_SIZE, np.uint8), 0, 0, 1, 1, 0, 0, 0, 1, 1,
                                                    *self._static))

    def take(self, raw: bytes, now_ns: int) -> np.ndarray | None:
        """Run ``raw`` (from ``feed.recv_raw``) through the fast path; return the timers and alerts
        it produced (empty if none), or None when it is not the fast path's to take (then
        nothing has changed: hand it to ``feed.take_raw``). Sends the order frame itself."""
        publisher_id = int.from_bytes(raw[_HEADER_PID], "little") if len(raw) >= HEADER_SIZE else -1
        expected = self.feed.expects(publisher_id)
        if expected is None:
            return None
        engine, stepper = self.engine, self.engine.stepper
        jn, (max_events, max_commands) = self._journal_counts, self._journal_limits
        if jn[0] > max_events or jn[1] > max_commands:
            engine.flush_journal()
        seq, aux = self.sender.next_frame()
        if self._call(np.frombuffer(raw, np.uint8), len(raw), publisher_id, _i64(expected[0]),
                      _i64(expected[1]), now_ns, engine.last_ts, stepper.n_inputs, _i64(seq), _i64(aux),
                      *self._static) < 0:
            return None
        self.taken += 1
        self.feed.taken(publisher_id)
        r = self.result
        count, kept, n_venue = int(r[R_RECORDS]), int(r[R_KEPT]), int(r[R_VENUE])
        if kept:
            stepper.n_inputs += kept
            engine.note_fed(kept)
        if kept < count:
            engine.report_rejects(np.frombuffer(raw, stepper.inputs.dtype, count, HEADER_SIZE), count,
                                  Origin.MARKET_DATA)
        if n_venue:
            self.sender.send_encoded(seq, self.frame[: int(r[R_FRAME])].tobytes(), raw_copy(self.venue[:n_venue]))
        return self.other[: int(r[R_OTHER])]
