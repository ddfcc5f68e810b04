"""reduce_exposure on hand-made portfolios: risk order, amounts, TWAP slices, dust, filters."""

from __future__ import annotations

from dataclasses import replace

import pytest

from bot.events import Anomaly, Portfolio, Position
from strategies import Plan, StrategyContext, get_strategy, run_plan

TS_MS = 1_733_380_000_000
ANOMALY = Anomaly(
    rule="all",
    ts_ms=TS_MS,
    level=1,
    window_cents=150_000_000,
    threshold_cents=100_000_000,
    base_threshold_cents=100_000_000,
    long_cents=120_000_000,
    short_cents=30_000_000,
    events=42,
)


def pos(
    symbol: str = "BTCUSDT",
    side: str = "long",
    size: float = 2.0,
    mark: float = 100_000.0,
    liq: float | None = None,
    instrument: str = "perp",
) -> Position:
    return Position(
        venue="binance",
        symbol=symbol,
        side=side,  # type: ignore[arg-type]
        size=size,
        entry_price=mark,
        mark_price=mark,
        liquidation_price=liq,
        instrument=instrument,  # type: ignore[arg-type]
    )


def ctx(*positions: Position, prices: dict[str, float] | None = None) -> StrategyContext:
    book = Portfolio(ts_ms=TS_MS, balance_usd=1_000_000.0, positions=positions)
    return StrategyContext(ANOMALY, book, prices or {}, TS_MS, "act-1")


def plan(c: StrategyContext, **params: object) -> Plan:
    strategy = get_strategy("reduce_exposure")()
    return run_plan(strategy, c, params)


def test_long_is_cut_by_the_fraction_with_a_reduce_only_sell() -> None:
    p = pos(size=2.0)
    out = plan(ctx(p), fraction=0.25)
    (intent,) = out.intents
    assert (intent.side, intent.kind, intent.reduce_only, intent.leg) == ("sell", "market", True, 0)
    assert intent.amount == pytest.approx(0.25 * p.size)
    assert intent.not_before_ms is None and intent.slice_count == 1


def test_short_is_bought_back() -> None:
    p = pos(side="short", size=3.0, mark=50.0, symbol="SOLUSDT")
    (intent,) = plan(ctx(p), fraction=1.0, sides="short").intents
    assert intent.side == "buy" and intent.amount == pytest.approx(p.size)


def test_nearest_to_liquidation_goes_first_and_the_cut_spans_positions() -> None:
    far = pos("BTCUSDT", "long", 1.0, 100_000.0, liq=50_000.0)
    near = pos("ETHUSDT", "short", 10.0, 4_000.0, liq=4_200.0)  # 5% away
    fraction = 0.6
    out = plan(ctx(far, near), fraction=fraction, sides="both")
    first, second = out.intents
    assert (first.symbol, first.side, first.amount) == ("ETHUSDT", "buy", near.size)
    target_usd = fraction * (far.notional_usd + near.notional_usd)
    rest_usd = target_usd - near.notional_usd
    assert (second.symbol, second.side) == ("BTCUSDT", "sell")
    assert second.amount == pytest.approx(rest_usd / far.mark_price)
    assert [i.leg for i in out.intents] == [0, 1]


def test_ties_in_distance_go_by_notional() -> None:
    small = pos("ETHUSDT", size=1.0, mark=4_000.0)
    big = pos("BTCUSDT", size=1.0, mark=100_000.0)
    out = plan(ctx(small, big), fraction=0.1)
    assert out.intents[0].symbol == "BTCUSDT"


def test_prices_from_the_context_override_the_mark() -> None:
    p = pos(size=2.0, mark=100_000.0)
    live = 80_000.0
    out = plan(ctx(p, pos("ETHUSDT", size=10.0, mark=4_000.0), prices={"BTCUSDT": live}))
    gross = p.size * live + 10.0 * 4_000.0
    cut_usd = sum(i.amount * (live if i.symbol == "BTCUSDT" else 4_000.0) for i in out.intents)
    assert cut_usd == pytest.approx(0.5 * gross)


def test_twap_slices_are_spread_from_the_trigger_time() -> None:
    p = pos(size=3.0)
    out = plan(ctx(p), fraction=1.0, slices=3, slice_interval_s=30)
    assert [i.slice_index for i in out.intents] == [0, 1, 2]
    assert all(i.slice_count == 3 for i in out.intents)
    assert [i.not_before_ms for i in out.intents] == [TS_MS + k * 30_000 for k in range(3)]
    assert sum(i.amount for i in out.intents) == pytest.approx(p.size)
    assert all(i.amount <= p.size for i in out.intents)


def test_twap_emits_slice_by_slice_across_positions() -> None:
    a, b = pos("BTCUSDT", size=1.0), pos("ETHUSDT", size=10.0, mark=4_000.0)
    out = plan(ctx(a, b), fraction=1.0, slices=2, slice_interval_s=10)
    assert [i.slice_index for i in out.intents] == [0, 0, 1, 1]
    assert [i.leg for i in out.intents] == [0, 1, 2, 3]


def test_slices_shrink_so_no_slice_is_dust() -> None:
    p = pos("XRPUSDT", size=100.0, mark=1.0)  # $100
    out = plan(ctx(p), fraction=1.0, slices=50, min_order_usd=25)
    assert len(out.intents) == int(p.notional_usd // 25)


def test_dust_positions_are_skipped() -> None:
    dust = pos("DOGEUSDT", size=10.0, mark=0.4)
    out = plan(ctx(dust), fraction=1.0, min_order_usd=10)
    assert out.intents == () and "skipped" in out.summary


def test_symbol_filter_and_options_left_alone() -> None:
    put = pos("BTC/USD:BTC-241213-90000-P", size=1.0, mark=900.0, instrument="option")
    out = plan(ctx(pos("BTCUSDT"), pos("ETHUSDT", mark=4_000.0), put), symbols=["ETHUSDT"])
    assert {i.symbol for i in out.intents} == {"ETHUSDT"}


def test_empty_portfolio_plans_nothing() -> None:
    out = plan(ctx())
    assert out.intents == () and "exposure to reduce" in out.summary


def test_params_are_bounded() -> None:
    cls = get_strategy("reduce_exposure").Params
    for bad in ({"fraction": 0}, {"fraction": 1.5}, {"slices": 0}, {"twap": 3}):
        with pytest.raises(ValueError):
            cls.model_validate(bad)


def test_by_default_only_the_side_being_liquidated_is_cut() -> None:
    long_book = pos("BTCUSDT", "long", 2.0, 100_000.0)
    short_book = pos("ETHUSDT", "short", 10.0, 4_000.0)
    # ANOMALY liquidated mostly longs: forced selling threatens the long, not the short.
    (intent,) = plan(ctx(long_book, short_book), fraction=0.5).intents
    assert (intent.symbol, intent.side) == ("BTCUSDT", "sell")
    assert intent.amount == pytest.approx(0.5 * long_book.size)


def test_a_short_squeeze_leaves_a_long_book_alone() -> None:
    squeeze = replace(ANOMALY, long_cents=20_000_000, short_cents=130_000_000)
    book = Portfolio(ts_ms=TS_MS, balance_usd=1e6, positions=(pos(side="long"),))
    out = plan(StrategyContext(squeeze, book, {}, TS_MS, "act-2"), fraction=0.5)
    assert out.intents == ()
    assert "no long" not in out.summary and "short" in out.summary
