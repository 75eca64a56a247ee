"""Properties of whole backtests on random trade/quote streams.

Three strategies trade the random streams: the market maker (quotes), the SMA crossover
(trades, market orders) and the scripted strategy with a random script (every order
type, time in force, post-only, cancels and modifies). For every run:

* the position equals the signed sum of the fills (and of the fill reports);
* no fill is at a price the data never offered: a taker fill at a trade price or a
  quote touch that had at least the fill's size, at or before the fill; a maker fill at
  the order's own limit price, on a trade or opposite quote at that very exchange time
  that reached the price (strictly through it under the THROUGH model), after the order
  was accepted;
* no strategy sees an event before its time: market data reaches it at or after its
  ``ts_event`` (plus the feed latency), inputs are in ``ts_recv`` order, and every
  command is stamped with the ``ts_recv`` of the input that caused it;
* the pipeline's order statuses are legal: replaying the journal (requests and reports)
  through the transition table gives exactly the final order table, and at the end an
  order is working in the pipeline if and only if it is working at the exchange (an order
  hit by the known pending-cancel rejection bug, test_exchange.py, is left out of that
  last check);
* the equity invariant holds at the end of the run;
* runs are deterministic: the same inputs give the same journal hash, whatever the chunk
  size, with constant or seeded random latency.
"""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scripted import (
    CANCEL,
    MODIFY,
    SUBMIT,
    T0,
    make_quotes,
    make_script,
    make_trades,
    merge,
    new_state,
    on_event,
    run_strategy,
    signed_fill_qty,
)

import strategies.market_maker as mm
import strategies.sma_crossover as sma
from framework.events import (
    EVENT_DTYPE,
    PRICE_SCALE,
    CommandKind,
    EventKind,
    Liquidity,
    OrderFlag,
    OrderType,
    RejectReason,
    Side,
    TimeInForce,
    to_fixed,
)
from framework.order_state import N_STATUS, OrderAction, OrderStatus, is_open, next_status
from framework.state import Counter
from sim.models import FillModel, LatencyModel

K = EventKind
TICK = to_fixed(0.01)
SETTINGS = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# --------------------------------------------------------------------------- random inputs
#
# Hypothesis draws a few knobs and a seed; numpy builds the stream (and the script) from
# them. That gives long, varied streams per example (many ties, trends, gaps in the book)
# and a failing example still shrinks to a handful of numbers that reproduce it.

stream_knobs = st.fixed_dictionaries({
    "seed": st.integers(0, 2**32 - 1),
    "n": st.integers(5, 120),
    "trade_frac": st.sampled_from([0.0, 0.3, 0.5, 1.0]),
    "vol": st.integers(0, 3),  # largest mid move per row, ticks
    "tie_frac": st.sampled_from([0.0, 0.3, 0.7]),  # share of rows at the same time as the previous one
    "empty_frac": st.sampled_from([0.0, 0.1]),  # share of quote sides with no size
})
LATENCIES = [(0, 0, 0), (10, 20, 30), (25, 5, 60), (100, 40, 7)]


def build_stream(knobs: dict, kinds: str = "both") -> np.ndarray:
    """Trades and quotes around a random walk of the mid (ticks of 0.01 around 100.00)."""
    rng = np.random.default_rng(knobs["seed"])
    n = knobs["n"]
    trade_frac = 1.0 if kinds == "trades" else 0.0 if kinds == "quotes" else knobs["trade_frac"]
    trades, quotes = [], []
    ts, mid = T0 + 1000, 10_000
    for _ in range(n):
        ts += 0 if rng.random() < knobs["tie_frac"] else int(rng.choice([3, 10, 20, 35, 80]))
        mid = max(mid + int(rng.integers(-knobs["vol"], knobs["vol"] + 1)), 100)
        if rng.random() < trade_frac:
            trades.append((ts, (mid + int(rng.integers(-3, 4))) / 100, int(rng.integers(1, 7)) * 0.5))
        else:
            bid, ask = mid - int(rng.integers(1, 3)), mid + int(rng.integers(1, 3))
            sizes = rng.integers(1, 7, size=2) * 0.5
            sizes[rng.random(2) < knobs["empty_frac"]] = 0.0
            quotes.append((ts, bid / 100, float(sizes[0]), ask / 100, float(sizes[1])))
    parts = [p for p in (make_quotes(quotes), make_trades(trades)) if len(p)]
    return merge(*parts) if parts else np.zeros(0, EVENT_DTYPE)


