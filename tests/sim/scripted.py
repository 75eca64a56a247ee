"""A scripted test strategy and helpers to run it (or any strategy) through the backtest.

The strategy (``on_event``) does nothing on its own: its ``params`` is a script, an
array of intents (``INTENT_DTYPE``), and it acts on the pipeline input at which each
intent is due, through the public ``framework.strategy_api`` calls. An intent fires

* at the ``at_input``-th pipeline input (0-based, counting every call of the
  strategy: market data, reports, timers and control events alike), or, when
  ``at_input`` is negative,
* at the first input whose ``ts_recv`` is at least ``at_ts``.

Actions: SUBMIT, CANCEL, MODIFY and TIMER (``set_timer`` with ``price`` as the fire
time and ``size`` as the timer id).

Every intent fires at most once. The client order id a submit returned is recorded in
the state (``coids[k]`` for intent ``k``); a cancel or modify names its order by the
index of an earlier submit intent (``target_intent``).

``run_script`` wires a complete backtest around the script (the same parts as
``app.backtest.build_backtest``) and returns everything a test needs to check: the
result, the pipeline, the exchange, the journal's inputs and commands, the state.
``run_strategy`` does the same for any strategy kernel (SMA, market maker).

All prices and sizes given to the helpers are whole units; they are converted with
``framework.events.to_fixed``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

from framework.events import (
    EVENT_DTYPE,
    EventKind,
    OrderType,
    Side,
    TimeInForce,
    concat_events,
    to_fixed,
)
from framework.journal import JOURNAL_COMMAND_DTYPE, JournalHasher, JournalWriter, read_journal
from framework.state import Pipeline, PipelineSpec, allocate
from framework.stepper import Stepper
from framework.strategy_api import cancel_order, modify_order, set_timer, submit_order
from sim.backtest import Backtest, BacktestResult, Strategy
from sim.exchange import Exchange, allocate_exchange
from sim.loop import allocate_loop
from sim.models import SIM_PARAMS_DTYPE, FillModel, LatencyModel, latency_streams

T0 = 1_700_000_000_000_000_000
"""A base timestamp (2023-11-14) so that test times look like real ones."""

SUBMIT, CANCEL, MODIFY, TIMER = 0, 1, 2, 3
"""Script actions."""

INTENT_DTYPE = np.dtype(
    [
        ("at_input", "<i8"), ("at_ts", "<i8"), ("action", "<i8"), ("instrument_id", "<i8"),
        ("side", "<i8"), ("order_type", "<i8"), ("price", "<i8"), ("size", "<i8"), ("tif", "<i8"),
        ("flags", "<i8"), ("target_intent", "<i8"), ("trigger_price", "<i8"), ("expire_ts", "<i8"),
    ],
    align=True,
)
SCRIPT_STATE_DTYPE = np.dtype([("n_inputs", "<i8"), ("n_fired", "<i8")], align=True)


@njit(cache=True)
def on_event(p, params, state, ev) -> None:
    """Fire every intent due at this input, in script order."""
    s = state[0][0]
    coids = state[1]
    fired = state[2]
    n = s.n_inputs
    s.n_inputs = n + 1
    now = ev.ts_recv
    for k in range(params.shape[0]):
        if fired[k] != 0:
            continue
        it = params[k]
        due = it.at_input == n if it.at_input >= 0 else now >= it.at_ts
        if not due:
            continue
        fired[k] = 1
        s.n_fired += 1
        if it.action == SUBMIT:
            coids[k] = submit_order(
                p, it.instrument_id, it.side, it.order_type, it.price, it.size, it.tif, it.flags, it.trigger_price,
                it.expire_ts,
            )
        elif it.action == CANCEL:
            cancel_order(p, coids[it.target_intent])
        elif it.action == MODIFY:
            modify_order(p, coids[it.target_intent], it.price, it.size)
        elif it.action == TIMER:
            set_timer(p, it.price, it.size)


def new_state(n_intents: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A fresh state for a script of ``n_intents`` intents."""
    return np.zeros(1, SCRIPT_STATE_DTYPE), np.zeros(n_intents, np.int64), np.zeros(n_intents, np.int64)


# --------------------------------------------------------------------------- script builders


def _intent(action: int, at: int | None, ts: int | None, **fields) -> dict:
    if (at is None) == (ts is None):
        raise ValueError("give exactly one of at= (input index) or ts= (time)")
    return {"action": action, "at_input": -1 if at is None else at, "at_ts": 0 if ts is None else ts, **fields}


