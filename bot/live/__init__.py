"""Live venues through ccxt: liquidation streams (streams), ccxt instances and error mapping
(exchange), client ids, raw recording, the --live gate (safety) and the factories (factory).
The live broker itself is bot.brokers.ccxt_broker."""
