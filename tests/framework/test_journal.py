"""The journal: file round trip, block-independent hash, atomic close, abort."""

from __future__ import annotations

import hashlib
import json
import struct
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "sim"))

from scripted import T0, make_quotes, make_trades, market, merge, run_script, submit  # noqa: E402

from framework.events import COMMAND_DTYPE, EVENT_DTYPE, EventKind, Side  # noqa: E402
from framework.journal import (  # noqa: E402
    JOURNAL_COMMAND_DTYPE,
    MAGIC,
    JournalHasher,
    JournalWriter,
    read_journal,
)


def random_events(rng: np.random.Generator, n: int) -> np.ndarray:
    """Arbitrary bytes in every record (the journal must not care what they mean)."""
    raw = rng.integers(0, 256, size=n * EVENT_DTYPE.itemsize, dtype=np.uint8)
    return raw.view(EVENT_DTYPE).copy()


def random_commands(rng: np.random.Generator, n: int, zero_padding: bool = True) -> np.ndarray:
    """Random commands; by default with the padding bytes zeroed, as the pipeline writes them."""
    raw = rng.integers(0, 256, size=n * JOURNAL_COMMAND_DTYPE.itemsize, dtype=np.uint8)
    cm = raw.view(JOURNAL_COMMAND_DTYPE).copy()
    if zero_padding:
        clean = np.zeros(n, JOURNAL_COMMAND_DTYPE)
        clean["input_index"] = cm["input_index"]
        for name in COMMAND_DTYPE.names:
            clean["command"][name] = cm["command"][name]
        cm = clean
    return cm


def assert_same_commands(a: np.ndarray, b: np.ndarray) -> None:
    """Field by field (the padding bytes inside COMMAND_DTYPE carry nothing)."""
    assert a.dtype == b.dtype == JOURNAL_COMMAND_DTYPE and len(a) == len(b)
    np.testing.assert_array_equal(a["input_index"], b["input_index"])
    for name in COMMAND_DTYPE.names:
        np.testing.assert_array_equal(a["command"][name], b["command"][name], err_msg=name)


def blocks(n: int, cuts: list[int]) -> list[tuple[int, int]]:
    edges = sorted({0, n, *[c % (n + 1) for c in cuts]})
    return list(zip(edges[:-1], edges[1:]))


def test_round_trip(tmp_path):
    rng = np.random.default_rng(1)
    ev, cm = random_events(rng, 50), random_commands(rng, 20)
    path = tmp_path / "run" / "journal.bin"  # the folder is created
    w = JournalWriter(path, {"strategy": "x", "n": 3})
    w.write(ev[:10], cm[:0])
    w.write(ev[10:10], cm[:5])
    w.write(ev[10:], cm[5:])
    digest = w.close()
    meta, ev2, cm2 = read_journal(path)
    assert meta["strategy"] == "x" and meta["n"] == 3
    assert meta["version"] == 1 and meta["event_size"] == 64
    assert ev2.dtype == EVENT_DTYPE and cm2.dtype == JOURNAL_COMMAND_DTYPE
    assert ev2.tobytes() == ev.tobytes()
    assert_same_commands(cm2, cm)
    # The hash is sha256(sha256(inputs) || sha256(commands)).
    expected = hashlib.sha256(
        hashlib.sha256(ev.tobytes()).digest() + hashlib.sha256(cm.tobytes()).digest()
    ).hexdigest()
    assert digest == expected


def test_read_back_journal_has_the_same_bytes_and_hash(tmp_path):
    # Commands with arbitrary bytes everywhere, padding included: the journal is a byte log and
    # its hash is over those bytes, so reading it back must return exactly them.
    rng = np.random.default_rng(7)
    ev, cm = random_events(rng, 30), random_commands(rng, 200, zero_padding=False)
    w = JournalWriter(tmp_path / "j.bin", {})
    w.write(ev[:10], cm[:100])
    w.write(ev[10:], cm[100:])
    digest = w.close()
    _, ev2, cm2 = read_journal(tmp_path / "j.bin")
    rehash = JournalHasher()
    rehash.update(ev2, cm2)
    assert cm2.tobytes() == cm.tobytes()
    assert rehash.hexdigest() == digest


def test_no_tmp_file_is_left_after_close(tmp_path):
    path = tmp_path / "journal.bin"
    w = JournalWriter(path, {})
    assert (tmp_path / "journal.bin.tmp").exists() and not path.exists()  # written under a temporary name
    w.write(random_events(np.random.default_rng(2), 3), np.zeros(0, JOURNAL_COMMAND_DTYPE))
    w.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["journal.bin"]


def test_abort_leaves_nothing(tmp_path):
    path = tmp_path / "journal.bin"
    w = JournalWriter(path, {})
    w.write(random_events(np.random.default_rng(3), 3), random_commands(np.random.default_rng(4), 2))
    w.abort()
    assert list(tmp_path.iterdir()) == []


