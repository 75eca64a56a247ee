"""The engine: the compiled pipeline inside a live process, one input batch at a time.

Everything a live process does to the pipeline goes through ``Engine.process``: check
the input records (nothing malformed reaches ``step``: a bad instrument id would be an
out-of-bounds write in compiled code), stamp them with the clock, run them through the
same compiled ``step`` the backtest runs (``framework.stepper``), and keep inputs and
commands for the journal. The journal is held in memory and written in batches
(``flush_journal``), off the path from an input to its order.

Where each kind of input may come from is fixed: market data from a market-data
source, execution reports from a venue, timers from the clock, control events from an
operator. A record that breaks a rule is rejected, counted by reason and logged; the
rest of its batch goes on.

Time: in paper and live modes the engine's clock stamps every input's ``ts_recv``
(never decreasing, so ``step`` never sees time go back). In lockstep the simulated
clock has stamped them already, and they are fed exactly as received.

Checking and stamping is one small compiled kernel over the stepper's own input
buffer, called through its entry point like ``step`` (``framework.jit.entry_point``):
a few hundred nanoseconds, where numpy's vector operations would cost microseconds
each on the one-record batches that live traffic is made of.
"""

from __future__ import annotations

from collections import Counter, namedtuple
from enum import IntEnum
from typing import NamedTuple

import numpy as np
from numba import njit

from framework.events import (
    COMMAND_DTYPE,
    EVENT_DTYPE,
    ControlCode,
    EventKind,
    concat_records,
    copy_records,
    raw_copy,
    records,
)
from framework.jit import entry_point
from framework.journal import JournalWriter, journal_commands
from framework.stepper import Stepper
from live.transport.common import Rejects


class Origin(IntEnum):
    """Where an input came from; decides which kinds it may carry."""

    MARKET_DATA = 1
    VENUE = 2
    CLOCK = 3
    OPERATOR = 4


MARKET_KINDS = (EventKind.TRADE, EventKind.QUOTE, EventKind.BOOK_DELTA, EventKind.BOOK_SNAPSHOT, EventKind.BAR)
REPORT_KINDS = tuple(k for k in EventKind if EventKind.ACCEPTED <= k <= EventKind.CANCEL_REJECTED)
ALLOWED_KINDS: dict[Origin, tuple[int, ...]] = {
    Origin.MARKET_DATA: MARKET_KINDS,
    Origin.VENUE: REPORT_KINDS,
    Origin.CLOCK: (EventKind.TIMER,),
    Origin.OPERATOR: (EventKind.CONTROL,),
}

Reject = namedtuple("Reject", "NONE KIND_NOT_ALLOWED UNKNOWN_INSTRUMENT UNKNOWN_VENUE BAD_VALUES OUT_OF_ORDER")(
    0, 1, 2, 3, 4, 5)
"""Why the engine refused an input record (the ``rejected_<reason>`` counters)."""
_REJECT_NAMES = {code: name.lower() for name, code in zip(Reject._fields, Reject)}


@njit(cache=True)
def _bad_market_values(ev) -> bool:
    """Numbers no market could have sent: a non-positive price where a price must be, a
    negative size, an inverted bar."""
    k = ev.kind
    if k == EventKind.TRADE:
        return ev.price <= 0 or ev.size <= 0
    if k == EventKind.QUOTE:
        return (ev.bid_size < 0 or ev.ask_size < 0 or (ev.bid_size > 0 and ev.bid_price <= 0)
                or (ev.ask_size > 0 and ev.ask_price <= 0))
    if k == EventKind.BAR:
        return ev.low <= 0 or ev.high < ev.low or ev.volume < 0
    return ev.price <= 0 or ev.size < 0  # book levels


@njit(cache=True)
def admit(events, n: int, allowed, n_instruments: int, n_venues: int, market: bool, venue: bool, stamp: bool,
           now: int, last_ts: int, reasons) -> int:
    """Check ``events[:n]`` in place: move the good ones to the front (in order), stamp their
    ``ts_recv`` with ``max(now, last_ts)`` if ``stamp``, else require it never to go back;
    write each record's ``Reject`` code to ``reasons``. Returns how many are good."""
    kept = 0
    if stamp and now < last_ts:
        now = last_ts
    for i in range(n):
        ev = events[i]
        k = ev.kind
        reason = 0
        if allowed[k] == 0:
            reason = 1
        elif ev.instrument_id < 0 or ev.instrument_id >= n_instruments:
            reason = 2
        elif ev.venue_id >= n_venues:
            reason = 3
        elif market and _bad_market_values(ev):
            reason = 4
        elif venue and k != EventKind.TIMER and (ev.client_order_id < 0 or ev.size < 0):
            reason = 4
        elif not stamp and ev.ts_recv < last_ts:
            reason = 5
        reasons[i] = reason
        if reason != 0:
            continue
        if stamp:
            ev.ts_recv = now
        else:
            last_ts = ev.ts_recv
        if kept != i:
            events[kept] = ev
        kept += 1
    return kept