def submit(side: int, size: float, price: float = 0.0, *, at: int | None = None, ts: int | None = None,
           order_type: int = OrderType.LIMIT, tif: int = TimeInForce.GTC, flags: int = 0,
           instrument_id: int = 0, trigger: float = 0.0, expire_ts: int = 0) -> dict:
    """A submit intent; ``price``, ``size`` and a stop's ``trigger`` in whole units."""
    return _intent(SUBMIT, at, ts, side=side, size=to_fixed(size), price=to_fixed(price), order_type=order_type,
                   tif=tif, flags=flags, instrument_id=instrument_id, trigger_price=to_fixed(trigger),
                   expire_ts=expire_ts)


def market(side: int, size: float, *, at: int | None = None, ts: int | None = None) -> dict:
    """A market order intent (IOC, as ``strategy_api.market_order`` sends it)."""
    return submit(side, size, 0.0, at=at, ts=ts, order_type=OrderType.MARKET, tif=TimeInForce.IOC)


def cancel(target: int, *, at: int | None = None, ts: int | None = None) -> dict:
    """A cancel of the order submitted by intent ``target``."""
    return _intent(CANCEL, at, ts, target_intent=target)


def modify(target: int, price: float, size: float, *, at: int | None = None, ts: int | None = None) -> dict:
    """A modify (new price, new total size) of the order submitted by intent ``target``."""
    return _intent(MODIFY, at, ts, target_intent=target, price=to_fixed(price), size=to_fixed(size))


def timer(fire_ts: int, timer_id: int, *, at: int | None = None, ts: int | None = None) -> dict:
    """Ask for a TIMER event with ``timer_id`` at ``fire_ts`` (nanoseconds)."""
    return _intent(TIMER, at, ts, price=fire_ts, size=timer_id)


def make_script(intents: list[dict]) -> np.ndarray:
    """Pack intents into the strategy's params array."""
    script = np.zeros(len(intents), INTENT_DTYPE)
    for k, it in enumerate(intents):
        for name, value in it.items():
            script[k][name] = value
    return script


# --------------------------------------------------------------------------- event builders


def make_trades(rows: list[tuple], instrument_id: int = 0, venue_id: int = 0) -> np.ndarray:
    """Trades from ``(ts, price, size)`` or ``(ts, price, size, aggressor_side)`` rows (whole units)."""
    ev = np.zeros(len(rows), EVENT_DTYPE)
    for k, row in enumerate(rows):
        ts, price, size = row[:3]
        ev[k]["ts_event"] = ts
        ev[k]["ts_recv"] = ts
        ev[k]["kind"] = EventKind.TRADE
        ev[k]["side"] = row[3] if len(row) > 3 else Side.NONE
        ev[k]["instrument_id"] = instrument_id
        ev[k]["venue_id"] = venue_id
        ev[k]["price"] = to_fixed(price)
        ev[k]["size"] = to_fixed(size)
        ev[k]["trade_id"] = k + 1
    return ev


def make_quotes(rows: list[tuple], instrument_id: int = 0, venue_id: int = 0) -> np.ndarray:
    """Quotes from ``(ts, bid, bid_size, ask, ask_size)`` rows (whole units)."""
    ev = np.zeros(len(rows), EVENT_DTYPE)
    for k, (ts, bid, bid_size, ask, ask_size) in enumerate(rows):
        ev[k]["ts_event"] = ts
        ev[k]["ts_recv"] = ts
        ev[k]["kind"] = EventKind.QUOTE
        ev[k]["instrument_id"] = instrument_id
        ev[k]["venue_id"] = venue_id
        ev[k]["bid_price"] = to_fixed(bid)
        ev[k]["bid_size"] = to_fixed(bid_size)
        ev[k]["ask_price"] = to_fixed(ask)
        ev[k]["ask_size"] = to_fixed(ask_size)
    return ev


def make_bars(rows: list[tuple], instrument_id: int = 0) -> np.ndarray:
    """Bars from ``(ts, open, high, low, close, volume)`` rows (whole units); ``ts`` is the bar's close."""
    ev = np.zeros(len(rows), EVENT_DTYPE)
    for k, (ts, o, h, lo, c, v) in enumerate(rows):
        ev[k]["ts_event"] = ts
        ev[k]["ts_recv"] = ts
        ev[k]["kind"] = EventKind.BAR
        ev[k]["instrument_id"] = instrument_id
        for name, value in (("open", o), ("high", h), ("low", lo), ("close", c), ("volume", v)):
            ev[k][name] = to_fixed(value)
    return ev


def make_control(ts: int, code: int, value: int = 0, target: int = 0) -> np.ndarray:
    """One CONTROL event (ControlCode ``code``)."""
    ev = np.zeros(1, EVENT_DTYPE)
    ev[0]["ts_event"] = ts
    ev[0]["ts_recv"] = ts
    ev[0]["kind"] = EventKind.CONTROL
    ev[0]["control"] = code
    ev[0]["value"] = value
    ev[0]["target"] = target
    return ev


