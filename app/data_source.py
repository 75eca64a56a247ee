"""Turn the ``data`` config into a catalog and the streams to replay from it.

Synthetic data is generated once per distinct spec and real files are ingested once
per distinct file content; both land in the catalog under a folder named by a hash
of what produced them (the spec or the files, and the code that wrote the catalog), so
a second run starts at once and two different inputs, or the same input through
changed code, never share a folder. A folder is complete or absent: it is built under a temporary name and
renamed into place.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
from omegaconf import DictConfig, OmegaConf

from framework.data.catalog import Catalog
from framework.data.loaders import ingest_venues
from framework.data.synthetic import SyntheticSpec, write_synthetic
from framework.events import KIND_DTYPES

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class PreparedData:
    """A catalog, the (kind, symbol) streams to replay in tie-break order, and their size;
    ``start_ns``/``end_ns`` the configured window (``data.start``/``data.end``, None: open)."""

    catalog: Catalog
    streams: list[tuple[str, str]]
    instruments: dict[str, int]
    n_rows: int
    description: str
    start_ns: int | None = None
    end_ns: int | None = None

    def stream(self, chunk_rows: int) -> Iterator[np.ndarray]:
        """The configured window of every stream, merged in time order, in chunks of ``chunk_rows``."""
        return self.catalog.stream(self.streams, self.start_ns, self.end_ns, chunk_rows=int(chunk_rows))


def time_ns(value: str | None, key: str) -> int | None:
    """Parse a configured UTC time (``2024-01-01T16:00``) to nanoseconds; None stays None (an open end)."""
    if value is None:
        return None
    try:
        return int(np.datetime64(str(value).removesuffix("Z"), "ns").astype(np.int64))
    except ValueError:
        raise ValueError(f"{key}: {value!r} is not a UTC time such as 2024-01-01T16:00") from None


def period_ns(period: DictConfig, key: str) -> tuple[int | None, int | None]:
    """Return a configured ``[start, end)`` period in nanoseconds, checking that it is not empty."""
    start, end = time_ns(period.start, f"{key}.start"), time_ns(period.end, f"{key}.end")
    if start is not None and end is not None and start >= end:
        raise ValueError(f"{key}: start {period.start} is not before end {period.end}")
    return start, end




def resolve_path(path: str) -> Path:
    """Resolve a configured path: absolute as given, relative from the project root."""
    p = Path(path)
    return p if p.is_absolute() else (ROOT / p).resolve()


def _digest(payload: object) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


DATA_CODE = Path(__file__).resolve().parents[1] / "framework" / "data"


def _code_digest() -> str:
    """Hash the code that writes catalogs (generator, loaders, catalog layout), so that a
    change to it builds a fresh folder rather than reusing one the old code wrote."""
    h = hashlib.sha256()
    for path in sorted(DATA_CODE.rglob("*.py")):
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]


def _build_once(folder: Path, build) -> None:
    if folder.exists():
        return
    tmp = folder.with_name(folder.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        build(Catalog(tmp))
        os.replace(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _count_rows(catalog: Catalog, streams: list[tuple[str, str]]) -> int:
    total = 0
    for kind, symbol in streams:
        for path in sorted((catalog.root / kind / symbol).glob("*.parquet")):
            total += pq.ParquetFile(path).metadata.num_rows
    return total


def prepare(cfg: DictConfig) -> PreparedData:
    """Make sure the configured data is in a catalog and say which streams to replay."""
    source = str(cfg.source.name if hasattr(cfg.source, "name") else cfg.source)
    root = resolve_path(cfg.catalog_root)
    kinds = list(cfg.kinds)
    for kind in kinds:
        if kind not in KIND_DTYPES or kind in ("report", "timer", "control"):
            raise ValueError(f"data.kinds: {kind!r} is not a market-data kind (trade, quote, book, bar)")
    if source == "synthetic":
        syn = OmegaConf.to_container(cfg.synthetic, resolve=True)
        spec = SyntheticSpec(symbol=cfg.symbol, tick_size=cfg.tick_size, **syn)
        folder = root / "synthetic" / _digest({"spec": syn, "symbol": cfg.symbol, "tick": cfg.tick_size,
                                               "code": _code_digest()})
        _build_once(folder, lambda cat: write_synthetic(cat, spec))
        description = f"synthetic {cfg.symbol}, {spec.days} day(s) from {spec.start}, seed {spec.seed}"
    elif source == "file":
        if not cfg.files:
            raise ValueError("data.files: give at least one {path, format} for data.source=file")
        files = []
        for i, f in enumerate(cfg.files):
            path = resolve_path(f.path)
            if not path.is_file():
                raise FileNotFoundError(f"data.files[{i}].path: {path} does not exist")
            files.append((path, str(f.format), int(f.get("venue", 0))))
        folder = root / "files" / _digest([(_file_digest(p), fmt, cfg.symbol, venue) for p, fmt, venue in files]
                                          + [_code_digest()])

        def build(cat: Catalog) -> None:
            ingest_venues([(path, fmt, venue) for path, fmt, venue in files], cat, cfg.symbol)

        _build_once(folder, build)
        description = ", ".join(p.name for p, _, _ in files)
    elif source == "catalog":
        folder = root
        description = f"catalog {root}"
    else:  # the schema's enum makes this unreachable from config files
        raise ValueError(f"data.source: unknown source {source!r}")
    catalog = Catalog(folder)
    streams = [(kind, str(cfg.symbol)) for kind in kinds if catalog.has(kind, str(cfg.symbol))]
    if not streams:
        raise ValueError(f"data: no {kinds} data for symbol {cfg.symbol!r} in {folder}")
    instruments = {s: catalog.instrument_id(s, create=False) for s in catalog.symbols()}
    start_ns, end_ns = period_ns(cfg, "data")
    if start_ns is not None or end_ns is not None:
        description += f" [{cfg.start or '...'}, {cfg.end or '...'})"
    return PreparedData(catalog, streams, instruments, _count_rows(catalog, streams), description, start_ns, end_ns)
