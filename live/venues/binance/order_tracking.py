"""What the adapter knows of the engine's orders, found by client order id or by the matching-engine id of their fills.

Finished orders are remembered, the oldest forgotten first beyond a bound, so that a
re-sent SUBMIT of an order that already ended is answered without a second order.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass

from live.venues.binance.venue_records import VenueOrder


@dataclass(frozen=True, slots=True)
class Instrument:
    """A traded instrument and its market at the venue."""

    instrument_id: int
    symbol: str  # ccxt unified
    market_id: str  # Binance's, as in answers ("BTCUSDT")
    base: str
    quote: str


@dataclass
class TrackedOrder:
    """What the adapter knows of one of the engine's orders.

    ``filled`` is what fill reports have said, so leaves = ``size - filled``. ``final`` is a
    CANCELED/EXPIRED the venue reported, held as (kind, the venue's executed quantity,
    ts_event) until that much has been reported filled.
    """

    client_order_id: int
    instrument: Instrument
    side: int
    order_type: int
    size: int
    price: int
    algo: bool
    venue_order_id: int = 0  # the id reports carry (the algoId for a futures stop)
    order_id: int = 0  # the matching-engine id its fills carry (a stop's actualOrderId once triggered)
    filled: int = 0
    accepted: bool = False
    done: bool = False
    final: tuple[int, int, int] | None = None
    final_since_ns: int = 0
    venue_update_ms: int = 0
    acked_ns: int = 0
    busy: int = 0  # commands about this order awaiting the venue

    @property
    def leaves(self) -> int:
        return self.size - self.filled

    @property
    def waiting_trigger(self) -> bool:
        return self.algo and self.order_id == 0


class TrackedOrders:
    """The tracked orders by client order id, oldest first, and by the matching-engine id their fills carry."""

    def __init__(self, max_finished: int) -> None:
        """Remember at most ``max_finished`` finished orders."""
        self._max_finished = max_finished
        self._orders: OrderedDict[int, TrackedOrder] = OrderedDict()
        self._finished = 0  # done orders in _orders
        self._by_order_id: dict[int, TrackedOrder] = {}

    def __iter__(self) -> Iterator[TrackedOrder]:
        return iter(self._orders.values())

    def get(self, client_order_id: int) -> TrackedOrder | None:
        """The order with the engine's ``client_order_id``, if tracked."""
        return self._orders.get(client_order_id)

    def by_order_id(self, order_id: int) -> TrackedOrder | None:
        """The order with the matching-engine id ``order_id``, if tracked and its id known."""
        return self._by_order_id.get(order_id)

    def live(self, inst: Instrument) -> list[TrackedOrder]:
        """The orders on ``inst`` not finished yet."""
        return [o for o in self._orders.values() if not o.done and o.instrument is inst]

    def track(self, order: TrackedOrder) -> None:
        """Start tracking ``order``, as the newest."""
        self._orders[order.client_order_id] = order
        self._orders.move_to_end(order.client_order_id)

    def untrack(self, order: TrackedOrder) -> None:
        """Forget ``order``."""
        if self._orders.get(order.client_order_id) is order:
            del self._orders[order.client_order_id]
            self._finished -= order.done
        if order.order_id and self._by_order_id.get(order.order_id) is order:
            del self._by_order_id[order.order_id]

    def forget_if_unacknowledged(self, order: TrackedOrder | None) -> None:
        """Forget ``order`` if the venue never acknowledged it and it has not finished."""
        if order is not None and not order.accepted and not order.done:
            self.untrack(order)

    def learn_ids(self, order: TrackedOrder, venue: VenueOrder) -> None:
        """Take the venue order id and the matching-engine id from the venue's record of ``order``, once."""
        if order.venue_order_id == 0:
            order.venue_order_id = venue.order_id
        engine_id = venue.actual_order_id if venue.algo else venue.order_id
        if engine_id and order.order_id == 0:
            order.order_id = engine_id
            self._by_order_id[engine_id] = order

    def close(self, order: TrackedOrder) -> None:
        """Mark the order finished; forget the oldest finished ones beyond ``max_finished``."""
        order.done = True
        self._finished += 1
        self._orders.move_to_end(order.client_order_id)
        while self._finished > self._max_finished:
            oldest = next(o for o in self._orders.values() if o.done)
            self.untrack(oldest)
