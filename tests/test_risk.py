"""The risk gate: the ladder's refusals, caps, actions per hour, reduce-only really reduces."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from bot.config.risk import RiskLimits
from bot.events import (
    Action,
    ApprovalMode,
    Calm,
    OrderIntent,
    Portfolio,
    Position,
    Side,
    TradingState,
)
from bot.risk import HOUR_MS, RiskGate, option_strike
from strategies import StrategyContext, get_strategy, run_plan
from strategies.puts import option_symbol

TS_MS = 1_733_380_000_000
BTC = 100_000.0
LONG = Position("binance", "BTCUSDT", "long", 2.0, BTC, BTC)
SHORT = Position("binance", "BTCUSDT", "short", 2.0, BTC, BTC)
ETH_LONG = Position("binance", "ETHUSDT", "long", 50.0, 4_000.0, 4_000.0)


def book(*positions: Position) -> Portfolio:
    return Portfolio(TS_MS, 1_000_000.0, positions, prices={"BTCUSDT": BTC, "ETHUSDT": 4_000.0})


def order(side: str, amount: float, reduce_only: bool = True, symbol: str = "BTCUSDT",
          leg: int = 0, kind: str = "market", **extra: object) -> OrderIntent:  # fmt: skip
    return OrderIntent("binance", symbol, side, kind, amount, reduce_only, leg=leg, **extra)  # type: ignore[arg-type]


def action(*intents: OrderIntent, aid: str = "act-1", reduces: bool = True) -> Action:
    legs = tuple(replace(i, leg=n) for n, i in enumerate(intents))
    return Action(aid, "all", 1, "test", {}, legs, ApprovalMode.AUTO, TS_MS, TS_MS,
                  reduces_exposure=reduces)  # fmt: skip


def gate(state: TradingState = TradingState.ACTIVE, **limits: object) -> RiskGate:
    return RiskGate(RiskLimits.model_validate(limits), state)


def test_active_lets_a_reducing_order_through() -> None:
    verdict = gate().check(action(order("sell", 1.0)), book(LONG), TS_MS)
    assert len(verdict.allowed) == 1 and verdict.denied == () and verdict.reason == ""


def test_reducing_denies_an_order_that_adds_to_a_short_in_plain_words() -> None:
    amount = 2.0
    intent = order("sell", amount)
    verdict = gate(TradingState.REDUCING).check(action(intent), book(SHORT), TS_MS)
    assert verdict.all_denied and verdict.state is TradingState.REDUCING
    assert (
        verdict.denied[0][1]
        == f"SELL {amount:g} BTCUSDT when REDUCING and SHORT would increase exposure"
    )


def test_reducing_denies_opening_where_nothing_is_held() -> None:
    verdict = gate(TradingState.REDUCING).check(action(order("buy", 1.0)), book(), TS_MS)
    assert "with no BTCUSDT position" in verdict.denied[0][1]


def test_earlier_legs_of_the_action_count() -> None:
    first, second = order("sell", 1.5), order("sell", 1.0)
    verdict = gate().check(action(first, second), book(LONG), TS_MS)
    assert [i.amount for i in verdict.allowed] == [first.amount]
    left = LONG.size - first.amount
    assert f"more than the {left:g} BTCUSDT LONG left" in verdict.denied[0][1]


def test_a_reducing_action_with_an_opening_intent_is_denied_that_intent() -> None:
    verdict = gate().check(action(order("sell", 1.0, reduce_only=False)), book(LONG), TS_MS)
    assert "not reduce-only, but strategy 'test' may only reduce" in verdict.denied[0][1]


def test_halted_lets_only_cancels_through() -> None:
    cancel = order("buy", 1.0, kind="cancel", cancel_client_id="x-0")
    verdict = gate(TradingState.HALTED).check(action(order("sell", 1.0), cancel), book(LONG), TS_MS)
    assert [i.kind for i in verdict.allowed] == ["cancel"]
    assert "when HALTED: only cancels pass" in verdict.denied[0][1]


def test_reducing_lets_a_hedge_through_only_if_it_lowers_net_exposure() -> None:
    g = gate(TradingState.REDUCING)
    net = ETH_LONG.notional_usd
    ok = order("sell", 0.5 * net / BTC, reduce_only=False)
    assert g.check(action(ok, reduces=False), book(ETH_LONG), TS_MS).denied == ()
    too_big = order("sell", 2.0 * net / BTC, reduce_only=False)
    verdict = g.check(action(too_big, aid="act-2", reduces=False), book(ETH_LONG), TS_MS)
    assert "would not reduce net exposure" in verdict.denied[0][1]
    adding = order("buy", 0.1, reduce_only=False)
    assert g.check(action(adding, aid="act-3", reduces=False), book(ETH_LONG), TS_MS).all_denied
    off = gate(TradingState.REDUCING, hedge_when_reducing=False)
    assert (
        "hedge_when_reducing is off"
        in off.check(action(ok, reduces=False), book(ETH_LONG), TS_MS).denied[0][1]
    )


def test_reducing_lets_a_put_through_against_a_net_long() -> None:
    symbol = option_symbol("BTC", "USD", "BTC", TS_MS, 7, 90_000.0, "P")
    assert option_strike(symbol) == (90_000.0, "P")
    put = order("buy", 1.0, reduce_only=False, symbol=symbol, kind="limit", price=1_000.0,
                instrument="option")  # fmt: skip
    verdict = gate(TradingState.REDUCING).check(action(put, reduces=False), book(ETH_LONG), TS_MS)
    assert verdict.denied == ()


def test_an_option_order_counts_at_its_limit_premium() -> None:
    """The paper market prices options by model, but the gate keeps valuing the order at
    the strategy's limit (contracts x USD premium), not at its strike or the underlying."""
    symbol = option_symbol("BTC", "USD", "BTC", TS_MS, 7, 90_000.0, "P")
    put = order("buy", 1.2, reduce_only=False, symbol=symbol, kind="limit", price=1_000.0,
                instrument="option")  # fmt: skip
    g = gate(max_order_usd=1_100.0)
    verdict = g.check(action(put, reduces=False), book(LONG), TS_MS)
    assert "is $1,200, over max_order_usd $1,100" in verdict.denied[0][1]
    cheaper = order("buy", 1.0, reduce_only=False, symbol=symbol, kind="limit", price=1_000.0,
                    instrument="option")  # fmt: skip
    passed = gate(max_order_usd=1_100.0).check(action(cheaper, reduces=False), book(LONG), TS_MS)
    assert passed.denied == ()


