"""Live sessions as an operator runs them: ``python run.py mode=paper`` stopped by SIGTERM, and mode=parity.

A paper session runs the live runtime on wall-clock time against the simulated venue
server. While it trades, garbage is thrown at the processes' command endpoints (they
must reject, count and log it, and go on); then SIGTERM: the engine cancels its open
orders first, the venue confirms, the journal is closed, every process exits 0, and
the journal replays to the same commands.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import zmq

from app import event_loop
from app.parity import check_replay
from framework.events import CommandKind, ControlCode, EventKind
from framework.journal import read_journal
from live import libzmq

ROOT = Path(__file__).resolve().parents[2]
GARBAGE = [b"", b"\x00" * 7, b"PTWF" + b"\xff" * 60, os.urandom(200)]


def _start(out: Path, overrides: list[str]) -> subprocess.Popen:
    cmd = [sys.executable, "run.py", f"hydra.run.dir={out}", f"data.catalog_root={out.parent / 'catalog'}",
           "progress=false", "live.end_linger_s=2", *overrides]
    return subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for(condition, timeout: float, proc: subprocess.Popen, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"the session exited ({proc.returncode}) before {what}:\n{out[-2000:]}\n{err[-3000:]}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"no {what} within {timeout} s")
        time.sleep(0.1)


def _working_orders(journal: Path) -> int:
    """Orders the engine has acknowledged working, from its journal (read while it is written)."""
    if not journal.is_file():
        return 0
    try:
        _, events, _ = read_journal(journal, torn_tail="drop")
    except ValueError:
        return 0
    return int((events["kind"] == EventKind.ACCEPTED).sum())


def _throw_garbage(endpoint: str) -> None:
    ctx = zmq.Context.instance()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 500)
    sock.connect(endpoint)
    for raw in GARBAGE:
        sock.send(raw)
    sock.send_multipart([b"two", b"parts"])
    time.sleep(0.3)
    sock.close()


@pytest.mark.parametrize("topology", ["single", "multi"])
def test_a_paper_session_survives_garbage_and_stops_cleanly_on_sigterm(tmp_path, topology):
    out = tmp_path / "paper"
    proc = _start(out, ["mode=paper", "strategy=market_maker", f"live.topology={topology}",
                        "data.synthetic.trades_per_day=50000", "live.paper.speed=20"])
    journal = out / "engine" / "journal.bin"
    _wait_for(lambda: _working_orders(journal) >= 2, 300, proc, "working orders")
    endpoints = json.loads((out / "endpoints.json").read_text())
    targets = [endpoints["sim_commands"]] + ([endpoints["gw_commands"]] if topology == "multi" else [])
    for endpoint in targets:
        _throw_garbage(endpoint)
    inputs_before = len(read_journal(journal, torn_tail="drop")[1])
    _wait_for(lambda: len(read_journal(journal, torn_tail="drop")[1]) > inputs_before + 20, 60, proc,
              "inputs after the garbage")  # still trading
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr[-3000:]
    assert "ended by stop" in stdout

    engine = json.loads((out / "engine" / "engine.json").read_text())
    assert engine["ended_by"] == "stop" and engine["open_orders"] == 0
    assert engine["fast_path_frames"] > 0 or not libzmq.AVAILABLE  # and its journal replays (below)
    assert engine["event_loop"] == event_loop.loop_name(True)  # uvloop, where installed
    _, events, commands = read_journal(journal)
    kill = [i for i, e in enumerate(events) if e["kind"] == EventKind.CONTROL]
    assert len(kill) == 1 and events[kill[0]]["control"] == ControlCode.KILL_SWITCH_ON
    cancels = commands[(commands["input_index"] == kill[0]) & (commands["command"]["kind"] == CommandKind.CANCEL)]
    assert len(cancels) >= 1  # the open orders were cancelled first...
    after = events[kill[0] + 1:]
    terminal = after[np.isin(after["kind"], [EventKind.CANCELED, EventKind.FILLED, EventKind.EXPIRED])]
    for order in cancels["command"]["client_order_id"]:  # ...and each ended: canceled, or filled as the cancel flew
        assert order in terminal["client_order_id"], (order, after[["kind", "client_order_id"]])

    venue = json.loads((out / "venue" / "venue.json").read_text())
    rejected = venue["command_rejects"]
    assert sum(rejected.values()) >= len(GARBAGE) and "MULTIPART" in rejected
    assert "frame rejected" in (out / "venue" / "venue.log").read_text()
    if topology == "multi":
        gateway = json.loads((out / "gateway" / "gateway.json").read_text())
        assert gateway["commands"]["frames_delivered"] > 0
        for role in ("gateway", "market_data", "venue"):
            assert (out / role / f"{role}.json").is_file(), role
    assert "replayed" in check_replay(journal)


def test_run_py_mode_parity_checks_every_level_and_exits_0(tmp_path):
    proc = subprocess.run(
        [sys.executable, "run.py", f"hydra.run.dir={tmp_path / 'parity'}", f"data.catalog_root={tmp_path / 'cat'}",
         "mode=parity", "data.synthetic.trades_per_day=2000", "parity.paper_s=2", "live.end_linger_s=2",
         "progress=false"],
        cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    lines = [line for line in proc.stdout.splitlines() if line.startswith(("PASS", "FAIL"))]
    assert len(lines) == 7 and all(line.startswith("PASS") for line in lines)
    assert "(paper/engine)" in lines[-1]


def test_the_market_data_service_snapshot_is_the_latest_of_each_instrument_venue_and_kind():
    from app.nodes import TopOfBook
    from framework.events import EVENT_DTYPE

    top = TopOfBook()
    assert len(top.snapshot()) == 0
    records = np.zeros(5, EVENT_DTYPE)
    records["kind"] = [EventKind.QUOTE, EventKind.TRADE, EventKind.QUOTE, EventKind.BOOK_DELTA, EventKind.QUOTE]
    records["instrument_id"] = [0, 0, 0, 0, 1]
    records["bid_price"] = [1, 2, 3, 4, 5]
    top.update(records)
    snap = top.snapshot()
    assert [(int(r["instrument_id"]), int(r["kind"]), int(r["bid_price"])) for r in snap] == [
        (0, EventKind.TRADE, 2), (0, EventKind.QUOTE, 3), (1, EventKind.QUOTE, 5)]


SESSION_CPUS = """
import json, os, sys
from pathlib import Path
from hydra import compose, initialize_config_dir
from app.live import run_session
from framework.config import register_configs