def test_an_in_place_journal_is_readable_while_written_and_after_a_crash(tmp_path):
    path = tmp_path / "live.bin"
    w = JournalWriter(path, {"mode": "live"}, in_place=True)
    rng = np.random.default_rng(6)
    ev1, cm1 = random_events(rng, 5), random_commands(rng, 2)
    w.write(ev1, cm1)
    w.flush()
    meta, ev, cm = read_journal(path)  # no temporary name: the file is there, whole, after each flush
    assert meta["mode"] == "live" and ev.tobytes() == ev1.tobytes() and cm.tobytes() == cm1.tobytes()
    w.write(random_events(rng, 4), random_commands(rng, 1))
    w.flush()
    for cut in (1, 9, 9 + 64 * 3):  # the writer died inside a block header, a block, a later block
        torn = tmp_path / f"torn{cut}.bin"
        torn.write_bytes(path.read_bytes()[:-cut])
        with pytest.raises(ValueError, match="corrupt block"):
            read_journal(torn)
        _, ev, cm = read_journal(torn, torn_tail="drop")
        assert ev[:5].tobytes() == ev1.tobytes() and cm[:2].tobytes() == cm1.tobytes() and len(ev) <= 9
    digest = w.close()
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith("torn")) == ["live.bin"]
    assert digest == w.hasher.hexdigest()
    with pytest.raises(FileExistsError):  # a live journal never overwrites an earlier session's
        JournalWriter(path, {}, in_place=True)


def test_empty_journal(tmp_path):
    path = tmp_path / "j.bin"
    digest = JournalWriter(path, {}).close()
    _, ev, cm = read_journal(path)
    assert len(ev) == 0 and len(cm) == 0
    assert digest == JournalHasher().hexdigest()


def test_corrupt_files_are_refused(tmp_path):
    bad = tmp_path / "bad.bin"
    bad.write_bytes(b"NOTAJRNL" + b"\0" * 20)
    with pytest.raises(ValueError, match="not a journal"):
        read_journal(bad)
    path = tmp_path / "j.bin"
    w = JournalWriter(path, {})
    w.write(random_events(np.random.default_rng(5), 4), np.zeros(0, JOURNAL_COMMAND_DTYPE))
    w.close()
    data = path.read_bytes()
    truncated = tmp_path / "t.bin"
    truncated.write_bytes(data[:-10])
    with pytest.raises(ValueError, match="corrupt block"):
        read_journal(truncated)
    (hlen,) = struct.unpack_from("<I", data, len(MAGIC))
    assert json.loads(data[len(MAGIC) + 4 : len(MAGIC) + 4 + hlen])["version"] == 1
    bad_tag = bytearray(data)
    bad_tag[len(MAGIC) + 4 + hlen] = 9
    (tmp_path / "tag.bin").write_bytes(bytes(bad_tag))
    with pytest.raises(ValueError, match="corrupt block"):
        read_journal(tmp_path / "tag.bin")


@settings(max_examples=40, deadline=None)
@given(
    n_events=st.integers(0, 40),
    n_commands=st.integers(0, 15),
    event_cuts=st.lists(st.integers(0, 1000), max_size=6),
    command_cuts=st.lists(st.integers(0, 1000), max_size=6),
    seed=st.integers(0, 2**32 - 1),
)
def test_hash_does_not_depend_on_block_boundaries(n_events, n_commands, event_cuts, command_cuts, seed):
    rng = np.random.default_rng(seed)
    ev, cm = random_events(rng, n_events), random_commands(rng, n_commands)
    whole = JournalHasher()
    whole.update(ev, cm)
    pieces = JournalHasher()
    eb, cb = blocks(n_events, event_cuts), blocks(n_commands, command_cuts)
    # Pair the blocks up however they fall; missing partners are empty.
    for k in range(max(len(eb), len(cb))):
        e = ev[slice(*eb[k])] if k < len(eb) else ev[:0]
        c = cm[slice(*cb[k])] if k < len(cb) else cm[:0]
        pieces.update(e, c)
    assert pieces.hexdigest() == whole.hexdigest()
    assert (pieces.n_events, pieces.n_commands) == (n_events, n_commands)
    if n_events:
        changed = ev.copy()
        changed.view(np.uint8)[seed % (n_events * 64)] ^= 1
        other = JournalHasher()
        other.update(changed, cm)
        assert other.hexdigest() != whole.hexdigest()


def test_backtest_journal_file_matches_the_in_memory_journal(tmp_path):
    ev = merge(
        make_quotes([(T0 + 1000 * k, 99, 5, 101, 5) for k in range(1, 20)]),
        make_trades([(T0 + 1000 * k + 500, 100 - (k % 3), 1) for k in range(1, 20)]),
    )
    script = [submit(Side.BUY, 1, 99, at=0), market(Side.SELL, 1, at=5), submit(Side.SELL, 1, 100.5, at=9)]
    mem = run_script(ev, script, latency=(10, 20, 30), journal_capacity=8)
    disk = run_script(ev, script, latency=(10, 20, 30), journal_capacity=8, chunk_rows=5,
                      journal_path=tmp_path / "j.bin")
    assert disk.journal_hash == mem.journal_hash
    assert disk.events.tobytes() == mem.events.tobytes()
    assert_same_commands(disk.commands, mem.commands)
    assert not (tmp_path / "j.bin.tmp").exists()
    # What the journal holds: every input step saw (with ts_recv) and every command with its input.
    assert len(disk.events) == disk.result.n_inputs
    assert int(np.sum(disk.events["kind"] == EventKind.QUOTE)) == 19
    assert np.all(disk.commands["input_index"] < len(disk.events))
    assert np.all(np.diff(disk.commands["input_index"]) >= 0)
