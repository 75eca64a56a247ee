"""The synthetic market: determinism, invariants and stylized facts."""

from __future__ import annotations

import numpy as np
import pytest

from framework.data.catalog import Catalog
from framework.data.synthetic import SyntheticSpec, generate_day, write_synthetic
from framework.events import QUOTE_DTYPE, TRADE_DTYPE, EventKind, Side, to_fixed

SPEC = SyntheticSpec(symbol="SYN", start="2024-03-01", days=3, trades_per_day=120_000, seed=11)


@pytest.fixture(scope="module")
def day() -> dict[str, np.ndarray]:
    return generate_day(SPEC, 1)


def test_same_spec_gives_byte_identical_days(day):
    again = generate_day(SPEC, 1)
    assert again["trade"].tobytes() == day["trade"].tobytes()
    assert again["quote"].tobytes() == day["quote"].tobytes()
    other = generate_day(SyntheticSpec(**{**SPEC.__dict__, "seed": 12}), 1)
    assert other["trade"].tobytes() != day["trade"].tobytes()


def test_a_day_does_not_depend_on_how_many_days_follow():
    short = SyntheticSpec(**{**SPEC.__dict__, "days": 2, "trades_per_day": 2_000})
    long = SyntheticSpec(**{**SPEC.__dict__, "days": 5, "trades_per_day": 2_000})
    assert generate_day(short, 1)["trade"].tobytes() == generate_day(long, 1)["trade"].tobytes()


def test_records_are_well_formed(day):
    trades, quotes = day["trade"], day["quote"]
    assert trades.dtype == TRADE_DTYPE and quotes.dtype == QUOTE_DTYPE
    assert len(trades) == SPEC.trades_per_day
    assert len(quotes) == round(SPEC.trades_per_day * SPEC.quotes_per_trade)
    assert (trades["kind"] == EventKind.TRADE).all() and (quotes["kind"] == EventKind.QUOTE).all()
    open_ns = SPEC.session_open_ns(1)
    for records in (trades, quotes):
        ts = records["ts_event"]
        assert (np.diff(ts) >= 0).all()
        assert (records["ts_recv"] == ts).all()
        assert ts[0] >= open_ns and ts[-1] < open_ns + SPEC.session_ns
    tick, lot = to_fixed(SPEC.tick_size), to_fixed(SPEC.lot_size)
    assert (quotes["ask_price"] > quotes["bid_price"]).all()  # never crossed or locked
    assert (quotes["bid_price"] > 0).all()
    for field in ("bid_price", "ask_price"):
        assert (quotes[field] % tick == 0).all()
    assert (trades["price"] % tick == 0).all()
    for sizes in (trades["size"], quotes["bid_size"], quotes["ask_size"]):
        assert (sizes > 0).all() and (sizes % lot == 0).all()
    assert np.array_equal(trades["trade_id"], np.arange(1, len(trades) + 1) + SPEC.trades_per_day)


def test_trades_hit_the_prevailing_touch(day):
    trades, quotes = day["trade"], day["quote"]
    prevailing = np.searchsorted(quotes["ts_event"], trades["ts_event"], side="left") - 1
    assert (prevailing >= 0).all()  # every trade has a strictly earlier quote
    q = quotes[prevailing]
    buy = trades["side"] == Side.BUY
    assert set(np.unique(trades["side"])) == {Side.BUY, Side.SELL}
    assert (trades["price"][buy] == q["ask_price"][buy]).all()
    assert (trades["price"][~buy] == q["bid_price"][~buy]).all()
    assert 0.4 < buy.mean() < 0.6


def test_sizes_are_heavy_tailed(day):
    lots = day["trade"]["size"] // to_fixed(SPEC.lot_size)
    assert np.median(lots) <= 2 and lots.max() >= 100 * np.median(lots)


def test_spread_widens_with_volatility(day):
    quotes = day["quote"]
    mid = (quotes["bid_price"] + quotes["ask_price"]) / 2
    minute = (quotes["ts_event"] - quotes["ts_event"][0]) // 60_000_000_000
    last = np.r_[np.flatnonzero(np.diff(minute)), len(minute) - 1]
    move = np.abs(np.diff(np.log(mid[last])))  # |1-minute mid return|
    spread = (quotes["ask_price"] - quotes["bid_price"]).astype(float)
    mean_spread = np.bincount(minute, weights=spread) / np.bincount(minute)
    calm = move < np.quantile(move, 0.25)
    wild = move > np.quantile(move, 0.75)
    assert mean_spread[1:][wild].mean() > mean_spread[1:][calm].mean()


