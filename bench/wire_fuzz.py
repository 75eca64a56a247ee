"""Fuzz the frame decoder, then measure encode and decode throughput.

Fuzz: for ``--seconds`` (or ``--iterations``), feed ``decode_frame`` a seeded mix of
random bytes, random bytes behind a valid magic, frames with forged header fields
(and a correct CRC, so later checks are reached), and valid frames mutated (bit
flips, truncation, extension, splices, record kinds overwritten), with and without
CRC. Every outcome is counted: accepted, or rejected by ``DecodeReason``. Any other
exception is a bug: it is printed with the input's hex and the script exits 1.

Throughput: ``encode_frame`` and ``decode_frame`` on frames of 1, 10, 100 and 1000
event records, with and without CRC: frames/s, records/s, MB/s.

Usage: ``python bench/wire_fuzz.py [--seconds 20] [--iterations N] [--seed 1]``. A script,
not a test: figures depend on the machine.
"""

from __future__ import annotations

import argparse
import random
import struct
import sys
import time
import zlib
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np

from framework.events import COMMAND_DTYPE, EVENT_DTYPE, CommandKind, EventKind
from live.wire import HEADER_SIZE, MAGIC, WIRE_VERSION, DecodeError, MsgType, decode_frame, encode_frame

_HEADER = struct.Struct("<IBBBBHHIIIQQQq")


def valid_frame(rng: random.Random) -> bytes:
    n = rng.choice([0, 1, 1, 2, 5, 20])
    command = rng.random() < 0.3
    records = np.frombuffer(rng.randbytes(64 * n), COMMAND_DTYPE if command else EVENT_DTYPE).copy()
    records["kind"] = [rng.choice(CommandKind if command else EventKind) for _ in range(n)]
    mtype = rng.choice([MsgType.COMMANDS if command else MsgType.EVENTS, MsgType.SNAPSHOT])
    return encode_frame(
        mtype, records, publisher_id=rng.getrandbits(32), epoch=rng.getrandbits(64) | 1,
        sequence=rng.getrandbits(64) | 1, aux=rng.getrandbits(64), ts_send=rng.getrandbits(63), crc=rng.random() < 0.7,
    )


def forged(rng: random.Random) -> bytes:
    """A header of plausible-but-random fields, a payload, and a correct CRC."""
    count = rng.choice([0, 1, 2, 3, rng.getrandbits(32)])
    payload_records = count if count < 8 else rng.randint(0, 3)
    payload = bytearray(rng.randbytes(64 * payload_records + rng.choice([0, 0, 0, 1, 63])))
    for i in range(16, len(payload), 64):
        if rng.random() < 0.8:
            payload[i] = rng.choice(EventKind + CommandKind)
    flags = rng.choice([0, 1, 1, 2, 3, rng.getrandbits(8)])
    header = bytearray(
        _HEADER.pack(
            int.from_bytes(MAGIC, "little"), rng.choice([WIRE_VERSION] * 5 + [0, 2, 255]), rng.randint(0, 8),
            rng.randint(0, 3), flags, rng.choice([0, 64, 64, 32, 65535]), rng.choice([0] * 9 + [1]),
            rng.getrandbits(32), count, 0, rng.choice([0, 1, rng.getrandbits(64)]),
            rng.choice([0, 1, rng.getrandbits(64)]), rng.choice([0, 1, rng.getrandbits(64)]), rng.getrandbits(63),
        )
    )
    raw = header + payload
    if flags & 1:
        raw[20:24] = struct.pack("<I", zlib.crc32(raw[24:], zlib.crc32(raw[:20])))
    return bytes(raw)


