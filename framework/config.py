"""Configuration schemas: typed dataclasses that Hydra validates every run against.

One dataclass per config group. Hydra merges the YAML files in ``conf/`` onto these
schemas, so a wrong type or an unknown key fails at start with the full key, the
value and what was expected, before anything runs. Units are in the names: ``_ns``
for nanoseconds, ``_rate`` for fractions of notional; sizes and prices are in whole
units of the instrument (converted to fixed point by the runner).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from hydra.core.config_store import ConfigStore


class LatencyModelName(Enum):
    constant = 0
    random = 1


class FillModelName(Enum):
    touch = 0
    through = 1


class DataSource(Enum):
    synthetic = 0
    file = 1
    catalog = 2


@dataclass
class ModeConfig:
    name: str = "backtest"


@dataclass
class LatencyConfig:
    model: LatencyModelName = LatencyModelName.constant
    feed_ns: int = 0
    order_ns: int = 0
    response_ns: int = 0
    feed_jitter_ns: float = 0.0
    order_jitter_ns: float = 0.0
    response_jitter_ns: float = 0.0
    seed: int = 0


@dataclass
class FeesConfig:
    maker_rate: float = 0.0
    taker_rate: float = 0.0


@dataclass
class FillConfig:
    model: FillModelName = FillModelName.touch


@dataclass
class FaultsConfig:
    """Faults the simulated exchange injects (sim/models.py), each a probability per message."""

    transient_reject_rate: float = 0.0
    """An arriving SUBMIT or MODIFY is refused with VENUE_BUSY."""
    ack_loss_rate: float = 0.0
    """The acknowledgement (ACCEPTED) of a new order is lost on its way back."""
    submit_loss_rate: float = 0.0
    """A SUBMIT is lost on its way to the venue."""
    seed: int = 0


@dataclass
class SimConfig:
    latency: LatencyConfig = field(default_factory=LatencyConfig)
    fees: FeesConfig = field(default_factory=FeesConfig)
    fill: FillConfig = field(default_factory=FillConfig)
    faults: FaultsConfig = field(default_factory=FaultsConfig)
    order_capacity: int = 4096
    queue_capacity: int = 16384


@dataclass
class VenueConfig:
    """One venue of the ``venue`` group; its id is its place in the list. A field left
    null takes the ``sim`` group's value (latency in ``sim.latency``, fees in ``sim.fees``)."""

    name: str = "SIM"
    maker_rate: float | None = None
    taker_rate: float | None = None
    feed_ns: int | None = None
    order_ns: int | None = None
    response_ns: int | None = None


@dataclass
class VenuesConfig:
    """The venues orders may go to (conf/venue). One venue: orders go to venue 0. Several:
    the execution stage routes each order by all-in price (framework/routing.py), and the
    simulated exchange runs one book per venue."""

    venues: list[VenueConfig] = field(default_factory=lambda: [VenueConfig()])


@dataclass
class ExecutionConfig:
    """Retries and unknown outcomes (framework/recovery.py, docs/concepts/execution.md)."""

    max_attempts: int = 4
    """Sends of one order in all, the first included (1: never re-sent)."""
    backoff_base_s: float = 0.1
    """Wait before the first re-send; each further one waits ``backoff_multiplier`` times longer."""
    backoff_multiplier: float = 2.0
    backoff_max_s: float = 5.0
    """Longest wait between two sends (0: no cap)."""
    jitter: float = 0.5
    """Share of each wait drawn at random per order and attempt (0: exact, 1: anywhere up to it)."""
    ack_timeout_s: float = 2.0
    """How long an order may go unacknowledged before the venue is queried (0: never)."""


class ReferenceName(Enum):
    mid_or_last = 0
    last = 1
    mid = 2


class BreakerStateName(Enum):
    active = 0
    reducing = 1
    halted = 2


@dataclass
class InstrumentRiskConfig:
    """Per-instrument limits (framework/risk/records.py). 0 turns a limit off, except the
    order size and the long and short limits, where 0 allows no order."""

    max_order_size: float = 10.0
    max_long: float = 10.0
    max_short: float = 10.0
    max_order_notional: float = 0.0
    price_collar: float = 0.05
    collar_reference: ReferenceName = ReferenceName.mid_or_last
    price_band: float = 0.0
    band_window_s: float = 300.0
    max_open_orders: int = 0
    duplicate_window_s: float = 0.0
    max_messages_per_s: int = 0
    max_fills_per_s: int = 0
    max_data_age_s: float = 0.0
    max_slippage: float = 0.0


@dataclass
class PortfolioRiskConfig:
    max_gross_exposure: float = 0.0
    max_open_orders: int = 0
    max_messages_per_s: int = 0
    daily_loss_limit: float = 0.0
    max_drawdown: float = 0.0
    max_reject_rate: float = 0.0
    reject_window: int = 100
    day_offset_h: float = 0.0