root, out = Path(sys.argv[1]), Path(sys.argv[2])
before = sorted(os.sched_getaffinity(0))
register_configs()
with initialize_config_dir(config_dir=str(root / "conf"), version_base="1.3"):
    cfg = compose("config", overrides=[
        "mode=paper", "strategy=sma_crossover", "live.topology=single", "live.duration_s=2", "live.end_linger_s=1",
        f"live.cpus.engine=[{before[-1]}]", f"data.catalog_root={out / 'catalog'}",
        "data.synthetic.trades_per_day=2000", "data.synthetic.days=1", "progress=false"])
summaries = run_session(cfg, out / "session")
print(json.dumps({"before": before, "after": sorted(os.sched_getaffinity(0)),
                  "venue": summaries["venue"]["cpus"]}))
"""


def test_pinning_the_single_topologys_engine_pins_nothing_else(tmp_path):
    """The single topology pins its own process as the engine, then starts the venue: the
    venue must run on the cores the session started with, not inherit the engine's core,
    and the process gets its cores back when the session ends (a second session in it
    would otherwise start every child on the engine's core)."""
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("needs two cores to pin the engine apart")
    done = subprocess.run([sys.executable, "-c", SESSION_CPUS, str(ROOT), str(tmp_path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    cpus = json.loads(done.stdout.strip().splitlines()[-1])
    assert cpus["venue"] == cpus["before"]
    assert cpus["after"] == cpus["before"]
