"""What a strategy plugin is, what it gets and what it returns; the one fence it runs behind.

Contents:
- StrategyContext, Plan: the input and output of every planner
- Strategy: the protocol a plugin class satisfies (name, Params, reduces_exposure, plan)
- errors: StrategyError, PlanRejected, UnknownStrategyError, PluginError
- run_plan: call a planner and check its plan (the structural reduce-only rule lives here)
- helpers shared by the built-in planners: price_of, closing_side, params_as, number_legs,
  fmt_amount
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar, Protocol, TypeVar

from pydantic import BaseModel

from bot.events import (
    Anomaly,
    Calm,
    OpenOrder,
    OrderIntent,
    OrderSide,
    Portfolio,
    Position,
    Side,
    TradingState,
)

__all__ = [
    "Plan",
    "PlanRejected",
    "PluginError",
    "Strategy",
    "StrategyContext",
    "StrategyError",
    "UnknownStrategyError",
    "cancel_intent",
    "closing_side",
    "fmt_amount",
    "number_legs",
    "params_as",
    "price_of",
    "run_plan",
    "sides_to_protect",
    "threatened_side",
]


@dataclass(frozen=True)
class StrategyContext:
    """Everything a planner may look at. Time comes in as `ts_ms`; nothing else is read."""

    trigger: Anomaly | Calm
    portfolio: Portfolio
    prices: dict[str, float] = field(default_factory=dict)
    ts_ms: int = 0
    action_id: str = ""


@dataclass(frozen=True)
class Plan:
    """A planner's answer: intents numbered by `leg` 0..n-1, and what it asks of the ladder."""

    intents: tuple[OrderIntent, ...]
    summary: str
    ladder_target: TradingState | None = None
    page_humans: bool = False
    # what the planner needed and did not have ("no price for BTCUSDT"): the engine marks an
    # action that plans nothing for lack of data `failed`, never "nothing to do"
    missing: tuple[str, ...] = ()


class Strategy(Protocol):
    """A response plugin: a pure planner with a pydantic parameters model."""

    name: ClassVar[str]
    Params: ClassVar[type[BaseModel]]
    reduces_exposure: ClassVar[bool]  # True: may only emit reduce-only intents (enforced)

    def plan(self, ctx: StrategyContext, params: BaseModel) -> Plan: ...


class StrategyError(Exception):
    """A strategy failed or broke its contract; the orchestrator journals it and goes on."""


class PlanRejected(StrategyError):
    """The plan broke a structural rule (e.g. a reducing strategy emitted a non-reduce-only
    intent); nothing of it may be sent."""


class UnknownStrategyError(StrategyError, ValueError):
    """No strategy by that name; the message lists the known ones.

    A ValueError too, so a pydantic validator raising it reports it at the field's path."""


class PluginError(StrategyError, TypeError):
    """A plugin class does not satisfy the Strategy protocol; the message says what to fix."""


ParamsT = TypeVar("ParamsT", bound=BaseModel)


def params_as(params: BaseModel, cls: type[ParamsT]) -> ParamsT:
    """The params as the planner's own model (validated from another model's fields if needed)."""
    if isinstance(params, cls):
        return params
    return cls.model_validate(params.model_dump())


def price_of(ctx: StrategyContext, symbol: str, position: Position | None = None) -> float | None:
    """The best price known for a symbol: the context's, the portfolio's, then the mark."""
    for source in (ctx.prices, ctx.portfolio.prices):
        value = source.get(symbol)
        if value is not None and value > 0 and math.isfinite(value):
            return float(value)
    if position is not None and position.mark_price > 0:
        return position.mark_price
    for p in ctx.portfolio.positions:
        if p.symbol == symbol and p.mark_price > 0:
            return p.mark_price
    return None


def closing_side(position: Position) -> OrderSide:
    """The order side that reduces a position."""
    return "sell" if position.side == "long" else "buy"


def threatened_side(trigger: Anomaly | Calm) -> Side | None:
    """The side being liquidated most in the anomaly's window; None for calm or an even split.

    Liquidated longs mean forced selling: the danger is to long positions, and vice versa.
    """
    if not isinstance(trigger, Anomaly) or trigger.long_cents == trigger.short_cents:
        return None
    return "long" if trigger.long_cents > trigger.short_cents else "short"