@dataclass
class BreakerConfig:
    """The state each trigger trips the circuit breaker to (active: reject only, never trip)."""

    on_daily_loss: BreakerStateName = BreakerStateName.reducing
    on_drawdown: BreakerStateName = BreakerStateName.reducing
    on_reject_rate: BreakerStateName = BreakerStateName.halted
    on_throttle: BreakerStateName = BreakerStateName.halted
    on_stale_data: BreakerStateName = BreakerStateName.reducing
    on_fill_rate: BreakerStateName = BreakerStateName.halted


@dataclass
class RiskConfig:
    instrument: InstrumentRiskConfig = field(default_factory=InstrumentRiskConfig)
    instruments: dict[str, Any] = field(default_factory=dict)
    """Per-symbol overrides of ``instrument``'s keys."""
    portfolio: PortfolioRiskConfig = field(default_factory=PortfolioRiskConfig)
    breaker: BreakerConfig = field(default_factory=BreakerConfig)
    strategy_id: int = 0


@dataclass
class StrategyConfig:
    name: str = "sma_crossover"
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class SyntheticConfig:
    start: str = "2024-01-01"
    days: int = 1
    trades_per_day: int = 200_000
    quotes_per_trade: float = 2.0
    initial_price: float = 100.0
    lot_size: float = 1.0
    annual_volatility: float = 0.4
    seed: int = 0
    venues: int = 1
    """List the instrument on this many venues (ids 0..venues-1), around one efficient price."""


@dataclass
class FileConfig:
    path: str = ""
    format: str = ""
    venue: int = 0
    """The venue id this file's rows come from (an index into ``venue.venues``)."""


@dataclass
class DataConfig:
    source: DataSource = DataSource.synthetic
    symbol: str = "SYNTH"
    tick_size: float = 0.01
    kinds: list[str] = field(default_factory=lambda: ["quote", "trade"])
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)
    files: list[FileConfig] = field(default_factory=list)
    catalog_root: str = "data/catalog"
    start: str | None = None
    end: str | None = None


@dataclass
class ReportConfig:
    sample_interval_ns: int = 60_000_000_000
    calendar: str = "24/7"


class ModelTypeName(Enum):
    logistic_regression = 0
    gradient_boosting = 1
    xgboost = 2


class LabelPriceName(Enum):
    mid = 0
    trade = 1


@dataclass
class PeriodConfig:
    """A UTC time range ``[start, end)`` such as ``2024-01-01T16:00``; null leaves that side open."""

    start: str | None = None
    end: str | None = None


@dataclass
class LabelConfig:
    """What a model learns: whether the price is higher ``horizon_ns`` after each trade (models/dataset.py)."""

    horizon_ns: int = 1_000_000_000
    price: LabelPriceName = LabelPriceName.mid


@dataclass
class SplitsConfig:
    """Fractions of the dataset's rows, in time order: train, then validation, then test."""

    train: float = 0.6
    validation: float = 0.2
    test: float = 0.2


@dataclass
class PromotionConfig:
    """The gates a version must pass before ``mode=promote`` moves the alias to it."""

    period: PeriodConfig = field(default_factory=PeriodConfig)
    min_sharpe: float = 0.0
    min_total_return: float = 0.0
    max_drawdown: float = 0.05
    min_fills: int = 1
    parity_atol: float = 1e-5
    parity_rtol: float = 1e-5


@dataclass
class ModelConfig:
    """A model's lifecycle: where it is tracked, how it is trained, and how it is promoted."""

    name: str = "signal"
    version: int | None = None
    alias: str = "champion"
    tracking_uri: str | None = None
    registry_dir: str = "mlruns"
    experiment: str = "signal"
    type: ModelTypeName = ModelTypeName.logistic_regression
    params: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    features: str = "microstructure"
    label: LabelConfig = field(default_factory=LabelConfig)
    splits: SplitsConfig = field(default_factory=SplitsConfig)
    train_period: PeriodConfig = field(default_factory=PeriodConfig)
    parity_rows: int = 2000
    objective: str = "validation_roc_auc"
    promotion: PromotionConfig = field(default_factory=PromotionConfig)


@dataclass
class ParityConfig:
    """The parity harness (app/parity.py, docs/concepts/parity.md)."""

    journal: str | None = None
    """Replay this recorded journal (from any mode) instead of checking the configured backtest."""
    topologies: list[str] = field(default_factory=lambda: ["single", "multi"])
    """Lockstep topologies checked against the backtest (level 3); empty skips the level."""
    paper_s: float = 3.0
    """Length of the paper session whose journal is replayed (level 2); 0 skips it."""
    paper_speed: float = 100.0
    """Data time per wall-clock time in that paper session."""


class TopologyName(Enum):
    single = 0
    multi = 1


class TransportName(Enum):
    ipc = 0
    tcp = 1


class LiveVenueName(Enum):
    sim = 0
    binance = 1