@st.composite
def run_options(draw):
    opts = {
        "latency": draw(st.sampled_from(LATENCIES)),
        "fill_model": draw(st.sampled_from([FillModel.TOUCH, FillModel.THROUGH])),
        "fees": draw(st.sampled_from([(0.0, 0.0), (-0.0001, 0.0004)])),
    }
    if draw(st.booleans()):
        opts.update(latency_model=LatencyModel.RANDOM, jitter=(30.0, 50.0, 20.0), seed=draw(st.integers(0, 2**31)))
    return opts


script_knobs = st.fixed_dictionaries({
    "seed": st.integers(0, 2**32 - 1),
    "n_orders": st.integers(1, 15),
    "horizon": st.sampled_from([5, 20, 60]),  # inputs over which the orders are spread
})


def build_script(knobs: dict) -> np.ndarray:
    """Random orders (every type, time in force and post-only), each maybe followed a few inputs
    later by a modify and/or a cancel (sometimes on the same input: before any answer)."""
    rng = np.random.default_rng(knobs["seed"])
    rows = []
    for _ in range(knobs["n_orders"]):
        k = len(rows)
        at = int(rng.integers(0, knobs["horizon"]))
        otype = OrderType.MARKET if rng.random() < 0.2 else OrderType.LIMIT
        rec = {"at_input": at, "action": SUBMIT, "side": int(rng.choice([Side.BUY, Side.SELL])),
               "order_type": otype, "size": to_fixed(int(rng.integers(1, 6)) * 0.5)}
        if otype == OrderType.MARKET:
            rec.update(price=0, tif=TimeInForce.IOC, flags=0)
        else:
            rec.update(price=to_fixed((10_000 + int(rng.integers(-4, 5))) / 100),
                       tif=int(rng.choice([TimeInForce.GTC, TimeInForce.GTC, TimeInForce.IOC, TimeInForce.FOK])),
                       flags=OrderFlag.POST_ONLY if rng.random() < 0.3 else 0)
        rows.append(rec)
        if otype == OrderType.LIMIT and rng.random() < 0.5:
            rows.append({"at_input": at + int(rng.integers(0, 6)), "action": MODIFY, "target_intent": k,
                         "price": rec["price"] + TICK * int(rng.integers(-2, 3)),
                         "size": to_fixed(int(rng.integers(1, 6)) * 0.5)})
        if rng.random() < 0.4:
            rows.append({"at_input": at + int(rng.integers(0, 8)), "action": CANCEL, "target_intent": k})
    return make_script(rows)


def run_mm(events, **opts):
    params, state = mm.make(mm.Params(instrument="X", tick_size=0.01, half_spread_ticks=1, order_size=1.0,
                                      max_inventory=3.0, skew_ticks=1.0, requote_ticks=1), {"X": 0})
    return run_strategy(mm.on_event, params, state, events, max_order_size=10, max_position=10, **opts)


def run_sma(events, **opts):
    params, state = sma.make(sma.Params(instrument="X", fast=2, slow=4, order_size=1.0), {"X": 0})
    return run_strategy(sma.on_event, params, state, events, max_order_size=10, max_position=10, **opts)


def run_random_script(events, script, **opts):
    return run_strategy(on_event, script, new_state(len(script)), events, max_order_size=2.5, max_position=6,
                        collar=0.03, **opts)


# --------------------------------------------------------------------------- the checks


def check_positions(run) -> None:
    p = run.p
    assert p.positions[0]["qty"] == signed_fill_qty(run.fills)
    reps = run.reports()
    fills = reps[(reps["kind"] == K.FILLED) | (reps["kind"] == K.PARTIALLY_FILLED)]
    assert int(np.sum(fills["side"].astype(np.int64) * fills["size"])) == p.positions[0]["qty"]
    assert len(fills) == len(run.fills) == p.counters[Counter.FILLS]
    assert np.all(run.fills["size"] > 0)
    # Equity = capital + cash flows + position at the mark.
    f = run.fills
    cash = float(np.sum(-f["side"] * (f["size"] / PRICE_SCALE) * (f["price"] / PRICE_SCALE) - f["fee"] / PRICE_SCALE))
    pf = p.portfolio[0]
    expected = pf["initial_capital"] + cash + p.positions[0]["qty"] / PRICE_SCALE * p.positions[0]["mark"]
    assert abs(pf["equity"] - expected) <= 1e-6 * max(1.0, abs(expected))


