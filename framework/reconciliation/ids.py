"""Deterministic ids for what the venue did not name: fills without a trade id, position adjustments.

A synthetic id must be the same for the same venue data in every run and every process,
or a restart books the same fill twice under two names. So it is a hash of the venue's
own fields (BLAKE2b, which unlike Python's ``hash`` is not salted per process), never a
counter, a clock or a random draw. Synthetic ids are negative and venue ids positive, so
the two can never collide.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np

_FILL_TAG = b"fill"
_ADJUSTMENT_TAG = b"position-adjustment"
_FILL_FIELDS = (
    "venue_order_id", "client_order_id", "instrument_id", "side", "price", "size", "fee", "liquidity", "ts_event",
)


def synthetic_id(tag: bytes, values: Sequence[int]) -> int:
    """Return a negative int64 id that depends only on ``tag`` and the integers ``values``."""
    data = tag + b"\0" + np.asarray(values, dtype="<i8").tobytes()
    digest = int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "little")
    return -(digest & 0x7FFF_FFFF_FFFF_FFFF) - 1


def effective_trade_ids(fills: np.ndarray) -> np.ndarray:
    """Return each fill's trade id: the venue's when it gave one, else a synthetic one.

    ``fills`` must be in canonical order (``framework.reconciliation.fills``), where equal
    records are neighbours. Two fills without a venue id and with equal fields are told
    apart by their rank among their equals, so two real, identical fills stay two.
    """
    ids = fills["venue_trade_id"].astype(np.int64)
    rank = 0
    for i in range(len(fills)):
        if ids[i] > 0:
            continue
        same_as_previous = i > 0 and fills[i].item() == fills[i - 1].item()
        rank = rank + 1 if same_as_previous else 0
        ids[i] = synthetic_id(_FILL_TAG, [int(fills[i][name]) for name in _FILL_FIELDS] + [rank])
    return ids


def adjustment_id(position: np.void) -> int:
    """Return the id of the fill that sets an instrument to the venue's ``position`` record.

    Built from the venue's record only, so the same report gives the same id, and a
    second reconciliation against it sees the adjustment as already applied.
    """
    fields = ("instrument_id", "qty", "avg_price", "ts_event")
    return synthetic_id(_ADJUSTMENT_TAG, [int(position[name]) for name in fields])
