"""ZeroMQ transport of the live runtime (wire format in ``live.wire``).

* ``Publisher`` / ``Subscriber``: PUB/SUB for market data and execution reports, with
  per-publisher epochs and sequence numbers, heartbeats, and gap recovery by replay
  from the publisher's ring or by snapshot.
* ``CommandSender`` / ``CommandReceiver``: DEALER/ROUTER with acknowledgements for
  commands, delivered exactly once and in order.

Endpoints are ZeroMQ strings: ``ipc:///path`` on one host, ``tcp://host:port`` across
hosts. Everything is usable from asyncio; the codec underneath is synchronous and pure.
See docs/reference/wire-format.md.
"""

from live.transport.commands import CommandBacklogFull, CommandReceiver, CommandSender, ReceiverCounters, SenderCounters
from live.transport.publisher import Publisher, PublisherCounters, SnapshotProvider, new_epoch
from live.transport.sequencer import Stream, SubscriberCounters
from live.transport.subscriber import Source, Subscriber

__all__ = [
    "CommandBacklogFull",
    "CommandReceiver",
    "CommandSender",
    "Publisher",
    "PublisherCounters",
    "ReceiverCounters",
    "SenderCounters",
    "SnapshotProvider",
    "Source",
    "Stream",
    "Subscriber",
    "SubscriberCounters",
    "new_epoch",
]
