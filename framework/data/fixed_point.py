"""Exact, vectorized parsing of text columns into int64.

Prices and sizes arrive as decimal strings. Going through float would turn ``0.1``
into ``0.1000000000000000055...`` and, after scaling, occasionally land one unit off,
so order-book keys would stop comparing exactly. These parsers read the digits
straight into int64 fixed point (``framework.events.PRICE_SCALE``), and ISO-8601
timestamps straight into int64 nanoseconds, in compiled loops over the Arrow string
buffers: no Python object per value, no rounding anywhere.

A value that cannot be represented exactly is an error, not a rounding: the caller
gets a ``ParseError`` with the index of the first offending value.
"""

from __future__ import annotations

from collections.abc import Sequence

import numba as nb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

SCALE_DIGITS = 9
"""Decimal digits of ``PRICE_SCALE`` (1e9)."""

_I64_MAX = np.iinfo(np.int64).max

_OK, _EMPTY, _SYNTAX, _INEXACT, _RANGE, _DATE = 0, 1, 2, 3, 4, 5
_REASONS = {
    _EMPTY: "a value, not an empty field",
    _SYNTAX: "a decimal number such as -12.345 (digits, an optional sign and one optional point)",
    _INEXACT: "at most {scale} decimals, or only zeros beyond them (the value must be exact in fixed point)",
    _RANGE: "a magnitude that fits int64 after scaling by 10**{scale}",
    _DATE: "an ISO-8601 UTC time such as 2024-01-31, 2024-01-31T23:59:59.123Z or 2024-01-31 23:59:59+00:00",
}


class ParseError(ValueError):
    """Report the first value of a column that does not parse.

    ``index`` is the 0-based position in the input, ``value`` the text, ``expected``
    a human description; loaders turn these into a ``DataFormatError`` that names the
    file, row and column.
    """

    def __init__(self, index: int, value: str, expected: str) -> None:
        self.index = index
        self.value = value
        self.expected = expected
        super().__init__(f"value {value!r} at index {index}: expected {expected}")


@nb.njit(cache=True, nogil=True)
def _parse_decimals(data, offsets, scale, allow_empty, empty, out):  # pragma: no cover - compiled
    n = out.shape[0]
    for i in range(n):
        p = offsets[i]
        e = offsets[i + 1]
        if p == e:
            if allow_empty:
                out[i] = empty
                continue
            return i, _EMPTY
        neg = False
        c = data[p]
        if c == 45 or c == 43:  # '-' '+'
            neg = c == 45
            p += 1
        v = np.int64(0)
        ndig = 0
        frac = 0
        dot = False
        while p < e:
            c = data[p]
            p += 1
            if 48 <= c <= 57:
                d = np.int64(c - 48)
                ndig += 1
                if dot:
                    frac += 1
                    if frac > scale:
                        if d != 0:
                            return i, _INEXACT
                        continue
                if v > (_I64_MAX - d) // 10:
                    return i, _RANGE
                v = v * 10 + d
            elif c == 46 and not dot:  # '.'
                dot = True
            else:
                return i, _SYNTAX
        if ndig == 0:
            return i, _SYNTAX
        for _ in range(scale - min(frac, scale)):
            if v > _I64_MAX // 10:
                return i, _RANGE
            v *= 10
        out[i] = -v if neg else v
    return -1, _OK


