"""Binance market data over WebSocket: connect, decode, synchronise books, publish event records.

One ``BinanceFeed`` owns one combined-stream connection (``/stream?streams=a/b/c``) for
a set of symbols. Each frame is stamped with the wall clock on receipt, decoded by
``messages`` (pure) and, for depth diffs, passed through that symbol's ``BookSync``
(pure); whatever records come out are handed, as one ``EVENT_DTYPE`` array per venue
message, to an async callback or an ``asyncio.Queue``. Snapshots are fetched over REST
(aiohttp) when a book needs one.

Failure handling, all counted in ``FeedCounters`` and the books' ``SyncCounters``:

* a malformed frame is rejected with a reason and logged (rate-limited); the feed goes on;
* no frame for ``receive_timeout`` seconds, a failed ping (websockets' ``ping_interval`` /
  ``ping_timeout``) or a closed connection -> reconnect after a jittered exponential
  backoff (seeded RNG, bounded delay); books are reset (downstream cleared) and
  re-synchronised from a fresh snapshot;
* a failed or stale snapshot is retried with its own backoff.

``ts_recv`` of the published records never decreases: a record published later than it
was received (a buffered diff released when its snapshot arrives, a frame that waited
while a snapshot was being published) carries the time it was released, and a wall
clock stepping back is flattened. ``ts_event`` is always the venue's.

Only errors of the caller's sink propagate. Cancelling ``run()`` closes the socket, stops
the snapshot tasks and returns promptly, publishing nothing more.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import logging
import random
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import asdict, dataclass, field
from urllib.parse import urlsplit

import aiohttp
import numpy as np
import websockets
from websockets.asyncio.client import ClientConnection, connect

from framework.events import EventKind
from live.venues.binance.book_sync import BookSync, SyncCounters, SyncMode
from live.venues.binance.messages import (
    ControlReply,
    DepthDiff,
    Instrument,
    MarketRecords,
    Reason,
    Rejected,
    decode,
    decode_snapshot,
)

log = logging.getLogger(__name__)

Sink = Callable[[np.ndarray], Awaitable[None]] | asyncio.Queue
"""Where record arrays go: ``await sink(records)`` or ``await queue.put(records)``."""

_SYMBOL = re.compile(r"[A-Z0-9_]{1,32}")
_CHANNEL = re.compile(r"trade|bookTicker|depth(@[0-9]+ms)?")
INTERNAL_ERROR = "internal_error"
"""Rejection reason for a message the decoder failed on with anything but ``Rejected`` (a bug)."""
_LOG_FIRST = 20  # rejections logged in full per reason, then one in _LOG_EVERY
_LOG_EVERY = 1000


def is_loopback(host: str | None) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1)."""
    if not host:
        return False
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def require_tls(setting: str, url: str, secure: str, plain: str) -> None:
    """Refuse ``url`` unless its scheme is ``secure``, or ``plain`` towards a loopback host.

    Live trading must not read market data an on-path attacker could rewrite; loopback
    is exempt so that tests and demos can use the replay server without certificates.
    """
    parts = urlsplit(url)
    if parts.scheme == secure and parts.hostname:
        return
    if parts.scheme == plain and is_loopback(parts.hostname):
        return
    raise ValueError(
        f"{setting}={url!r} must be a {secure}:// URL (TLS); {plain}:// is allowed only for a loopback host"
    )


