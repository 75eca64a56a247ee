"""What a venue adapter must report for reconciliation: open orders, fills since a time, positions.

Every adapter (``live/adapters/<venue>/``) converts its venue's answers into these three
record arrays, in the pipeline's units (int64 fixed point at ``PRICE_SCALE``, int64
nanoseconds, dense ``instrument_id``, ``Side`` signs), and wraps them in a
``VenueSnapshot``. A request the venue did not answer is ``None``, never an empty
array: an empty array says "the venue has none", ``None`` says "we do not know", and
reconciliation never reads the second as the first.

Rules the adapter must follow:

* ``client_order_id`` is the id this engine gave the order, or 0 for an order it did not
  place (entered by hand, by another system on the same account, or one whose client id
  the adapter cannot map back).
* ``venue_trade_id`` is the venue's own id of a fill, a positive integer, or 0 when the
  venue gives none; reconciliation then derives a stable id from the fill's fields.
* The positions report lists every instrument the engine trades, flat ones with
  ``qty`` 0: an instrument missing from it is unknown, not flat.
* ``avg_price`` of a position is the venue's entry price, or 0 when the venue does not
  say.
"""

from __future__ import annotations

from collections import namedtuple
from dataclasses import dataclass

import numpy as np

VenueOrderStatus = namedtuple("VenueOrderStatus", "OPEN PARTIALLY_FILLED")(1, 2)
"""Status of an open order as the venue reports it (finished orders are not open orders)."""

VENUE_ORDER_DTYPE = np.dtype(
    [
        ("venue_order_id", "<i8"), ("client_order_id", "<i8"), ("price", "<i8"), ("size", "<i8"),
        ("filled", "<i8"), ("leaves", "<i8"), ("ts_updated", "<i8"), ("instrument_id", "<i4"),
        ("side", "i1"), ("order_type", "u1"), ("status", "u1"),
    ],
    align=True,
)
"""One order the venue says is working: its total ``size``, how much has ``filled`` and the
``leaves`` still working (fixed point), its limit ``price``, ``OrderType`` and
``VenueOrderStatus``."""

VENUE_FILL_DTYPE = np.dtype(
    [
        ("venue_trade_id", "<i8"), ("venue_order_id", "<i8"), ("client_order_id", "<i8"), ("price", "<i8"),
        ("size", "<i8"), ("fee", "<i8"), ("ts_event", "<i8"), ("instrument_id", "<i4"), ("side", "i1"),
        ("liquidity", "u1"),
    ],
    align=True,
)
"""One fill the venue made: the order's ``side``, fixed-point ``price``, ``size`` and ``fee``
(negative is a rebate), ``Liquidity`` and the venue's time of the trade."""

VENUE_POSITION_DTYPE = np.dtype(
    [("ts_event", "<i8"), ("qty", "<i8"), ("avg_price", "<i8"), ("instrument_id", "<i4")],
    align=True,
)
"""One instrument's position at the venue: signed fixed-point ``qty`` (long positive), the
venue's average entry price (0 if it does not say) and the time the venue reported it."""


@dataclass(frozen=True, eq=False)
class VenueSnapshot:
    """The venue's answers to one round of reconciliation requests, as the adapter got them.

    ``requested_ns`` is the engine's time when the adapter sent the first request: an
    order created at or after it may still have been on its way to the venue, so its
    absence from ``open_orders`` means nothing. ``received_ns`` is the engine's time when
    the last answer arrived; the correcting events carry it as ``ts_recv``.
    ``fills`` holds every fill since ``fills_since_ns`` (venue time). A report the venue
    did not answer is ``None``.
    """

    requested_ns: int
    received_ns: int
    open_orders: np.ndarray | None
    fills: np.ndarray | None
    fills_since_ns: int
    positions: np.ndarray | None
    venue_id: int = 0

    def __post_init__(self) -> None:
        for name, dtype in (
            ("open_orders", VENUE_ORDER_DTYPE),
            ("fills", VENUE_FILL_DTYPE),
            ("positions", VENUE_POSITION_DTYPE),
        ):
            arr = getattr(self, name)
            if arr is not None and (not isinstance(arr, np.ndarray) or arr.dtype != dtype or arr.ndim != 1):
                raise TypeError(f"{name} must be None or a 1-D array of its VENUE_*_DTYPE, got {arr!r:.120}")
        if self.received_ns < self.requested_ns:
            raise ValueError(f"received_ns {self.received_ns} is before requested_ns {self.requested_ns}")

    @property
    def has_open_orders(self) -> bool:
        """Whether the venue answered the open-orders request."""
        return self.open_orders is not None

    @property
    def has_fills(self) -> bool:
        """Whether the venue answered the fills request."""
        return self.fills is not None

    @property
    def has_positions(self) -> bool:
        """Whether the venue answered the positions request."""
        return self.positions is not None
