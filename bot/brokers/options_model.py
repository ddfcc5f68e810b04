"""Option pricing for the paper market: Black-76, implied vol, spread and Deribit's fee rule.

Pure arithmetic, no I/O. Contents:
- black76: European put/call on a forward, discounted at a continuous annual rate
- OptionContract / parse_option_symbol / is_option_symbol: ccxt unified symbols
  (`BTC/USD:BTC-241213-90000-P`) with their 08:00 UTC expiry
- years_between: time to expiry on a 365-day year (Deribit's convention)
- iv_from_table: bilinear implied vol on a (days to expiry x moneyness) grid, flat outside it
- quote_coin: model premium in the settlement coin, with the bid/ask around it
- deribit_fee_coin: a fraction of the underlying per contract, capped by a fraction of premium

The paper market is a model, not a market: prices come from these formulas and the configured
volatility, never from an order book.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

YEAR_MS = 365 * 86_400_000
DAY_MS = 86_400_000

OptionKind = Literal["P", "C"]


def _norm_cdf(x: float) -> float:
    return 0.5 * math.erfc(-x / math.sqrt(2.0))


def black76(
    kind: OptionKind, forward: float, strike: float, years: float, vol: float, rate: float = 0.0
) -> float:
    """Black-76 price of a European option on `forward`, in the forward's currency.

    At or past expiry (or at zero vol) the price is the discounted intrinsic value.
    """
    if forward <= 0 or strike <= 0:
        raise ValueError(f"forward {forward} and strike {strike} must be > 0")
    discount = math.exp(-rate * max(years, 0.0))
    if years <= 0 or vol <= 0:
        intrinsic = max(strike - forward, 0.0) if kind == "P" else max(forward - strike, 0.0)
        return discount * intrinsic
    spread = vol * math.sqrt(years)
    d1 = (math.log(forward / strike) + 0.5 * spread * spread) / spread
    d2 = d1 - spread
    if kind == "C":
        # max: far out of the money the difference rounds below zero; a price cannot
        return max(0.0, discount * (forward * _norm_cdf(d1) - strike * _norm_cdf(d2)))
    return max(0.0, discount * (strike * _norm_cdf(-d2) - forward * _norm_cdf(-d1)))


@dataclass(frozen=True, slots=True)
class OptionContract:
    """What an option symbol says: underlying, settlement coin, expiry, strike, put or call."""

    base: str
    quote: str
    settle: str
    expiry_ms: int
    strike: float
    kind: OptionKind


def parse_option_symbol(symbol: str, expiry_hour_utc: int = 8) -> OptionContract:
    """`BASE/QUOTE:SETTLE-YYMMDD-STRIKE-P|C` -> OptionContract; ValueError names the shape."""
    shape = "BASE/QUOTE:SETTLE-YYMMDD-STRIKE-P (e.g. BTC/USD:BTC-241213-90000-P)"
    try:
        market, code, strike_text, kind = symbol.rsplit("-", 3)
        pair, settle = market.split(":")
        base, quote = pair.split("/")
        day = datetime.strptime(code, "%y%m%d").replace(tzinfo=UTC, hour=expiry_hour_utc)
        strike = float(strike_text)
    except ValueError:
        raise ValueError(f"option symbol {symbol!r} is not {shape}") from None
    if kind not in ("P", "C") or strike <= 0 or not (base and quote and settle):
        raise ValueError(f"option symbol {symbol!r} is not {shape}")
    expiry_ms = int(day.timestamp() * 1000)
    return OptionContract(base, quote, settle, expiry_ms, strike, "P" if kind == "P" else "C")


def is_option_symbol(symbol: str) -> bool:
    try:
        parse_option_symbol(symbol)
    except ValueError:
        return False
    return True


def years_between(now_ms: int, expiry_ms: int) -> float:
    return max(0.0, (expiry_ms - now_ms) / YEAR_MS)


def intrinsic(kind: OptionKind, underlying: float, strike: float) -> float:
    return max(strike - underlying, 0.0) if kind == "P" else max(underlying - strike, 0.0)


def _bracket(axis: Sequence[float], x: float) -> tuple[int, int, float]:
    """Indices around x on an increasing axis and the weight of the upper one (flat outside)."""
    if x <= axis[0] or len(axis) == 1:
        return 0, 0, 0.0
    if x >= axis[-1]:
        last = len(axis) - 1
        return last, last, 0.0
    hi = bisect_right(axis, x)
    lo = hi - 1
    return lo, hi, (x - axis[lo]) / (axis[hi] - axis[lo])


def iv_from_table(
    moneyness_axis: Sequence[float],
    days_axis: Sequence[float],
    iv_rows: Sequence[Sequence[float]],
    moneyness: float,
    days: float,
) -> float:
    """Implied vol at (moneyness = strike / underlying, days to expiry): bilinear inside the
    grid, the edge value outside it (no extrapolation of a smile nobody quoted)."""
    d0, d1, wd = _bracket(days_axis, days)
    m0, m1, wm = _bracket(moneyness_axis, moneyness)

    def row(i: int) -> float:
        return iv_rows[i][m0] * (1 - wm) + iv_rows[i][m1] * wm

    return row(d0) * (1 - wd) + row(d1) * wd


@dataclass(frozen=True, slots=True)
class Quote:
    """One option's model price and the paper market's bid/ask, per contract, in coin."""

    model_coin: float
    bid_coin: float
    ask_coin: float
    iv: float
    underlying: float
    years: float

    def usd(self, coin: float) -> float:
        return coin * self.underlying


def quote_coin(
    contract: OptionContract,
    underlying: float,
    now_ms: int,
    iv: float,
    rate: float,
    half_spread_fraction: float,
    min_half_spread_coin: float,
    contract_size: float = 1.0,
) -> Quote:
    """Black-76 on the underlying price as the forward, in the settlement coin (the USD price
    divided by the underlying: how Deribit quotes BTC options), with a half-spread each side."""
    years = years_between(now_ms, contract.expiry_ms)
    usd = black76(contract.kind, underlying, contract.strike, years, iv, rate) * contract_size
    model = usd / underlying
    half = max(min_half_spread_coin, model * half_spread_fraction)
    return Quote(model, max(0.0, model - half), model + half, iv, underlying, years)


def deribit_fee_coin(
    contracts: float,
    premium_coin: float,
    underlying_fraction: float = 0.0003,
    premium_cap_fraction: float = 0.125,
    contract_size: float = 1.0,
) -> float:
    """Deribit's option fee: `underlying_fraction` of the underlying per contract (0.03% =
    0.0003 BTC for one BTC), never more than `premium_cap_fraction` of the premium."""
    by_underlying = underlying_fraction * contracts * contract_size
    cap = premium_cap_fraction * premium_coin * contracts
    return min(by_underlying, cap)
