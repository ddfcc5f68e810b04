"""Money in integer cents: USD amounts rounded half-to-even to the cent, summed exactly."""

from __future__ import annotations

import math
from decimal import ROUND_HALF_EVEN, Decimal

_CENT = Decimal("0.01")
# Near x.5 cents float arithmetic cannot tell a tie: decide in Decimal. The margin grows
# with the amount because the float error of `usd * 100` does.
TIE_EPS = 1e-6
TIE_REL = 2.0**-48


def usd_to_cents(usd: float | str | Decimal) -> int:
    """Round a USD amount half-to-even to whole cents, as its decimal text reads.

    Floats are taken at their shortest repr (what a CSV held), so 1.015 rounds to 102 cents.
    """
    if isinstance(usd, float):
        if not math.isfinite(usd):
            raise ValueError(f"not a finite amount: {usd!r}")
        scaled = usd * 100.0
        nearest = round(scaled)
        # Fast path: far from a half-cent tie, float rounding is already exact.
        margin = TIE_EPS + abs(scaled) * TIE_REL
        if abs(abs(scaled - math.floor(scaled)) - 0.5) > margin and abs(scaled) < 2**52:
            return int(nearest)
        usd = repr(usd)
    value = usd if isinstance(usd, Decimal) else Decimal(str(usd).strip())
    if not value.is_finite():
        raise ValueError(f"not a finite amount: {usd!r}")
    return int(value.quantize(_CENT, rounding=ROUND_HALF_EVEN).scaleb(2))


def cents_to_usd(cents: int) -> float:
    return cents / 100
