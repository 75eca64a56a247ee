"""``python run.py mode=live`` against Binance stand-ins on loopback: the whole live path, no network.

Market data comes over a real WebSocket from the replay server (a hand-written capture,
and the real one from ../shared/data when present), order entry goes through ccxt to
the fake of Binance's REST API (tests/live/venues/fake_binance_rest.py), both in a
thread of this test. The session trades, stops after ``live.duration_s`` with its open
orders cancelled, its journal replays to the same commands, and the API secret
appears in no file the session wrote.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from binance_fixtures import capture_lines, synthetic_messages
from fake_binance_rest import FakeBinance

from app.parity import check_replay
from framework.events import EventKind
from framework.journal import read_journal
from live.venues.binance.replay_server import Capture, ReplayServer

ROOT = Path(__file__).resolve().parents[2]
KEY, SECRET = "test-key-8d1f", "test-secret-5b9e2c7a"


class Venues(threading.Thread):
    """The replay server and the fake REST venue, on an event loop of their own."""

    def __init__(self, capture: Capture, speed: float) -> None:
        super().__init__(daemon=True)
        self.capture = capture
        self.speed = speed
        self.ready = threading.Event()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.replay: ReplayServer | None = None
        self.fake: FakeBinance | None = None
        self._done: asyncio.Event | None = None

    def run(self) -> None:
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        self.loop = asyncio.get_running_loop()
        self._done = asyncio.Event()
        self.fake = FakeBinance(KEY, SECRET, mark_price={"BTCUSDT": "100", "ETHUSDT": "3000"})
        await self.fake.start()
        async with ReplayServer(self.capture, speed=self.speed) as self.replay:
            self.ready.set()
            await self._done.wait()
        await self.fake.close()

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self._done.set)
        self.join(10)


def _run_live(tmp_path: Path, venues: Venues, topology: str, overrides: list[str]) -> tuple[Path, str]:
    out = tmp_path / f"live_{topology}"
    env = {**os.environ, "BINANCE_API_KEY": KEY, "BINANCE_API_SECRET": SECRET}
    cmd = [sys.executable, "run.py", "mode=live", f"hydra.run.dir={out}", f"live.topology={topology}",
           f"live.binance.ws_url={venues.replay.ws_url}", f"live.binance.depth_rest_url={venues.replay.rest_url}",
           f"live.binance.rest_url={venues.fake.base_url}", "live.binance.testnet=false",
           "live.binance.poll_interval_s=0.1", "strategy.params.instrument=BTCUSDT", *overrides]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    return out, proc.stdout + proc.stderr


def _check_session(out: Path, printed: str) -> tuple:
    engine = json.loads((out / "engine" / "engine.json").read_text())
    assert engine["ended_by"] == "duration" and engine["open_orders"] == 0
    _, events, commands = read_journal(out / "engine" / "journal.bin")
    assert "replayed" in check_replay(out / "engine" / "journal.bin")
    for path in [*out.rglob("*.log"), *out.rglob("*.json"), *out.rglob("*.yaml")]:
        assert SECRET not in path.read_text(errors="replace"), path
    assert SECRET not in printed
    return engine, events, commands


@pytest.mark.parametrize("topology", ["single", "multi"])
def test_live_mode_trades_through_the_binance_adapters_and_stops_cleanly(tmp_path, topology):
    venues = Venues(Capture.from_lines(capture_lines(synthetic_messages())), speed=0.5)
    venues.start()
    assert venues.ready.wait(30)
    try:
        out, printed = _run_live(tmp_path, venues, topology, [
            "live.duration_s=6", "strategy.params.fast=2", "strategy.params.slow=3",
            "strategy.params.order_size=0.01", "risk.instrument.price_collar=0.5"])
    finally:
        venues.stop()
    engine, events, commands = _check_session(out, printed)
    kinds = events["kind"].tolist()
    assert kinds.count(EventKind.TRADE) == 9 and EventKind.QUOTE in kinds and EventKind.BOOK_SNAPSHOT in kinds
    assert venues.fake.counters.orders_created >= 1  # orders reached the venue through ccxt...
    assert EventKind.ACCEPTED in kinds or EventKind.FILLED in kinds  # ...and its reports came back
    assert not venues.fake.counters.bad_signatures and not venues.fake.counters.unexpected


def test_live_mode_on_the_real_capture(tmp_path, shared_data):
    path = shared_data / "depth" / "binance_usdm_btcusdt_raw_ws_20240808.jsonl.gz"
    if not path.is_file():
        pytest.skip(f"real Binance capture not found at {path}")
    venues = Venues(Capture.load(path, max_lines=30_000), speed=20.0)
    venues.start()
    assert venues.ready.wait(60)
    try:
        out, printed = _run_live(tmp_path, venues, "single", [
            "live.duration_s=8", "strategy.params.fast=20", "strategy.params.slow=80",
            "strategy.params.order_size=0.001"])
    finally:
        venues.stop()
    engine, events, _ = _check_session(out, printed)
    assert engine["engine"]["inputs"] > 1000 and not any(k.startswith("rejected") for k in engine["engine"])
    assert venues.fake.counters.orders_created >= 1


def test_live_mode_without_credentials_says_which_variables_to_set(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("BINANCE_")}
    proc = subprocess.run([sys.executable, "run.py", "mode=live", f"hydra.run.dir={tmp_path / 'out'}",
                           "strategy.params.instrument=BTCUSDT"], cwd=ROOT, capture_output=True, text=True,
                          timeout=600, env=env)
    assert proc.returncode != 0
    assert "BINANCE_API_KEY" in proc.stderr and "BINANCE_API_SECRET" in proc.stderr
    assert "Traceback" not in proc.stderr
