"""Binance market data (decoding, order-book synchronisation, the WebSocket feed, a replay server) and order entry.

* ``messages``: Binance JSON -> event records or a reasoned ``Rejected`` (pure).
* ``book_sync``: Binance's documented snapshot + diff procedure (pure state machine).
* ``feed``: the asyncio client (``BinanceFeed``, ``FeedConfig``).
* ``replay_server``: a loopback server replaying a raw capture, for tests and demos.
* ``credentials``: the API key and secret, loaded and never shown (``Credentials``).
* ``execution``: order entry through ccxt (``BinanceExecution``, ``BinanceExecutionConfig``).
* ``order_requests``: pipeline commands -> ccxt order requests, or a reasoned ``Refused`` (pure).
* ``venue_records``: the venue's order, trade and position JSON -> fixed-point records (pure).
* ``errors``: failed ccxt calls -> what they mean for the order and the RejectReason (pure).
* ``order_tracking``: the orders the adapter knows, by client id and by matching-engine id.
"""
