"""A loopback stand-in for Binance: replay a raw capture over a real WebSocket and serve its book over HTTP.

The capture is the format the feed's tests and demos use (``<local_receive_ns> <json>``
per line, gzip or plain, as ``binance_usdm_btcusdt_raw_ws_20240808.jsonl.gz``). The
server behaves like the venue as far as a client can tell:

* ``ws://HOST:PORT/stream?streams=a/b`` sends the capture's stream lines, filtered to the
  requested streams, as fast as possible or paced by the recorded receive times
  (``speed`` x real time). Lines are sent exactly as recorded, garbage included.
* ``http://HOST:PORT/fapi/v1/depth?symbol=S&limit=N`` (also ``/api/v3/depth``) answers
  with the book *as of the last depth line published*: the capture's REST snapshot plus
  every later diff, kept by a small independent dict book. So a snapshot fetched at any
  point of the replay, after a reconnect or a gap, is consistent with the stream, as
  the real venue's would be.

There is one replay cursor: the stream moves on only while a client is connected, one
client at a time, and a reconnecting client continues where the last one stopped.
Knobs for tests: drop the n-th connection after k messages (``drop_after``), skip lines
at each reconnect (the market moved on while the client was away), omit given lines
(lost messages: the book advances, the client never sees them), hold the replay before
given lines until ``resume()``, fail the first REST requests (``snapshot_failures``),
and stop/start the whole server on the same ports.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import logging
import socket
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from aiohttp import web
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from live.venues.binance.messages import Rejected, parse_fixed, split_capture_line

log = logging.getLogger(__name__)

_DEPTH_PATHS = ("/fapi/v1/depth", "/api/v3/depth")


@dataclass(frozen=True, slots=True)
class DepthLine:
    """The parts of a depth diff the server's book needs: ids and levels keyed by exact price."""

    first_update_id: int
    final_update_id: int
    event_ms: int
    transact_ms: int
    bids: tuple[tuple[int, str, str, bool], ...]  # (price key, price text, qty text, deletes)
    asks: tuple[tuple[int, str, str, bool], ...]


@dataclass(frozen=True, slots=True)
class CaptureLine:
    ts_recv: int
    payload: bytes
    stream: str | None  # None when the line is not a stream wrapper (garbage, bare events)
    depth: DepthLine | None


def _levels(raw: list) -> tuple[tuple[int, str, str, bool], ...]:
    return tuple((parse_fixed(p), p, q, parse_fixed(q) == 0) for p, q in raw)


def _depth_line(data: dict) -> DepthLine | None:
    try:
        return DepthLine(
            int(data["U"]), int(data["u"]), int(data.get("E", 0)), int(data.get("T", data.get("E", 0))),
            _levels(data["b"]), _levels(data["a"]),
        )
    except (KeyError, TypeError, ValueError, Rejected):
        return None  # malformed: replayed as it is, never applied to the server's book