def check_fill_prices(run, market: np.ndarray, fill_model: int) -> None:
    """``market`` is the input data (ts_event in exchange time)."""
    trades = market[market["kind"] == K.TRADE]
    quotes = market[market["kind"] == K.QUOTE]
    reps = run.reports()
    accepted_at = {int(r["client_order_id"]): int(r["ts_event"]) for r in reps[reps["kind"] == K.ACCEPTED]}
    limit_prices: dict[int, set[int]] = {}
    for c in run.cmds():
        if c["kind"] in (CommandKind.SUBMIT, CommandKind.MODIFY):
            limit_prices.setdefault(int(c["client_order_id"]), set()).add(int(c["price"]))
    for f in run.fills:
        te, px, sz, side, coid = int(f["ts_event"]), int(f["price"]), int(f["size"]), int(f["side"]), int(
            f["client_order_id"])
        if f["liquidity"] == Liquidity.TAKER:
            tr = trades[(trades["ts_event"] <= te) & (trades["price"] == px) & (trades["size"] >= sz)]
            if side == Side.BUY:
                qu = quotes[(quotes["ts_event"] <= te) & (quotes["ask_price"] == px) & (quotes["ask_size"] >= sz)]
            else:
                qu = quotes[(quotes["ts_event"] <= te) & (quotes["bid_price"] == px) & (quotes["bid_size"] >= sz)]
            assert len(tr) + len(qu) > 0, f"taker fill {f} at a price the data never offered"
        else:
            assert f["liquidity"] == Liquidity.MAKER
            assert px in limit_prices.get(coid, set()), f"maker fill {f} not at the order's limit price"
            t_acc = accepted_at[coid]
            assert te > t_acc
            if side == Side.BUY:
                tr_reach = trades["price"] < px if fill_model == FillModel.THROUGH else trades["price"] <= px
                qu_reach = quotes["ask_price"] < px if fill_model == FillModel.THROUGH else quotes["ask_price"] <= px
                qu_size = quotes["ask_size"]
            else:
                tr_reach = trades["price"] > px if fill_model == FillModel.THROUGH else trades["price"] >= px
                qu_reach = quotes["bid_price"] > px if fill_model == FillModel.THROUGH else quotes["bid_price"] >= px
                qu_size = quotes["bid_size"]
            tr = trades[(trades["ts_event"] == te) & tr_reach & (trades["size"] >= sz)]
            qu = quotes[(quotes["ts_event"] == te) & qu_reach & (qu_size >= sz)]
            assert len(tr) + len(qu) > 0, f"maker fill {f} with no trade or quote reaching it at {te}"


def check_time(run, latency_floor: tuple[int, int, int]) -> None:
    seen = run.events
    assert np.all(np.diff(seen["ts_recv"]) >= 0)
    data = seen[(seen["kind"] == K.TRADE) | (seen["kind"] == K.QUOTE)]
    assert np.all(data["ts_recv"] >= data["ts_event"] + latency_floor[0])
    reps = run.reports()
    assert np.all(reps["ts_recv"] >= reps["ts_event"] + latency_floor[2])
    j = run.commands
    if len(j):
        assert np.all(j["command"]["ts_event"] == seen["ts_recv"][j["input_index"]])
    assert run.p.counters[Counter.OUT_OF_ORDER] == 0


_REPORT_ACTION = {
    K.ACCEPTED: OrderAction.ACCEPTED, K.REJECTED: OrderAction.REJECTED,
    K.PARTIALLY_FILLED: OrderAction.PARTIALLY_FILLED, K.FILLED: OrderAction.FILLED,
    K.CANCELED: OrderAction.CANCELED, K.EXPIRED: OrderAction.EXPIRED, K.MODIFIED: OrderAction.MODIFIED,
    K.CANCEL_REJECTED: OrderAction.CANCEL_REJECTED,
}