def merge(*parts: np.ndarray) -> np.ndarray:
    """Merge event arrays by ``ts_event``; ties keep the order of ``parts`` (stable sort)."""
    ev = concat_events(list(parts))
    order = np.argsort(ev["ts_event"], kind="stable")
    out = ev[order]
    assert out.dtype == EVENT_DTYPE
    return out


# --------------------------------------------------------------------------- running


class CapturingHasher(JournalHasher):
    """A JournalHasher that also keeps a copy of every block (the journal, in memory)."""

    def __init__(self) -> None:
        super().__init__()
        self.event_blocks: list[np.ndarray] = []
        self.command_blocks: list[bytes] = []
        self.block_sizes: list[int] = []

    def update(self, events: np.ndarray, commands: np.ndarray) -> None:
        super().update(events, commands)
        # Copied as raw bytes: numpy's copy of a dtype with padding does not keep the padding bytes.
        self.event_blocks.append(np.frombuffer(np.ascontiguousarray(events).tobytes(), EVENT_DTYPE).copy())
        self.command_blocks.append(np.ascontiguousarray(commands).tobytes())
        self.block_sizes.append(len(events))

    def events(self) -> np.ndarray:
        return concat_events(self.event_blocks)

    def commands(self) -> np.ndarray:
        # Joined byte for byte (np.concatenate would not keep the records' padding bytes); the
        # result is a read-only view of those bytes.
        return np.frombuffer(b"".join(self.command_blocks), dtype=JOURNAL_COMMAND_DTYPE)


@dataclass
class Run:
    """Everything one backtest produced."""

    result: BacktestResult
    p: Pipeline
    ex: Exchange
    events: np.ndarray
    """The journal's inputs: every event ``step`` saw, in order, with its ``ts_recv``."""
    commands: np.ndarray
    """The journal's commands (JOURNAL_COMMAND_DTYPE: ``input_index`` and ``command``)."""
    state: object
    journal_hash: str
    n_journal_blocks: int = 0

    @property
    def fills(self) -> np.ndarray:
        return self.result.fills

    @property
    def coids(self) -> np.ndarray:
        """Client order id returned by each script intent (0 for cancels and modifies)."""
        return self.state[1]

    def reports(self, coid: int | None = None) -> np.ndarray:
        """Execution reports the strategy received (optionally of one order)."""
        k = self.events["kind"]
        mask = (k >= EventKind.ACCEPTED) & (k <= EventKind.CANCEL_REJECTED)
        if coid is not None:
            mask &= self.events["client_order_id"] == coid
        return self.events[mask]

    def report_kinds(self, coid: int) -> list[int]:
        return [int(k) for k in self.reports(coid)["kind"]]

    def cmds(self, kind: int | None = None) -> np.ndarray:
        """Commands (COMMAND_DTYPE), optionally of one kind."""
        c = self.commands["command"]
        return c if kind is None else c[c["kind"] == kind]

    def order(self, coid: int):
        """The pipeline's order-table record of ``coid``."""
        slot = coid % len(self.p.orders)
        rec = self.p.orders[slot]
        assert rec["client_order_id"] == coid, f"slot of order {coid} was reused"
        return rec


def sim_params(*, latency=(0, 0, 0), jitter=(0.0, 0.0, 0.0), latency_model: int = LatencyModel.CONSTANT,
               seed: int = 0, fees=(0.0, 0.0), fill_model: int = FillModel.TOUCH,
               equity_interval_ns: int = 0, faults=(0.0, 0.0, 0.0), n_venues: int = 1) -> np.ndarray:
    """``faults`` are the transient reject, acknowledgement loss and submit loss rates;
    every one of the ``n_venues`` venues gets the same parameters."""
    prm = np.zeros(n_venues, SIM_PARAMS_DTYPE)
    prm["latency_model"] = latency_model
    prm["seed"] = seed
    prm["feed_ns"], prm["order_ns"], prm["response_ns"] = latency
    prm["feed_jitter_ns"], prm["order_jitter_ns"], prm["response_jitter_ns"] = jitter
    prm["maker_fee_rate"], prm["taker_fee_rate"] = fees
    prm["fill_model"] = fill_model
    prm["equity_interval_ns"] = equity_interval_ns
    prm["transient_reject_rate"], prm["ack_loss_rate"], prm["submit_loss_rate"] = faults
    return prm


