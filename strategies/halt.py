"""halt: the human-intervention step. Move the ladder up, cancel entry orders, page people."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from bot.events import Anomaly, OrderIntent, TradingState
from strategies.base import Plan, StrategyContext, cancel_intent, number_legs, params_as
from strategies.registry import register


class HaltParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    state: Literal["REDUCING", "HALTED"] = Field(
        default="HALTED", description="ladder target: REDUCING (only reducing orders) or HALTED"
    )
    cancel_entry_orders: bool = Field(
        default=True, description="cancel resting orders that are not reduce-only"
    )
    page_humans: bool = Field(default=True, description="page the people on call")
    message: str = Field(default="", max_length=500, description="added to the summary")


@register
class Halt:
    """Switch the risk ladder to `state` (it stays there until a person resumes), cancel open
    entry orders (reduce-only stops stay: they protect), and page the humans."""

    name: ClassVar[str] = "halt"
    Params: ClassVar[type[BaseModel]] = HaltParams
    reduces_exposure: ClassVar[bool] = True

    def plan(self, ctx: StrategyContext, params: BaseModel) -> Plan:
        p = params_as(params, HaltParams)
        intents: list[OrderIntent] = []
        if p.cancel_entry_orders:
            for order in ctx.portfolio.open_orders:
                if order.reduce_only:
                    continue
                intents.append(cancel_intent(order, f"halt: cancel entry order {order.client_id}"))
        trigger = ctx.trigger
        if isinstance(trigger, Anomaly):
            cause = (
                f"rule {trigger.rule!r} level {trigger.level}: ${trigger.window_usd:,.0f} "
                f"liquidated in the window (threshold ${trigger.threshold_usd:,.0f})"
            )
        else:
            cause = f"rule {trigger.rule!r} calm"
        summary = (
            f"HALT: trading state -> {p.state} until a person resumes; {cause}; "
            f"{len(intents)} entry order(s) cancelled; gross exposure "
            f"${ctx.portfolio.gross_exposure_usd:,.0f}"
        )
        if p.message:
            summary += f". {p.message}"
        return Plan(
            intents=number_legs(intents),
            summary=summary,
            ladder_target=TradingState(p.state),
            page_humans=p.page_humans,
        )
