"""Symbol and venue matching for detector rules, case-insensitive.

Contents:
- parse_symbol(text) -> (base, quote or None): BTCUSDT, BTC-USDT-SWAP, BTC/USDT:USDT, BTCUSD_PERP,
  1000PEPEUSDT, or a bare base asset (BTC)
- symbol_matches(token, symbol): does a rule's `symbols` entry count this event symbol?
- venue_matches(token, venue): does a rule's `venues` entry count this event venue?
- STREAM_VENUES: the venues whose liquidations can be streamed

A token with a quote (BTCUSDT, BTC/USDT:USDT) matches symbols with the same base and quote, in
any venue's spelling; a bare base asset (BTC) matches every symbol of that base, including its
multiplied (1000PEPE) and wrapped (WBTC, cbBTC, WETH) forms.
"""

from __future__ import annotations

import re
from functools import lru_cache

# the venues whose liquidations can be streamed, in the order `run` lists them
STREAM_VENUES = (
    "binance",
    "bybit",
    "okx",
    "deribit",
    "gate",
    "dydx",
    "bitget",
    "htx",
    "hyperliquid",
)
# Longest first, so that FDUSD wins over USD and USDT over USD.
_QUOTES = ("FDUSD", "USDT", "USDC", "BUSD", "TUSD", "USDE", "USD", "DAI", "EUR", "TRY", "BRL")
_CONTRACT_SUFFIX = re.compile(r"(_PERP|_\d{6}|-SWAP|-PERP|-\d{6})$")
_MULTIPLIER = re.compile(r"^(1000000|10000|1000|100|1M|1K)(?=[A-Z])")
# Wrapped or bridged forms a base-asset rule should also count (on-chain collateral).
_WRAPPED = {"WBTC": "BTC", "CBBTC": "BTC", "TBTC": "BTC", "BTCB": "BTC", "WETH": "ETH"}


@lru_cache(maxsize=65536)
def parse_symbol(text: str) -> tuple[str, str | None]:
    """Split a symbol into (base, quote), upper-cased; quote is None for a bare asset."""
    s = text.strip().upper()
    if "/" in s:  # ccxt: BTC/USDT:USDT, BTC/USD:BTC-241227
        base, _, rest = s.partition("/")
        return base, rest.split(":", 1)[0] or None
    s = _CONTRACT_SUFFIX.sub("", s)
    if "-" in s:  # OKX: BTC-USDT(-SWAP), BTC-USD-241227
        base, _, rest = s.partition("-")
        return base, rest.split("-", 1)[0] or None
    for quote in _QUOTES:
        if s.endswith(quote) and len(s) > len(quote):
            return s[: -len(quote)], quote
    return s, None


def _base_forms(base: str) -> set[str]:
    """A base and the plain asset behind it: 1000PEPE -> PEPE, WBTC -> BTC."""
    forms = {base}
    plain = _MULTIPLIER.sub("", base)
    forms.add(plain)
    forms.add(_WRAPPED.get(plain, plain))
    return forms


@lru_cache(maxsize=65536)
def symbol_matches(token: str, symbol: str) -> bool:
    """True if the rule token (a symbol or a base asset) counts events on `symbol`."""
    if token.strip().upper() == symbol.strip().upper():
        return True
    t_base, t_quote = parse_symbol(token)
    s_base, s_quote = parse_symbol(symbol)
    if t_quote is None:
        return t_base in _base_forms(s_base)
    return t_base == s_base and t_quote == s_quote


def venue_matches(token: str, venue: str) -> bool:
    """True if the rule's venue names this venue or its family (binance counts binance-usdm)."""
    t = token.strip().lower()
    v = venue.strip().lower()
    return v == t or v.startswith(t + "-")
