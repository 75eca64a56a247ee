"""Vendor loaders: the real files in ../shared/data and hand-written malformed ones."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pyarrow.csv as pcsv
import pytest

from framework.data.__main__ import main
from framework.data.catalog import Catalog
from framework.data.errors import DataFormatError
from framework.data.loaders import FORMATS, detect_format, ingest, load
from framework.events import EVENT_DTYPE, BookFlag, EventKind, Side

MS = 1_000_000
DAY = 86_400_000_000_000
F = 1_000_000_000  # fixed-point units per whole unit


def ns(iso: str) -> int:
    return int(np.datetime64(iso, "ns").astype(np.int64))


# ----------------------------------------------------------------------------- real files

REAL = [
    ("trades/binance_usdm_btcusdt_trades_20240808.csv.gz", "binance-trades", "trade", 21_313),
    ("trades/binance_spot_btcusdt_trades_20240808.csv.gz", "binance-trades", "trade", 9_757),
    ("quotes/binance_usdm_btcusdt_quotes_20240808.csv.gz", "binance-quotes", "quote", 66_089),
    ("quotes/binance_spot_btcusdt_quotes_20240808.csv.gz", "binance-quotes", "quote", 28_040),
    ("depth/binance_usdm_btcusdt_depth_20240808.csv.gz", "binance-depth", "book", 445_521),
    ("depth/binance_spot_btcusdt_depth_20240808.csv.gz", "binance-depth", "book", 126_090),
    ("trades/lean_spy_trades_20131008.csv.gz", "lean-trades", "trade", 451_545),
    ("trades/lean_bac_trades_20131008.csv.gz", "lean-trades", "trade", 125_872),
    ("quotes/lean_bac_quotes_20131008.csv.gz", "lean-quotes", "quote", 576_096 - 1),  # one per row once both sides are known
    ("bars/yahoo_orcl_daily_1995-2014.csv", "yahoo-daily", "bar", 5_036),
    ("bars/yahoo_yhoo_daily_1996-2015.csv", "yahoo-daily", "bar", 4_965),
    ("bars/lean_daily_spy.csv", "lean-daily", "bar", 5_849),
    ("bars/lean_daily_aapl.csv", "lean-daily", "bar", 5_849),
    ("bars/lean_daily_bac.csv", "lean-daily", "bar", 5_849),
    ("bars/lean_daily_qqq.csv", "lean-daily", "bar", 3_964),
]


@pytest.mark.parametrize(("name", "fmt", "kind", "rows"), REAL, ids=[r[0].split("/")[1] for r in REAL])
def test_real_files_load_with_the_readme_row_counts(shared_data, name, fmt, kind, rows):
    path = shared_data / name
    assert detect_format(path) == fmt
    records = load(path)
    assert list(records) == [kind]
    assert len(records[kind]) == rows


def test_binance_trades_values_are_exact(shared_data):
    t = load(shared_data / "trades/binance_usdm_btcusdt_trades_20240808.csv.gz")["trade"]
    assert t[0].tolist() == (1723161256322 * MS, 1723161255088176367, EventKind.TRADE, Side.BUY, 0, 0, 0,
                             61800_300_000_000, 6_000_000, 5266583935)
    assert t[-1][["ts_event", "price", "size", "trade_id"]].tolist() == (1723161599643 * MS, 61659_800_000_000,
                                                                         76_000_000, 5266605247)
    spot = load(shared_data / "trades/binance_spot_btcusdt_trades_20240808.csv.gz")["trade"]
    assert spot[0][["ts_recv", "side", "price", "size"]].tolist() == (1723161254087896568, Side.SELL,
                                                                      61837_630_000_000, 20_000_000)
    assert spot[-1][["price", "size", "trade_id"]].tolist() == (61685_990_000_000, 1_400_000, 3735693015)
    assert np.array_equal(np.diff(spot["trade_id"]), np.ones(len(spot) - 1))  # contiguous ids


def test_binance_quotes_fall_back_to_receive_time_without_venue_time(shared_data):
    usdm = load(shared_data / "quotes/binance_usdm_btcusdt_quotes_20240808.csv.gz")["quote"]
    assert usdm[0].tolist() == (1723161256313 * MS, 1723161255088169167, EventKind.QUOTE, 0, 0, 0, 0,
                                61800_200_000_000, 2_507_000_000, 61800_300_000_000, 2_510_000_000)
    assert usdm[-1][["ts_event", "bid_size", "ask_size"]].tolist() == (1723161600709 * MS, 1_486_000_000,
                                                                        981_000_000)
    spot = load(shared_data / "quotes/binance_spot_btcusdt_quotes_20240808.csv.gz")["quote"]
    assert (spot["ts_event"] == spot["ts_recv"]).all()
    assert spot[0].tolist()[7:] == (61837_630_000_000, 3_788_260_000, 61837_640_000_000, 1_546_980_000)
    assert spot[-1].tolist()[:2] == (1723161599999231384, 1723161599999231384)


@pytest.mark.parametrize(("market", "snapshot_at", "last_update_id", "messages"), [
    ("usdm", 328, 5123107852948, 6_552),
    ("spot", 33, 50093239218, 3_452),
])
def test_binance_depth_marks_snapshots_and_message_ends(shared_data, market, snapshot_at, last_update_id, messages):
    book = load(shared_data / f"depth/binance_{market}_btcusdt_depth_20240808.csv.gz")["book"]
    snapshot = book["kind"] == EventKind.BOOK_SNAPSHOT
    assert np.flatnonzero(snapshot).tolist() == list(range(snapshot_at, snapshot_at + 2000))
    assert (book["kind"][~snapshot] == EventKind.BOOK_DELTA).all()
    assert (book["sequence"][snapshot] == last_update_id).all()
    clear = np.flatnonzero(book["flags"] & BookFlag.CLEAR)
    assert clear.tolist() == [snapshot_at, snapshot_at + 1000]  # first bid and first ask of the snapshot
    assert book["side"][clear].tolist() == [Side.BUY, Side.SELL]
    last = np.flatnonzero(book["flags"] & BookFlag.LAST)
    assert len(last) == messages and last[-1] == len(book) - 1
    assert last.tolist().count(snapshot_at + 1999) == 1
    # file order survives the catalog's stable sort by ts_event
    assert (np.diff(book["ts_event"]) >= 0).all()


def _tops(book: np.ndarray, wanted: set[int]) -> dict[int, tuple[int, int]]:
    """Rebuild the book as the README prescribes; return best bid/ask after wanted messages."""
    sides: dict[int, dict[int, int]] = {Side.BUY: {}, Side.SELL: {}}
    pending: list[tuple] = []
    snapshot_id = None
    tops = {}

    def apply(side, price, size, seq, flags):
        levels = sides[side]
        if size:
            levels[price] = size
        else:
            levels.pop(price, None)
        if flags & BookFlag.LAST and seq in wanted:
            tops[seq] = (max(sides[Side.BUY]), min(sides[Side.SELL]))

    columns = [book[f].tolist() for f in ("kind", "side", "price", "size", "sequence", "flags")]
    for kind, side, price, size, seq, flags in zip(*columns):
        if kind == EventKind.BOOK_SNAPSHOT:
            if flags & BookFlag.CLEAR:
                sides[side].clear()
            sides[side][price] = size
            if flags & BookFlag.LAST:
                snapshot_id = seq
                for row in pending:
                    if row[3] >= snapshot_id:
                        apply(*row)
        elif snapshot_id is None:
            pending.append((side, price, size, seq, flags))
        elif seq >= snapshot_id:
            apply(side, price, size, seq, flags)
    return tops


@pytest.mark.parametrize(("market", "matches"), [("usdm", 629), ("spot", 564)])
def test_binance_depth_rebuilds_the_book_that_book_ticker_shows(shared_data, market, matches):
    book = load(shared_data / f"depth/binance_{market}_btcusdt_depth_20240808.csv.gz")["book"]
    quotes_path = shared_data / f"quotes/binance_{market}_btcusdt_quotes_20240808.csv.gz"
    quotes = load(quotes_path)["quote"]
    update_ids = pcsv.read_csv(quotes_path).column("update_id").to_numpy()
    tops = _tops(book, set(update_ids.tolist()))
    rows = [i for i, u in enumerate(update_ids.tolist()) if u in tops]
    assert len(rows) == matches
    for i in rows:
        assert tops[int(update_ids[i])] == (quotes["bid_price"][i], quotes["ask_price"][i])


def test_lean_trades_use_decicents_and_utc_times(shared_data):
    t = load(shared_data / "trades/lean_spy_trades_20131008.csv.gz")["trade"]
    assert t[0].tolist() == (ns("2013-10-08T08:00:17.034"), ns("2013-10-08T08:00:17.034"), EventKind.TRADE,
                             Side.NONE, 0, 0, 0, 167_420_000_000, 210 * F, 0)
    assert t[-1][["ts_event", "price", "size"]].tolist() == (ns("2013-10-08T23:59:58.962"), 165_950_000_000, 100 * F)


def test_lean_quotes_combine_bid_and_ask_rows(shared_data):
    q = load(shared_data / "quotes/lean_bac_quotes_20131008.csv.gz")["quote"]
    assert q[0].tolist() == (ns("2013-10-08T08:00:00.142"), ns("2013-10-08T08:00:00.142"), EventKind.QUOTE,
                             0, 0, 0, 0, 13_800_000_000, 1000 * F, 13_920_000_000, 500 * F)
    assert q[-1].tolist()[7:] == (13_770_000_000, 300 * F, 13_780_000_000, 500 * F)
    assert (q["bid_price"] > 0).all() and (q["ask_price"] > 0).all()
    # every second quote completes an upstream bid/ask pair: 288,048 pairs, 9,726 locked or crossed
    pairs = q[::2]
    assert len(pairs) == 288_048
    assert int((pairs["bid_price"] >= pairs["ask_price"]).sum()) == 9_726


def test_daily_bars_are_stamped_at_the_end_of_their_day(shared_data):
    orcl = load(shared_data / "bars/yahoo_orcl_daily_1995-2014.csv")["bar"]
    assert orcl[0].tolist() == (ns("1995-01-04"), ns("1995-01-04"), EventKind.BAR, 0, 0, 0, 0,
                                2_179_012_000, 2_191_358_000, 2_117_284_000, 2_117_284_000, 36_301_200 * F)
    assert orcl[-1][["ts_event", "close", "volume"]].tolist() == (ns("2015-01-01"), 44_970_001_000, 13_269_200 * F)
    spy = load(shared_data / "bars/lean_daily_spy.csv")["bar"]
    assert spy[0][["ts_event", "open", "high", "low", "close", "volume"]].tolist() == (
        ns("1998-01-03"), 97_310_000_000, 97_530_000_000, 96_530_000_000, 97_360_000_000, 2_150_000 * F)
    assert spy[-1][["ts_event", "low"]].tolist() == (ns("2021-04-01"), 395_330_000_000)
    aapl = load(shared_data / "bars/lean_daily_aapl.csv")["bar"]
    close = dict(zip(aapl["ts_event"].tolist(), aapl["close"].tolist()))
    assert close[ns("2014-06-07")] == 645_570_000_000 and close[ns("2014-06-10")] == 93_700_000_000  # raw 7:1 split


def test_ingest_real_files_and_replay_them_merged(shared_data, tmp_path):
    cat = Catalog(tmp_path)
    counts = {}
    for name in ("quotes/binance_usdm_btcusdt_quotes_20240808.csv.gz",
                 "trades/binance_usdm_btcusdt_trades_20240808.csv.gz"):
        counts |= ingest(shared_data / name, None, cat, "BTCUSDT")
    assert counts == {"quote": 66_089, "trade": 21_313}
    events = np.concatenate(list(cat.stream([("quote", "BTCUSDT"), ("trade", "BTCUSDT")], chunk_rows=10_000)),
                            dtype=EVENT_DTYPE)
    assert len(events) == 66_089 + 21_313
    assert (np.diff(events["ts_event"]) >= 0).all()
    assert set(np.unique(events["kind"]).tolist()) == {EventKind.QUOTE, EventKind.TRADE}
    assert cat.dates("quote", "BTCUSDT") == ["2024-08-08", "2024-08-09"]  # venue clock passes midnight


def test_detect_format_knows_the_shared_file_names_only():
    assert detect_format("x/binance_usdm_btcusdt_depth_20240808.csv.gz") == "binance-depth"
    assert detect_format("lean_bac_quotes_20131008.csv.gz") == "lean-quotes"
    assert detect_format("lean_daily_qqq.csv") == "lean-daily"
    with pytest.raises(DataFormatError, match="known format"):
        detect_format("lean_oanda_eurusd_quotes_20140506.csv.gz")  # another LEAN layout
    assert set(FORMATS) == {"binance-trades", "binance-quotes", "binance-depth", "lean-trades", "lean-quotes",
                            "yahoo-daily", "lean-daily"}


# ------------------------------------------------------------------------ malformed files

TRADES_HEADER = "local_ts_ns,event_time_ms,trade_time_ms,trade_id,price,qty,is_buyer_maker,aggressor_side"
TRADE_ROW = "1723161255088176367,1723161256322,1723161256322,{id},{price},{qty},false,{side}"


def binance_trades(tmp_path: Path, *rows: dict, name: str = "binance_usdm_x_trades_20240808.csv") -> Path:
    lines = [TRADES_HEADER]
    for i, row in enumerate(rows):
        lines.append(TRADE_ROW.format(**{"id": i, "price": "61800.30", "qty": "0.006", "side": "buy", **row}))
    path = tmp_path / name
    text = "\n".join(lines) + "\n"
    if name.endswith(".gz"):
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text)
    return path


def error_of(path: Path, fmt: str | None = None) -> DataFormatError:
    with pytest.raises(DataFormatError) as err:
        load(path, fmt)
    assert isinstance(err.value, ValueError)
    assert str(path) in str(err.value)
    return err.value


def test_a_non_numeric_price_names_row_line_column_value_and_expectation(tmp_path):
    path = binance_trades(tmp_path, {}, {"price": "61800.x"}, {})
    err = error_of(path)
    message = str(err)
    assert "data row 2 (line 3 of the file)" in message
    assert "column 'price'" in message and "'61800.x'" in message
    assert "expected a decimal number" in message
    assert (err.row, err.line, err.column, err.value) == (2, 3, "price", "61800.x")


def test_a_missing_column_is_named_and_the_found_ones_listed(tmp_path):
    path = tmp_path / "binance_usdm_x_trades_20240808.csv"
    path.write_text("local_ts_ns,trade_time_ms,trade_id,price,aggressor_side\n1,2,3,4,buy\n")
    message = str(error_of(path))
    assert "line 1" in message and "column(s) qty" in message
    assert "found columns: local_ts_ns, trade_time_ms, trade_id, price, aggressor_side" in message


def test_a_negative_size_is_rejected(tmp_path):
    message = str(error_of(binance_trades(tmp_path, {}, {}, {"qty": "-0.5"})))
    assert "data row 3 (line 4 of the file)" in message and "column 'qty'" in message
    assert "'-0.5'" in message and "expected a positive quantity" in message


def test_an_unknown_aggressor_side_is_rejected_in_a_gzip_file(tmp_path):
    path = binance_trades(tmp_path, {"side": "BUY"}, name="binance_usdm_x_trades_20240808.csv.gz")
    message = str(error_of(path))
    assert "data row 1 (line 2 of the file)" in message and "'BUY'" in message
    assert "expected one of 'buy', 'sell'" in message


def test_inexact_decimals_are_rejected_not_rounded(tmp_path):
    message = str(error_of(binance_trades(tmp_path, {"qty": "0.0000000001"})))
    assert "column 'qty'" in message and "at most 9 decimals" in message


def test_a_row_with_the_wrong_number_of_fields_is_located(tmp_path):
    path = binance_trades(tmp_path, {}, {})
    path.write_text(path.read_text() + "1723161255088176367,1,2,3\n")
    err = error_of(path)
    assert (err.row, err.line) == (3, 4)
    assert "8 fields like the header, not 4" in str(err)


def test_non_monotonic_timestamps_are_rejected_where_the_format_promises_order(tmp_path):
    path = tmp_path / "lean_spy_trades_20131008.csv"
    path.write_text(
        "ts_utc,ms_since_midnight_et,price,price_decicents,size,exchange,sale_condition_hex,suspicious\n"
        "2013-10-08T08:00:17.034Z,1,167.42,1674200,210,Q,2000,0\n"
        "2013-10-08T08:00:17.035Z,1,167.42,1674200,210,Q,2000,0\n"
        "2013-10-08T08:00:17.001Z,1,167.42,1674200,210,Q,2000,0\n"
    )
    err = error_of(path)
    assert "data row 3 (line 4 of the file)" in str(err) and "column 'ts_utc'" in str(err)
    assert "'2013-10-08T08:00:17.001Z'" in str(err)
    assert "non-decreasing" in str(err) and "2013-10-08T08:00:17.035Z" in str(err)


def test_a_bad_timestamp_says_what_format_was_expected(tmp_path):
    path = tmp_path / "lean_spy_trades_20131008.csv"
    path.write_text("ts_utc,price_decicents,size\n2013-10-08 8:00,1674200,210\n")
    message = str(error_of(path))
    assert "data row 1 (line 2 of the file)" in message and "ISO-8601" in message


def test_lean_quote_rows_must_carry_a_side(tmp_path):
    path = tmp_path / "lean_bac_quotes_20131008.csv"
    header = "ts_utc,bid_price_decicents,bid_size,ask_price_decicents,ask_size"
    path.write_text(f"{header}\n2013-10-08T08:00:00Z,138000,1000,0,0\n2013-10-08T08:00:00Z,0,0,0,0\n")
    message = str(error_of(path))
    assert "data row 2 (line 3 of the file)" in message and "a row carrying a bid or an ask" in message
    path.write_text(f"{header}\n2013-10-08T08:00:00Z,138000,1000,0,0\n2013-10-08T08:00:01Z,0,0,139200,5\n"
                    "2013-10-08T08:00:02Z,138100,7,0,0\n")
    q = load(path)["quote"]
    assert q[["bid_price", "bid_size", "ask_price", "ask_size"]].tolist() == [
        (13_800_000_000, 1000 * F, 13_920_000_000, 5 * F), (13_810_000_000, 7 * F, 13_920_000_000, 5 * F)]


BAR_HEADER = "Date,Open,High,Low,Close,Adj Close,Volume"


@pytest.mark.parametrize(("rows", "row", "column", "expected"), [
    (["1995-01-03,2.1,2.0,1.9,2.0,1,100"], 1, "High", "high >= open, close and low"),
    (["1995-01-03,2.0,2.1,2.05,2.0,1,100"], 1, "Low", "low <= open and close"),
    (["1995-01-03,2.0,2.1,1.9,2.0,1,100", "1995-01-03,2.0,2.1,1.9,2.0,1,100"], 2, "Date", "strictly increasing"),
    (["1995-01-03T10:00:00,2.0,2.1,1.9,2.0,1,100"], 1, "Date", "without a time of day"),
    (["1995-01-03,2.0,2.1,1.9,2.0,1,-5"], 1, "Volume", "non-negative volume"),
    (["1995-01-03,0,2.1,1.9,2.0,1,5"], 1, "Open", "positive price"),
])
def test_bar_checks(tmp_path, rows, row, column, expected):
    path = tmp_path / "yahoo_x_daily.csv"
    path.write_text("\n".join([BAR_HEADER, *rows]) + "\n")
    err = error_of(path)
    assert (err.row, err.column) == (row, column) and expected in str(err)


def test_depth_message_types_are_checked(tmp_path):
    path = tmp_path / "binance_spot_x_depth_20240808.csv"
    path.write_text("local_ts_ns,msg_type,event_time_ms,transact_time_ms,first_update_id,final_update_id,"
                    "prev_final_update_id,side,price,qty\n1,diff,5,,1,2,,bid,1.0,0\n")
    assert "expected one of 'snapshot', 'update'" in str(error_of(path))


def test_a_failed_ingest_writes_nothing(tmp_path):
    path = binance_trades(tmp_path, {}, {"qty": "-1"})
    root = tmp_path / "catalog"
    with pytest.raises(DataFormatError):
        ingest(path, "binance-trades", Catalog(root), "BTC")
    assert not root.exists()


def test_cli_ingests_and_generates(tmp_path, capsys):
    good = binance_trades(tmp_path, {}, {"price": "61800.40"})
    root = tmp_path / "cat"
    assert main(["ingest", "--format", "binance-trades", "--symbol", "BTC", str(good), "--catalog", str(root)]) == 0
    assert "ingested 2 trade rows" in capsys.readouterr().out
    assert Catalog(root).read("trade", "BTC")["price"].tolist() == [61800_300_000_000, 61800_400_000_000]
    bad = binance_trades(tmp_path, {"price": "x"}, name="binance_usdm_y_trades_20240808.csv")
    assert main(["ingest", "--symbol", "BTC", str(bad), "--catalog", str(root)]) == 1
    assert "column 'price'" in capsys.readouterr().err
    assert main(["generate", "--catalog", str(root), "--symbol", "SYN", "--days", "2", "--trades-per-day", "500",
                 "--seed", "4"]) == 0
    assert Catalog(root).dates("quote", "SYN") == ["2024-01-01", "2024-01-02"]
    assert Catalog(root).symbols() == ["BTC", "SYN"]
