"""Command line: make synthetic data or ingest vendor files into a catalog.

    python -m framework.data generate --catalog DIR [--symbol SYN --start 2024-01-01 --days 1 ...]
    python -m framework.data ingest --format FMT --symbol SYM PATH --catalog DIR
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

from framework.data.catalog import Catalog
from framework.data.errors import DataFormatError
from framework.data.loaders import FORMATS, ingest
from framework.data.synthetic import SyntheticSpec, write_synthetic


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m framework.data", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    gen = commands.add_parser("generate", help="write a synthetic market into a catalog")
    gen.add_argument("--catalog", required=True, help="catalog root directory")
    defaults = SyntheticSpec()
    for name, kind in [
        ("symbol", str), ("start", str), ("days", int), ("trades_per_day", int), ("quotes_per_trade", float),
        ("initial_price", float), ("tick_size", float), ("lot_size", float), ("annual_volatility", float),
        ("seed", int), ("session_start", str), ("session_hours", float),
    ]:
        gen.add_argument(f"--{name.replace('_', '-')}", dest=name, type=kind, default=getattr(defaults, name),
                         help=f"default: {getattr(defaults, name)}")

    ing = commands.add_parser("ingest", help="load a vendor file into a catalog")
    ing.add_argument("path", help="file to load")
    ing.add_argument("--format", choices=["auto", *FORMATS], default="auto",
                     help="file format (default: detect from the file name)")
    ing.add_argument("--symbol", required=True, help="catalog symbol to store under")
    ing.add_argument("--catalog", required=True, help="catalog root directory")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the process exit status."""
    args = _parser().parse_args(argv)
    catalog = Catalog(args.catalog)
    start = time.perf_counter()
    if args.command == "generate":
        fields = {k: v for k, v in vars(args).items() if k not in ("command", "catalog")}
        try:
            spec = SyntheticSpec(**fields)
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        write_synthetic(catalog, spec)
        print(f"generated {spec.days} day(s) of {spec.symbol} into {args.catalog} "
              f"in {time.perf_counter() - start:.1f} s")
        return 0
    try:
        counts = ingest(args.path, None if args.format == "auto" else args.format, catalog, args.symbol)
    except DataFormatError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    rows = ", ".join(f"{n} {kind}" for kind, n in counts.items())
    print(f"ingested {rows} rows of {args.symbol} into {args.catalog} in {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