def mutated(rng: random.Random) -> bytes:
    raw = bytearray(valid_frame(rng))
    op = rng.randrange(6)
    if op == 0:
        for _ in range(rng.randint(1, 4)):
            raw[rng.randrange(len(raw))] ^= rng.randint(1, 255)
    elif op == 1:
        del raw[rng.randrange(len(raw)) :]
    elif op == 2:
        raw += rng.randbytes(rng.randint(1, 130))
    elif op == 3:
        pos = rng.randrange(len(raw) + 1)
        raw[pos:pos] = rng.randbytes(rng.randint(1, 64))
    elif op == 4 and len(raw) > HEADER_SIZE:  # an unknown kind, CRC recomputed so the kind check is what fails
        raw[HEADER_SIZE + 64 * rng.randrange((len(raw) - HEADER_SIZE) // 64) + 16] = rng.choice([0, 6, 99, 255])
        if raw[7] & 1:
            raw[20:24] = struct.pack("<I", zlib.crc32(raw[24:], zlib.crc32(raw[:20])))
    else:
        raw[rng.randrange(HEADER_SIZE)] = rng.getrandbits(8)
    return bytes(raw)


def random_bytes(rng: random.Random) -> bytes:
    raw = rng.randbytes(rng.choice([0, 1, 10, 55, 56, 57, 120, 500]))
    return MAGIC + raw if rng.random() < 0.5 else raw


GENERATORS = {"random": random_bytes, "forged": forged, "mutated": mutated, "valid": valid_frame}


def fuzz(seconds: float, iterations: int | None, seed: int) -> int:
    rng = random.Random(seed)
    outcomes: Counter[str] = Counter()
    by_source: Counter[str] = Counter()
    crashes = 0
    start = time.perf_counter()
    deadline = start + seconds
    i = 0
    while (iterations is None and time.perf_counter() < deadline) or (iterations is not None and i < iterations):
        source = rng.choice(list(GENERATORS))
        raw = GENERATORS[source](rng)
        by_source[source] += 1
        try:
            decode_frame(raw)
            outcomes["accepted"] += 1
        except DecodeError as err:
            outcomes[err.reason.name] += 1
        except Exception as exc:  # noqa: BLE001 - the point of the fuzz: report, never hide
            crashes += 1
            print(f"CRASH {type(exc).__name__}: {exc} on input {raw[:96].hex()}", file=sys.stderr)
        i += 1
    elapsed = time.perf_counter() - start
    print(f"fuzz: {i:,} inputs in {elapsed:.1f} s (seed {seed}; {', '.join(f'{k} {v:,}' for k, v in by_source.items())})")
    width = max(len(k) for k in outcomes)
    for name, n in sorted(outcomes.items(), key=lambda kv: -kv[1]):
        print(f"  {name:<{width}}  {n:>10,}  {100 * n / i:5.1f}%")
    print(f"  {'other exceptions':<{width}}  {crashes:>10,}")
    return crashes


def best_rate(fn, n: int, repeat: int = 5) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        for _ in range(n):
            fn()
        best = min(best, time.perf_counter() - t)
    return n / best


def throughput() -> None:
    print("\ncodec throughput (best of 5):")
    print(f"  {'records':>7} {'crc':>4} {'encode frames/s':>16} {'decode frames/s':>16} {'decode rec/s':>13} "
          f"{'decode MB/s':>12} {'encode us':>10} {'decode us':>10}")
    for n in (1, 10, 100, 1000):
        records = np.zeros(n, EVENT_DTYPE)
        records["kind"] = EventKind.TRADE
        records["price"] = np.arange(n)
        for crc in (True, False):
            raw = encode_frame(MsgType.EVENTS, records, publisher_id=1, epoch=1, sequence=1, crc=crc)
            iters = max(200, 200_000 // n)
            enc = best_rate(
                lambda crc=crc, records=records: encode_frame(
                    MsgType.EVENTS, records, publisher_id=1, epoch=1, sequence=1, crc=crc
                ),
                iters,
            )
            dec = best_rate(lambda raw=raw: decode_frame(raw), iters)
            print(f"  {n:>7} {'yes' if crc else 'no':>4} {enc:>16,.0f} {dec:>16,.0f} {dec * n:>13,.0f} "
                  f"{dec * len(raw) / 1e6:>12,.0f} {1e6 / enc:>10.2f} {1e6 / dec:>10.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--iterations", type=int, default=None)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--no-throughput", action="store_true")
    args = parser.parse_args()
    crashes = fuzz(args.seconds, args.iterations, args.seed)
    if not args.no_throughput:
        throughput()
    sys.exit(1 if crashes else 0)


if __name__ == "__main__":
    main()
