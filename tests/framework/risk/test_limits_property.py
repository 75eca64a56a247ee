"""Property: an order is accepted if and only if it is within every limit.

Random pipeline states (position, working orders, quote, open orders, breaker, kill
switch, halts, recent orders) and random orders go through ``check_order``; an
independent Python statement of each limit says which ones the order breaks. The
checks must accept exactly the orders that break none, and a rejection must name
one of the limits the order really breaks.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from framework.events import OrderFlag, OrderType, RejectReason, Side
from framework.risk.checks import check_order
from framework.risk.records import BreakerState
from framework.state import PipelineSpec, allocate

U = 1_000_000_000  # one whole unit in fixed point
R = RejectReason
T_NOW = 10_000_000_000_000


def build(s):
    p = allocate(PipelineSpec(
        n_instruments=1, order_capacity=64, max_order_size=(s["max_order"] * U,), max_position=(0,),
        price_collar=(s["collar"],),
        instrument_limits={
            "max_long": (s["max_long"] * U,), "max_short": (s["max_short"] * U,),
            "max_order_notional": (float(s["max_notional"]),), "max_open_orders": (s["max_open"],),
            "max_data_age_ns": (s["max_age"],),
        },
        portfolio_limits={"max_gross_exposure": float(s["max_gross"]), "max_open_orders": s["max_open_total"]},
    ))
    p.exec_state[0]["now"] = T_NOW
    m = p.market[0]
    m["bid_price"], m["ask_price"] = s["bid"] * U, (s["bid"] + s["spread"]) * U
    m["bid_size"] = m["ask_size"] = U if s["quoted"] else 0
    m["last_price"] = s["last"] * U
    m["ts_last"] = T_NOW - s["age"]
    pos = p.positions[0]
    pos["qty"], pos["open_buy"], pos["open_sell"] = s["qty"] * U, s["open_buy"] * U, s["open_sell"] * U
    pos["mark"] = float(s["last"])
    p.risk_instruments[0]["n_open"] = s["n_open"]
    p.exec_state[0]["n_open"] = s["n_open"]
    p.risk_state[0]["breaker"] = s["breaker"]
    p.risk_state[0]["kill_all"] = s["killed"]
    p.risk_instruments[0]["halted"] = s["halted"]
    return p


def violations(s, side, order_type, price, size, flags) -> set[int]:
    """Each limit the order breaks, stated directly from the limits' definitions."""
    out: set[int] = set()
    qty, ob, os_ = s["qty"], s["open_buy"], s["open_sell"]
    mid = (2 * s["bid"] + s["spread"]) / 2 if s["quoted"] else 0
    ref = mid if s["quoted"] else s["last"]
    reducing = (qty < 0 and ob + size <= -qty) if side == Side.BUY else (qty > 0 and os_ + size <= qty)
    if s["killed"]:
        out.add(R.KILL_SWITCH)
    if s["halted"]:
        out.add(R.INSTRUMENT_HALTED)
    if s["breaker"] == BreakerState.HALTED:
        out.add(R.BREAKER_HALTED)
    if s["breaker"] == BreakerState.REDUCING and not reducing:
        out.add(R.BREAKER_REDUCING)
    if flags & OrderFlag.REDUCE_ONLY and not reducing:
        out.add(R.REDUCE_ONLY)
    if size > s["max_order"]:
        out.add(R.MAX_ORDER_SIZE)
    if s["max_age"] > 0 and s["age"] > s["max_age"]:
        out.add(R.STALE_DATA)
    if ref <= 0:
        out.add(R.NO_MARKET)
        return out
    px = ref if order_type == OrderType.MARKET else price
    if s["max_notional"] > 0 and size * px > s["max_notional"]:
        out.add(R.MAX_ORDER_NOTIONAL)
    if order_type != OrderType.MARKET and s["collar"] > 0 and abs(price - ref) > s["collar"] * ref:
        out.add(R.PRICE_COLLAR)
    if side == Side.BUY and qty + ob + size > s["max_long"]:
        out.add(R.MAX_POSITION)
    if side == Side.SELL and -(qty - os_ - size) > s["max_short"]:
        out.add(R.MAX_POSITION)
    gross = (abs(qty) + ob + os_) * ref + size * px
    if s["max_gross"] > 0 and not reducing and gross > s["max_gross"]:
        out.add(R.MAX_GROSS_EXPOSURE)
    if s["max_open"] > 0 and s["n_open"] >= s["max_open"]:
        out.add(R.MAX_OPEN_ORDERS)
    if s["max_open_total"] > 0 and s["n_open"] >= s["max_open_total"]:
        out.add(R.MAX_OPEN_ORDERS)
    return out


def mostly(loose, *tight):
    """A limit that is usually loose (or off), so each limit is often the only one broken."""
    return st.sampled_from([loose] * 4 + list(tight))


states = st.fixed_dictionaries({
    "max_order": mostly(100, 0, 5, 20), "max_long": mostly(100, 0, 10, 30), "max_short": mostly(100, 0, 10, 30),
    "collar": mostly(0.0, 0.01, 0.05, 0.5), "max_notional": mostly(0, 500, 2000, 10_000),
    "max_open": mostly(0, 1, 3, 5), "max_open_total": mostly(0, 1, 3, 5), "n_open": st.integers(0, 6),
    "max_gross": mostly(0, 1000, 5000, 50_000),
    "max_age": mostly(0, 1_000, 1_000_000), "age": st.sampled_from([0, 999, 1_000, 1_001, 5_000_000]),
    "bid": st.integers(90, 110), "spread": st.sampled_from([2, 4]), "quoted": mostly(True, False),
    "last": st.sampled_from([0, 95, 100, 105]),
    "qty": st.integers(-15, 15), "open_buy": st.integers(0, 10), "open_sell": st.integers(0, 10),
    "breaker": mostly(BreakerState.ACTIVE, BreakerState.REDUCING, BreakerState.HALTED),
    "killed": mostly(0, 1), "halted": mostly(0, 1),
})
orders = st.tuples(
    st.sampled_from([Side.BUY, Side.SELL]), st.sampled_from([OrderType.LIMIT, OrderType.MARKET]),
    st.integers(80, 120), st.integers(1, 25), mostly(0, OrderFlag.REDUCE_ONLY),
)


@settings(max_examples=1500, deadline=None)
@given(states, orders)
def test_an_order_is_accepted_iff_it_is_within_every_limit(s, order):
    side, order_type, price, size, flags = order
    p = build(s)
    px = price * U if order_type != OrderType.MARKET else 0
    reason = check_order(p, 0, side, order_type, px, 0, size * U, size * U, flags, 0, True)
    broken = violations(s, side, order_type, price, size, flags)
    assert (reason == R.NONE) == (not broken), (reason, broken)
    if broken:
        assert reason in broken
