"""Exact text -> int64 parsing: decimals to fixed point, ISO-8601 to nanoseconds."""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from framework.data.fixed_point import ParseError, parse_decimal, parse_iso_ns
from framework.events import PRICE_SCALE


def test_parse_decimal_is_exact_at_the_price_scale():
    values = ["1.25", "0.1", "-0.000000001", "61837.63000000", "0", "+3.", ".5", "12.5000000000", "-0"]
    expected = [1_250_000_000, 100_000_000, -1, 61_837_630_000_000, 0, 3_000_000_000, 500_000_000, 12_500_000_000, 0]
    assert parse_decimal(values).tolist() == expected


def test_parse_decimal_scales_integers_and_decicents():
    assert parse_decimal(["138000", "1"], 5).tolist() == [13_800_000_000, 100_000]
    assert parse_decimal(["1723161254087896568"], 0).tolist() == [1723161254087896568]


def test_parse_decimal_substitutes_empty_fields_only_when_asked():
    assert parse_decimal(["", "7"], 0, empty=-1).tolist() == [-1, 7]
    with pytest.raises(ParseError) as err:
        parse_decimal(["7", ""], 0)
    assert err.value.index == 1 and "empty" in err.value.expected


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        ("1e5", "decimal number"),
        ("abc", "decimal number"),
        ("1.2.3", "decimal number"),
        ("-", "decimal number"),
        (" 1", "decimal number"),
        ("1.0000000001", "at most 9 decimals"),
        ("9300000000", "fits int64"),
    ],
)
def test_parse_decimal_reports_the_first_bad_value(bad, reason):
    with pytest.raises(ParseError) as err:
        parse_decimal(["1", "2", bad, "also bad"])
    assert err.value.index == 2
    assert err.value.value == bad
    assert reason in err.value.expected


def test_parse_decimal_reads_sliced_and_chunked_arrow_arrays():
    chunked = pa.chunked_array([pa.array(["1", "2", "3"]).slice(1), pa.array(["4.5"])])
    assert parse_decimal(chunked, 1).tolist() == [20, 30, 45]
    assert parse_decimal(pa.array(["0.5", "7"], type=pa.large_string()), 1).tolist() == [5, 70]
    with pytest.raises(ParseError) as err:
        parse_decimal(pa.chunked_array([pa.array(["1"]), pa.array(["2", "x"])]))
    assert err.value.index == 2


@settings(max_examples=200, deadline=None)
@given(st.decimals(min_value=-9_000_000_000, max_value=9_000_000_000, places=9, allow_nan=False))
def test_parse_decimal_matches_decimal_arithmetic(value: Decimal):
    text = f"{value:f}"
    assert parse_decimal([text]).tolist() == [int(value * PRICE_SCALE)]


def test_parse_iso_ns_accepts_dates_times_and_utc_designators():
    values = [
        "2013-10-08T09:59:08.450Z",
        "1970-01-01",
        "2024-02-29 23:59:59+00:00",
        "1969-12-31T23:59:59.999999999",
        "2024-01-31T00:00:00.1",
    ]
    expected = [np.datetime64(v.replace("Z", "").replace("+00:00", ""), "ns").astype(np.int64) for v in values]
    assert parse_iso_ns(values).tolist() == [int(e) for e in expected]


@pytest.mark.parametrize(
    "bad",
    ["2023-02-29", "2013-10-08T09:59:08.450+01:00", "2013-10-08T25:00:00", "2013-1-08", "2013-10-08T09:59", "x"],
)
def test_parse_iso_ns_rejects_invalid_or_non_utc_times(bad):
    with pytest.raises(ParseError) as err:
        parse_iso_ns(["2013-10-08", bad])
    assert err.value.index == 1 and "ISO-8601" in err.value.expected


@settings(max_examples=100, deadline=None)
@given(st.integers(min_value=-(2**62), max_value=2**62))
def test_parse_iso_ns_round_trips_numpy_formatting(ns: int):
    text = str(np.datetime64(ns, "ns"))
    assert parse_iso_ns([text]).tolist() == [ns]