@dataclass(frozen=True)
class FeedConfig:
    """What to connect to and how patiently; validated on construction.

    ``symbols`` maps each Binance symbol (upper case) to its pipeline ids; ``channels``
    are subscribed for every symbol; a depth channel gives the symbol a synchronised
    book. ``sync_mode`` is ``futures`` (USD-M, the default endpoints) or ``spot``. Times
    are seconds. ``proxy`` is passed to websockets (None: connect directly).
    """

    symbols: Mapping[str, Instrument]
    ws_url: str = "wss://fstream.binance.com/stream"
    rest_url: str = "https://fapi.binance.com/fapi/v1/depth"
    channels: tuple[str, ...] = ("depth@0ms", "bookTicker", "trade")
    sync_mode: str = "futures"
    depth_limit: int = 1000
    open_timeout: float = 10.0
    ping_interval: float | None = 20.0
    ping_timeout: float | None = 20.0
    receive_timeout: float = 30.0
    close_timeout: float = 2.0
    max_message_bytes: int = 4 * 1024 * 1024
    backoff_initial: float = 0.5
    backoff_max: float = 30.0
    backoff_multiplier: float = 2.0
    snapshot_timeout: float = 10.0
    snapshot_retry_initial: float = 0.25
    snapshot_retry_max: float = 10.0
    max_buffer: int = 10_000
    clear_on_gap: bool = True
    proxy: str | None = None

    def __post_init__(self) -> None:
        require_tls("ws_url", self.ws_url, "wss", "ws")
        require_tls("rest_url", self.rest_url, "https", "http")
        if not self.symbols:
            raise ValueError("symbols must name at least one symbol")
        for symbol, inst in self.symbols.items():
            if not isinstance(symbol, str) or not _SYMBOL.fullmatch(symbol):
                raise ValueError(f"symbols: {symbol!r} is not an upper-case Binance symbol such as 'BTCUSDT'")
            if not (isinstance(inst, tuple) and len(inst) == 2):
                raise ValueError(f"symbols[{symbol!r}]={inst!r} must be Instrument(instrument_id, venue_id)")
            if not 0 <= int(inst[0]) < 2**31 or not 0 <= int(inst[1]) < 256:
                raise ValueError(f"symbols[{symbol!r}]={inst!r}: instrument_id must fit int32 and venue_id 0..255")
        for ch in self.channels:
            if not _CHANNEL.fullmatch(ch):
                raise ValueError(f"channels: {ch!r} is not one of trade, bookTicker, depth, depth@<n>ms")
        if self.sync_mode not in ("futures", "spot"):
            raise ValueError(f"sync_mode={self.sync_mode!r} must be 'futures' or 'spot'")
        positive = (
            "open_timeout", "receive_timeout", "close_timeout", "backoff_initial", "backoff_max",
            "snapshot_timeout", "snapshot_retry_initial", "snapshot_retry_max",
        )
        for name in positive:
            if not getattr(self, name) > 0:
                raise ValueError(f"{name}={getattr(self, name)!r} must be > 0 seconds")
        if self.backoff_multiplier < 1:
            raise ValueError(f"backoff_multiplier={self.backoff_multiplier!r} must be >= 1")
        if not 1 <= self.depth_limit <= 5000:
            raise ValueError(f"depth_limit={self.depth_limit!r} must be in 1..5000")

    @property
    def depth_channel(self) -> str | None:
        return next((ch for ch in self.channels if ch.startswith("depth")), None)

    def streams(self) -> list[str]:
        """Stream names in a fixed order: ``btcusdt@depth@0ms``, ``btcusdt@bookTicker``, ..."""
        return [f"{symbol.lower()}@{ch}" for symbol in sorted(self.symbols) for ch in self.channels]

    def stream_url(self) -> str:
        sep = "&" if "?" in self.ws_url else "?"
        return f"{self.ws_url}{sep}streams={'/'.join(self.streams())}"


class Backoff:
    """Exponential backoff with "equal jitter": delay n is uniform in [d/2, d], d = min(max, initial * m**n).

    Jitter keeps many clients from reconnecting in lock step after a venue outage; the
    RNG is injected so that tests (and replays) are deterministic.
    """

    def __init__(self, initial: float, maximum: float, multiplier: float = 2.0, rng: random.Random | None = None):
        self.initial = initial
        self.maximum = maximum
        self.multiplier = multiplier
        self.rng = rng if rng is not None else random.Random()
        self.attempt = 0
        self.delays: list[float] = []
        """Every delay handed out, most recent last (bounded to the last 100)."""

    def next_delay(self) -> float:
        ceiling = min(self.maximum, self.initial * self.multiplier ** min(self.attempt, 64))
        self.attempt += 1
        delay = self.rng.uniform(ceiling / 2, ceiling)
        self.delays = self.delays[-99:] + [delay]
        return delay

    def reset(self) -> None:
        self.attempt = 0


@dataclass
class FeedCounters:
    """Connection-level counts (every field only grows); the books' counts are in ``SyncCounters``.

    ``messages`` frames received; ``records`` event records published; ``trades``,
    ``quotes``, ``diffs`` decoded frames by type; ``control`` subscription replies;
    ``rejected`` malformed frames or snapshot bodies by ``Reason``; ``connects``
    successful handshakes, of which ``reconnects`` after the first; ``connect_failures``
    failed attempts; ``disconnects`` connections closed by the peer or a failed ping;
    ``receive_timeouts`` connections dropped for silence; ``snapshot_requests`` and
    ``snapshot_failures`` REST snapshot fetches and those that failed (HTTP or body).
    """

    messages: int = 0
    records: int = 0
    trades: int = 0
    quotes: int = 0
    diffs: int = 0
    control: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    connects: int = 0
    reconnects: int = 0
    connect_failures: int = 0
    disconnects: int = 0
    receive_timeouts: int = 0
    snapshot_requests: int = 0
    snapshot_failures: int = 0
    backoff_seconds: float = 0.0