@nb.njit(cache=True, nogil=True)
def _days_from_civil(y, m, d):  # pragma: no cover - compiled
    y -= m <= 2
    era = (y if y >= 0 else y - 399) // 400
    yoe = y - era * 400
    mp = m - 3 if m > 2 else m + 9
    doy = (153 * mp + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


@nb.njit(cache=True, nogil=True)
def _digits(data, p, k):  # pragma: no cover - compiled
    v = 0
    for j in range(p, p + k):
        c = data[j]
        if c < 48 or c > 57:
            return -1
        v = v * 10 + (c - 48)
    return v


@nb.njit(cache=True, nogil=True)
def _parse_iso(data, offsets, out):  # pragma: no cover - compiled
    mdays = np.array([31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31])
    for i in range(out.shape[0]):
        p = offsets[i]
        e = offsets[i + 1]
        if e - p < 10 or data[p + 4] != 45 or data[p + 7] != 45:
            return i
        y = _digits(data, p, 4)
        mo = _digits(data, p + 5, 2)
        d = _digits(data, p + 8, 2)
        if y < 0 or mo < 1 or mo > 12 or d < 1:
            return i
        leap = (y % 4 == 0 and y % 100 != 0) or y % 400 == 0
        if d > mdays[mo - 1] + (1 if (mo == 2 and leap) else 0):
            return i
        ns = np.int64(_days_from_civil(y, mo, d)) * 86_400_000_000_000
        p += 10
        if p < e and (data[p] == 84 or data[p] == 32):  # 'T' or ' '
            if e - p < 9 or data[p + 3] != 58 or data[p + 6] != 58:
                return i
            hh = _digits(data, p + 1, 2)
            mi = _digits(data, p + 4, 2)
            ss = _digits(data, p + 7, 2)
            if hh < 0 or hh > 23 or mi < 0 or mi > 59 or ss < 0 or ss > 59:
                return i
            ns += (hh * 3600 + mi * 60 + ss) * np.int64(1_000_000_000)
            p += 9
            if p < e and data[p] == 46:  # fraction of a second
                p += 1
                frac = np.int64(0)
                k = 0
                while p < e and 48 <= data[p] <= 57:
                    if k < 9:
                        frac = frac * 10 + (data[p] - 48)
                    elif data[p] != 48:
                        return i
                    k += 1
                    p += 1
                if k == 0:
                    return i
                for _ in range(9 - min(k, 9)):
                    frac *= 10
                ns += frac
        if p < e:  # only UTC designators are accepted
            if e - p == 1 and data[p] == 90:  # 'Z'
                p += 1
            elif e - p == 6 and _digits(data, p + 1, 2) == 0 and _digits(data, p + 4, 2) == 0 and (
                data[p] == 43 and data[p + 3] == 58
            ):  # '+00:00'
                p += 6
            else:
                return i
        out[i] = ns
    return -1


def _string_chunks(values: pa.Array | pa.ChunkedArray | Sequence[str] | np.ndarray) -> list[pa.Array]:
    if isinstance(values, pa.ChunkedArray):
        chunks = list(values.chunks)
    elif isinstance(values, pa.Array):
        chunks = [values]
    else:
        chunks = [pa.array(np.asarray(values, dtype=object), type=pa.string())]
    out = []
    for chunk in chunks:
        if not (pa.types.is_string(chunk.type) or pa.types.is_large_string(chunk.type)):
            chunk = chunk.cast(pa.large_string())
        if chunk.null_count:
            chunk = pc.fill_null(chunk, "")
        out.append(chunk)
    return out


def _buffers(chunk: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """Return (bytes, offsets) of an Arrow string array, honouring a slice offset."""
    _, off_buf, data_buf = chunk.buffers()
    off_type = np.int64 if pa.types.is_large_string(chunk.type) else np.int32
    offsets = np.frombuffer(off_buf, dtype=off_type)[chunk.offset : chunk.offset + len(chunk) + 1]
    data = np.frombuffer(data_buf, dtype=np.uint8) if data_buf is not None else np.zeros(1, np.uint8)
    return data, offsets.astype(np.int64, copy=False)


def parse_decimal(
    values: pa.Array | pa.ChunkedArray | Sequence[str] | np.ndarray,
    scale_digits: int = SCALE_DIGITS,
    *,
    empty: int | None = None,
) -> np.ndarray:
    """Parse decimal strings into int64 ``value * 10**scale_digits``, exactly.

    The default scale gives ``PRICE_SCALE`` fixed point; ``scale_digits=0`` parses
    integers (ids, millisecond timestamps) and e.g. ``5`` turns prices quoted in
    1/10000 units into fixed point. Empty fields are an error unless ``empty`` gives
    the value to use for them. Raise ``ParseError`` for the first value that is not a
    plain decimal, has non-zero digits beyond the scale, or overflows int64.
    """
    if not 0 <= scale_digits <= 18:
        raise ValueError(f"scale_digits must be in 0..18, got {scale_digits}")
    chunks = _string_chunks(values)
    out = np.empty(sum(len(c) for c in chunks), dtype=np.int64)
    pos = 0
    for chunk in chunks:
        data, offsets = _buffers(chunk)
        n = len(chunk)
        bad, code = _parse_decimals(
            data, offsets, scale_digits, empty is not None, 0 if empty is None else empty, out[pos : pos + n]
        )
        if bad >= 0:
            raise ParseError(pos + bad, chunk[bad].as_py(), _REASONS[code].format(scale=scale_digits))
        pos += n
    return out


def parse_iso_ns(values: pa.Array | pa.ChunkedArray | Sequence[str] | np.ndarray) -> np.ndarray:
    """Parse ISO-8601 UTC dates or times into int64 nanoseconds since the epoch, exactly.

    Accept ``YYYY-MM-DD`` (midnight) and ``YYYY-MM-DD[T ]HH:MM:SS[.fffffffff]`` with an
    optional ``Z`` or ``+00:00``; a time without a zone is taken as UTC. Other zones are
    rejected rather than silently shifted. Raise ``ParseError`` for the first bad value.
    """
    chunks = _string_chunks(values)
    out = np.empty(sum(len(c) for c in chunks), dtype=np.int64)
    pos = 0
    for chunk in chunks:
        data, offsets = _buffers(chunk)
        n = len(chunk)
        bad = _parse_iso(data, offsets, out[pos : pos + n])
        if bad >= 0:
            raise ParseError(pos + bad, chunk[bad].as_py(), _REASONS[_DATE])
        pos += n
    return out