def sides_to_protect(trigger: Anomaly | Calm, choice: str) -> tuple[Side, ...]:
    """Position sides a planner acts on: `threatened` (default), `both`, `long` or `short`."""
    if choice == "both":
        return ("long", "short")
    if choice in ("long", "short"):
        return (choice,)  # type: ignore[return-value]
    side = threatened_side(trigger)
    return ("long", "short") if side is None else (side,)


def cancel_intent(order: OpenOrder, reason: str) -> OrderIntent:
    """An intent that cancels a resting order (numbered later by `number_legs`)."""
    return OrderIntent(
        venue=order.venue,
        symbol=order.symbol,
        side=order.side,
        kind="cancel",
        amount=order.amount,
        reduce_only=True,
        cancel_client_id=order.client_id,
        reason=reason,
    )


def number_legs(intents: list[OrderIntent]) -> tuple[OrderIntent, ...]:
    """The intents with `leg` set to their position 0..n-1."""
    return tuple(replace(intent, leg=i) for i, intent in enumerate(intents))


def fmt_amount(value: float) -> str:
    """Amounts in messages: short, no float noise."""
    return f"{value:.8g}"


def _check_plan(strategy: Strategy, plan: object) -> Plan:
    name = getattr(strategy, "name", type(strategy).__name__)
    if not isinstance(plan, Plan):
        raise PlanRejected(
            f"strategy {name!r} returned {type(plan).__name__}, not a Plan; "
            "return strategies.base.Plan(intents=..., summary=...)"
        )
    for i, intent in enumerate(plan.intents):
        if not isinstance(intent, OrderIntent):
            raise PlanRejected(f"strategy {name!r}: intent {i} is not an OrderIntent")
        if intent.leg != i:
            raise PlanRejected(
                f"strategy {name!r}: intent {i} has leg {intent.leg}; number legs 0..n-1 in "
                "order so client ids are deterministic"
            )
        if not math.isfinite(intent.amount) or intent.amount < 0:
            raise PlanRejected(f"strategy {name!r}: leg {i} has amount {intent.amount!r}")
        if intent.kind == "cancel":
            if not intent.cancel_client_id:
                raise PlanRejected(f"strategy {name!r}: cancel leg {i} names no cancel_client_id")
        elif intent.amount == 0:
            raise PlanRejected(f"strategy {name!r}: leg {i} has amount 0")
        if strategy.reduces_exposure and not intent.reduce_only:
            raise PlanRejected(
                f"strategy {name!r} reduces exposure but leg {i} ({intent.side.upper()} "
                f"{fmt_amount(intent.amount)} {intent.symbol}) is not reduce-only; "
                "the whole plan is refused"
            )
    return plan


def run_plan(
    strategy: Strategy, ctx: StrategyContext, params: BaseModel | Mapping[str, Any]
) -> Plan:
    """Validate params, call the planner on a copy of the context, and check the plan.

    Raises StrategyError (the planner raised, or params are invalid) or PlanRejected (the plan
    broke a structural rule: wrong legs, bad amounts, or a non-reduce-only intent from a
    strategy with `reduces_exposure = True`).
    """
    name = getattr(strategy, "name", type(strategy).__name__)
    try:
        model = (
            params_as(params, strategy.Params)
            if isinstance(params, BaseModel)
            else strategy.Params.model_validate(dict(params))
        )
    except ValueError as exc:
        raise StrategyError(f"strategy {name!r}: invalid params: {exc}") from exc
    # Give the plugin copies of the mutable parts, so it cannot change what others see.
    portfolio = replace(ctx.portfolio, prices=dict(ctx.portfolio.prices))
    safe_ctx = replace(ctx, prices=dict(ctx.prices), portfolio=portfolio)
    try:
        plan = strategy.plan(safe_ctx, model)
    except Exception as exc:
        raise StrategyError(f"strategy {name!r} failed: {type(exc).__name__}: {exc}") from exc
    return _check_plan(strategy, plan)