class _SnapshotUnavailable(Exception):
    pass


class BinanceFeed:
    """A reconnecting Binance combined-stream client that publishes EVENT_DTYPE record arrays."""

    def __init__(
        self,
        config: FeedConfig,
        sink: Sink,
        *,
        clock: Callable[[], int] = time.time_ns,
        rng: random.Random | None = None,
        retry_rng: random.Random | None = None,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        """``clock`` stamps ``ts_recv`` (ns); ``rng`` drives the reconnect jitter and ``retry_rng``
        the snapshot-retry jitter (two generators, so that each sequence is reproducible on
        its own); ``session`` is borrowed for snapshots (else one is created per ``run``)."""
        self.config = config
        self._sink = sink
        self._clock = clock
        self._rng = rng if rng is not None else random.Random()
        self._retry_rng = retry_rng if retry_rng is not None else random.Random()
        self._session = session
        self.counters = FeedCounters()
        self.backoff = Backoff(config.backoff_initial, config.backoff_max, config.backoff_multiplier, self._rng)
        mode = SyncMode(config.sync_mode)
        self.books: dict[str, BookSync] = {}
        if config.depth_channel is not None:
            self.books = {
                s: BookSync(Instrument(*inst), mode, max_buffer=config.max_buffer, clear_on_gap=config.clear_on_gap)
                for s, inst in config.symbols.items()
            }
        self._symbols = {s: Instrument(*inst) for s, inst in config.symbols.items()}
        self._lock = asyncio.Lock()
        self._last_ts = np.iinfo(np.int64).min
        self._snapshot_tasks: dict[str, asyncio.Task] = {}
        self.connected = asyncio.Event()

    # ------------------------------------------------------------------ reading counters

    def sync_totals(self) -> SyncCounters:
        """The books' counters summed over symbols."""
        total = SyncCounters()
        for book in self.books.values():
            for name, value in asdict(book.counters).items():
                setattr(total, name, getattr(total, name) + value)
        return total

    def stats(self) -> dict:
        """Every counter as plain data (for logs and the metrics exporter)."""
        out = asdict(self.counters)
        out["rejected"] = dict(self.counters.rejected)
        out["books"] = asdict(self.sync_totals())
        out["synced"] = {s: b.state.value for s, b in self.books.items()}
        return out

    # ------------------------------------------------------------------ running

    async def run(self) -> None:
        """Connect and keep connected until cancelled."""
        session = self._session
        own = session is None
        if own:
            session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.config.snapshot_timeout))
        try:
            while True:
                await self._connection(session)
                delay = self.backoff.next_delay()
                self.counters.backoff_seconds += delay
                log.info("binance feed reconnecting in %.3f s (attempt %d)", delay, self.backoff.attempt)
                await asyncio.sleep(delay)
        finally:
            if own:
                await session.close()

    async def _connection(self, session: aiohttp.ClientSession) -> None:
        """One connection's life: returns when it ends for any reason but cancellation."""
        cfg = self.config
        url = cfg.stream_url()
        try:
            ws = await connect(
                url,
                open_timeout=cfg.open_timeout,
                ping_interval=cfg.ping_interval,
                ping_timeout=cfg.ping_timeout,
                close_timeout=cfg.close_timeout,
                max_size=cfg.max_message_bytes,
                proxy=cfg.proxy,
            )
        except (OSError, TimeoutError, websockets.exceptions.WebSocketException) as exc:
            self.counters.connect_failures += 1
            log.warning("binance feed cannot connect to %s: %s: %s", url, type(exc).__name__, exc)
            return
        self.counters.connects += 1
        if self.counters.connects > 1:
            self.counters.reconnects += 1
        log.info("binance feed connected to %s", url)
        self.connected.set()
        ended = True
        try:
            await self._read(ws, session)
        except BaseException:  # cancelled, or the sink failed: publish nothing more
            ended = False
            raise
        finally:
            self.connected.clear()
            await self._stop_snapshot_tasks()
            await self._close(ws)
            if ended:
                await self._reset_books()

    async def _read(self, ws: ClientConnection, session: aiohttp.ClientSession) -> None:
        first = True
        while True:
            try:
                async with asyncio.timeout(self.config.receive_timeout):
                    raw = await ws.recv()
            except TimeoutError:
                self.counters.receive_timeouts += 1
                log.warning("binance feed: no message for %.1f s, reconnecting", self.config.receive_timeout)
                return
            except websockets.exceptions.ConnectionClosed as exc:
                self.counters.disconnects += 1
                log.warning("binance feed disconnected: %s", exc)
                return
            ts = self._clock()
            if first:
                self.backoff.reset()  # reset only once data flows: a server that accepts then drops is still backed off
                first = False
            await self._handle(raw, ts, session)

    async def _close(self, ws: ClientConnection) -> None:
        try:
            await ws.close()
        except Exception as exc:  # noqa: BLE001 - closing a dead socket must not mask why it died
            log.debug("binance feed: error while closing: %s", exc)

    async def _handle(self, raw: str | bytes, ts: int, session: aiohttp.ClientSession) -> None:
        self.counters.messages += 1
        try:
            msg = decode(raw, ts, self._symbols)
        except Rejected as rej:
            self._reject(rej, raw, "stream")
            return
        except Exception as exc:  # a decoder bug must not stop market data
            log.exception("binance feed: the decoder failed on a message")
            self._reject(Rejected(INTERNAL_ERROR, repr(exc)), raw, "stream")
            return
        if isinstance(msg, MarketRecords):
            if msg.records["kind"][0] == EventKind.TRADE:
                self.counters.trades += 1
            else:
                self.counters.quotes += 1
            async with self._lock:
                await self._emit(msg.records)
        elif isinstance(msg, DepthDiff):
            book = self.books.get(msg.symbol)
            if book is None:
                self._reject(Rejected(Reason.UNKNOWN_STREAM, f"depth diff for {msg.symbol}, which has no book"), raw,
                             "stream")
                return
            async with self._lock:
                try:
                    records = book.on_diff(msg)
                except Rejected as rej:
                    self._reject(rej, raw, "stream")
                    return
                self.counters.diffs += 1
                await self._emit(records)
            if book.needs_snapshot:
                self._ensure_snapshot_task(msg.symbol, session)
        elif isinstance(msg, ControlReply):
            self.counters.control += 1

    async def _emit(self, records: np.ndarray) -> None:
        """Publish ``records`` with ``ts_recv`` raised to a running maximum (see the module notes)."""
        if len(records) == 0:
            return
        ts = np.maximum.accumulate(np.maximum(records["ts_recv"], self._last_ts))
        records["ts_recv"] = ts
        self._last_ts = int(ts[-1])
        self.counters.records += len(records)
        if isinstance(self._sink, asyncio.Queue):
            await self._sink.put(records)
        else:
            await self._sink(records)

    def _reject(self, rej: Rejected, raw: str | bytes, source: str) -> None:
        n = self.counters.rejected.get(rej.reason, 0) + 1
        self.counters.rejected[rej.reason] = n
        if n <= _LOG_FIRST or n % _LOG_EVERY == 0:
            text = raw if isinstance(raw, str) else bytes(raw).decode("utf-8", "replace")
            log.warning(
                "binance feed rejected a %s message (%s, %d so far): %s; message starts %r",
                source, rej.reason, n, rej.detail, text[:200],
            )

    # ------------------------------------------------------------------ books

    def _ensure_snapshot_task(self, symbol: str, session: aiohttp.ClientSession) -> None:
        task = self._snapshot_tasks.get(symbol)
        if task is not None:
            if not task.done():
                return
            if not task.cancelled() and task.exception() is not None:
                raise task.exception()  # the sink failed inside the snapshot task: the caller's bug
        self._snapshot_tasks[symbol] = asyncio.create_task(
            self._snapshot_loop(symbol, session), name=f"binance-snapshot-{symbol}"
        )

    async def _stop_snapshot_tasks(self) -> None:
        tasks = list(self._snapshot_tasks.values())
        self._snapshot_tasks.clear()
        for task in tasks:
            task.cancel()
        for task in tasks:
            try:
                await task
            except asyncio.CancelledError:
                if not task.cancelled():  # we were cancelled ourselves, not the task
                    raise
            except Exception as exc:  # noqa: BLE001 - reported, the connection is ending anyway
                log.error("binance feed snapshot task failed: %r", exc)

    async def _snapshot_loop(self, symbol: str, session: aiohttp.ClientSession) -> None:
        """Fetch snapshots until ``symbol``'s book is synchronised (stale ones are retried)."""
        cfg = self.config
        book = self.books[symbol]
        retry = Backoff(cfg.snapshot_retry_initial, cfg.snapshot_retry_max, 2.0, self._retry_rng)
        while book.needs_snapshot:
            try:
                body = await self._fetch_snapshot(session, symbol)
            except _SnapshotUnavailable as exc:
                self.counters.snapshot_failures += 1
                log.warning("binance feed: depth snapshot for %s failed: %s", symbol, exc)
                await asyncio.sleep(retry.next_delay())
                continue
            async with self._lock:  # stamped and applied in one step, in order with the stream
                try:
                    snapshot = decode_snapshot(body, symbol, self._clock(), self._symbols)
                except Rejected as rej:
                    self.counters.snapshot_failures += 1
                    self._reject(rej, body, "snapshot")
                    snapshot = None
                else:
                    await self._emit(book.on_snapshot(snapshot))
            if snapshot is not None:
                if not book.needs_snapshot:
                    log.info("binance feed: %s book synchronised at update id %s", symbol, book.last_update_id)
                    return
                log.info(
                    "binance feed: %s snapshot %d is older than the buffered stream, fetching another",
                    symbol, snapshot.last_update_id,
                )
            await asyncio.sleep(retry.next_delay())

    async def _fetch_snapshot(self, session: aiohttp.ClientSession, symbol: str) -> bytes:
        self.counters.snapshot_requests += 1
        params = {"symbol": symbol, "limit": str(self.config.depth_limit)}
        try:
            async with asyncio.timeout(self.config.snapshot_timeout):
                async with session.get(self.config.rest_url, params=params) as resp:
                    body = await resp.read()
                    if resp.status != 200:
                        raise _SnapshotUnavailable(f"HTTP {resp.status}: {body[:200]!r}")
                    return body
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise _SnapshotUnavailable(f"{type(exc).__name__}: {exc}") from exc

    async def _reset_books(self) -> None:
        """The stream broke: every book must be rebuilt from a snapshot of the new stream."""
        async with self._lock:
            for book in self.books.values():
                await self._emit(book.reset(self._clock()))


