"""Read headered CSV files as text columns and turn them into checked int64 arrays.

Every column is read as a string and parsed by ``framework.data.fixed_point``, never
through float, and every failure becomes a ``DataFormatError`` that names the file,
the data row, its line in the file, the column, the value and what was expected.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv

from framework.data.errors import DataFormatError
from framework.data.fixed_point import SCALE_DIGITS, ParseError, parse_decimal, parse_iso_ns

_HEADER_LINES = 1


def _header(path: Path) -> list[str]:
    with pa.input_stream(str(path), compression="detect") as stream:
        first = io.TextIOWrapper(stream, encoding="utf-8", newline="").readline()
    return next(csv.reader([first]), [])


class CsvColumns:
    """Text columns of one CSV file, with parsers that report errors by file, row and column."""

    def __init__(self, path: str | Path, required: list[str]) -> None:
        """Read the ``required`` columns of ``path`` (gzip allowed) as strings.

        Raise ``DataFormatError`` listing the missing columns and the ones found, or
        naming the first line whose field count does not match the header.
        """
        self.path = Path(path)
        try:
            found = _header(self.path)
        except (OSError, UnicodeDecodeError) as exc:
            raise DataFormatError(self.path, f"a readable CSV file ({exc})", line=1) from exc
        missing = [c for c in required if c not in found]
        if missing:
            raise DataFormatError(
                self.path,
                f"a header with column(s) {', '.join(missing)}; found columns: {', '.join(found) or '(none)'}",
                line=1,
            )
        bad_rows: list[pcsv.InvalidRow] = []

        def on_invalid(row: pcsv.InvalidRow) -> str:
            bad_rows.append(row)
            return "skip"

        try:
            self.table = pcsv.read_csv(
                self.path,
                parse_options=pcsv.ParseOptions(invalid_row_handler=on_invalid),
                convert_options=pcsv.ConvertOptions(
                    include_columns=required, column_types={c: pa.string() for c in required}
                ),
            )
        except pa.ArrowInvalid as exc:
            raise DataFormatError(self.path, f"well-formed CSV ({exc})") from exc
        if bad_rows:
            row = bad_rows[0]
            line = row.number if row.number is not None else self._find_line(row.text)
            raise DataFormatError(
                self.path,
                f"{row.expected_columns} fields like the header, not {row.actual_columns}",
                row=None if line is None else line - _HEADER_LINES,
                line=line,
                value=row.text,
            )
        self.rows = self.table.num_rows

    def _find_line(self, text: str) -> int | None:
        """Locate a malformed row's line (only on the error path, where speed is moot)."""
        with pa.input_stream(str(self.path), compression="detect") as stream:
            for number, line in enumerate(io.TextIOWrapper(stream, encoding="utf-8", newline=""), start=1):
                if line.rstrip("\r\n") == text:
                    return number
        return None

    def error(self, index: int, column: str, expected: str, value: object = None) -> DataFormatError:
        """Build the error for 0-based data row ``index`` of ``column``."""
        if value is None:
            value = self.table.column(column)[index].as_py()
        return DataFormatError(
            self.path, expected, row=index + 1, line=index + 1 + _HEADER_LINES, column=column, value=value
        )

    def text(self, column: str) -> pa.ChunkedArray:
        """Return a column as Arrow strings."""
        return self.table.column(column)

    def decimal(self, column: str, scale_digits: int = SCALE_DIGITS, *, empty: int | None = None) -> np.ndarray:
        """Parse a decimal column exactly into int64 ``value * 10**scale_digits``."""
        try:
            return parse_decimal(self.table.column(column), scale_digits, empty=empty)
        except ParseError as exc:
            raise self.error(exc.index, column, exc.expected, exc.value) from None

    def integer(self, column: str, *, empty: int | None = None) -> np.ndarray:
        """Parse an integer column (ids, epoch timestamps) into int64."""
        return self.decimal(column, 0, empty=empty)

    def timestamp(self, column: str) -> np.ndarray:
        """Parse an ISO-8601 UTC column into int64 nanoseconds."""
        try:
            return parse_iso_ns(self.table.column(column))
        except ParseError as exc:
            raise self.error(exc.index, column, exc.expected, exc.value) from None

    def choice(self, column: str, mapping: dict[str, int], dtype: type = np.int8) -> np.ndarray:
        """Map a categorical text column through ``mapping``; unknown values are an error."""
        values = self.table.column(column)
        out = np.zeros(len(values), dtype=dtype)
        known = np.zeros(len(values), dtype=bool)
        for text, code in mapping.items():
            hit = pc.equal(values, text).to_numpy(zero_copy_only=False)
            out[hit] = code
            known |= hit
        if not known.all():
            index = int(np.argmin(known))
            raise self.error(index, column, f"one of {', '.join(repr(k) for k in mapping)}")
        return out

    def require(self, ok: np.ndarray, column: str, expected: str) -> None:
        """Raise for the first row where ``ok`` is false."""
        if not ok.all():
            raise self.error(int(np.argmin(ok)), column, expected)

    def require_sorted(self, values: np.ndarray, column: str) -> None:
        """Raise for the first row whose value is smaller than the previous row's."""
        drops = np.flatnonzero(values[1:] < values[:-1])
        if len(drops):
            index = int(drops[0]) + 1
            previous = self.table.column(column)[index - 1].as_py()
            raise self.error(index, column, f"non-decreasing values in file order (previous row has {previous!r})")
