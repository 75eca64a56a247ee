"""What the transport's endpoints share: sockets, waiting, draining, rejecting bad frames.

Sockets are plain synchronous ZeroMQ sockets used with ``NOBLOCK``: a batch of ready
messages is drained and processed without an ``await`` in between, so a coroutine
cancelled while waiting never leaves a message half-handled, and no future is
allocated per message. To wait, ``wait_readable`` registers the sockets' ``ZMQ_FD``
with the asyncio loop for the duration of one wait: cheaper than a ``zmq.asyncio``
poller (a frame round trip in ``bench/transport_latency.py`` went from 515 to 449 us
p50 over ipc when the transport switched), and it works on any context.

``ZMQ_FD`` is edge-triggered: it signals that the socket's state may have changed, not
that a message is there. So the sockets' ``EVENTS`` are checked before every wait
(which also re-arms the descriptor), and a wake-up only means "look again".
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Iterator, Sequence

import structlog
import zmq

from live.wire import DecodeError, hex_prefix

log = structlog.get_logger("live.transport")

DRAIN_BATCH = 1024
"""Most messages read from one socket before the others get a turn."""


def context(ctx: zmq.Context | None) -> zmq.Context:
    """The given context (sync or asyncio), or the process-wide one."""
    return ctx if ctx is not None else zmq.Context.instance()


def make_socket(ctx: zmq.Context, kind: int, **options: int) -> zmq.Socket:
    """A synchronous socket on ``ctx`` with ``options`` (ZeroMQ option names).

    ``LINGER`` is 0 so closing never blocks the event loop on unsent messages: every
    path that needs delivery (replay, commands) resends by itself.
    """
    sock = ctx.socket(kind, socket_class=zmq.Socket)  # synchronous even on an asyncio context, and tracked by it
    sock.setsockopt(zmq.LINGER, 0)
    for name, value in options.items():
        sock.setsockopt(getattr(zmq, name), value)
    return sock


def bind(sock: zmq.Socket, endpoint: str) -> str:
    """Bind and return the endpoint actually bound (``tcp://127.0.0.1:*`` picks a free port)."""
    sock.bind(endpoint)
    return sock.getsockopt_string(zmq.LAST_ENDPOINT)


def readable(sockets: Sequence[zmq.Socket]) -> bool:
    """Whether any socket has a message now (and re-arm their descriptors)."""
    return any(sock.getsockopt(zmq.EVENTS) & zmq.POLLIN for sock in sockets)


async def wait_readable(sockets: Sequence[zmq.Socket], timeout: float | None = None) -> None:
    """Return when a socket may have a message, or after ``timeout`` seconds.

    Spurious returns are allowed (callers drain with ``NOBLOCK`` and look again).
    """
    if readable(sockets):
        return
    loop = asyncio.get_running_loop()
    woken = loop.create_future()

    def wake() -> None:
        if not woken.done():
            woken.set_result(None)

    fds = [sock.getsockopt(zmq.FD) for sock in sockets]
    for fd in fds:
        loop.add_reader(fd, wake)
    timer = loop.call_later(timeout, wake) if timeout is not None else None
    try:
        await woken
    finally:
        for fd in fds:
            loop.remove_reader(fd)
        if timer is not None:
            timer.cancel()


def drain(sock: zmq.Socket, limit: int = DRAIN_BATCH) -> Iterator[list[bytes]]:
    """Yield up to ``limit`` ready multipart messages without blocking."""
    for _ in range(limit):
        try:
            yield sock.recv_multipart(zmq.NOBLOCK)
        except zmq.Again:
            return


def now() -> float:
    """Monotonic seconds, for timeouts (never stamped on anything the pipeline sees)."""
    return time.monotonic()


class Rejects:
    """Counts rejected messages by reason and logs them, at most ``burst`` per reason per second.

    A storm of garbage must neither crash a loop nor drown the log: every reject is
    counted, the first few each second are logged with the publisher, sequence, reason
    and the first bytes in hex (enough to reproduce), the rest are summarised by the
    ``suppressed`` field of the next line logged for that reason.
    """

    def __init__(self, where: str, burst: int = 10, event: str = "frame rejected") -> None:
        self.where = where
        self.event = event
        self.counts: Counter[str] = Counter()
        self._burst = burst
        self._window: dict[str, tuple[int, int, int]] = {}  # reason -> (second, logged, suppressed)

    @property
    def total(self) -> int:
        """All rejects so far."""
        return sum(self.counts.values())

    def decode_error(self, err: DecodeError, raw: object) -> None:
        """Count and log a frame the decoder refused."""
        self.reject(err.reason.name, str(err), raw, err.publisher_id, err.sequence)

    def reject(
        self, reason: str, message: str, raw: object, publisher_id: int | None = None, sequence: int | None = None
    ) -> None:
        """Count and log one rejected message."""
        self.counts[reason] += 1
        second = int(time.monotonic())
        start, logged, suppressed = self._window.get(reason, (second, 0, 0))
        if start != second:
            start, logged = second, 0
        if logged >= self._burst:
            self._window[reason] = (start, logged, suppressed + 1)
            return
        self._window[reason] = (start, logged + 1, 0)
        log.warning(
            self.event,
            where=self.where,
            reason=reason,
            detail=message,
            publisher_id=publisher_id,
            sequence=sequence,
            size=_size(raw),
            head_hex=hex_prefix(raw),
            suppressed=suppressed,
        )


def _size(raw: object) -> int:
    try:
        return memoryview(raw).nbytes  # type: ignore[arg-type]
    except TypeError:
        return -1
