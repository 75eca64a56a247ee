"""The engine's links to other processes over ZeroMQ: a market-data feed and a venue.

Both are what an engine uses when the thing it talks to runs elsewhere: the
market-data service and the venue gateway of the multi-process topology, or the
simulated venue server (which is both). Each has the same two-method shape as the
in-process adapters, so the runtime does not care which it has:

* ``run(deliver)``: read frames until the stream ends or the task is cancelled, and
  call ``deliver(records, t_received_ns)`` for each (``t_received_ns`` is
  ``time.perf_counter_ns()`` when the frame was taken from the socket, for the
  tick-to-order latency);
* ``send(commands)`` (venues only): queue commands for the venue; never blocks.

Everything the transport rejects is counted and logged there; the link only passes on
what arrived whole and in order. A SNAPSHOT frame (the publisher could not replay
what was lost) is delivered like data: for market data it carries the current book;
the loss is visible in the subscriber's counters.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence

import numpy as np

from live.transport import CommandSender, Source, Subscriber
from live.wire import MsgType

Deliver = Callable[[np.ndarray, int], None]
"""Takes a batch of EVENT_DTYPE records and the ``perf_counter_ns`` time they were received."""


FastPoller = Callable[[int], bool]
"""Waits up to the given nanoseconds (spinning) for a message and deals with it; True if one
came (``live.fastpath.FastPath.poll`` as the runtime wraps it)."""
TIGHT_SPIN_NS = 100_000
"""How long, when spinning with a fast path, the compiled loop polls the market-data socket
alone before the other tasks (the venue's reports, timers) get a turn: long enough that a
message rarely arrives while they have it, short enough that a report waits little."""


async def _pump(subscriber: Subscriber, deliver: Deliver, spin_s: float = 0.0, fast: FastPoller | None = None) -> None:
    """Deliver every frame of ``subscriber`` until all its publishers ended their streams.

    After a frame, the socket is polled without sleeping for ``spin_s`` seconds (yielding
    to the event loop between polls) before the task blocks again: a process woken from
    sleep runs its first microseconds with cold caches and a slow core, which costs more
    than the work itself. Spinning trades CPU time for latency; pin the process. With a
    fast path, messages are first offered to it (it reads the socket itself)."""
    live = set(subscriber.publisher_ids)
    spin_ns = int(spin_s * 1e9)
    idle_since = 0
    budget = TIGHT_SPIN_NS if spin_ns else 0
    while live:
        t_received = time.perf_counter_ns()
        if fast is not None and subscriber.may_take_raw():
            if fast(budget):
                idle_since = 0
                continue
            frame = None  # nothing came in time; the fast path alone reads the live socket meanwhile
        else:
            frame = subscriber.recv_nowait()
        if frame is None:
            if not idle_since:
                idle_since = t_received
            if t_received - idle_since < spin_ns:
                await asyncio.sleep(0)
            else:
                await subscriber.wait()
            continue
        idle_since = 0
        if frame.msg_type == MsgType.END:
            live.discard(frame.publisher_id)
        elif len(frame.records):
            deliver(frame.records, t_received)


class ZmqFeed:
    """Market data published by other processes (a market-data service, a simulated venue)."""

    def __init__(self, sources: Sequence[Source], *, name: str = "feed", spin_s: float = 0.0,
                 **subscriber_options) -> None:
        self.subscriber = Subscriber(sources, name=name, **subscriber_options)
        self.spin_s = spin_s

    async def run(self, deliver: Deliver, fast: FastPoller | None = None) -> None:
        """Deliver frames until every source ended its stream; let ``fast`` read and take
        what it can first, when given."""
        await _pump(self.subscriber, deliver, self.spin_s, fast)

    def close(self) -> None:
        """Close the sockets."""
        self.subscriber.close()


class ZmqVenue:
    """A venue reached over ZeroMQ: commands on the acknowledged path, reports by PUB/SUB."""

    def __init__(self, sender_id: int, command_endpoint: str, reports: Sequence[Source], *, name: str = "venue",
                 spin_s: float = 0.0, **subscriber_options) -> None:
        self.sender = CommandSender(sender_id, command_endpoint, name=f"{name}.commands")
        self.subscriber = Subscriber(reports, name=f"{name}.reports", **subscriber_options)
        self.spin_s = spin_s

    def send(self, commands: np.ndarray) -> None:
        """Queue ``commands`` (COMMAND_DTYPE) as one frame; an empty one is sent too (lockstep
        answers every input, commands or not)."""
        self.sender.send(commands)

    async def run(self, deliver: Deliver) -> None:
        """Deliver reports until the venue ended its stream; keep the command path acknowledged."""
        await self.sender.start()
        await _pump(self.subscriber, deliver, self.spin_s)

    async def flush(self, timeout: float) -> bool:
        """Wait until the venue has every command sent so far."""
        return await self.sender.flush(timeout)

    async def close(self) -> None:
        """Close the sockets (commands not yet acknowledged are dropped)."""
        await self.sender.close()
        self.subscriber.close()
