"""hedge (perp and puts) and unhedge: sizing, caps, idempotence, recognising hedges."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bot.events import Anomaly, Calm, OpenOrder, Portfolio, Position
from strategies import Plan, StrategyContext, get_strategy, run_plan
from strategies.puts import option_symbol

TS_MS = 1_733_380_000_000  # 2024-12-05
BTC = 100_000.0


def pos(symbol: str, side: str, size: float, mark: float, instrument: str = "perp") -> Position:
    return Position("binance", symbol, side, size, mark, mark, instrument=instrument)  # type: ignore[arg-type]


def ctx(*positions: Position, orders: tuple[OpenOrder, ...] = ()) -> StrategyContext:
    book = Portfolio(TS_MS, 1_000_000.0, positions, orders, prices={"BTCUSDT": BTC})
    return StrategyContext(Calm("all", TS_MS), book, {}, TS_MS, "act-3")


def plan(name: str, c: StrategyContext, **params: object) -> Plan:
    return run_plan(get_strategy(name)(), c, params)


ETH = pos("ETHUSDT", "long", 20.0, 4_000.0)  # $80,000
SOL = pos("SOLUSDT", "long", 100.0, 200.0)  # $20,000
SOL_SHORT = pos("SOLUSDT", "short", 50.0, 200.0)  # -$10,000


def test_perp_hedge_is_sized_by_ratio_beta_and_net_long() -> None:
    out = plan("hedge", ctx(ETH, SOL_SHORT), hedge_ratio=0.5, beta=1.2)
    (intent,) = out.intents
    net = ETH.notional_usd - SOL_SHORT.notional_usd
    assert (intent.symbol, intent.side, intent.kind, intent.reduce_only) == (
        "BTCUSDT",
        "sell",
        "market",
        False,
    )
    assert intent.amount == pytest.approx(0.5 * 1.2 * net / BTC)
    assert intent.venue == "binance"


def test_hedge_never_exceeds_the_exposure_it_hedges() -> None:
    (intent,) = plan("hedge", ctx(ETH), hedge_ratio=1.0, beta=3.0).intents
    assert intent.amount * BTC == pytest.approx(ETH.notional_usd)


def test_hedge_is_idempotent_and_tops_up() -> None:
    first = plan("hedge", ctx(ETH, SOL), hedge_ratio=0.5)
    held = pos("BTCUSDT", "short", first.intents[0].amount, BTC)
    assert plan("hedge", ctx(ETH, SOL, held), hedge_ratio=0.5).intents == ()
    half = pos("BTCUSDT", "short", first.intents[0].amount / 2, BTC)
    (top_up,) = plan("hedge", ctx(ETH, SOL, half), hedge_ratio=0.5).intents
    assert top_up.amount == pytest.approx(first.intents[0].amount / 2)


def test_a_pending_hedge_order_counts_as_hedge() -> None:
    amount = plan("hedge", ctx(ETH)).intents[0].amount
    pending = OpenOrder("binance", "BTCUSDT", "act-0-0", "sell", "limit", amount, price=BTC)
    assert plan("hedge", ctx(ETH, orders=(pending,))).intents == ()


def test_nothing_to_hedge_when_net_short_or_empty() -> None:
    assert plan("hedge", ctx(pos("ETHUSDT", "short", 1.0, 4_000.0))).intents == ()
    assert plan("hedge", ctx()).intents == ()


def test_puts_symbol_strike_expiry_and_size_by_exposure() -> None:
    out = plan(
        "hedge",
        ctx(ETH, SOL),
        mode="puts",
        hedge_ratio=0.5,
        moneyness=0.9,
        expiry_days=7,
        strike_increment_usd=1000,
        premium_budget_usd=1e9,
    )
    (intent,) = out.intents
    expiry = (datetime.fromtimestamp(TS_MS / 1000, UTC) + timedelta(days=7)).strftime("%y%m%d")
    strike = round(0.9 * BTC / 1000) * 1000
    assert intent.symbol == f"BTC/USD:BTC-{expiry}-{strike}-P"
    assert (intent.side, intent.instrument, intent.reduce_only) == ("buy", "option", False)
    units = 0.5 * (ETH.notional_usd + SOL.notional_usd) / BTC
    assert intent.amount <= units and intent.amount > units - 0.1  # floored to 0.1 contracts


def test_puts_are_capped_by_the_premium_budget() -> None:
    premium = 0.02 * BTC
    out = plan(
        "hedge", ctx(ETH), mode="puts", premium_estimate=0.02, premium_budget_usd=premium * 0.25
    )
    (intent,) = out.intents
    assert intent.amount == pytest.approx(0.2) and intent.price == pytest.approx(premium)
    assert "premium budget" in out.summary


def test_held_puts_count() -> None:
    first = plan("hedge", ctx(ETH), mode="puts", premium_budget_usd=1e9).intents[0]
    held = pos(first.symbol, "long", first.amount, 500.0, instrument="option")
    assert plan("hedge", ctx(ETH, held), mode="puts", premium_budget_usd=1e9).intents == ()


def test_option_symbol_formats_fractional_strikes() -> None:
    assert option_symbol("ETH", "USD", "ETH", 0, 1, 3_150.5, "P") == "ETH/USD:ETH-700102-3150.5-P"


def test_unhedge_unwinds_only_hedges_reduce_only() -> None:
    hedge = pos("BTCUSDT", "short", 0.4, BTC)
    put = pos("BTC/USD:BTC-241213-90000-P", "long", 0.3, 800.0, instrument="option")
    long_btc = pos("BTCUSDT", "long", 1.0, BTC)  # not a hedge: the same symbol, long
    pending = OpenOrder("binance", "BTCUSDT", "h-1", "sell", "market", 0.1)
    out = plan("unhedge", ctx(ETH, hedge, put, long_btc, orders=(pending,)))
    cancel, buy_back, sell_put = out.intents
    assert cancel.cancel_client_id == "h-1"
    assert (buy_back.symbol, buy_back.side, buy_back.amount) == ("BTCUSDT", "buy", hedge.size)
    assert (sell_put.symbol, sell_put.side, sell_put.amount) == (put.symbol, "sell", put.size)
    assert all(i.reduce_only for i in out.intents)


def test_unhedge_by_mode_and_fraction() -> None:
    hedge = pos("BTCUSDT", "short", 0.4, BTC)
    put = pos("BTC/USD:BTC-241213-90000-P", "long", 0.3, 800.0, instrument="option")
    (only,) = plan("unhedge", ctx(hedge, put), mode="perp", fraction=0.5).intents
    assert only.symbol == "BTCUSDT" and only.amount == pytest.approx(0.2)
    assert plan("unhedge", ctx(ETH)).intents == ()


def _anomaly(long_cents: int, short_cents: int) -> Anomaly:
    window = long_cents + short_cents
    return Anomaly("all", TS_MS, 2, window, window, window, long_cents, short_cents, 10)


@pytest.mark.parametrize(
    ("long_cents", "short_cents", "when", "hedged"),
    [
        (90_000_000, 10_000_000, "threatened", True),  # longs liquidated: the long book is at risk
        (10_000_000, 90_000_000, "threatened", False),  # a short squeeze: a short would add risk
        (10_000_000, 90_000_000, "always", True),
    ],
)
def test_hedge_follows_the_side_being_liquidated(
    long_cents: int, short_cents: int, when: str, hedged: bool
) -> None:
    book = ctx(ETH).portfolio
    c = StrategyContext(_anomaly(long_cents, short_cents), book, {}, TS_MS, "act-4")
    out = plan("hedge", c, hedge_ratio=0.5, when=when)
    assert bool(out.intents) is hedged
    if not hedged:
        assert "shorts are being liquidated" in out.summary