class Capture:
    """A raw capture split into the lines to stream and the REST snapshot."""

    def __init__(self, lines: list[CaptureLine], snapshot: dict | None, symbol: str | None) -> None:
        self.lines = lines
        self.snapshot = snapshot
        self.symbol = symbol

    @classmethod
    def load(cls, path: str | Path, max_lines: int | None = None) -> Capture:
        """Read ``path`` (gzip detected by its magic bytes); ``max_lines`` counts file lines."""
        path = Path(path)
        with path.open("rb") as f:
            gz = f.read(2) == b"\x1f\x8b"
        opener = gzip.open if gz else open
        with opener(path, "rb") as f:
            raw = []
            for i, line in enumerate(f):
                if max_lines is not None and i >= max_lines:
                    break
                raw.append(line)
        return cls.from_lines(raw)

    @classmethod
    def from_lines(cls, raw_lines: Iterable[bytes | str]) -> Capture:
        lines: list[CaptureLine] = []
        snapshot = None
        symbol = None
        ts = 0
        for raw in raw_lines:
            if isinstance(raw, str):
                raw = raw.encode("utf-8", "surrogateescape")
            raw = raw.rstrip(b"\r\n")
            if not raw:
                continue
            try:
                ts, payload = split_capture_line(raw)
            except Rejected:
                payload = raw  # no time prefix: replay the whole line, at the previous line's time
            try:
                obj = json.loads(payload)
            except (ValueError, RecursionError):
                obj = None
            if isinstance(obj, dict) and "lastUpdateId" in obj and "stream" not in obj:
                snapshot = snapshot or obj
                continue
            stream = obj.get("stream") if isinstance(obj, dict) else None
            stream = stream if isinstance(stream, str) else None
            depth = None
            if stream is not None:
                symbol = symbol or stream.partition("@")[0].upper()
                data = obj.get("data")
                if isinstance(data, dict) and data.get("e") == "depthUpdate":
                    depth = _depth_line(data)
            lines.append(CaptureLine(ts, payload, stream, depth))
        return cls(lines, snapshot, symbol)


class _Book:
    """The venue's book as the replay has moved it: a dict per side, prices as exact integer keys."""

    def __init__(self, snapshot: dict | None) -> None:
        self.ready = snapshot is not None
        self.bids: dict[int, tuple[str, str]] = {}
        self.asks: dict[int, tuple[str, str]] = {}
        self.last_update_id = 0
        self.event_ms = self.transact_ms = 0
        if snapshot is not None:
            self.last_update_id = int(snapshot["lastUpdateId"])
            self.event_ms = int(snapshot.get("E", 0))
            self.transact_ms = int(snapshot.get("T", self.event_ms))
            for side, key in ((self.bids, "bids"), (self.asks, "asks")):
                for price, text, qty, deletes in _levels(snapshot[key]):
                    if not deletes:
                        side[price] = (text, qty)

    def apply(self, depth: DepthLine) -> None:
        if not self.ready or depth.final_update_id < self.last_update_id:
            return  # older than the snapshot: already in it
        for side, levels in ((self.bids, depth.bids), (self.asks, depth.asks)):
            for price, text, qty, deletes in levels:
                if deletes:
                    side.pop(price, None)
                else:
                    side[price] = (text, qty)
        self.last_update_id = depth.final_update_id
        self.event_ms, self.transact_ms = depth.event_ms, depth.transact_ms

    def reply(self, limit: int) -> dict:
        bids = [list(self.bids[p]) for p in sorted(self.bids, reverse=True)[:limit]]
        asks = [list(self.asks[p]) for p in sorted(self.asks)[:limit]]
        return {"lastUpdateId": self.last_update_id, "E": self.event_ms, "T": self.transact_ms, "bids": bids, "asks": asks}


