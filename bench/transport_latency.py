"""Round-trip latency and throughput of the ZeroMQ transport, over ipc and tcp loopback.

Two processes: this one and an echo process, each running an asyncio loop with a
``Publisher`` and a ``Subscriber`` of the other's publisher (and the echo process a
``CommandReceiver``). Measured, for each transport:

* ``raw``: plain pyzmq PUB/SUB echo of a 120-byte message on the same asyncio wait
  (``wait_readable``), no codec, no sequencing: the floor the transport adds to;
* ``pubsub``: a one-event frame published, delivered by the echo's subscriber,
  published back, delivered here: round trip p50/p99/p99.9 in microseconds;
* ``command``: ``CommandSender.send`` of one command until its ACK is read
  (``flush``): p50/p99/p99.9;
* ``throughput``: frames of 1 and 100 events published as fast as the loop allows
  (yielding every 1000 frames so the replay service can answer) until the echo has
  delivered them all, in order, recovered gaps included: frames/s and events/s, with
  the gaps and recoveries it took.

Usage: ``python bench/transport_latency.py [--pings 5000] [--frames 200000]
[--transports ipc,tcp] [--hwm 100000]``; a small ``--hwm`` (e.g. 500) makes ZeroMQ drop
frames during the throughput runs, to watch them recovered by replay. A script, not a test: figures depend on the machine, and on
this one the two processes share 2 cores with everything else.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np
import zmq

from framework.events import COMMAND_DTYPE, EVENT_DTYPE, CommandKind, ControlCode, EventKind
from live.transport import CommandReceiver, CommandSender, Publisher, Source, Subscriber
from live.transport.common import drain, wait_readable
from live.wire import MsgType

PING, BLAST, END = EventKind.TRADE, EventKind.QUOTE, EventKind.CONTROL


def endpoint(kind: str, folder: str, name: str) -> str:
    return f"ipc://{folder}/{name}.sock" if kind == "ipc" else "tcp://127.0.0.1:*"


# -- the echo process ---------------------------------------------------------------------------


def echo_main(kind: str, folder: str, peer: tuple[str, str], raw_peer: str, hwm: int, conn) -> None:
    asyncio.run(echo(kind, folder, peer, raw_peer, hwm, conn))


async def echo(kind: str, folder: str, peer: tuple[str, str], raw_peer: str, hwm: int, conn) -> None:
    ctx = zmq.Context()
    pub = Publisher(2, endpoint(kind, folder, "echo-data"), endpoint(kind, folder, "echo-replay"), ctx=ctx)
    sub = Subscriber([Source(1, *peer)], ctx=ctx, rcvhwm=hwm)
    receiver = CommandReceiver(endpoint(kind, folder, "echo-cmd"), ctx=ctx)
    raw_sub = ctx.socket(zmq.SUB)
    raw_sub.setsockopt(zmq.SUBSCRIBE, b"")
    raw_sub.connect(raw_peer)
    raw_pub = ctx.socket(zmq.PUB)
    raw_pub.bind(endpoint(kind, folder, "echo-raw"))
    await pub.start()
    conn.send((pub.data_endpoint, pub.replay_endpoint, receiver.endpoint, raw_pub.getsockopt_string(zmq.LAST_ENDPOINT)))

    async def events() -> None:
        blasted = 0
        async for frame in sub:
            if frame.msg_type != MsgType.EVENTS:
                continue
            k = frame.records["kind"][0]
            if k == PING:
                pub.publish(frame.records)
            elif k == BLAST:
                blasted += 1
            elif k == END:
                pub.publish(frame.records)
                conn.send(("blast", blasted, sub.counters.as_dict()))
                blasted = 0

    async def commands() -> None:
        while True:
            await receiver.recv()

    async def raw_echo() -> None:
        while True:
            await wait_readable((raw_sub,))
            for (msg,) in drain(raw_sub):
                raw_pub.send(msg)

    tasks = [asyncio.create_task(t()) for t in (events, commands, raw_echo)]
    await asyncio.get_running_loop().run_in_executor(None, conn.recv)  # until told to stop
    for t in tasks:
        t.cancel()
    await pub.close()
    sub.close()
    receiver.close()
    ctx.destroy(linger=0)


# -- this process -------------------------------------------------------------------------------


def percentiles(samples_ns: list[int]) -> str:
    us = np.asarray(samples_ns) / 1000.0
    p50, p99, p999 = np.percentile(us, [50, 99, 99.9])
    return f"p50 {p50:8.1f} us   p99 {p99:8.1f} us   p99.9 {p999:8.1f} us   (n={len(us)})"


async def run(kind: str, pings: int, frames: int, hwm: int) -> None:
    folder = tempfile.mkdtemp(prefix="ptw-")
    ctx = zmq.Context()
    pub = Publisher(1, endpoint(kind, folder, "main-data"), endpoint(kind, folder, "main-replay"), ctx=ctx, sndhwm=hwm)
    raw_pub = ctx.socket(zmq.PUB)
    raw_pub.bind(endpoint(kind, folder, "main-raw"))
    await pub.start()
    parent, child = mp.Pipe()
    proc = mp.get_context("spawn").Process(
        target=echo_main,
        args=(kind, folder, (pub.data_endpoint, pub.replay_endpoint), raw_pub.getsockopt_string(zmq.LAST_ENDPOINT),
              hwm, child),
        daemon=True,
    )
    proc.start()
    loop = asyncio.get_running_loop()
    if not await loop.run_in_executor(None, parent.poll, 60):
        raise RuntimeError("the echo process did not start")
    echo_data, echo_replay, echo_cmd, echo_raw = parent.recv()
    sub = Subscriber([Source(2, echo_data, echo_replay)], ctx=ctx)
    sender = CommandSender(1, echo_cmd, ctx=ctx)
    await sender.start()
    raw_sub = ctx.socket(zmq.SUB)
    raw_sub.setsockopt(zmq.SUBSCRIBE, b"")
    raw_sub.connect(echo_raw)

    async def raw_recv() -> bytes:
        while True:
            try:
                return raw_sub.recv(zmq.NOBLOCK)
            except zmq.Again:
                await wait_readable((raw_sub,))
    print(f"\n== {kind} ==")

    # raw pyzmq echo
    msg = bytes(120)
    async with asyncio.timeout(30):
        while True:  # until the two SUB sockets are joined
            raw_pub.send(msg)
            try:
                await asyncio.wait_for(raw_recv(), 0.05)
                break
            except TimeoutError:
                pass
    await asyncio.sleep(0.1)
    for _ in drain(raw_sub):
        pass
    samples = []
    for _ in range(pings):
        t = time.perf_counter_ns()
        raw_pub.send(msg)
        await raw_recv()
        samples.append(time.perf_counter_ns() - t)
    print(f"raw PUB/SUB bytes   {percentiles(samples)}")

    # pubsub: frames through Publisher -> Subscriber -> echo -> back
    ping = np.zeros(1, EVENT_DTYPE)
    ping["kind"] = PING
    for _ in range(200):  # warm up (and let the late-join replay settle)
        pub.publish(ping)
        await asyncio.wait_for(sub.recv(), 10)
    samples = []
    for _ in range(pings):
        t = time.perf_counter_ns()
        pub.publish(ping)
        await sub.recv()
        samples.append(time.perf_counter_ns() - t)
    print(f"frames PUB/SUB      {percentiles(samples)}")

    # command -> ACK
    cmd = np.zeros(1, COMMAND_DTYPE)
    cmd["kind"] = CommandKind.SUBMIT
    await sender.flush(10)
    samples = []
    for _ in range(pings):
        t = time.perf_counter_ns()
        sender.send(cmd)
        await sender.flush(10)
        samples.append(time.perf_counter_ns() - t)
    print(f"command -> ACK      {percentiles(samples)}")

    # throughput
    end = np.zeros(1, EVENT_DTYPE)
    end["kind"] = END
    end["control"] = ControlCode.KILL_SWITCH_OFF
    for n_records in (1, 100):
        blast = np.zeros(n_records, EVENT_DTYPE)
        blast["kind"] = BLAST
        n_frames = frames if n_records == 1 else max(1000, frames // 20)
        t = time.perf_counter()
        for i in range(n_frames):
            pub.publish(blast)
            if i % 1000 == 999:
                await asyncio.sleep(0)
        pub.publish(end)
        async with asyncio.timeout(120):
            while (await sub.recv()).records["kind"][0] != END:
                pass
        elapsed = time.perf_counter() - t
        if not await loop.run_in_executor(None, parent.poll, 60):
            raise RuntimeError("the echo process did not report")
        _, delivered, counters = parent.recv()
        print(
            f"throughput {n_records:>3} ev/frame: {n_frames / elapsed:>10,.0f} frames/s {n_frames * n_records / elapsed:>12,.0f}"
            f" events/s  (delivered {delivered:,}/{n_frames:,}; echo gaps {counters['gaps_detected']},"
            f" replayed {counters['recovered_by_replay']:,}, snapshots {counters['snapshots_taken']})"
        )
    parent.send("stop")
    proc.join(10)
    await sender.close()
    await pub.close()
    sub.close()
    ctx.destroy(linger=0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pings", type=int, default=5000)
    parser.add_argument("--frames", type=int, default=200_000)
    parser.add_argument("--transports", default="ipc,tcp")
    parser.add_argument("--hwm", type=int, default=100_000, help="PUB SNDHWM and SUB RCVHWM (small: force drops)")
    args = parser.parse_args()
    for kind in args.transports.split(","):
        asyncio.run(run(kind, args.pings, args.frames, args.hwm))


if __name__ == "__main__":
    main()