def test_per_order_and_per_action_caps() -> None:
    g = gate(max_order_usd=150_000, max_action_usd=220_000)
    verdict = g.check(action(order("sell", 2.0)), book(LONG), TS_MS)
    assert f"${2.0 * BTC:,.0f}, over max_order_usd $150,000" in verdict.denied[0][1]
    legs = [order("sell", 1.0), order("sell", 1.0), order("sell", 10.0, symbol="ETHUSDT")]
    verdict = g.check(action(*legs, aid="act-2"), book(LONG, ETH_LONG), TS_MS)
    assert len(verdict.allowed) == 2
    assert (
        f"bring this action to ${2 * BTC + 10 * 4_000:,.0f}, over max_action_usd"
        in verdict.denied[0][1]
    )


def test_stops_are_capped_at_their_stop_price() -> None:
    g = gate(max_order_usd=100_000)
    stop = order("sell", 1.0, kind="stop", stop_price=90_000.0)
    assert g.check(action(stop), book(LONG), TS_MS).denied == ()


def test_a_price_is_needed_for_the_caps() -> None:
    odd = Position("binance", "XYZUSDT", "long", 1.0, 1.0, 0.0)
    verdict = gate().check(action(order("sell", 1.0, symbol="XYZUSDT")), book(odd), TS_MS)
    assert "no price for XYZUSDT" in verdict.denied[0][1]


def test_actions_per_hour_slide_with_the_given_times() -> None:
    g = gate(max_actions_per_hour=2)
    for n in range(2):
        assert g.check(action(order("sell", 0.1), aid=f"a{n}"), book(LONG), TS_MS + n).denied == ()
        g.record_executed(f"a{n}", TS_MS + n)  # as the executor does when its order leaves
    third = g.check(action(order("sell", 0.1), aid="a2"), book(LONG), TS_MS + 2)
    assert "2 actions already in the last hour, max_actions_per_hour is 2" in third.denied[0][1]
    again = g.check(action(order("sell", 0.1), aid="a1"), book(LONG), TS_MS + 3)
    g.record_executed("a1", TS_MS + 3)
    assert again.denied == ()  # an action checked twice counts once
    cancel = order("buy", 1.0, kind="cancel", cancel_client_id="c-0")
    assert g.check(action(cancel, aid="a3"), book(LONG), TS_MS + 4).denied == ()
    later = g.check(action(order("sell", 0.1), aid="a4"), book(LONG), TS_MS + HOUR_MS)
    assert later.denied == ()  # a0 left the window


def test_only_an_executed_action_uses_the_hourly_budget() -> None:
    g = gate(max_actions_per_hour=1)
    asked = action(order("sell", 0.1), aid="asked")
    assert g.check(asked, book(LONG), TS_MS).denied == ()
    assert g.actions_in_last_hour(TS_MS) == 0  # checked, then rejected by a person: no budget
    sent = action(order("sell", 0.1), aid="sent")
    assert g.check(sent, book(LONG), TS_MS + 1).denied == ()
    assert g.over_budget(sent.intents[0], "sent", TS_MS + 1) is None
    g.record_executed("sent", TS_MS + 1)
    assert g.actions_in_last_hour(TS_MS + 1) == 1
    assert g.over_budget(sent.intents[0], "sent", TS_MS + 2) is None  # its next leg goes on
    late = g.over_budget(asked.intents[0], "asked", TS_MS + 2)  # approved after all, too late
    assert late == "SELL 0.1 BTCUSDT: 1 actions already in the last hour, max_actions_per_hour is 1"
    cancel = order("buy", 1.0, kind="cancel", cancel_client_id="c-0")
    assert g.over_budget(cancel, "asked", TS_MS + 2) is None
    assert g.over_budget(asked.intents[0], "asked", TS_MS + 1 + HOUR_MS) is None


