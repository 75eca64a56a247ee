"""The journal: every input event fed to ``step``, in order, and every command it produced.

It is the first durable record of a run and what the parity harness compares. The
file is a magic string, a JSON header, then blocks of raw records (``EVENT_DTYPE``
for inputs, ``JOURNAL_COMMAND_DTYPE`` for commands), so reading it back is a view.
Its hash is ``sha256(sha256(all input bytes) || sha256(all command bytes))``: it
depends only on the two streams, not on how they were cut into blocks, so runs with
different chunk sizes can be compared.

A backtest's journal is written under a temporary name and renamed on close, so a
journal file is always complete. A live process's journal is the first durable record
of what happened, so it is written in place instead (``in_place=True``): every
``flush`` hands what was written to the operating system (and ``sync`` to the disk), and
after a crash ``read_journal(path, torn_tail="drop")`` reads everything up to the last
whole block.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from framework.events import COMMAND_DTYPE, EVENT_DTYPE, concat_events, concat_records

MAGIC = b"PIPEJRN1"
JOURNAL_COMMAND_DTYPE = np.dtype([("input_index", "<i8"), ("command", COMMAND_DTYPE)])
"""A command in the journal, with the index of the input event that produced it."""


def journal_commands(indexes: np.ndarray, commands: np.ndarray) -> np.ndarray:
    """Journal records of ``commands`` (``COMMAND_DTYPE``), each with the index of its input.

    Put together as bytes: numpy would copy the 15 fields of each command one by one."""
    n = len(commands)
    out = np.zeros(n, JOURNAL_COMMAND_DTYPE)
    raw = out.view(np.uint8).reshape(n, JOURNAL_COMMAND_DTYPE.itemsize)
    raw[:, :8] = np.ascontiguousarray(indexes, np.int64).view(np.uint8).reshape(n, 8)
    raw[:, 8:] = np.ascontiguousarray(commands).view(np.uint8).reshape(n, COMMAND_DTYPE.itemsize)
    return out


_EVENTS, _COMMANDS = 1, 2


class JournalHasher:
    """Hash the input and command streams incrementally, independent of block boundaries."""

    def __init__(self) -> None:
        self._events = hashlib.sha256()
        self._commands = hashlib.sha256()
        self.n_events = 0
        self.n_commands = 0

    def update(self, events: np.ndarray, commands: np.ndarray) -> None:
        """Add a block of inputs and the commands they produced."""
        self._events.update(np.ascontiguousarray(events).view(np.uint8))
        self._commands.update(np.ascontiguousarray(commands).view(np.uint8))
        self.n_events += len(events)
        self.n_commands += len(commands)

    def hexdigest(self) -> str:
        """Return the journal hash of everything added so far."""
        return hashlib.sha256(self._events.digest() + self._commands.digest()).hexdigest()


class JournalWriter:
    """Write a journal file block by block; ``close`` renames it into place (or, ``in_place``,
    it is written under its own name from the start and ``close`` only syncs it)."""

    def __init__(self, path: str | Path, meta: dict[str, Any], *, in_place: bool = False) -> None:
        self.path = Path(path)
        self._tmp = self.path if in_place else self.path.with_name(self.path.name + ".tmp")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file: BinaryIO = open(self._tmp, "xb" if in_place else "wb")
        header = json.dumps({"version": 1, "event_size": EVENT_DTYPE.itemsize, **meta}, sort_keys=True).encode()
        self._file.write(MAGIC + struct.pack("<I", len(header)) + header)
        self.hasher = JournalHasher()

    def write(self, events: np.ndarray, commands: np.ndarray) -> None:
        """Append a block of inputs and the commands they produced."""
        self.hasher.update(events, commands)
        for tag, block in ((_EVENTS, events), (_COMMANDS, commands)):
            if len(block):
                self._file.write(struct.pack("<BQ", tag, len(block)))
                self._file.write(np.ascontiguousarray(block).tobytes())

    def flush(self) -> None:
        """Hand everything written so far to the operating system (it survives a crash of
        this process, not of the machine: see ``sync``)."""
        self._file.flush()

    def sync(self) -> None:
        """Flush and wait until the disk has it."""
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> str:
        """Flush, move the file into place and return the journal hash."""
        self.sync()
        self._file.close()
        if self._tmp != self.path:
            os.replace(self._tmp, self.path)
        return self.hasher.hexdigest()

    def abort(self) -> None:
        """Drop a journal that will not be completed."""
        self._file.close()
        self._tmp.unlink(missing_ok=True)


def read_journal(path: str | Path, torn_tail: str = "error") -> tuple[dict[str, Any], np.ndarray, np.ndarray]:
    """Read a journal: its header, all input events and all commands.

    ``torn_tail="drop"`` reads a journal whose writer died mid-block (a live process's,
    written in place) up to its last whole block; by default a torn block is an error.
    """
    if torn_tail not in ("error", "drop"):
        raise ValueError(f"torn_tail must be 'error' or 'drop', got {torn_tail!r}")
    path = Path(path)
    data = path.read_bytes()
    if not data.startswith(MAGIC):
        raise ValueError(f"{path}: not a journal (bad magic {data[:8]!r})")
    (hlen,) = struct.unpack_from("<I", data, len(MAGIC))
    pos = len(MAGIC) + 4
    meta = json.loads(data[pos : pos + hlen])
    pos += hlen
    events, commands = [], []
    while pos < len(data):
        if pos + 9 > len(data):
            if torn_tail == "drop":
                break
            raise ValueError(f"{path}: corrupt block header at byte {pos} (file ends)")
        tag, n = struct.unpack_from("<BQ", data, pos)
        pos += 9
        dtype = EVENT_DTYPE if tag == _EVENTS else JOURNAL_COMMAND_DTYPE
        if tag not in (_EVENTS, _COMMANDS):
            raise ValueError(f"{path}: corrupt block at byte {pos - 9} (tag {tag}, {n} records)")
        if pos + n * dtype.itemsize > len(data):
            if torn_tail == "drop":
                break
            raise ValueError(f"{path}: corrupt block at byte {pos - 9} (tag {tag}, {n} records)")
        block = np.frombuffer(data, dtype=dtype, count=n, offset=pos)
        (events if tag == _EVENTS else commands).append(block)
        pos += n * dtype.itemsize
    ev = concat_events(events)
    cm = concat_records(commands, JOURNAL_COMMAND_DTYPE)
    return meta, ev, cm
