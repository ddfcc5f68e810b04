"""The bad-input rules every source shares, and the errors that carry their reasons.

Contents: MalformedMessage, TapeError, the sane-timestamp bounds, to_number, make_liquidation.
"""

from __future__ import annotations

import math
from decimal import Decimal, InvalidOperation

from bot.events import Liquidation, Side

MIN_TS_MS = 1_230_768_000_000  # 2009-01-01 00:00 UTC: nothing traded before Bitcoin
MAX_TS_MS = 4_102_444_800_000  # 2100-01-01 00:00 UTC


class MalformedMessage(ValueError):
    """A message or row that cannot become a Liquidation; the message is the reason."""


class TapeError(Exception):
    """A file that cannot be read as a liquidation tape at all (one sentence why)."""


def to_number(value: object, what: str) -> Decimal:
    """Parse a finite decimal from venue text or a JSON number, or say what is wrong."""
    if isinstance(value, bool) or value is None:
        raise MalformedMessage(f"{what} is missing")
    if isinstance(value, float | int):
        value = repr(value) if isinstance(value, float) else str(value)
    if not isinstance(value, str) or not value.strip():
        raise MalformedMessage(f"{what} is missing")
    try:
        number = Decimal(value.strip())
    except InvalidOperation:
        raise MalformedMessage(f"{what} is not a number: {value[:40]!r}") from None
    if not number.is_finite():
        raise MalformedMessage(f"{what} is not finite: {value[:40]!r}")
    return number


def to_ts_ms(value: object, what: str = "timestamp") -> int:
    """An integer epoch-millisecond time inside the sane bounds."""
    number = to_number(value, what)
    if number != number.to_integral_value():
        raise MalformedMessage(f"{what} is not a whole number of milliseconds: {value!r}")
    ts_ms = int(number)
    if not MIN_TS_MS <= ts_ms < MAX_TS_MS:
        raise MalformedMessage(
            f"{what} {ts_ms} is outside 2009-01-01..2100-01-01 (epoch milliseconds expected)"
        )
    return ts_ms


def make_liquidation(
    *,
    ts_ms: int,
    venue: str,
    symbol: str,
    side: str,
    notional_usd: Decimal | float,
    price: Decimal | float | None = None,
    quantity: Decimal | float | None = None,
    event_id: str | None = None,
) -> Liquidation:
    """Build a Liquidation after the checks every source applies, or raise the reason."""
    if not MIN_TS_MS <= ts_ms < MAX_TS_MS:
        hint = " (seconds? ts_ms is in milliseconds)" if 10**9 <= ts_ms < 5 * 10**9 else ""
        raise MalformedMessage(f"timestamp {ts_ms} is outside 2009-01-01..2100-01-01{hint}")
    if not venue:
        raise MalformedMessage("venue is empty")
    if not symbol:
        raise MalformedMessage("symbol is empty")
    if side not in ("long", "short"):
        raise MalformedMessage(f"unknown side {side[:20]!r} (expected long or short)")
    usd = float(notional_usd)
    if not math.isfinite(usd) or usd <= 0:
        raise MalformedMessage(f"notional_usd must be a positive finite amount, not {usd!r}")
    price_f = _optional_positive(price, "price")
    quantity_f = _optional_positive(quantity, "quantity")
    position_side: Side = "long" if side == "long" else "short"
    return Liquidation(
        ts_ms=ts_ms,
        venue=venue,
        symbol=symbol,
        side=position_side,
        notional_usd=usd,
        price=price_f,
        quantity=quantity_f,
        event_id=event_id,
    )


def _optional_positive(value: Decimal | float | None, what: str) -> float | None:
    if value is None:
        return None
    number = float(value)
    if not math.isfinite(number) or number < 0:
        raise MalformedMessage(f"{what} must be a non-negative finite number, not {number!r}")
    return number