@dataclass
class CpuConfig:
    """Cores each process is pinned to (``os.sched_setaffinity``); empty: not pinned.
    In the single topology the engine's cores pin the one process that runs it all."""

    engine: list[int] = field(default_factory=list)
    market_data: list[int] = field(default_factory=list)
    gateway: list[int] = field(default_factory=list)
    venue: list[int] = field(default_factory=list)


@dataclass
class PaperConfig:
    """How the simulated venue server plays the data on wall-clock time (mode=paper)."""

    speed: float = 1.0
    """Data time per wall-clock time: 1 plays the data at its own pace, 10 ten times faster."""
    max_batch: int = 256
    """Most data rows published in one frame when several are due at once."""


@dataclass
class BinanceLiveConfig:
    """The Binance venue of mode=live (live/venues/binance): market data and order entry."""

    symbols: list[str] = field(default_factory=lambda: ["BTCUSDT"])
    """Binance symbols; instrument ids follow the list's order. Strategy instruments name them."""
    market: str = "futures"
    """futures (USD-M) or spot."""
    testnet: bool = True
    """Order entry on Binance's testnet (a real venue only with testnet=false)."""
    ws_url: str | None = None
    """Market-data WebSocket base (null: Binance's own for the market)."""
    depth_rest_url: str | None = None
    """Order-book snapshot endpoint (null: Binance's own)."""
    rest_url: str | None = None
    """Order-entry REST base (null: Binance's own, or its testnet's)."""
    channels: list[str] = field(default_factory=lambda: ["depth@0ms", "bookTicker", "trade"])
    api_key_env: str = "BINANCE_API_KEY"
    api_secret_env: str = "BINANCE_API_SECRET"
    secrets_file: str | None = None
    """A JSON file with api_key and api_secret (mode 0600), instead of the environment."""
    poll_interval_s: float = 0.5


@dataclass
class LiveConfig:
    """The live runtime (live/, app/live.py): topology, transport, venue and stopping."""

    topology: TopologyName = TopologyName.single
    transport: TransportName = TransportName.ipc
    ipc_dir: str | None = None
    """Folder of the Unix sockets (null: a new private folder under the temp dir)."""
    tcp_host: str = "127.0.0.1"
    tcp_base_port: int = 57100
    venue: LiveVenueName = LiveVenueName.sim
    """Where orders go: the simulated venue server (paper, lockstep) or a real venue."""
    duration_s: float | None = None
    """Stop after this long (null: until SIGTERM, or until a lockstep session ends)."""
    shutdown_timeout_s: float = 5.0
    """On stopping, how long to wait for the venue to confirm the cancels."""
    journal_flush_s: float = 0.05
    journal_sync_s: float = 1.0
    heartbeat_s: float = 0.25
    spin_s: float = 0.0
    """After each message the engine polls its sockets without sleeping this long (0: it
    sleeps at once). Lower, steadier latency for CPU time; pin the engine when you use it."""
    fast_path: bool = True
    """Market-data frames to orders in one compiled call (live/fastpath.py); false takes
    the layered path, for comparison."""
    uvloop: bool = True
    """Run the live processes' event loops on uvloop where it is installed, but the simulated
    venue's, which paces the market better on asyncio's (app/event_loop.py); false: asyncio's."""
    lockstep_timeout_s: float = 600.0
    """How long the lockstep server waits for the engine's answer to one input (the first
    includes the engine's start, compilation included)."""
    end_linger_s: float = 30.0
    """How long a finished simulated venue keeps serving replays of its last frames."""
    start_timeout_s: float = 900.0
    """How long the supervisor waits for a process of the session to be ready."""
    cpus: CpuConfig = field(default_factory=CpuConfig)
    paper: PaperConfig = field(default_factory=PaperConfig)
    binance: BinanceLiveConfig = field(default_factory=BinanceLiveConfig)


@dataclass
class RunConfig:
    mode: ModeConfig = field(default_factory=ModeConfig)
    strategy: StrategyConfig = field(default_factory=StrategyConfig)
    data: DataConfig = field(default_factory=DataConfig)
    sim: SimConfig = field(default_factory=SimConfig)
    risk: RiskConfig = field(default_factory=RiskConfig)
    execution: ExecutionConfig = field(default_factory=ExecutionConfig)
    venue: VenuesConfig = field(default_factory=VenuesConfig)
    parity: ParityConfig = field(default_factory=ParityConfig)
    live: LiveConfig = field(default_factory=LiveConfig)
    report: ReportConfig = field(default_factory=ReportConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    initial_capital: float = 1_000_000.0
    chunk_rows: int = 1_000_000
    journal: bool = False
    progress: bool = True
    objective: str = "sharpe"


def register_configs() -> None:
    """Register the schemas so that ``conf/config.yaml`` can name ``schema`` in its defaults."""
    cs = ConfigStore.instance()
    cs.store(name="schema", node=RunConfig)
