"""stop_loss: place or tighten protective stops; close positions too near liquidation."""

from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field, model_validator

from bot.events import OpenOrder, OrderIntent, Position
from strategies.base import (
    Plan,
    StrategyContext,
    cancel_intent,
    closing_side,
    fmt_amount,
    number_legs,
    params_as,
    price_of,
)
from strategies.registry import register


class StopLossParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    distance: float = Field(default=0.02, gt=0, lt=0.5, description="stop distance from mark")
    danger_distance: float = Field(
        default=0.01, ge=0, lt=0.5, description="close outright within this of liquidation"
    )
    min_tighten: float = Field(
        default=0.001, ge=0, lt=0.1, description="replace a stop only if this much tighter"
    )
    symbols: tuple[str, ...] = Field(default=(), description="only these symbols; empty = all")

    @model_validator(mode="after")
    def _danger_inside_stop(self) -> StopLossParams:
        if self.danger_distance >= self.distance:
            raise ValueError(
                f"danger_distance ({self.danger_distance}) must be below distance "
                f"({self.distance}): positions that near liquidation are closed, not stopped"
            )
        return self


def _stops_of(pos: Position, orders: tuple[OpenOrder, ...]) -> list[OpenOrder]:
    """Resting stop orders that would close (part of) this position."""
    return [
        o
        for o in orders
        if o.kind == "stop"
        and o.venue == pos.venue
        and o.symbol == pos.symbol
        and o.side == closing_side(pos)
        and o.stop_price is not None
    ]


@register
class StopLoss:
    """Long: stop `distance` below the mark; short: above. A stop is never loosened: a tighter
    existing stop stays, looser ones are cancelled and replaced. If the stop would sit beyond
    the liquidation price, it goes halfway between mark and liquidation instead."""

    name: ClassVar[str] = "stop_loss"
    Params: ClassVar[type[BaseModel]] = StopLossParams
    reduces_exposure: ClassVar[bool] = True

    def plan(self, ctx: StrategyContext, params: BaseModel) -> Plan:
        p = params_as(params, StopLossParams)
        intents: list[OrderIntent] = []
        closed = placed = kept = 0
        missing = [
            f"no price for {s}" for s in ctx.portfolio.unpriced if not p.symbols or s in p.symbols
        ]

        def cancel(order: OpenOrder, why: str) -> None:
            intents.append(cancel_intent(order, why))

        for pos in ctx.portfolio.positions:
            if pos.instrument == "option" or (p.symbols and pos.symbol not in p.symbols):
                continue
            price = price_of(ctx, pos.symbol, pos)
            if price is None and pos.size > 0:
                missing.append(f"no price for {pos.symbol}")
            if price is None or pos.size <= 0:
                continue
            stops = _stops_of(pos, ctx.portfolio.open_orders)
            liq = pos.liquidation_price
            long = pos.side == "long"
            if liq is not None and (
                (price <= liq if long else price >= liq)
                or abs(price - liq) / price <= p.danger_distance
            ):
                intents.append(
                    OrderIntent(
                        venue=pos.venue,
                        symbol=pos.symbol,
                        side=closing_side(pos),
                        kind="market",
                        amount=pos.size,
                        reduce_only=True,
                        instrument=pos.instrument,
                        reason=f"{pos.side} {pos.symbol} within {p.danger_distance:.2%} of "
                        f"liquidation at {liq:g}: close",
                    )
                )
                for o in stops:
                    cancel(o, f"position {pos.symbol} closed: its stop is no longer needed")
                closed += 1
                continue
            stop = price * (1 - p.distance) if long else price * (1 + p.distance)
            if liq is not None and (stop <= liq if long else stop >= liq):
                stop = (price + liq) / 2  # a stop past liquidation would never fire
            tightest = max if long else min
            best = tightest((o.stop_price for o in stops if o.stop_price is not None), default=None)
            margin = p.min_tighten * price
            if best is not None and (best >= stop - margin if long else best <= stop + margin):
                kept += 1
                continue
            for o in stops:
                cancel(o, f"stop at {o.stop_price:g} looser than {stop:g}: replace")
            intents.append(
                OrderIntent(
                    venue=pos.venue,
                    symbol=pos.symbol,
                    side=closing_side(pos),
                    kind="stop",
                    amount=pos.size,
                    reduce_only=True,
                    stop_price=stop,
                    instrument=pos.instrument,
                    reason=f"protect {pos.side} {fmt_amount(pos.size)} {pos.symbol}: "
                    f"stop at {stop:g}",
                )
            )
            placed += 1
        summary = (
            f"stop_loss: {placed} stop(s) placed or tightened at {p.distance:.2%}, "
            f"{kept} tighter stop(s) kept, {closed} position(s) closed near liquidation"
        )
        if missing:
            summary += f"; {'; '.join(missing)}: not protected"
        return Plan(intents=number_legs(intents), summary=summary, missing=tuple(missing))
