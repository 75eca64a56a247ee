"""Risk stage cost: nanoseconds per order checked and per event watched, limits off and on.

* per order: ``check_order`` then ``record_acceptance`` (what ``execution.submit`` runs
  for an order that passes), in a compiled loop over 1M orders alternating buy and sell
  on a quoted instrument, with the default limits (size, position, collar) and with
  every limit on (notional, band, open orders, duplicates over 64 remembered orders,
  message throttles per instrument and portfolio, staleness, gross exposure over the
  instruments, reject rate);
* per event: what ``step`` adds to every market-data event for risk (``track_band`` and
  the breaker's ``watch``), with the band, daily loss and drawdown limits off and on;
* the seed's budget for a risk check is 20 microseconds.

Usage: ``python bench/risk_stage.py [--orders 1000000] [--instruments 8]``. A script, not
a test: figures depend on the machine (best of 5 runs shown).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from app.numba_cache import configure_numba_cache

configure_numba_cache()

from numba import njit

from framework.events import OrderType, Side
from framework.risk.breaker import watch
from framework.risk.checks import check_order, record_acceptance, track_band
from framework.state import PipelineSpec, allocate

U = 1_000_000_000
T0 = 1_700_000_000_000_000_000


@njit(cache=True)
def orders_loop(p, n: int) -> int:
    passed = 0
    es = p.exec_state[0]
    for k in range(n):
        es.now = T0 + k * 1_000_000  # 1000 orders per second of event time
        side = Side.BUY if k % 2 == 0 else Side.SELL
        price = (100 + (k % 7) - 3) * U
        size = (1 + k % 3) * U
        reason = check_order(p, 0, side, OrderType.LIMIT, price, 0, size, size, 0, 0, True)
        if reason == 0:
            record_acceptance(p, 0, side, price, size, True)
            passed += 1
    return passed


@njit(cache=True)
def events_loop(p, n: int) -> int:
    es = p.exec_state[0]
    for k in range(n):
        es.now = T0 + k * 1000
        track_band(p, 0, es.now)
        watch(p.risk_state, p.portfolio_limits, p.portfolio, es.now)
    return p.risk_state[0].breaker


def pipeline(all_limits: bool, n_instruments: int):
    instrument = {}
    portfolio = {}
    if all_limits:
        instrument = {"max_order_notional": (1e6,), "price_band": (0.2,), "band_window_ns": (10**9,),
                      "max_open_orders": (10**9,), "duplicate_window_ns": (10**6,), "max_messages_per_s": (1024,),
                      "max_data_age_ns": (10**15,)}
        portfolio = {"max_gross_exposure": 1e12, "max_open_orders": 10**9, "max_messages_per_s": 1024,
                     "max_reject_rate": 0.9, "reject_window": 100, "daily_loss_limit": 1e9, "max_drawdown": 0.5}
    p = allocate(PipelineSpec(n_instruments=n_instruments, max_order_size=(10**6 * U,), max_position=(10**9 * U,),
                              price_collar=(0.5,), instrument_limits=instrument, portfolio_limits=portfolio))
    for i in range(n_instruments):
        m = p.market[i]
        m["bid_price"], m["ask_price"], m["bid_size"], m["ask_size"] = 99 * U, 101 * U, U, U
        m["last_price"], m["ts_last"] = 100 * U, T0
        p.positions[i]["qty"] = U * (i % 3)
        p.positions[i]["mark"] = 100.0
    return p


def best_ns(fn, n: int, repeat: int = 5) -> float:
    fn(10)
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn(n)
        best = min(best, time.perf_counter() - t0)
    return 1e9 * best / n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--orders", type=int, default=1_000_000)
    ap.add_argument("--events", type=int, default=10_000_000)
    ap.add_argument("--instruments", type=int, default=8, help="instruments the gross exposure sums over")
    args = ap.parse_args()
    print(f"{'risk stage':44s} {'ns':>8s}")
    for label, on in (("defaults (size, position, collar)", False), ("every limit on", True)):
        orders_loop(pipeline(on, args.instruments), 10)  # compile (or load) first, on a throwaway state
        p = pipeline(on, args.instruments)
        ns = best_ns(lambda n, p=p: orders_loop(p, n), args.orders)
        print(f"{'per order, ' + label:44s} {ns:8.1f}")
    for label, on in (("limits off", False), ("band, daily loss, drawdown on", True)):
        p = pipeline(on, args.instruments)
        ns = best_ns(lambda n, p=p: events_loop(p, n), args.events)
        print(f"{'per event, ' + label:44s} {ns:8.2f}")
    print("budget per risk check (seed): 20,000 ns")


if __name__ == "__main__":
    main()
