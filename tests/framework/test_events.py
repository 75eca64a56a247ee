"""``framework.events``' record helpers: padding the per-instrument state records."""

from __future__ import annotations

import numpy as np
import pytest
from numba import njit

from framework.events import INSTRUMENT_RECORD_BYTES, padded
from framework.risk.records import INSTRUMENT_RISK_DTYPE
from framework.state import MARKET_DTYPE, POSITION_DTYPE

SMALL = np.dtype([("a", "<i8"), ("b", "<f8"), ("c", "u1")], align=True)


def test_padding_keeps_every_field_where_it_was():
    big = padded(SMALL, 64)
    assert big.itemsize == 64 and big.isalignedstruct
    assert big.names == SMALL.names
    assert {n: big.fields[n][:2] for n in big.names} == {n: SMALL.fields[n][:2] for n in SMALL.names}


def test_a_record_larger_than_the_padding_is_refused():
    with pytest.raises(ValueError, match="24 bytes does not fit in 16"):
        padded(SMALL, 16)


@njit
def _bump(rows, i):
    rows[i].a += 1
    rows[i].b = 0.5


def test_compiled_kernels_index_padded_records_by_their_size():
    rows = np.zeros(4, padded(SMALL, 64))
    _bump(rows, 2)
    assert rows["a"].tolist() == [0, 0, 1, 0] and rows["b"].tolist() == [0, 0, 0.5, 0]
    assert rows.view(np.uint8).reshape(4, 64)[[0, 1, 3]].sum() == 0  # nothing written outside row 2


@pytest.mark.parametrize("dtype", [MARKET_DTYPE, POSITION_DTYPE, INSTRUMENT_RISK_DTYPE])
def test_the_records_indexed_per_instrument_on_every_event_are_a_power_of_two(dtype):
    assert dtype.itemsize == INSTRUMENT_RECORD_BYTES and dtype.isalignedstruct
