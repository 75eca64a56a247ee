"""Errors raised by the data layer."""

from __future__ import annotations

from pathlib import Path


class DataFormatError(ValueError):
    """Report input that does not match its declared format.

    The message names the file, the 1-based data row and the file line it sits on,
    the column, the offending value and what was expected, so that a bad file can be
    fixed without a debugger. The same facts are kept as attributes for tests and
    tools. Loading stops at the first error, and nothing is written to a catalog.
    """

    def __init__(
        self,
        path: str | Path,
        expected: str,
        *,
        row: int | None = None,
        line: int | None = None,
        column: str | None = None,
        value: object = None,
    ) -> None:
        self.path = str(path)
        self.expected = expected
        self.row = row
        self.line = line
        self.column = column
        self.value = value
        where = [self.path]
        if row is not None:
            where.append(f"data row {row}" + (f" (line {line} of the file)" if line is not None else ""))
        elif line is not None:
            where.append(f"line {line}")
        if column is not None:
            where.append(f"column {column!r}")
        got = f"got {value!r}; " if value is not None else ""
        super().__init__(f"{', '.join(where)}: {got}expected {expected}")
