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

import asyncio
import contextlib
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


_QUOTES = ("FDUSD", "USDT", "USDC", "BUSD", "TUSD", "BTC", "ETH", "BNB", "EUR", "TRY")


def ccxt_symbol(symbol: str, market: str) -> str:
    """Binance's ``BTCUSDT`` as ccxt's unified ``BTC/USDT:USDT`` (futures) or ``BTC/USDT`` (spot)."""
    for quote in _QUOTES:
        if symbol.endswith(quote) and len(symbol) > len(quote):
            base = symbol[: -len(quote)]
            return f"{base}/{quote}:{quote}" if market == "futures" else f"{base}/{quote}"
    raise ValueError(f"live.binance.symbols: cannot tell the quote asset of {symbol!r} (known: {', '.join(_QUOTES)})")


def binance_credentials(cfg: DictConfig):
    """The API credentials ``live.binance`` points at: a secrets file, or the environment."""
    from live.venues.binance.credentials import Credentials

    b = cfg.live.binance
    if b.secrets_file:
        return Credentials.from_file(str(b.secrets_file))
    return Credentials.from_env(str(b.api_key_env), str(b.api_secret_env))


class ExecutionAdapter:
    """``BinanceExecution`` in the runtime's ``Venue`` shape.

    ``send`` never blocks: the commands about one order run in order, each order after
    its previous commands, and different orders concurrently, as REST calls take
    milliseconds each and a cancel must not wait behind another order's submit.
    """

    def __init__(self, cfg: DictConfig) -> None:
        from live.venues.binance.execution import BinanceExecutionConfig

        b = cfg.live.binance
        self.config = BinanceExecutionConfig(
            symbols={iid: ccxt_symbol(s, str(b.market)) for s, iid in session_instruments(cfg).items()},
            market=str(b.market), testnet=bool(b.testnet), rest_url=str(b.rest_url) if b.rest_url else None,
            poll_interval_s=float(b.poll_interval_s),
        )
        self._credentials = binance_credentials(cfg)
        self.execution = None
        self._tails: dict[int, asyncio.Task] = {}
        self._ready = asyncio.Event()

    def send(self, commands: np.ndarray) -> None:
        """Queue ``commands`` (COMMAND_DTYPE); never blocks."""
        for coid in dict.fromkeys(int(c) for c in commands["client_order_id"]):
            group = commands[commands["client_order_id"] == coid].copy()
            self._tails[coid] = asyncio.create_task(self._after(self._tails.get(coid), group))

    async def _after(self, previous: asyncio.Task | None, commands: np.ndarray) -> None:
        if previous is not None:
            with contextlib.suppress(Exception):
                await previous
        await self._ready.wait()
        await self.execution.send(commands)

    async def run(self, deliver) -> None:
        """Start order entry and deliver its reports until cancelled."""
        from live.venues.binance.execution import BinanceExecution

        self.execution = BinanceExecution(self.config, self._credentials,
                                          lambda records: deliver(records, time.perf_counter_ns()))
        await self.execution.start()
        self._ready.set()
        await asyncio.Event().wait()

    async def flush(self, timeout: float) -> bool:
        """Wait until every command sent so far has its answer."""
        pending = [t for t in self._tails.values() if not t.done()]
        if not pending:
            return True
        done, _ = await asyncio.wait(pending, timeout=timeout)
        return len(done) == len(pending)

    async def close(self) -> None:
        """Stop polling and close the connections."""
        for task in self._tails.values():
            task.cancel()
        if self.execution is not None:
            await self.execution.close()

    def stats(self) -> dict:
        return self.execution.stats() if self.execution is not None else {}


def venue_execution(cfg: DictConfig) -> ExecutionAdapter:
    """The real venue's order entry (``live.venue=binance``)."""
    return ExecutionAdapter(cfg)