def _minute_returns(trades: np.ndarray) -> np.ndarray:
    minute = (trades["ts_event"] - trades["ts_event"][0]) // 60_000_000_000
    last = np.r_[np.flatnonzero(np.diff(minute)), len(minute) - 1]
    return np.diff(np.log(trades["price"][last].astype(float)))


def test_stylized_facts_of_returns(day):
    r = _minute_returns(day["trade"])
    z = (r - r.mean()) / r.std()
    assert (z**4).mean() - 3 > 1.0  # heavy tails: excess kurtosis of 1-minute returns
    a = np.abs(r) - np.abs(r).mean()
    acf = np.array([(a[:-k] * a[k:]).mean() / (a * a).mean() for k in range(1, 11)])
    assert (acf > 0).all() and acf.mean() > 0.03  # volatility clustering


def test_intraday_activity_is_u_shaped(day):
    hour = (day["trade"]["ts_event"] - SPEC.session_open_ns(1)) // 3_600_000_000_000
    counts = np.bincount(hour, minlength=24)
    middle = counts[10:14].mean()
    assert counts[0] > 1.5 * middle and counts[23] > 1.5 * middle


def test_write_synthetic_registers_the_instrument_and_writes_each_day(tmp_path):
    cat = Catalog(tmp_path)
    spec = SyntheticSpec(symbol="SYN", start="2024-03-01", days=2, trades_per_day=1_000, seed=3)
    write_synthetic(cat, spec)
    assert cat.instrument("SYN") == {"id": 0, "tick_size": 10_000_000, "lot_size": 1_000_000_000}
    assert cat.dates("trade", "SYN") == cat.dates("quote", "SYN") == ["2024-03-01", "2024-03-02"]
    assert cat.read("trade", "SYN")[spec.trades_per_day :]["ts_event"].tolist() == \
        generate_day(spec, 1)["trade"]["ts_event"].tolist()


def test_sessions_can_be_shorter_than_a_day():
    spec = SyntheticSpec(session_start="14:30", session_hours=6.5, days_per_year=252, trades_per_day=5_000)
    ts = generate_day(spec, 0)["trade"]["ts_event"]
    open_ns = spec.session_open_ns(0)
    assert open_ns % 86_400_000_000_000 == (14 * 60 + 30) * 60_000_000_000
    assert ts[0] > open_ns and ts[-1] < open_ns + 6.5 * 3_600_000_000_000


def test_invalid_specs_say_what_is_expected():
    with pytest.raises(ValueError, match="garch_alpha \\+ garch_beta < 1"):
        SyntheticSpec(garch_alpha=0.5, garch_beta=0.6)
    with pytest.raises(ValueError, match="ends by midnight"):
        SyntheticSpec(session_start="20:00", session_hours=6)
    with pytest.raises(IndexError):
        generate_day(SyntheticSpec(days=1), 1)


def test_several_venues_share_the_efficient_price_and_venue_0_is_the_one_venue_market():
    one = generate_day(SyntheticSpec(trades_per_day=3000), 0)
    two = generate_day(SyntheticSpec(trades_per_day=3000, venues=2), 0)
    for kind in ("trade", "quote"):
        rows = two[kind]
        assert np.all(np.diff(rows["ts_event"]) >= 0)
        assert np.bincount(rows["venue_id"]).tolist() == [len(one[kind])] * 2
        venue0 = rows[rows["venue_id"] == 0]
        assert all(np.array_equal(venue0[f], one[kind][f]) for f in one[kind].dtype.names)
    q = two["quote"]
    mids = [np.median((q["bid_price"] + q["ask_price"])[q["venue_id"] == v] / 2) for v in (0, 1)]
    assert abs(mids[0] - mids[1]) / mids[0] < 0.01  # one price, two microstructures
    assert not np.array_equal(q["bid_price"][q["venue_id"] == 0], q["bid_price"][q["venue_id"] == 1])
    assert len(set(two["trade"]["trade_id"].tolist())) == len(two["trade"])