class JournalBuffers(NamedTuple):
    """The engine's in-memory journal: inputs, commands, their input indexes, and how many
    of each it holds (``counts[0]``, ``counts[1]``)."""

    events: np.ndarray
    commands: np.ndarray
    indexes: np.ndarray
    counts: np.ndarray


class Engine:
    """The pipeline, its strategy and its journal, fed from Python.

    ``lockstep``: inputs keep the ``ts_recv`` they arrive with (it must never go back)
    and the venue may send timers (the simulated clock lives there); otherwise the
    engine stamps ``ts_recv`` with the clock's time.
    """

    def __init__(self, stepper: Stepper, *, n_venues: int, journal: JournalWriter | None = None,
                 lockstep: bool = False, journal_block: int = 4096) -> None:
        self.stepper = stepper
        self.p = stepper.p
        self.n_instruments = len(self.p.market)
        self.n_venues = n_venues
        self.journal = journal
        self.lockstep = lockstep
        self.last_ts = 0
        """``ts_recv`` of the last input fed."""
        self.counters: Counter[str] = Counter()
        """``inputs`` fed and ``rejected_<reason>`` by ``Reject`` name."""
        self.rejects = Rejects("engine", event="input rejected")
        self._allowed = {}
        for src, kinds in ALLOWED_KINDS.items():
            table = np.zeros(256, np.uint8)
            table[list(kinds)] = 1
            if lockstep and src == Origin.VENUE:
                table[EventKind.TIMER] = 1
            self._allowed[src] = table
        self._reasons = np.zeros(len(stepper.inputs), np.uint8)
        self._ts_recv = stepper.inputs["ts_recv"]
        self._admit = entry_point(admit, self._admit_args(0, Origin.MARKET_DATA, 0))
        self._jev = records(journal_block, EVENT_DTYPE)
        self._jcmd = records(max(journal_block, 4 * len(self.p.orders)), COMMAND_DTYPE)
        self._jidx = np.zeros(len(self._jcmd), np.int64)
        self._jn = np.zeros(2, np.int64)
        """Events and commands the journal holds in memory (an array: compiled code appends too)."""
        self._control = records(1, EVENT_DTYPE)

    def allowed(self, origin: Origin) -> np.ndarray:
        """The kinds ``origin`` may send, as a 256-entry table (``admit``'s)."""
        return self._allowed[origin]

    @property
    def reasons(self) -> np.ndarray:
        """``admit``'s verdict per input record of the last batch (``Reject`` codes)."""
        return self._reasons

    def _admit_args(self, n: int, origin: Origin, now_ns: int) -> tuple:
        return (self.stepper.inputs, n, self._allowed[origin], self.n_instruments, self.n_venues,
                origin == Origin.MARKET_DATA, origin == Origin.VENUE, not self.lockstep, now_ns, self.last_ts,
                self._reasons)

    # -- the path from an input to its commands -------------------------------------------------

    def process(self, events: np.ndarray, origin: Origin, now_ns: int = 0) -> np.ndarray:
        """Check, stamp and step ``events``; return the commands they produced.

        The commands are contiguous ``COMMAND_DTYPE`` records, ready for the wire, a view
        valid until the next call (``stepper.indexes`` numbers the input each came from).
        ``now_ns`` is the clock's time (ignored in lockstep).
        """
        if events.dtype != EVENT_DTYPE:  # an adapter's bug: refused like any malformed input, never fed
            self.counters["rejected_bad_dtype"] += len(events)
            self.rejects.reject("bad_dtype", f"{origin.name.lower()} batch of {len(events)} records of "
                                f"{events.dtype.itemsize}-byte dtype, not EVENT_DTYPE", b"")
            return self.stepper.step_inputs(0)
        batch = len(self.stepper.inputs)
        if len(events) > batch:
            parts, indexes = [], []
            for i in range(0, len(events), batch):
                parts.append(raw_copy(self.process(events[i:i + batch], origin, now_ns)))
                indexes.append(self.stepper.indexes.copy())
            self.stepper.indexes = np.concatenate(indexes)
            return concat_records(parts, COMMAND_DTYPE)
        n = len(events)
        inputs = self.stepper.inputs
        copy_records(inputs, events)
        kept = self._admit(*self._admit_args(n, origin, now_ns))
        if kept < n:
            self.report_rejects(events, n, origin)
        if kept == 0:
            return self.stepper.step_inputs(0)
        self.last_ts = int(self._ts_recv[kept - 1])
        self.counters["inputs"] += kept
        commands = self.stepper.step_inputs(kept)
        if self.journal is not None:
            self._journal(inputs[:kept], commands, self.stepper.indexes)
        return commands

    def report_rejects(self, events: np.ndarray, n: int, origin: Origin) -> None:
        """Count and log the records ``admit`` refused among ``events[:n]`` (by ``reasons``)."""
        for i in np.flatnonzero(self._reasons[:n]):
            reason = _REJECT_NAMES[int(self._reasons[i])]
            ev = events[i]
            self.counters[f"rejected_{reason}"] += 1
            detail = (f"{origin.name.lower()} input kind={int(ev['kind'])} instrument={int(ev['instrument_id'])} "
                      f"venue={int(ev['venue_id'])} ts_event={int(ev['ts_event'])} ts_recv={int(ev['ts_recv'])}")
            self.rejects.reject(reason, detail, ev.tobytes())

    # -- operator's controls ------------------------------------------------------------------

    def control(self, code: int, now_ns: int, value: int = 0, target: int = 0) -> np.ndarray:
        """Feed an operator's control event (``ControlCode``); return its commands."""
        ev = self._control
        ev[0] = 0
        ev["kind"] = EventKind.CONTROL
        ev["ts_event"] = now_ns
        ev["ts_recv"] = now_ns
        ev["control"] = code
        ev["value"] = value
        ev["target"] = target
        return self.process(ev, Origin.OPERATOR, now_ns)

    def kill_switch(self, now_ns: int, value: int = 0, target: int = 0) -> np.ndarray:
        """Deny new orders and cancel the working ones in scope (``KillScope`` in ``value``)."""
        return self.control(ControlCode.KILL_SWITCH_ON, now_ns, value, target)

    @property
    def open_orders(self) -> int:
        """Orders working or in flight (the execution stage's count)."""
        return int(self.p.exec_state[0]["n_open"])

    # -- the journal ----------------------------------------------------------------------------

    def _journal(self, events: np.ndarray, commands: np.ndarray, indexes: np.ndarray) -> None:
        n_ev, n_cmd = len(events), len(commands)
        jn = self._jn
        if jn[0] + n_ev > len(self._jev) or jn[1] + n_cmd > len(self._jcmd):
            self.flush_journal()
        if n_ev > len(self._jev) or n_cmd > len(self._jcmd):
            self.journal.write(events, journal_commands(indexes, commands))
            return
        copy_records(self._jev[jn[0]:], events)
        jn[0] += n_ev
        if n_cmd:
            copy_records(self._jcmd[jn[1]:], commands)
            self._jidx[jn[1]:jn[1] + n_cmd] = indexes
            jn[1] += n_cmd

    def journal_room(self, n_events: int, n_commands: int) -> JournalBuffers | None:
        """The in-memory journal, flushed first if it cannot take ``n_events`` inputs and
        ``n_commands`` commands more; None without a journal. For code that appends
        itself (``live.fastpath``): it writes records and advances ``counts``."""
        if self.journal is None:
            return None
        jn = self._jn
        if jn[0] + n_events > len(self._jev) or jn[1] + n_commands > len(self._jcmd):
            self.flush_journal()
        return JournalBuffers(self._jev, self._jcmd, self._jidx, jn)

    def note_fed(self, n: int) -> None:
        """Count ``n`` inputs that were checked and stepped outside ``process`` (``live.fastpath``)."""
        self.counters["inputs"] += n
        self.last_ts = int(self._ts_recv[n - 1])

    def flush_journal(self) -> None:
        """Write what the journal holds in memory and hand it to the operating system."""
        if self.journal is None:
            return
        n_ev, n_cmd = int(self._jn[0]), int(self._jn[1])
        if n_ev or n_cmd:
            self.journal.write(self._jev[:n_ev], journal_commands(self._jidx[:n_cmd], self._jcmd[:n_cmd]))
            self._jn[:] = 0
        self.journal.flush()

    def close_journal(self) -> str | None:
        """Flush, sync and close the journal; return its hash."""
        if self.journal is None:
            return None
        self.flush_journal()
        return self.journal.close()
