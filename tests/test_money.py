"""Cents are exact: half-to-even on the decimal text, sums never drift."""

from __future__ import annotations

import math
from decimal import ROUND_HALF_EVEN, Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.money import usd_to_cents


@pytest.mark.parametrize(
    ("text", "cents"),
    [
        ("1.005", 100),
        ("1.015", 102),
        ("1.025", 102),
        ("0.125", 12),
        ("0.135", 14),
        ("1232.5248", 123252),
        ("-2.675", -268),
        ("1000000", 100000000),
        ("0.004999", 0),
    ],
)
def test_ties_round_half_to_even_on_the_decimal_text(text: str, cents: int) -> None:
    assert usd_to_cents(text) == cents
    assert usd_to_cents(float(text)) == cents


@given(st.floats(min_value=-1e12, max_value=1e12, allow_nan=False, allow_infinity=False))
def test_float_path_equals_decimal_path(x: float) -> None:
    expected = int(Decimal(repr(x)).quantize(Decimal("0.01"), rounding=ROUND_HALF_EVEN) * 100)
    assert usd_to_cents(x) == expected


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, "nan", "inf"])
def test_non_finite_amounts_are_refused(bad: float | str) -> None:
    with pytest.raises(ValueError, match="finite"):
        usd_to_cents(bad)


@given(st.integers(min_value=-(10**13), max_value=10**13), st.integers(min_value=1, max_value=6))
def test_decimal_texts_near_ties_round_like_decimal(mantissa: int, places: int) -> None:
    # Values such as 12.345 sit on a half-cent tie in decimal but not in binary.
    text = str(Decimal(mantissa).scaleb(-places))
    expected = int(Decimal(text).quantize(Decimal("0.01"), rounding=ROUND_HALF_EVEN) * 100)
    assert usd_to_cents(float(text)) == expected


@pytest.mark.parametrize("usd", [536870912.795, 123456789.125, 99999999999.995, 12345678.905])
def test_large_amounts_on_a_tie_round_like_decimal(usd: float) -> None:
    # Above ~$10M the float error of usd * 100 is larger than a fixed tie margin would allow.
    expected = int(Decimal(repr(usd)).quantize(Decimal("0.01"), rounding=ROUND_HALF_EVEN) * 100)
    assert usd_to_cents(usd) == expected