def replay_statuses(run) -> dict[int, int]:
    """Replay requests and reports per order through the transition table; return final statuses.

    The table says "working" (ACCEPTED) after a confirmed modify or a refused cancel; an
    order with fills is then PARTIALLY_FILLED.
    """
    status: dict[int, int] = {}
    filled: dict[int, int] = {}
    cmds = run.commands
    cmd_at = 0
    for i, ev in enumerate(run.events):
        kind = int(ev["kind"])
        coid = int(ev["client_order_id"])
        if kind in _REPORT_ACTION and coid in status:
            nxt = next_status(status[coid], _REPORT_ACTION[kind])
            if nxt >= 0:
                if kind in (K.FILLED, K.PARTIALLY_FILLED):
                    filled[coid] += int(ev["size"])
                if nxt == OrderStatus.ACCEPTED and filled[coid] > 0:
                    nxt = OrderStatus.PARTIALLY_FILLED
                status[coid] = nxt
        while cmd_at < len(cmds) and cmds[cmd_at]["input_index"] == i:
            c = cmds[cmd_at]["command"]
            cmd_at += 1
            coid = int(c["client_order_id"])
            ck = int(c["kind"])
            if ck == CommandKind.SUBMIT:
                status[coid] = next_status(OrderStatus.INITIALIZED, OrderAction.SUBMIT)
                filled[coid] = 0
            elif ck == CommandKind.ALERT and coid not in status and c["reason"] != RejectReason.ORDER_TABLE_FULL:
                status[coid] = next_status(OrderStatus.INITIALIZED, OrderAction.REJECTED)
                filled[coid] = 0
            elif ck == CommandKind.CANCEL:
                status[coid] = next_status(status[coid], OrderAction.CANCEL_REQUEST)
            elif ck == CommandKind.MODIFY:
                status[coid] = next_status(status[coid], OrderAction.MODIFY_REQUEST)
            assert status.get(coid, 0) >= 0, f"request {c} illegal for order {coid}"
    assert cmd_at == len(cmds)
    return status


def check_statuses(run) -> None:
    orders = run.p.orders
    assert np.all(orders["status"] < N_STATUS)
    expected = replay_statuses(run)
    cap = len(orders)
    for coid, st_expected in expected.items():
        o = orders[coid % cap]
        if o["client_order_id"] != coid:
            continue  # slot reused by a later order
        assert o["status"] == st_expected, (coid, OrderStatus._fields[o["status"]], OrderStatus._fields[st_expected])
        fills = run.fills[run.fills["client_order_id"] == coid]
        assert o["filled"] == int(np.sum(fills["size"]))
        assert 0 <= o["leaves"]
        # At the end everything has been delivered: working here <=> working at the exchange.
        xo = run.ex.orders[coid % len(run.ex.orders)]
        at_exchange = bool(xo["active"]) and xo["client_order_id"] == coid
        assert bool(is_open(o["status"])) == at_exchange, (coid, OrderStatus._fields[o["status"]])
    # Working sizes: the pipeline's open_buy/open_sell are the leaves of its working orders.
    working = [orders[c % cap] for c in expected if orders[c % cap]["client_order_id"] == c]
    buys = sum(int(o["leaves"] + o["reserved"]) for o in working if is_open(o["status"]) and o["side"] == Side.BUY)
    sells = sum(int(o["leaves"] + o["reserved"]) for o in working if is_open(o["status"]) and o["side"] == Side.SELL)
    assert run.p.positions[0]["open_buy"] == buys
    assert run.p.positions[0]["open_sell"] == sells
    assert run.p.exec_state[0]["n_open"] == sum(1 for o in working if is_open(o["status"]))


def check_all(run, events, opts) -> None:
    floor = opts["latency"]
    check_positions(run)
    check_fill_prices(run, events, opts["fill_model"])
    check_time(run, floor)
    check_statuses(run)


# --------------------------------------------------------------------------- the properties


