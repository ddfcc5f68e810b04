"""Protective puts for the hedge strategy: option symbols, strikes, expiries and sizing.

Pure arithmetic; the premium is an estimate given as a parameter (planners do no I/O).
"""

from __future__ import annotations

import math
from datetime import UTC, datetime

DAY_MS = 86_400_000


def round_to_increment(value: float, increment: float) -> float:
    """The nearest multiple of `increment` (at least one increment)."""
    return max(increment, round(value / increment) * increment)


def floor_to_step(value: float, step: float) -> float:
    """The largest multiple of `step` not above `value` (float noise tolerated)."""
    if value <= 0:
        return 0.0
    return round(math.floor(value / step + 1e-9) * step, 10)


def expiry_code(ts_ms: int, expiry_days: int) -> str:
    """YYMMDD (UTC) of the day `expiry_days` after `ts_ms`."""
    return datetime.fromtimestamp((ts_ms + expiry_days * DAY_MS) / 1000, tz=UTC).strftime("%y%m%d")


def _strike_text(strike: float) -> str:
    return str(int(strike)) if float(strike).is_integer() else f"{strike:g}"


def option_symbol(
    base: str, quote: str, settle: str, ts_ms: int, expiry_days: int, strike: float, kind: str
) -> str:
    """ccxt unified option symbol, e.g. `BTC/USD:BTC-241213-90000-P`."""
    code = expiry_code(ts_ms, expiry_days)
    return f"{base}/{quote}:{settle}-{code}-{_strike_text(strike)}-{kind}"


def is_put_of(symbol: str, base: str) -> bool:
    """A put option on `base` in ccxt unified form."""
    return symbol.startswith(f"{base}/") and symbol.endswith("-P") and symbol.count("-") >= 3


def put_contracts(
    *,
    target_units: float,
    existing_units: float,
    contract_size: float,
    contract_step: float,
    premium_per_contract_usd: float,
    premium_budget_usd: float,
) -> tuple[float, str]:
    """Contracts to buy: the missing cover, floored to the step, within the premium budget.

    Returns (contracts, why) where `why` says what bound the number.
    """
    missing = max(0.0, target_units - existing_units) / contract_size
    by_cover = floor_to_step(missing, contract_step)
    by_budget = floor_to_step(premium_budget_usd / premium_per_contract_usd, contract_step)
    if by_budget < by_cover:
        return by_budget, "premium budget"
    return by_cover, "exposure"
