"""Binance market data: message decoding, order-book synchronisation, the WebSocket feed and a replay server.

* ``messages``: Binance JSON -> event records or a reasoned ``Rejected`` (pure).
* ``book_sync``: Binance's documented snapshot + diff procedure (pure state machine).
* ``feed``: the asyncio client (``BinanceFeed``, ``FeedConfig``).
* ``replay_server``: a loopback server replaying a raw capture, for tests and demos.
"""