@SETTINGS
@given(knobs=stream_knobs, opts=run_options())
def test_market_maker_on_random_streams(knobs, opts):
    events = build_stream(knobs)
    run = run_mm(events, **opts)
    check_all(run, events, opts)
    # Its own limits: one quote per side, inventory within max_inventory.
    assert abs(run.p.positions[0]["qty"]) <= to_fixed(3.0)


@SETTINGS
@given(knobs=stream_knobs, opts=run_options(), kinds=st.sampled_from(["both", "trades"]))
def test_sma_on_random_streams(knobs, opts, kinds):
    events = build_stream(knobs, kinds)
    run = run_sma(events, **opts)
    check_all(run, events, opts)
    subs = run.cmds(CommandKind.SUBMIT)
    assert np.all(subs["order_type"] == OrderType.MARKET)


@SETTINGS
@given(knobs=stream_knobs, opts=run_options(), script=script_knobs,
       kinds=st.sampled_from(["both", "both", "quotes", "trades"]))
def test_random_scripts_on_random_streams(knobs, opts, script, kinds):
    events = build_stream(knobs, kinds)
    script = build_script(script)
    run = run_random_script(events, script, **opts)
    check_all(run, events, opts)
    # Risk held: no order above the size limit left, and the position within its limit.
    subs = run.cmds(CommandKind.SUBMIT)
    assert np.all(subs["size"] <= to_fixed(2.5))
    assert abs(run.p.positions[0]["qty"]) <= to_fixed(6)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(knobs=stream_knobs, opts=run_options(), script=script_knobs, chunk_rows=st.integers(1, 12),
       which=st.sampled_from(["mm", "sma", "script"]))
def test_same_inputs_same_journal_hash_whatever_the_chunking(knobs, opts, script, chunk_rows, which):
    events = build_stream(knobs)
    opts = {**opts, "equity_interval_ns": 40}
    if which == "mm":
        runs = [run_mm(events, chunk_rows=c, **opts) for c in (None, None, chunk_rows)]
    elif which == "sma":
        runs = [run_sma(events, chunk_rows=c, **opts) for c in (None, None, chunk_rows)]
    else:
        script = build_script(script)
        runs = [run_random_script(events, script, chunk_rows=c, **opts) for c in (None, None, chunk_rows)]
    a, b, c = runs
    assert a.journal_hash == b.journal_hash == c.journal_hash
    np.testing.assert_array_equal(a.fills, c.fills)
    np.testing.assert_array_equal(a.result.equity, c.result.equity)
    assert a.p.positions[0]["qty"] == c.p.positions[0]["qty"]
    assert a.p.portfolio[0]["equity"] == c.p.portfolio[0]["equity"]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(knobs=stream_knobs, opts=run_options(), script=script_knobs, chunk_rows=st.sampled_from([None, 1, 5]),
       which=st.sampled_from(["mm", "sma", "script"]))
def test_the_idle_venue_shortcut_changes_nothing(knobs, opts, script, chunk_rows, which):
    """While nothing rests at the venue, the loop feeds each row to the exchange and the strategy
    together (``sim.loop._idle_venue_rows``), with a constant feed latency only. The random
    model with zero jitter draws the same constant latencies but never takes that shortcut, so
    both runs must agree input for input."""
    events = build_stream(knobs)
    opts = {k: v for k, v in opts.items() if k not in ("latency_model", "jitter", "seed")}
    opts.update(equity_interval_ns=40, chunk_rows=chunk_rows)
    if which == "mm":
        runs = [run_mm(events, latency_model=m, **opts) for m in (LatencyModel.CONSTANT, LatencyModel.RANDOM)]
    elif which == "sma":
        runs = [run_sma(events, latency_model=m, **opts) for m in (LatencyModel.CONSTANT, LatencyModel.RANDOM)]
    else:
        s = build_script(script)
        runs = [run_random_script(events, s, latency_model=m, **opts)
                for m in (LatencyModel.CONSTANT, LatencyModel.RANDOM)]
    shortcut, full = runs
    np.testing.assert_array_equal(shortcut.events, full.events)
    np.testing.assert_array_equal(shortcut.commands, full.commands)
    assert shortcut.journal_hash == full.journal_hash
    np.testing.assert_array_equal(shortcut.fills, full.fills)
    np.testing.assert_array_equal(shortcut.result.equity, full.result.equity)