def test_set_state_escalate_and_snapshot() -> None:
    g = gate(max_actions_per_hour=1)
    changed = g.set_state(TradingState.HALTED, "manual", by="alice", ts_ms=TS_MS)
    assert (changed.previous, changed.state, changed.by) == (
        TradingState.ACTIVE,
        TradingState.HALTED,
        "alice",
    )
    assert g.escalate(TradingState.REDUCING, "policy", ts_ms=TS_MS) is None
    assert g.state is TradingState.HALTED
    g.set_state(TradingState.ACTIVE, "resume", by="bob", ts_ms=TS_MS)
    assert g.escalate(TradingState.REDUCING, "halt plan").state is TradingState.REDUCING  # type: ignore[union-attr]
    g.check(action(order("sell", 0.1)), book(LONG), TS_MS)
    g.record_executed("act-1", TS_MS)
    restored = gate(max_actions_per_hour=1)
    restored.restore(g.snapshot())
    assert restored.state is TradingState.REDUCING
    assert restored.check(action(order("sell", 0.1), aid="b"), book(LONG), TS_MS).all_denied


def test_limits_refuse_unknown_keys_and_inverted_caps() -> None:
    with pytest.raises(ValidationError, match="extra"):
        RiskLimits.model_validate({"max_orders_usd": 1})
    with pytest.raises(ValidationError, match=r"max_order_usd .* is above max_action_usd"):
        RiskLimits(max_order_usd=10, max_action_usd=5)


@pytest.mark.parametrize("state", list(TradingState))
def test_built_in_reducing_plans_pass_the_ladder_below_halted(state: TradingState) -> None:
    portfolio = book(LONG, ETH_LONG)
    ctx = StrategyContext(Calm("all", TS_MS), portfolio, {}, TS_MS, "act-9")
    for name in ("reduce_exposure", "stop_loss"):
        plan = run_plan(get_strategy(name)(), ctx, {})
        verdict = gate(state, max_order_usd=1e9, max_action_usd=1e9).check(
            action(*plan.intents, aid=name), portfolio, TS_MS
        )
        if state is TradingState.HALTED:
            assert verdict.allowed == ()
        else:
            assert verdict.denied == () and len(verdict.allowed) == len(plan.intents) > 0


@pytest.mark.parametrize("mode", ["perp", "puts"])
def test_a_hedge_plan_passes_reducing_on_a_net_long_book(mode: str) -> None:
    portfolio = book(ETH_LONG)
    ctx = StrategyContext(Calm("all", TS_MS), portfolio, {}, TS_MS, "act-h")
    plan = run_plan(get_strategy("hedge")(), ctx, {"mode": mode, "premium_budget_usd": 1e6})
    verdict = gate(TradingState.REDUCING).check(
        action(*plan.intents, reduces=False), portfolio, TS_MS
    )
    assert len(verdict.allowed) == len(plan.intents) == 1 and verdict.denied == ()


sizes = st.floats(min_value=0.001, max_value=1_000.0, allow_nan=False)
marks = st.floats(min_value=0.01, max_value=200_000.0, allow_nan=False)


@st.composite
def portfolios(draw: st.DrawFn) -> Portfolio:
    n = draw(st.integers(min_value=0, max_value=6))
    positions = []
    for k in range(n):
        mark = draw(marks)
        side: Side = draw(st.sampled_from(["long", "short"]))
        gap = draw(st.one_of(st.none(), st.floats(min_value=0.001, max_value=0.9)))
        liq = None if gap is None else mark * (1 - gap if side == "long" else 1 + gap)
        positions.append(Position("binance", f"S{k}USDT", side, draw(sizes), mark, mark, liq))
    return Portfolio(TS_MS, 1e6, tuple(positions))


@settings(max_examples=150, deadline=None)
@given(
    portfolio=portfolios(),
    fraction=st.floats(min_value=0.01, max_value=1.0),
    slices=st.integers(min_value=1, max_value=5),
)
def test_reduce_exposure_always_passes_reducing_and_cuts_the_fraction(
    portfolio: Portfolio, fraction: float, slices: int
) -> None:
    ctx = StrategyContext(Calm("all", TS_MS), portfolio, {}, TS_MS, "act-p")
    params = {"fraction": fraction, "slices": slices, "min_order_usd": 0}
    plan = run_plan(get_strategy("reduce_exposure")(), ctx, params)
    verdict = gate(TradingState.REDUCING, max_order_usd=1e12, max_action_usd=1e12).check(
        action(*plan.intents), portfolio, TS_MS
    )
    assert verdict.denied == ()
    marks_by_symbol = {p.symbol: p.mark_price for p in portfolio.positions}
    cut_usd = sum(i.amount * marks_by_symbol[i.symbol] for i in plan.intents)
    assert cut_usd == pytest.approx(fraction * portfolio.gross_exposure_usd, rel=1e-6)
