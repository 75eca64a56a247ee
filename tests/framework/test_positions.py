"""Positions stage: average-cost accounting, fees, marking, and the equity invariant."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from framework.events import PRICE_SCALE, Side, to_fixed
from framework.positions import apply_fill, drawdown, mark_to_market
from framework.state import PipelineSpec, allocate

BUY, SELL = Side.BUY, Side.SELL


def fx(x: float) -> int:
    return to_fixed(x)


def fresh(initial_capital: float = 1_000_000.0):
    p = allocate(PipelineSpec(n_instruments=2, initial_capital=initial_capital))
    return p.positions, p.portfolio


def test_round_trip_by_hand():
    pos, pf = fresh()
    mark_to_market(pos, pf, 0, fx(100))
    # Buy 2 @ 100, fee 0.02: avg 100, equity 1e6 - 0.02 (marked at 100).
    apply_fill(pos, pf, 0, BUY, fx(100), fx(2), fx(0.02))
    assert pos[0]["qty"] == fx(2)
    assert pos[0]["avg_price"] == pytest.approx(100.0)
    assert pf[0]["equity"] == pytest.approx(1_000_000 - 0.02)
    # Buy 1 @ 103: avg (2 * 100 + 103) / 3 = 101.
    apply_fill(pos, pf, 0, BUY, fx(103), fx(1), 0)
    assert pos[0]["avg_price"] == pytest.approx(101.0)
    # Mark at 104: unrealized 3 * (104 - 101) = 9.
    mark_to_market(pos, pf, 0, fx(104))
    assert pos[0]["unrealized_pnl"] == pytest.approx(9.0)
    assert pf[0]["equity"] == pytest.approx(1_000_000 - 0.02 + 9.0)
    # Sell 5 @ 105, fee 0.05: closes 3 (realized 3 * (105 - 101) = 12), opens -2 at 105.
    apply_fill(pos, pf, 0, SELL, fx(105), fx(5), fx(0.05))
    assert pos[0]["qty"] == -fx(2)
    assert pos[0]["realized_pnl"] == pytest.approx(12.0)
    assert pos[0]["avg_price"] == pytest.approx(105.0)
    # Still marked at 104: unrealized -2 * (104 - 105) = 2.
    assert pos[0]["unrealized_pnl"] == pytest.approx(2.0)
    assert pf[0]["fees"] == pytest.approx(0.07)
    assert pf[0]["equity"] == pytest.approx(1_000_000 + 12 + 2 - 0.07)
    # Cover 2 @ 104: realized 2 * (105 - 104) = 2 more, flat.
    apply_fill(pos, pf, 0, BUY, fx(104), fx(2), 0)
    assert pos[0]["qty"] == 0
    assert pos[0]["avg_price"] == 0.0
    assert pos[0]["unrealized_pnl"] == 0.0
    assert pos[0]["realized_pnl"] == pytest.approx(14.0)
    assert pf[0]["equity"] == pytest.approx(1_000_000 + 14 - 0.07)
    assert pf[0]["gross_exposure"] == pytest.approx(0.0, abs=1e-9)
    assert pos[0]["n_fills"] == 4
    assert pos[0]["traded_notional"] == pytest.approx(200 + 103 + 525 + 208)
    # The instrument that never traded is untouched.
    assert pos[1]["qty"] == 0 and pos[1]["n_fills"] == 0


def test_drawdown_tracks_the_high_water_mark():
    pos, pf = fresh(1000.0)
    mark_to_market(pos, pf, 0, fx(10))
    apply_fill(pos, pf, 0, BUY, fx(10), fx(10), 0)
    mark_to_market(pos, pf, 0, fx(20))  # equity 1100
    mark_to_market(pos, pf, 0, fx(9))  # equity 990: drawdown 110 / 1100 = 0.1
    assert pf[0]["high_water_mark"] == pytest.approx(1100.0)
    assert drawdown(pf) == pytest.approx(0.1)
    mark_to_market(pos, pf, 0, fx(15))  # equity 1050
    assert drawdown(pf) == pytest.approx(50 / 1100)
    assert pf[0]["max_drawdown"] == pytest.approx(0.1)


def test_each_instrument_keeps_its_own_high_water_mark_and_drawdown():
    pos, pf = fresh(1000.0)
    apply_fill(pos, pf, 0, BUY, fx(10), fx(10), 0)
    mark_to_market(pos, pf, 0, fx(13))  # instrument 0 pnl +30
    apply_fill(pos, pf, 1, SELL, fx(5), fx(4), 0)
    mark_to_market(pos, pf, 1, fx(4))  # instrument 1 pnl +4
    mark_to_market(pos, pf, 0, fx(11))  # instrument 0 falls to +10: 20 below its high
    assert (pos[0]["pnl"], pos[0]["high_water_mark"], pos[0]["max_drawdown"]) == pytest.approx((10, 30, 20))
    assert (pos[1]["pnl"], pos[1]["high_water_mark"], pos[1]["max_drawdown"]) == pytest.approx((4, 4, 0))
    assert pos[0]["exposure"] == pytest.approx(110) and pos[1]["exposure"] == pytest.approx(16)
    assert pf[0]["gross_exposure"] == pytest.approx(126)


def test_first_fill_without_a_mark_is_marked_at_its_price():
    pos, pf = fresh()
    apply_fill(pos, pf, 0, SELL, fx(50), fx(3), 0)
    assert pos[0]["mark"] == pytest.approx(50.0)
    assert pf[0]["equity"] == pytest.approx(1_000_000.0)
    assert pf[0]["gross_exposure"] == pytest.approx(150.0)
    assert pf[0]["net_position"] == pytest.approx(-3.0)


def test_non_positive_mark_is_ignored():
    pos, pf = fresh()
    mark_to_market(pos, pf, 0, fx(10))
    apply_fill(pos, pf, 0, BUY, fx(10), fx(1), 0)
    mark_to_market(pos, pf, 0, 0)
    mark_to_market(pos, pf, 0, -5)
    assert pos[0]["mark"] == pytest.approx(10.0)


# Random fill sequences: prices on a 0.01 grid, sizes on a 0.001 grid, fees in [-0.5, 0.5].
fill_op = st.tuples(
    st.just("fill"),
    st.sampled_from([BUY, SELL]),
    st.integers(min_value=1, max_value=50_000),  # price in cents
    st.integers(min_value=1, max_value=20_000),  # size in thousandths
    st.integers(min_value=-500_000_000, max_value=500_000_000),  # fee, fixed point
)
mark_op = st.tuples(st.just("mark"), st.integers(min_value=1, max_value=50_000))


@settings(max_examples=150, deadline=None)
@given(
    ops=st.lists(st.one_of(fill_op, fill_op, mark_op), min_size=1, max_size=40),
    initial_capital=st.sampled_from([0.0, 1_000.0, 1_000_000.0]),
    instrument=st.sampled_from([0, 1]),
)
def test_equity_equals_capital_plus_cash_flows_plus_marked_position(ops, initial_capital, instrument):
    pos, pf = fresh(initial_capital)
    qty = 0  # fixed point
    cash = Fraction(0)  # whole units: sum of -side * size * price - fee
    fees = Fraction(0)
    mark = None  # whole units, as a Fraction
    realized = Fraction(0)
    avg = Fraction(0)
    scale = Fraction(abs(initial_capital)) + 1
    for op in ops:
        if op[0] == "mark":
            price = op[1] * PRICE_SCALE // 100
            mark_to_market(pos, pf, instrument, price)
            mark = Fraction(price, PRICE_SCALE)
        else:
            _, side, cents, thousandths, fee = op
            price = cents * PRICE_SCALE // 100
            size = thousandths * PRICE_SCALE // 1000
            apply_fill(pos, pf, instrument, side, price, size, fee)
            px, sz = Fraction(price, PRICE_SCALE), Fraction(size, PRICE_SCALE)
            cash += -side * sz * px - Fraction(fee, PRICE_SCALE)
            fees += Fraction(fee, PRICE_SCALE)
            scale += sz * px + abs(Fraction(fee, PRICE_SCALE))
            # Average-cost reference.
            q = Fraction(qty, PRICE_SCALE)
            d = side * sz
            if q == 0 or (q > 0) == (d > 0):
                avg = (abs(q) * avg + sz * px) / (abs(q) + sz)
            else:
                closed = min(abs(q), sz)
                realized += closed * (px - avg) * (1 if q > 0 else -1)
                if q + d == 0:
                    avg = Fraction(0)
                elif (q + d > 0) != (q > 0):
                    avg = px
            qty += side * size
            if mark is None:
                mark = px  # a first fill without a mark is marked at its own price
        if mark is None:
            continue
        # The invariant, after every operation.
        q = Fraction(qty, PRICE_SCALE)
        expected_equity = Fraction(initial_capital) + cash + q * mark
        tol = float(scale) * 1e-9 + 1e-9
        assert pos[instrument]["qty"] == qty
        assert abs(pf[0]["equity"] - float(expected_equity)) <= tol
        assert abs(pf[0]["realized_pnl"] - float(realized)) <= tol
        assert abs(pos[instrument]["unrealized_pnl"] - float(q * (mark - avg))) <= tol
        assert abs(pf[0]["fees"] - float(fees)) <= tol
        assert abs(pf[0]["net_position"] - float(q)) <= 1e-6
        assert abs(pf[0]["gross_exposure"] - float(abs(q) * mark)) <= tol
        assert pf[0]["high_water_mark"] >= pf[0]["equity"] - tol
        assert 0.0 <= drawdown(pf) <= pf[0]["max_drawdown"] + 1e-12
        ip = pos[instrument]
        assert abs(ip["exposure"] - float(abs(q) * mark)) <= tol
        assert abs(ip["pnl"] - (ip["realized_pnl"] + ip["unrealized_pnl"] - ip["fees"])) <= tol
        assert ip["high_water_mark"] >= ip["pnl"] - tol
        assert ip["max_drawdown"] >= ip["high_water_mark"] - ip["pnl"] - tol
    n_fills = sum(1 for op in ops if op[0] == "fill")
    assert pos[instrument]["n_fills"] == n_fills
    assert pos[1 - instrument]["qty"] == 0