# --------------------------------------------------------------------------- command line


async def _print_stats(feed: BinanceFeed, queue: asyncio.Queue, duration: float, every: float) -> None:
    deadline = time.monotonic() + duration
    next_print = time.monotonic() + every
    while time.monotonic() < deadline:
        try:
            async with asyncio.timeout(max(0.0, min(deadline, next_print) - time.monotonic())):
                await queue.get()
        except TimeoutError:
            pass
        if time.monotonic() >= next_print:
            print(json.dumps(feed.stats()), flush=True)
            next_print += every


async def _main(args: argparse.Namespace) -> None:
    symbols = {s.upper(): Instrument(i, args.venue_id) for i, s in enumerate(args.symbol)}
    config = FeedConfig(
        symbols=symbols, ws_url=args.ws_url, rest_url=args.rest_url, sync_mode=args.sync_mode,
        receive_timeout=args.receive_timeout,
    )
    queue: asyncio.Queue = asyncio.Queue(maxsize=10_000)
    feed = BinanceFeed(config, queue)
    task = asyncio.create_task(feed.run())
    try:
        await _print_stats(feed, queue, args.duration, args.every)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    print(json.dumps(feed.stats()), flush=True)


def main(argv: list[str] | None = None) -> None:
    """``python -m live.venues.binance.feed``: run the feed and print its counters as JSON lines."""
    p = argparse.ArgumentParser(description=main.__doc__)
    p.add_argument("--ws-url", default=FeedConfig.ws_url, help="combined-stream base URL (wss://, or ws:// to loopback)")
    p.add_argument("--rest-url", default=FeedConfig.rest_url, help="depth snapshot URL (https://, or http:// to loopback)")
    p.add_argument("--symbol", action="append", default=None, help="symbol, repeatable (default BTCUSDT)")
    p.add_argument("--venue-id", type=int, default=1)
    p.add_argument("--sync-mode", choices=("futures", "spot"), default="futures")
    p.add_argument("--receive-timeout", type=float, default=30.0)
    p.add_argument("--duration", type=float, default=60.0, help="seconds to run")
    p.add_argument("--every", type=float, default=5.0, help="seconds between counter lines")
    args = p.parse_args(argv)
    args.symbol = args.symbol or ["BTCUSDT"]
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(_main(args))


if __name__ == "__main__":
    main()
