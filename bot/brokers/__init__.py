"""Brokers behind bot.interfaces.Broker: paper (simulated fills) now, ccxt via bot.app.wiring.

Rules for every broker: `submit` is never blind-retried; an order whose outcome is unknown
(timeout) is looked up by its client id before anything is sent again, and the same client id
submitted twice must never produce a second fill.
"""

from bot.brokers.paper import PaperBroker, liquidation_price

__all__ = ["PaperBroker", "liquidation_price"]