def _bind(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.setblocking(False)
    return sock


class ReplayServer:
    """Serve a ``Capture`` over loopback WebSocket (stream) and HTTP (depth snapshot).

    ``speed`` None replays as fast as the client reads; a number paces lines by their
    recorded receive times, ``speed`` times real time. Use as ``async with``.
    """

    def __init__(
        self,
        capture: Capture,
        *,
        host: str = "127.0.0.1",
        ws_port: int = 0,
        http_port: int = 0,
        speed: float | None = None,
        drop_after: Sequence[int] = (),
        skip_on_reconnect: int = 0,
        omit: Iterable[int] = (),
        snapshot_failures: int = 0,
        close_at_end: bool = False,
        pause_before: Iterable[int] = (),
    ) -> None:
        if speed is not None and not speed > 0:
            raise ValueError(f"speed={speed!r} must be > 0 (or None for as fast as possible)")
        self.capture = capture
        self.host = host
        self.ws_port = ws_port
        self.http_port = http_port
        self.speed = speed
        self.drop_after = tuple(drop_after)
        self.skip_on_reconnect = skip_on_reconnect
        self.omit = frozenset(omit)
        self.snapshot_failures = snapshot_failures
        self.close_at_end = close_at_end
        self.pause_before = set(pause_before)
        self.paused = asyncio.Event()
        """Set while the replay waits at a ``pause_before`` line for ``resume()``."""
        self._resume = asyncio.Event()
        self.book = _Book(capture.snapshot)
        self.cursor = 0
        """Index of the next capture line to publish."""
        self.connections = 0
        self.sent = 0
        self.snapshot_requests = 0
        self.finished = asyncio.Event()
        """Set once every line has been published."""
        self._turn = asyncio.Lock()
        self._ws: Server | None = None
        self._runner: web.AppRunner | None = None
        self._live: set[ServerConnection] = set()

    # ------------------------------------------------------------------ life cycle

    @property
    def ws_url(self) -> str:
        return f"ws://{self._hostport(self.ws_port)}/stream"

    @property
    def rest_url(self) -> str:
        return f"http://{self._hostport(self.http_port)}/fapi/v1/depth"

    def _hostport(self, port: int) -> str:
        return f"[{self.host}]:{port}" if ":" in self.host else f"{self.host}:{port}"

    async def start(self) -> None:
        """Listen (again, on the same ports after ``stop``)."""
        ws_sock = _bind(self.host, self.ws_port)
        self.ws_port = ws_sock.getsockname()[1]
        self._ws = await serve(self._serve_stream, sock=ws_sock, ping_interval=None, compression=None)
        app = web.Application()
        for path in _DEPTH_PATHS:
            app.router.add_get(path, self._serve_depth)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        http_sock = _bind(self.host, self.http_port)
        self.http_port = http_sock.getsockname()[1]
        await web.SockSite(self._runner, http_sock).start()

    async def stop(self) -> None:
        """Stop listening and cut every connection abruptly (as a crash or a network loss would)."""
        for ws in list(self._live):
            ws.transport.abort()
        if self._ws is not None:
            self._ws.close(close_connections=False)
            await self._ws.wait_closed()
            self._ws = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def resume(self) -> None:
        """Let a replay held at a ``pause_before`` line go on."""
        self.paused.clear()
        self._resume.set()

    @property
    def open_connections(self) -> int:
        return len(self._live)

    def stall_connections(self) -> None:
        """Stop reading from every client: its pings go unanswered, as behind a dead link."""
        for ws in list(self._live):
            ws.transport.pause_reading()

    def disconnect_all(self) -> None:
        """Cut every open stream connection now, without a close handshake."""
        for ws in list(self._live):
            ws.transport.abort()

    async def __aenter__(self) -> ReplayServer:  # noqa: PYI034 - not subclassed
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # ------------------------------------------------------------------ stream

    def _publish(self, line: CaptureLine) -> None:
        if line.depth is not None:
            self.book.apply(line.depth)

    async def _serve_stream(self, ws: ServerConnection) -> None:
        query = parse_qs(urlsplit(ws.request.path).query)
        wanted = set("/".join(query.get("streams", [])).split("/")) - {""}
        self._live.add(ws)
        try:
            async with self._turn:  # one client consumes the replay at a time
                index = self.connections
                self.connections += 1
                if index > 0:
                    for _ in range(min(self.skip_on_reconnect, len(self.capture.lines) - self.cursor)):
                        self._publish(self.capture.lines[self.cursor])
                        self.cursor += 1
                limit = self.drop_after[index] if index < len(self.drop_after) else None
                await self._replay(ws, wanted, limit)
        finally:
            self._live.discard(ws)

    async def _replay(self, ws: ServerConnection, wanted: set[str], limit: int | None) -> None:
        loop = asyncio.get_running_loop()
        lines = self.capture.lines
        sent = 0
        t0_wall = t0_ts = None
        while self.cursor < len(lines):
            if limit is not None and sent >= limit:
                ws.transport.abort()
                return
            i = self.cursor
            line = lines[i]
            if i in self.pause_before:  # hold here until the test says so (deterministic interleavings)
                self.pause_before.discard(i)
                if not await self._hold(ws):
                    return
            if self.speed is not None:
                if t0_wall is None:
                    t0_wall, t0_ts = loop.time(), line.ts_recv
                delay = t0_wall + (line.ts_recv - t0_ts) / 1e9 / self.speed - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
            self.cursor += 1
            self._publish(line)
            if i in self.omit or (wanted and line.stream is not None and line.stream not in wanted):
                continue
            try:
                text = line.payload.decode("utf-8")
            except UnicodeDecodeError:
                text = None
            try:
                await ws.send(line.payload if text is None else text)  # not text: a binary frame, as garbage may be
            except ConnectionClosed:
                return  # the client left; the line is gone for it, as on a real venue
            sent += 1
            self.sent += 1
        self.finished.set()
        if self.close_at_end:
            await ws.close()
        else:
            await ws.wait_closed()  # a quiet market: the connection stays open, nothing more comes

    async def _hold(self, ws: ServerConnection) -> bool:
        """Wait for ``resume()``; False if the connection died meanwhile."""
        self._resume.clear()
        self.paused.set()
        resume = asyncio.ensure_future(self._resume.wait())
        closed = asyncio.ensure_future(ws.wait_closed())
        try:
            await asyncio.wait({resume, closed}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            resume.cancel()
            closed.cancel()
        return self._resume.is_set()

    # ------------------------------------------------------------------ REST

    async def _serve_depth(self, request: web.Request) -> web.Response:
        self.snapshot_requests += 1
        if self.snapshot_requests <= self.snapshot_failures:
            return web.json_response({"code": -1003, "msg": "Service unavailable (replay server)."}, status=503)
        symbol = request.query.get("symbol", "")
        if symbol != self.capture.symbol:
            return web.json_response({"code": -1121, "msg": "Invalid symbol."}, status=400)
        try:
            limit = int(request.query.get("limit", "500"))
        except ValueError:
            return web.json_response({"code": -1100, "msg": "Illegal characters found in parameter 'limit'."}, status=400)
        if not self.book.ready:
            return web.json_response({"code": -1003, "msg": "The capture holds no snapshot."}, status=503)
        return web.json_response(self.book.reply(max(1, limit)))


# --------------------------------------------------------------------------- command line


async def _serve_forever(args: argparse.Namespace) -> None:
    capture = Capture.load(args.file, args.max_lines)
    speed = None if args.fast else args.speed
    server = ReplayServer(
        capture, host=args.host, ws_port=args.port, http_port=args.http_port, speed=speed,
        close_at_end=args.close_at_end,
    )
    async with server:
        print(f"replaying {len(capture.lines)} lines of {capture.symbol} from {args.file}", flush=True)
        print(f"stream:   {server.ws_url}", flush=True)
        print(f"snapshot: {server.rest_url}", flush=True)
        await asyncio.Event().wait()


def main(argv: list[str] | None = None) -> None:
    """``python -m live.venues.binance.replay_server``: serve a capture until interrupted."""
    p = argparse.ArgumentParser(description=main.__doc__)
    p.add_argument("--file", required=True, help="raw capture, '<receive_ns> <json>' per line, gzip or plain")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8765, help="WebSocket port (0: any free port)")
    p.add_argument("--http-port", type=int, default=None, help="HTTP port (default: --port + 1)")
    p.add_argument("--speed", type=float, default=1.0, help="replay speed, x real time")
    p.add_argument("--fast", action="store_true", help="as fast as the client reads, ignoring recorded times")
    p.add_argument("--max-lines", type=int, default=None, help="replay only the first N lines of the file")
    p.add_argument("--close-at-end", action="store_true", help="close the connection when the capture ends")
    args = p.parse_args(argv)
    if args.http_port is None:
        args.http_port = args.port + 1 if args.port else 0
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        asyncio.run(_serve_forever(args))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
