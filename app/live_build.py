"""Build a live session's parts from config: the engine, and the adapters of a real venue.

The engine is the backtest's pipeline and strategy (``app.backtest``), allocated the
same way from the same config, fed from Python by a ``Stepper`` and journaled in place.
Its instruments are the data catalog's when the venue is simulated (the server plays
that data) and ``live.binance.symbols`` in that order when it is Binance. The journal
header records the mode, the strategy, the instruments, the model and the whole
resolved config, so ``mode=parity parity.journal=...`` can rebuild the pipeline and
replay it.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from omegaconf import DictConfig, OmegaConf

from app.backtest import build_strategy, pipeline_spec
from app.data_source import prepare
from app.model_source import model_meta, strategy_model
from framework.journal import JournalWriter
from framework.state import allocate
from framework.stepper import Stepper
from live.engine import Engine


def session_instruments(cfg: DictConfig) -> dict[str, int]:
    """Symbol -> instrument id: the catalog's for the simulated venue, Binance's symbols in order."""
    if str(OmegaConf.select(cfg, "live.venue", default="sim")).endswith("binance"):
        symbols = list(cfg.live.binance.symbols)
        if not symbols or len(set(symbols)) != len(symbols):
            raise ValueError(f"live.binance.symbols: give distinct symbols, got {symbols}")
        return {str(s): i for i, s in enumerate(symbols)}
    return prepare(cfg.data).instruments


def journal_header(cfg: DictConfig, instruments: dict[str, int], model_info: dict) -> dict:
    """What a live journal says about itself."""
    return {"mode": cfg.mode.name, "strategy": cfg.strategy.name, "instruments": instruments,
            "started_ns": time.time_ns(), **model_info,
            "config": OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)}


def build_engine(cfg: DictConfig, out_dir: Path) -> Engine:
    """The engine of a session: pipeline, strategy and an in-place journal at ``out_dir/journal.bin``."""
    instruments = session_instruments(cfg)
    model = strategy_model(cfg)
    strategy = build_strategy(cfg, instruments, model)
    p = allocate(pipeline_spec(cfg, instruments))
    journal = JournalWriter(out_dir / "journal.bin", journal_header(cfg, instruments, model_meta(model)),
                            in_place=True)
    stepper = Stepper(p, strategy.on_event, strategy.params, strategy.state)
    return Engine(stepper, n_venues=len(cfg.venue.venues), journal=journal, lockstep=cfg.mode.name == "lockstep")


# -- Binance ----------------------------------------------------------------------------------------


class FeedAdapter:
    """``BinanceFeed`` in the runtime's ``Feed`` shape."""

    def __init__(self, cfg: DictConfig) -> None:
        self._cfg = cfg
        self.feed = None

    async def run(self, deliver) -> None:
        from live.venues.binance.feed import BinanceFeed

        async def sink(records: np.ndarray) -> None:
            deliver(records, time.perf_counter_ns())

        self.feed = BinanceFeed(binance_feed_config(self._cfg), sink)
        await self.feed.run()

    def stats(self) -> dict:
        return self.feed.stats() if self.feed is not None else {}


def binance_feed_config(cfg: DictConfig):
    """``FeedConfig`` of ``live.binance`` (Binance's own endpoints unless overridden)."""
    from live.venues.binance.feed import FeedConfig
    from live.venues.binance.messages import Instrument

    b = cfg.live.binance
    futures = str(b.market) == "futures"
    kwargs = {
        "symbols": {s: Instrument(i, 0) for s, i in session_instruments(cfg).items()},
        "channels": tuple(b.channels),
        "sync_mode": "futures" if futures else "spot",
    }
    if b.ws_url:
        kwargs["ws_url"] = str(b.ws_url)
    elif not futures:
        kwargs["ws_url"] = "wss://stream.binance.com:9443/stream"
    if b.depth_rest_url:
        kwargs["rest_url"] = str(b.depth_rest_url)
    elif not futures:
        kwargs["rest_url"] = "https://api.binance.com/api/v3/depth"
    return FeedConfig(**kwargs)


def venue_feed(cfg: DictConfig) -> FeedAdapter:
    """The real venue's market data (``live.venue=binance``)."""
    return FeedAdapter(cfg)
