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


FastTaker = Callable[[bytes, int], bool]
"""Takes a raw message and the time it was received; True if it handled it (``live.fastpath``)."""
TIGHT_POLLS = 200
"""Polls of the market-data socket alone, when spinning with a fast path, before the other
tasks (the venue's reports, timers) get a turn: a few tens of microseconds in which the
fast path's code and data stay in the core's caches."""


async def _pump(subscriber: Subscriber, deliver: Deliver, spin_s: float = 0.0, fast: FastTaker | None = None) -> None:
    """Deliver every frame of ``subscriber`` until all its publishers ended their streams.

    After a frame, the socket is polled without sleeping for ``spin_s`` seconds (yielding
    to the event loop between polls) before the task blocks again: a process woken from
    sleep runs its first microseconds with cold caches and a slow core, which costs more
    than the work itself. Spinning trades CPU time for latency; pin the process."""
    live = set(subscriber.publisher_ids)
    spin_ns = int(spin_s * 1e9)
    idle_since = 0
    tight = TIGHT_POLLS if fast is not None and spin_ns else 1
    while live:
        if fast is not None:
            for _ in range(tight):  # spinning: poll the socket alone a while before the event loop's turn
                t_received = time.perf_counter_ns()
                raw = subscriber.recv_raw()
                if raw is not None:
                    break
            if raw is not None:
                if not fast(raw, t_received):
                    subscriber.take_raw(raw)
                idle_since = 0
                continue
        t_received = time.perf_counter_ns()
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

    async def run(self, deliver: Deliver, fast: FastTaker | None = None) -> None:
        """Deliver frames until every source ended its stream; offer each raw message to
        ``fast`` first, when given."""
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
