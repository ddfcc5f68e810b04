"""Where Liquidation events come from: recorded files and the venue message parsers.

`venues` turns a venue's raw websocket message into events (live streams use it too);
`files` streams recorded tapes (unified CSV, Binance CSV, raw JSON lines; plain or gzip);
`prices` reads Binance kline CSVs into PriceTicks.
"""

from __future__ import annotations

from bot.sources.files import RecordedTape, Rejection, TapeStats, open_tape
from bot.sources.prices import read_prices
from bot.sources.validate import MalformedMessage, TapeError
from bot.sources.venues import (
    parse_binance_force_order,
    parse_bybit_liquidation,
    parse_okx_liquidation_orders,
    parse_raw_message,
)

__all__ = [
    "MalformedMessage",
    "RecordedTape",
    "Rejection",
    "TapeError",
    "TapeStats",
    "open_tape",
    "parse_binance_force_order",
    "parse_bybit_liquidation",
    "parse_okx_liquidation_orders",
    "parse_raw_message",
    "read_prices",
]
