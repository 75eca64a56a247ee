"""The data layer: a Parquet catalog, vendor loaders and a synthetic market.

``Catalog`` stores records of ``framework.events`` dtypes by kind, symbol and UTC
date and replays them as one time-ordered EVENT_DTYPE stream; ``loaders`` turn
vendor files into those records exactly; ``synthetic`` makes realistic test data.
"""

from framework.data.catalog import KINDS, Catalog
from framework.data.errors import DataFormatError
from framework.data.loaders import FORMATS, detect_format, ingest, load
from framework.data.synthetic import SyntheticSpec, generate_day, write_synthetic

__all__ = [
    "FORMATS",
    "KINDS",
    "Catalog",
    "DataFormatError",
    "SyntheticSpec",
    "detect_format",
    "generate_day",
    "ingest",
    "load",
    "write_synthetic",
]
