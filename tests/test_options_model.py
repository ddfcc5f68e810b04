"""Black-76 and the paper market's option arithmetic: textbook values to the cent, put-call
parity, an independent numerical integral, symbols and their 08:00 UTC expiry, the iv table,
the spread and Deribit's fee rule."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.brokers.options_model import (
    black76,
    deribit_fee_coin,
    iv_from_table,
    parse_option_symbol,
    quote_coin,
)
from strategies.puts import option_symbol


def test_textbook_values_to_the_cent() -> None:
    # Haug, The Complete Guide to Option Pricing Formulas (2nd ed.), Black-76 example:
    # F = 19, K = 19, T = 0.75, r = 10%, vol 28% -> call = put = 1.7011.
    assert round(black76("C", 19, 19, 0.75, 0.28, 0.10), 4) == 1.7011
    assert round(black76("P", 19, 19, 0.75, 0.28, 0.10), 4) == 1.7011
    # Hull, Options, Futures, and Other Derivatives, European put on crude oil futures:
    # F = K = 20, 4 months, r = 9%, vol 25% -> 1.12.
    assert round(black76("P", 20, 20, 4 / 12, 0.25, 0.09), 2) == 1.12


def _integrated_put(forward: float, strike: float, years: float, vol: float, rate: float) -> float:
    """E[max(K - F_T, 0)] under the lognormal law, by Simpson's rule on the normal variable:
    an independent check of the closed form (no d1/d2, no normal cdf)."""
    spread = vol * math.sqrt(years)
    n, lo, hi = 20_000, -12.0, 12.0
    h = (hi - lo) / n
    total = 0.0
    for i in range(n + 1):
        z = lo + i * h
        f_t = forward * math.exp(-0.5 * spread * spread + spread * z)
        weight = 1 if i in (0, n) else (4 if i % 2 else 2)
        total += weight * max(strike - f_t, 0.0) * math.exp(-0.5 * z * z)
    return math.exp(-rate * years) * total * h / 3 / math.sqrt(2 * math.pi)


@pytest.mark.parametrize(
    ("forward", "strike", "days", "vol", "rate"),
    [
        (100_000.0, 90_000.0, 7, 0.60, 0.0),  # the puts planner's default: 90%, 7 days
        (99_471.09, 90_000.0, 6.5, 1.20, 0.05),  # a cascade's vol spike, with a rate
        (3_500.0, 3_800.0, 30, 0.75, 0.02),  # in the money
    ],
)
def test_closed_form_matches_the_integral_to_the_cent(
    forward: float, strike: float, days: float, vol: float, rate: float
) -> None:
    years = days / 365
    assert black76("P", forward, strike, years, vol, rate) == pytest.approx(
        _integrated_put(forward, strike, years, vol, rate), abs=0.005
    )


@settings(max_examples=200, deadline=None)
@given(
    forward=st.floats(min_value=10.0, max_value=500_000.0),
    moneyness=st.floats(min_value=0.3, max_value=3.0),
    years=st.floats(min_value=1e-4, max_value=3.0),
    vol=st.floats(min_value=0.01, max_value=4.0),
    rate=st.floats(min_value=-0.05, max_value=0.3),
)
def test_put_call_parity(
    forward: float, moneyness: float, years: float, vol: float, rate: float
) -> None:
    strike = forward * moneyness
    call = black76("C", forward, strike, years, vol, rate)
    put = black76("P", forward, strike, years, vol, rate)
    assert call - put == pytest.approx(
        math.exp(-rate * years) * (forward - strike), abs=1e-9 * (forward + strike)
    )
    assert put >= 0 and call >= 0


def test_at_expiry_and_at_zero_vol_the_price_is_intrinsic() -> None:
    assert black76("P", 90_000, 100_000, 0.0, 0.6) == 10_000
    assert black76("P", 110_000, 100_000, 0.0, 0.6) == 0
    assert black76("C", 110_000, 100_000, 1.0, 0.0, 0.05) == pytest.approx(10_000 * math.exp(-0.05))
    with pytest.raises(ValueError, match="must be > 0"):
        black76("P", 0.0, 100.0, 1.0, 0.5)


def test_symbols_as_the_planner_builds_them_expire_at_0800_utc() -> None:
    ts_ms = int(datetime(2024, 12, 5, 19, 46, tzinfo=UTC).timestamp() * 1000)
    symbol = option_symbol("BTC", "USD", "BTC", ts_ms, 7, 90_000.0, "P")
    contract = parse_option_symbol(symbol)
    assert symbol == "BTC/USD:BTC-241212-90000-P"
    assert (contract.base, contract.settle, contract.strike, contract.kind) == (
        "BTC",
        "BTC",
        90_000.0,
        "P",
    )
    assert contract.expiry_ms == int(datetime(2024, 12, 12, 8, tzinfo=UTC).timestamp() * 1000)
    assert parse_option_symbol("ETH/USD:ETH-700102-3150.5-C").strike == 3150.5
    for bad in ("BTC-P", "BTCUSDT", "BTC/USD:BTC-241312-90000-P", "BTC/USD:BTC-241212-x-P"):
        with pytest.raises(ValueError, match="BASE/QUOTE:SETTLE-YYMMDD-STRIKE-P"):
            parse_option_symbol(bad)


def test_iv_table_is_bilinear_inside_and_flat_outside() -> None:
    moneyness, days = (0.8, 1.0), (1.0, 30.0)
    rows = ((0.9, 0.6), (0.7, 0.5))
    assert iv_from_table(moneyness, days, rows, 0.8, 1.0) == pytest.approx(0.9)
    assert iv_from_table(moneyness, days, rows, 0.9, 1.0) == pytest.approx(0.75)
    assert iv_from_table(moneyness, days, rows, 0.9, 15.5) == pytest.approx(0.675)
    assert iv_from_table(moneyness, days, rows, 0.5, 0.1) == pytest.approx(0.9)  # corner
    assert iv_from_table(moneyness, days, rows, 1.5, 365.0) == pytest.approx(0.5)


def test_quote_in_coin_with_a_half_spread_and_a_floor() -> None:
    contract = parse_option_symbol("BTC/USD:BTC-241212-90000-P")
    now = contract.expiry_ms - 7 * 86_400_000
    q = quote_coin(contract, 100_000.0, now, 0.6, 0.0, 0.05, 0.0001)
    usd = black76("P", 100_000.0, 90_000.0, 7 / 365, 0.6)
    assert q.model_coin == pytest.approx(usd / 100_000.0)
    assert q.ask_coin == pytest.approx(q.model_coin * 1.05)
    assert q.bid_coin == pytest.approx(q.model_coin * 0.95)
    far = parse_option_symbol("BTC/USD:BTC-241212-50000-P")
    cheap = quote_coin(far, 100_000.0, now, 0.6, 0.0, 0.02, 0.0001)
    assert cheap.ask_coin == pytest.approx(cheap.model_coin + 0.0001)  # one tick at least
    assert cheap.bid_coin == 0.0


def test_deribit_fee_rule() -> None:
    # 0.03% of the underlying: 0.0003 BTC per contract of one BTC ...
    assert deribit_fee_coin(2.0, 0.05) == pytest.approx(0.0006)
    # ... never more than 12.5% of the premium (Deribit's own example: 0.0001 -> 0.0000125).
    assert deribit_fee_coin(1.0, 0.0001) == pytest.approx(0.0000125)
