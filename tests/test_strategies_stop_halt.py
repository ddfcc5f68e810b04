"""stop_loss: stops at a distance, never loosened, close near liquidation; halt planner."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from bot.events import Calm, OpenOrder, OrderSide, Portfolio, Position, TradingState
from strategies import Plan, StrategyContext, get_strategy, run_plan

TS_MS = 1_733_380_000_000


def pos(side: str = "long", size: float = 2.0, mark: float = 100_000.0, liq: float | None = None,
        symbol: str = "BTCUSDT") -> Position:  # fmt: skip
    return Position("binance", symbol, side, size, mark, mark, liq)  # type: ignore[arg-type]


def stop(side: OrderSide, stop_price: float, cid: str, amount: float = 2.0) -> OpenOrder:
    return OpenOrder(
        "binance",
        "BTCUSDT",
        cid,
        side,
        "stop",
        amount,
        stop_price=stop_price,
        reduce_only=True,
    )


def ctx(*positions: Position, orders: tuple[OpenOrder, ...] = ()) -> StrategyContext:
    book = Portfolio(TS_MS, 1_000_000.0, positions, orders)
    return StrategyContext(Calm("all", TS_MS), book, {}, TS_MS, "act-2")


def plan(name: str, c: StrategyContext, **params: object) -> Plan:
    return run_plan(get_strategy(name)(), c, params)


def test_long_gets_a_stop_below_the_mark() -> None:
    p = pos()
    (intent,) = plan("stop_loss", ctx(p), distance=0.03).intents
    assert (intent.kind, intent.side, intent.reduce_only) == ("stop", "sell", True)
    assert intent.stop_price == pytest.approx(p.mark_price * 0.97)
    assert intent.amount == p.size


def test_short_gets_a_stop_above_the_mark() -> None:
    p = pos("short", 5.0, 4_000.0, symbol="ETHUSDT")
    (intent,) = plan("stop_loss", ctx(p), distance=0.02).intents
    assert intent.side == "buy" and intent.stop_price == pytest.approx(p.mark_price * 1.02)


def test_a_tighter_existing_stop_stays() -> None:
    p = pos()
    tighter = stop("sell", p.mark_price * 0.99, "old-1")
    out = plan("stop_loss", ctx(p, orders=(tighter,)), distance=0.02)
    assert out.intents == () and "1 tighter stop(s) kept" in out.summary


def test_a_looser_stop_is_cancelled_and_replaced() -> None:
    p = pos()
    looser = stop("sell", p.mark_price * 0.90, "old-1")
    other_side = stop("buy", p.mark_price * 1.10, "not-mine")  # would not close a long
    cancel, new = plan("stop_loss", ctx(p, orders=(looser, other_side)), distance=0.02).intents
    assert (cancel.kind, cancel.cancel_client_id, cancel.leg) == ("cancel", "old-1", 0)
    assert (new.kind, new.leg) == ("stop", 1)
    assert new.stop_price == pytest.approx(p.mark_price * 0.98)


def test_short_with_looser_stop_above() -> None:
    p = pos("short")
    looser = stop("buy", p.mark_price * 1.2, "old-s")
    cancel, new = plan("stop_loss", ctx(p, orders=(looser,)), distance=0.05).intents
    assert cancel.cancel_client_id == "old-s"
    assert new.stop_price == pytest.approx(p.mark_price * 1.05)


def test_near_liquidation_closes_outright_and_drops_its_stops() -> None:
    p = pos(mark=100_000.0, liq=99_500.0)  # 0.5% away
    old = stop("sell", 95_000.0, "old-2")
    close, cancel = plan("stop_loss", ctx(p, orders=(old,)), danger_distance=0.01).intents
    assert (close.kind, close.side, close.amount, close.reduce_only) == (
        "market",
        "sell",
        2.0,
        True,
    )
    assert cancel.cancel_client_id == "old-2"


def test_a_stop_past_liquidation_goes_halfway() -> None:
    p = pos("short", mark=100.0, liq=103.0)  # stop at 5% would be past the 3% liquidation
    (intent,) = plan("stop_loss", ctx(p), distance=0.05, danger_distance=0.01).intents
    assert intent.stop_price == pytest.approx((p.mark_price + 103.0) / 2)


def test_mixed_book_and_empty_book() -> None:
    out = plan("stop_loss", ctx(pos(), pos("short", symbol="ETHUSDT", mark=4_000.0)))
    assert [(i.symbol, i.side) for i in out.intents] == [("BTCUSDT", "sell"), ("ETHUSDT", "buy")]
    assert plan("stop_loss", ctx()).intents == ()


def test_danger_distance_must_be_inside_the_stop_distance() -> None:
    with pytest.raises(ValidationError, match="danger_distance"):
        get_strategy("stop_loss").Params.model_validate({"distance": 0.01, "danger_distance": 0.02})


def test_halt_cancels_entry_orders_only_and_asks_for_the_ladder() -> None:
    entry = OpenOrder("binance", "ETHUSDT", "entry-1", "buy", "limit", 1.0, price=3_000.0)
    protective = stop("sell", 90_000.0, "stop-1")
    out = plan("halt", ctx(pos(), orders=(entry, protective)))
    (cancel,) = out.intents
    assert cancel.kind == "cancel" and cancel.cancel_client_id == "entry-1" and cancel.reduce_only
    assert out.ladder_target is TradingState.HALTED and out.page_humans
    assert "HALTED" in out.summary and "1 entry order(s) cancelled" in out.summary


def test_halt_to_reducing_without_paging() -> None:
    out = plan("halt", ctx(), state="REDUCING", page_humans=False, message="call the desk")
    assert out.ladder_target is TradingState.REDUCING and not out.page_humans
    assert out.summary.endswith("call the desk")
    with pytest.raises(ValidationError):
        get_strategy("halt").Params.model_validate({"state": "ACTIVE"})
