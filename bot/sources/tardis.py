"""Tardis.dev's normalized `liquidations` CSV: one row -> one Liquidation, USD as the live parsers.

Contents: TARDIS_COLUMNS, TARDIS_EXCHANGES (Tardis exchange id -> liqguard venue), TardisRows.

Columns (docs.tardis.dev, Downloadable CSV files, data type `liquidations`; the normalized
Liquidation type of Tardis's own client, tardis-node src/types.ts):
- exchange: Tardis's exchange id (binance-futures, bybit, okex-swap, ...)
- symbol: the exchange's instrument id, upper case
- timestamp: the exchange's time of the liquidation, MICROseconds since the epoch, UTC (Tardis
  puts local_timestamp there when the exchange gives none, e.g. BitMEX)
- local_timestamp: when Tardis received the message, microseconds; files are split into UTC
  days and ordered by it, so `timestamp` may step back a little (the detector allows that)
- id: the exchange's liquidation id, often empty
- side: the LIQUIDATION ORDER's side: `buy` = a short position was liquidated, `sell` = a long
  (Tardis normalizes Bybit's and Bitget's position side to the order side); `unknown` exists
- price, amount: "as provided by exchange", so amount is in each venue's own unit, which is
  why USD is computed per exchange here, with the live parsers' rules (bot.sources.venues):
  binance-futures   amount `z` in base coin (price is the order price `p`, not the average)
                    -> amount x price, venue binance-usdm
  binance-delivery  COIN-M contracts -> contracts x face value (100 USD BTC, 10 USD others)
  bybit             linear: base coin -> amount x price; inverse (BTCUSD, BTCUSDH25): USD
  okex-swap/-futures `sz` contracts x ctVal (built-in table; inverse ctVal is USD, linear is
                    base coin, x price); an instrument not in the table is rejected
  deribit           inverse perpetuals/futures: USD; linear `_USDC` ones: base coin x price;
                    options rejected
  bitmex            XBTUSD and XBT futures: contracts of 1 USD (`leavesQty`); other BitMEX
                    contracts (quanto, linear) rejected
  dydx-v4           base coin x price (USDC)
Any other exchange, and any row whose contract value is not known, is rejected with the
reason, never guessed.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from decimal import Decimal

from bot.events import Liquidation
from bot.sources.validate import MalformedMessage, make_liquidation, to_number
from bot.sources.venues import (
    _BYBIT_INVERSE,
    _DERIBIT_OPTION,
    OKX_CONTRACT_VALUES,
    binance_coinm_contract_usd,
)

TARDIS_COLUMNS = (
    "exchange", "symbol", "timestamp", "local_timestamp", "id", "side", "price", "amount",
)  # fmt: skip
TARDIS_EXCHANGES: dict[str, str] = {
    "binance-futures": "binance-usdm",
    "binance-delivery": "binance-coinm",
    "bybit": "bybit",
    "okex-swap": "okx",
    "okex-futures": "okx",
    "deribit": "deribit",
    "bitmex": "bitmex",
    "dydx-v4": "dydx",
}
_BITMEX_INVERSE = re.compile(r"^XBT(USD|[FGHJKMNQUVXZ]\d{2})$")  # 1 USD per contract
_US_PER_MS = 1000

# (symbol, amount, price) -> (USD, quantity kept on the event)
Convert = Callable[[str, Decimal, Decimal], tuple[Decimal, Decimal]]


def _linear(_symbol: str, amount: Decimal, price: Decimal) -> tuple[Decimal, Decimal]:
    return amount * price, amount


def _binance_delivery(symbol: str, amount: Decimal, price: Decimal) -> tuple[Decimal, Decimal]:
    face = binance_coinm_contract_usd(symbol)
    if face is None:
        raise MalformedMessage(f"{symbol}: not a Binance COIN-M symbol, contract value unknown")
    return amount * face, amount


def _bybit(symbol: str, amount: Decimal, price: Decimal) -> tuple[Decimal, Decimal]:
    return (amount if _BYBIT_INVERSE.match(symbol) else amount * price), amount


def _okx(symbol: str, amount: Decimal, price: Decimal) -> tuple[Decimal, Decimal]:
    parts = symbol.split("-")
    ct_val = OKX_CONTRACT_VALUES.get("-".join(parts[:2]))
    if ct_val is None or len(parts) < 3:
        raise MalformedMessage(
            f"{symbol}: OKX contract value unknown (not in the built-in table); "
            "convert this instrument to the unified format yourself"
        )
    inverse = parts[1] == "USD"
    return (amount * ct_val if inverse else amount * ct_val * price), amount


def _deribit(symbol: str, amount: Decimal, price: Decimal) -> tuple[Decimal, Decimal]:
    if _DERIBIT_OPTION.match(symbol):
        raise MalformedMessage(f"{symbol}: an option; only futures liquidations are counted")
    if "_" in symbol.split("-")[0]:  # BTC_USDC-PERPETUAL: amount in coin
        return amount * price, amount
    return amount, amount / price


def _bitmex(symbol: str, amount: Decimal, price: Decimal) -> tuple[Decimal, Decimal]:
    if not _BITMEX_INVERSE.match(symbol):
        raise MalformedMessage(
            f"{symbol}: BitMEX contract value unknown (only XBTUSD and XBT futures, 1 USD each)"
        )
    return amount, amount / price


_CONVERT: dict[str, Convert] = {
    "binance-futures": _linear,
    "binance-delivery": _binance_delivery,
    "bybit": _bybit,
    "okex-swap": _okx,
    "okex-futures": _okx,
    "deribit": _deribit,
    "bitmex": _bitmex,
    "dydx-v4": _linear,
}


class TardisRows:
    """Parses the rows of a Tardis `liquidations` CSV (the header checked by the caller)."""

    width = len(TARDIS_COLUMNS)

    def parse(self, line: str) -> Liquidation:
        f = line.rstrip("\r\n").split(",")
        if len(f) != self.width:
            raise MalformedMessage(f"expected {self.width} fields, found {len(f)}")
        exchange, symbol, ts_text, local_text, row_id, side_text, price_text, amount_text = (
            x.strip() for x in f
        )
        venue = TARDIS_EXCHANGES.get(exchange)
        if venue is None:
            raise MalformedMessage(
                f"Tardis exchange {exchange[:30]!r}: liqguard does not know its amount units "
                f"(reads {', '.join(TARDIS_EXCHANGES)})"
            )
        if side_text == "sell":
            side = "long"  # a forced sell closes a long
        elif side_text == "buy":
            side = "short"
        else:
            raise MalformedMessage(
                f"side {side_text[:20]!r}: expected buy (a short liquidated) or sell (a long)"
            )
        ts_ms = _ms(ts_text or local_text, "timestamp" if ts_text else "local_timestamp")
        price = to_number(price_text, "price")
        amount = to_number(amount_text, "amount")
        if price <= 0 or amount <= 0:
            raise MalformedMessage(f"price {price} and amount {amount} must be positive")
        usd, quantity = _CONVERT[exchange](symbol, amount, price)
        return make_liquidation(
            ts_ms=ts_ms,
            venue=venue,
            symbol=symbol,
            side=side,
            notional_usd=usd,
            price=price,
            quantity=quantity,
            event_id=f"{venue}:{symbol}:{row_id or ts_text}:{side}:{amount_text}:{price_text}",
        )


def _ms(text: str, what: str) -> int:
    """Epoch milliseconds of a Tardis microsecond timestamp."""
    if not text.isdigit():
        raise MalformedMessage(f"{what} {text[:30]!r} is not whole microseconds since the epoch")
    us = int(text)
    if us < 10**14:  # 2009 in microseconds is 1.2e15; milliseconds stay below 1e13
        raise MalformedMessage(
            f"{what} {us} is too small for microseconds (Tardis times are in µs, not ms)"
        )
    return us // _US_PER_MS
