"""``mode=parity``: the parity harness, as CI runs it and as a person debugging a run does.

    python run.py mode=parity [strategy=... data=... venue=...]     # every level on this config
    python run.py mode=parity parity.journal=path/to/journal.bin    # replay one recorded journal

Levels (docs/concepts/parity.md):

1. Determinism: the configured backtest, run twice, writes identical journals (hashes).
2. Replay parity: a journal's inputs, fed to a fresh pipeline and strategy through
   ``framework.replay``, reproduce every command the run recorded: the backtest's, and
   the journals the live runtime wrote in lockstep and in a short paper session
   (``parity.paper_s``; 0 skips it). For a journal given with ``parity.journal`` the
   strategy, risk, execution settings and instruments come from its header, and a
   model from the exact version it recorded.
3. Plumbing parity: a lockstep session (the live runtime's engine, sockets, codecs and,
   in the multi topology, its processes, against the simulated venue server) on the
   same config takes exactly the backtest's inputs and commands (equal journals) and
   gets exactly its fills, for each topology in ``parity.topologies``.

On a failure the first diverging input, both sides' commands and the state of every
stage just before that input are printed, and the run exits with status 1.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf

from app.backtest import build_backtest, build_strategy, pipeline_spec
from app.data_source import prepare
from app.live import SessionFailed
from app.model_source import strategy_model
from framework.config import RunConfig
from framework.journal import JournalWriter, read_journal
from framework.replay import describe_divergence, first_divergence, format_record, replay, stage_states
from framework.state import allocate


class ParityFailure(Exception):
    """A parity level failed; the message is the divergence report."""


def _record(cfg: DictConfig, out: Path, name: str) -> tuple[str, Path, np.ndarray]:
    """Run the configured backtest with a journal; return its hash, its path and the fills."""
    data = prepare(cfg.data)
    path = out / name / "journal.bin"
    header = {"strategy": cfg.strategy.name, "data": data.description, "instruments": data.instruments,
              "config": OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)}
    bt = build_backtest(cfg, data, JournalWriter(path, header), strategy_model(cfg))
    result = bt.run(data.stream(cfg.chunk_rows))
    return str(result.journal_hash), path, result.fills


def _fresh_pipeline(cfg: DictConfig, instruments: dict[str, int]):
    """A new pipeline and strategy for ``cfg``, exactly as a run of it starts."""
    strategy = build_strategy(cfg, instruments, strategy_model(cfg))
    return allocate(pipeline_spec(cfg, instruments)), strategy


def _state_before(cfg: DictConfig, instruments: dict[str, int], events: np.ndarray, index: int) -> dict[str, str]:
    p, s = _fresh_pipeline(cfg, instruments)
    replay(p, s.on_event, s.params, s.state, events, stop=index)
    return stage_states(p, int(events["instrument_id"][index]) if index < len(events) else 0)


def journal_config(meta: dict) -> tuple[DictConfig, dict[str, int]]:
    """The config and instruments a journal was recorded with (a model pinned to its version)."""
    if "config" not in meta:
        raise ValueError("the journal has no config in its header; record it with journal=true")
    cfg = OmegaConf.merge(OmegaConf.structured(RunConfig), meta["config"])
    if meta.get("model_name") and meta.get("model_version") is not None:
        cfg.strategy.params.model = f"models:/{meta['model_name']}/{meta['model_version']}"
    instruments = meta.get("instruments")
    if instruments is None:
        instruments = prepare(cfg.data).instruments
    return cfg, {str(k): int(v) for k, v in instruments.items()}


def check_replay(path: Path, cfg: DictConfig | None = None) -> str:
    """Level 2 on journal ``path`` (under its own header's config unless ``cfg`` is given):
    raise ParityFailure with the report, or say what matched."""
    meta, events, commands = read_journal(path, torn_tail="drop")
    jcfg, instruments = journal_config(meta)
    cfg = cfg if cfg is not None else jcfg
    p, s = _fresh_pipeline(cfg, instruments)
    replayed = replay(p, s.on_event, s.params, s.state, events)
    d = first_divergence(commands, replayed)
    if d is not None:
        report = describe_divergence(d, events, _state_before(cfg, instruments, events, d.input_index))
        raise ParityFailure(f"replay parity failed for {path}\n{report}")
    where = f"{path.parent.parent.name}/{path.parent.name}"
    return f"{len(events):,} inputs replayed, {len(commands):,} commands reproduced ({where})"


def check_determinism(cfg: DictConfig, out: Path) -> tuple[str, Path, np.ndarray]:
    """Level 1: two runs of the configured backtest; raise ParityFailure at the first difference."""
    hash_a, path_a, fills = _record(cfg, out, "run_a")
    hash_b, path_b, _ = _record(cfg, out, "run_b")
    if hash_a != hash_b:
        raise ParityFailure(f"determinism failed: journal hashes {hash_a[:16]} != {hash_b[:16]}\n"
                            + compare_journals(path_a, path_b, "run a", "run b"))
    return hash_a, path_a, fills


def compare_journals(expected: Path, actual: Path, expected_name: str, actual_name: str) -> str:
    """Where two journals part: the first differing input (both records) or command, with the
    state of each stage just before it; empty when they are equal."""
    meta, ev_a, cm_a = read_journal(expected, torn_tail="drop")
    _, ev_b, cm_b = read_journal(actual, torn_tail="drop")
    cfg, instruments = journal_config(meta)
    n = min(len(ev_a), len(ev_b))
    rows_a = ev_a[:n].view(np.uint8).reshape(n, -1)
    rows_b = ev_b[:n].view(np.uint8).reshape(n, -1)
    diff = np.flatnonzero((rows_a != rows_b).any(axis=1))
    d = first_divergence(cm_a, cm_b)
    first_input = int(diff[0]) if len(diff) else (n if len(ev_a) != len(ev_b) else None)
    if first_input is None and d is None:
        return ""
    lines = [f"  {expected_name}: {len(ev_a):,} inputs, {len(cm_a):,} commands; "
             f"{actual_name}: {len(ev_b):,} inputs, {len(cm_b):,} commands"]
    if first_input is not None and (d is None or first_input <= d.input_index):
        lines.append(f"first diverging input: {first_input}")
        lines.append(f"  {expected_name:<9} {format_record(ev_a[first_input] if first_input < len(ev_a) else None)}")
        lines.append(f"  {actual_name:<9} {format_record(ev_b[first_input] if first_input < len(ev_b) else None)}")
        index = first_input
    else:
        lines.append(describe_divergence(d, ev_a))
        index = d.input_index
    for k, (label, cm) in enumerate(((expected_name, cm_a), (actual_name, cm_b))):
        at = cm[cm["input_index"] == index]["command"]
        lines.append(f"  commands of {label} there: " + ("; ".join(format_record(c) for c in at) or "none"))
    for stage, text in _state_before(cfg, instruments, ev_a, min(index, len(ev_a))).items():
        lines.append(f"  {stage:<11} {text}")
    return "\n".join(lines)


def _lockstep_config(cfg: DictConfig, topology: str, mode: str = "lockstep", **live: object) -> DictConfig:
    override = {"mode": {"name": mode}, "live": {"topology": topology, "venue": "sim", **live}, "journal": False}
    return OmegaConf.merge(cfg, override)


def check_plumbing(cfg: DictConfig, out: Path, backtest_journal: Path, backtest_fills: np.ndarray,
                   topology: str) -> tuple[str, Path]:
    """Level 3: a lockstep session in ``topology`` must equal the backtest; return its journal."""
    from app.live import run_session

    folder = out / f"lockstep_{topology}"
    run_session(_lockstep_config(cfg, topology), folder)
    journal = folder / "engine" / "journal.bin"
    report = compare_journals(backtest_journal, journal, "backtest", "lockstep")
    if report:
        raise ParityFailure(f"plumbing parity failed ({topology} topology): the lockstep session took other "
                            f"decisions than the backtest\n{report}")
    fills = pd.read_parquet(folder / "venue" / "fills.parquet")
    expected = pd.DataFrame(backtest_fills)
    if not fills.equals(expected):
        raise ParityFailure(f"plumbing parity failed ({topology} topology): {len(fills):,} venue fills, the backtest "
                            f"made {len(expected):,}\n{_first_row_difference(expected, fills)}")
    return f"{topology}: same {len(read_journal(journal)[1]):,} inputs, commands and {len(fills):,} fills", journal


def _first_row_difference(a: pd.DataFrame, b: pd.DataFrame) -> str:
    n = min(len(a), len(b))
    for i in range(n):
        if not a.iloc[i].equals(b.iloc[i]):
            return f"  first differing fill {i}:\n  backtest {a.iloc[i].to_dict()}\n  lockstep {b.iloc[i].to_dict()}"
    return f"  the first {n} fills agree"


def record_paper(cfg: DictConfig, out: Path) -> Path:
    """A short paper session of this config (for level 2 on a wall-clock journal); its journal."""
    from app.live import run_session

    folder = out / "paper"
    run_session(_lockstep_config(cfg, "single", mode="paper", duration_s=float(cfg.parity.paper_s),
                                 paper={"speed": float(cfg.parity.paper_speed)}), folder)
    return folder / "engine" / "journal.bin"


def run_parity(cfg: DictConfig, out_dir: Path) -> dict:
    """Run the parity levels that apply; print a verdict per level; exit 1 on a failure."""
    results: list[tuple[str, str]] = []
    try:
        if cfg.parity.journal:
            path = Path(cfg.parity.journal)
            if not path.is_file():
                raise FileNotFoundError(f"parity.journal: {path} does not exist")
            results.append(("replay parity", check_replay(path)))
        else:
            journal_hash, path, fills = check_determinism(cfg, out_dir)
            results.append(("determinism", f"two runs, journal hash {journal_hash[:16]}"))
            results.append(("replay parity", check_replay(path, cfg)))
            for topology in cfg.parity.topologies:
                detail, lockstep_journal = check_plumbing(cfg, out_dir, path, fills, str(topology))
                results.append(("plumbing", detail))
                results.append(("replay parity", check_replay(lockstep_journal)))
            if cfg.parity.paper_s > 0:
                results.append(("replay parity", check_replay(record_paper(cfg, out_dir))))
    except (ParityFailure, SessionFailed) as e:
        for level, detail in results:
            print(f"PASS  {level:<14} {detail}")
        print(f"FAIL  {e}")
        raise SystemExit(1) from None
    for level, detail in results:
        print(f"PASS  {level:<14} {detail}")
    return {"parity_failures": 0, "levels_passed": len(results)}