def run_strategy(on_event_kernel, params, state, events: np.ndarray, *, latency=(0, 0, 0),
                 jitter=(0.0, 0.0, 0.0), latency_model: int = LatencyModel.CONSTANT, seed: int = 0,
                 fees=(0.0, 0.0), fill_model: int = FillModel.TOUCH, max_order_size: float = 100.0,
                 max_position: float = 100.0, collar: float = 0.5, chunk_rows: int | None = None,
                 order_capacity: int = 256, initial_capital: float = 1_000_000.0,
                 equity_interval_ns: int = 0, journal_capacity: int = 1 << 16,
                 fill_capacity: int = 1 << 16, equity_capacity: int = 1 << 16,
                 split_at: list[int] | None = None, journal_path=None, n_instruments: int = 1,
                 instrument_limits: dict | None = None, portfolio_limits: dict | None = None,
                 execution: dict | None = None, faults=(0.0, 0.0, 0.0), fault_seed: int = 0,
                 venues: list[dict] | None = None, remote: bool = False) -> Run:
    """Run one backtest of any strategy kernel over ``events`` (copied: the loop writes ``ts_recv``).

    The events go to the loop in chunks of ``chunk_rows`` rows, or cut at the row indices
    ``split_at`` (repeated indices make empty chunks), or as one chunk. With ``journal_path``
    the journal is written there by a ``JournalWriter`` and read back with ``read_journal``;
    otherwise it is captured in memory (``CapturingHasher``). ``execution`` sets the execution
    stage's limits (``EXEC_LIMITS_DTYPE``: retries, acknowledgement timeout); ``faults`` the
    exchange's injected fault rates (``sim_params``), drawn from a stream seeded by ``fault_seed``.
    ``venues`` runs several venues (ids 0, 1, ...) and routes orders between them: one dict per
    venue with ``maker``/``taker`` fee rates and ``order_ns``/``response_ns``/``feed_ns``
    latencies, each defaulting to ``fees`` and ``latency``. ``remote`` steps the pipeline outside
    the loop, as the lockstep venue server does: the loop stops at every input and a
    ``Stepper`` on the same pipeline answers it from Python.
    """
    assert events.dtype == EVENT_DTYPE
    assert np.all((events["instrument_id"] >= 0) & (events["instrument_id"] < n_instruments))
    spec = PipelineSpec(
        n_instruments=n_instruments,
        order_capacity=order_capacity,
        initial_capital=initial_capital,
        max_order_size=(to_fixed(max_order_size),),
        max_position=(to_fixed(max_position),),
        price_collar=(float(collar),),
        instrument_limits=instrument_limits or {},
        portfolio_limits=portfolio_limits or {},
        execution=execution or {},
        routing=tuple((k, v.get("maker", fees[0]), v.get("taker", fees[1])) for k, v in enumerate(venues or [])),
    )
    p = allocate(spec)
    prm = sim_params(latency=latency, jitter=jitter, latency_model=latency_model, seed=seed, fees=fees,
                     fill_model=fill_model, equity_interval_ns=equity_interval_ns, faults=faults,
                     n_venues=max(1, len(venues or [])))
    for k, v in enumerate(venues or []):
        prm["maker_fee_rate"][k] = v.get("maker", fees[0])
        prm["taker_fee_rate"][k] = v.get("taker", fees[1])
        for channel, default in zip(("feed_ns", "order_ns", "response_ns"), latency):
            prm[channel][k] = v.get(channel, default)
    ex = allocate_exchange(n_instruments, order_capacity, prm, latency_streams(seed, fault_seed),
                           fill_capacity=fill_capacity)
    lp = allocate_loop(order_capacity, len(p.intents), journal=True, journal_capacity=journal_capacity,
                       equity_capacity=equity_capacity, remote=remote)
    journal = CapturingHasher() if journal_path is None else JournalWriter(journal_path, {"test": "scripted"})
    stepper = Stepper(p, on_event_kernel, params, state) if remote else None
    bt = Backtest(p, ex, lp, Strategy(on_event_kernel, params, state), journal,
                  remote=None if stepper is None else stepper.feed)
    events = events.copy()
    if split_at is not None:
        cuts = [0, *split_at, len(events)]
        chunks = [events[a:b].copy() for a, b in zip(cuts[:-1], cuts[1:])]
    elif chunk_rows is None or len(events) == 0:
        chunks = [events]
    else:
        chunks = [events[i : i + chunk_rows].copy() for i in range(0, len(events), chunk_rows)]
    result = bt.run(chunks)
    if journal_path is None:
        jev, jcmd, n_blocks = journal.events(), journal.commands(), len(journal.block_sizes)
    else:
        _, jev, jcmd = read_journal(journal_path)
        n_blocks = 0
    return Run(result=result, p=p, ex=ex, events=jev, commands=jcmd, state=state,
               journal_hash=result.journal_hash, n_journal_blocks=n_blocks)


def run_script(events: np.ndarray, script: list[dict] | np.ndarray, **kw) -> Run:
    """Run the scripted strategy over ``events``; keywords as ``run_strategy``."""
    if not isinstance(script, np.ndarray):
        script = make_script(script)
    return run_strategy(on_event, script, new_state(len(script)), events, **kw)


def signed_fill_qty(fills: np.ndarray) -> int:
    """Sum of ``side * size`` over fills (fixed point)."""
    return int(np.sum(fills["side"].astype(np.int64) * fills["size"]))

