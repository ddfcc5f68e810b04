"""reduce_exposure: cut gross exposure by a fraction, riskiest positions first, reduce-only."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from bot.events import OrderIntent, Position
from strategies.base import (
    Plan,
    StrategyContext,
    closing_side,
    fmt_amount,
    params_as,
    price_of,
    sides_to_protect,
)
from strategies.registry import register


class ReduceExposureParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    fraction: float = Field(default=0.5, gt=0, le=1, description="share of gross exposure cut")
    slices: int = Field(default=1, ge=1, le=100, description="TWAP slices per position")
    slice_interval_s: float = Field(default=60.0, ge=0, le=86_400, description="between slices")
    min_order_usd: float = Field(default=10.0, ge=0, description="skip orders below this (dust)")
    symbols: tuple[str, ...] = Field(default=(), description="only these symbols; empty = all")
    sides: Literal["threatened", "both", "long", "short"] = Field(
        default="threatened",
        description="positions cut: the side being liquidated most in the window, or as named",
    )


def risk_order(positions: list[Position], prices: dict[str, float]) -> list[Position]:
    """Nearest to liquidation first (unknown liquidation price last), then largest notional."""

    def key(p: Position) -> tuple[float, float]:
        price = prices[p.symbol]
        distance = (
            abs(price - p.liquidation_price) / price
            if p.liquidation_price is not None
            else float("inf")
        )
        return distance, -p.size * price

    return sorted(positions, key=key)


@register
class ReduceExposure:
    """Close `fraction` of gross USD exposure with reduce-only market orders, optionally as a
    TWAP so the bot does not add a block to the cascade. Options (hedges) are left alone."""

    name: ClassVar[str] = "reduce_exposure"
    Params: ClassVar[type[BaseModel]] = ReduceExposureParams
    reduces_exposure: ClassVar[bool] = True

    def plan(self, ctx: StrategyContext, params: BaseModel) -> Plan:
        p = params_as(params, ReduceExposureParams)
        prices: dict[str, float] = {}
        eligible: list[Position] = []
        missing = [
            f"no price for {s}" for s in ctx.portfolio.unpriced if not p.symbols or s in p.symbols
        ]
        sides = sides_to_protect(ctx.trigger, p.sides)
        for pos in ctx.portfolio.positions:
            if pos.instrument == "option" or (p.symbols and pos.symbol not in p.symbols):
                continue
            if pos.side not in sides:
                continue  # a short squeeze does not threaten a long book: leave it
            price = price_of(ctx, pos.symbol, pos)
            if price is None and pos.size > 0:
                missing.append(f"no price for {pos.symbol}")
            if price is None or pos.size <= 0:
                continue
            prices[pos.symbol] = price
            eligible.append(pos)
        gross_usd = sum(pos.size * prices[pos.symbol] for pos in eligible)
        target_usd = p.fraction * gross_usd
        if target_usd <= 0 and missing:
            return Plan((), f"reduce_exposure: {'; '.join(missing)}", missing=tuple(missing))
        if target_usd <= 0:
            return Plan(
                intents=(),
                summary=f"reduce_exposure: no {'/'.join(sides)} exposure to reduce",
            )

        # (position, amount, slices) in risk order, then emitted slice by slice.
        cuts: list[tuple[Position, float, int]] = []
        left_usd = target_usd
        skipped = 0
        for pos in risk_order(eligible, prices):
            if left_usd <= 0:
                break
            price = prices[pos.symbol]
            cut_usd = min(left_usd, pos.size * price)
            if cut_usd < p.min_order_usd or cut_usd <= 0:
                skipped += 1
                continue
            n = p.slices
            if p.min_order_usd > 0:
                n = max(1, min(n, int(cut_usd // p.min_order_usd)))
            amount = min(pos.size, cut_usd / price)
            cuts.append((pos, amount, n))
            left_usd -= cut_usd

        intents: list[OrderIntent] = []
        interval_ms = round(p.slice_interval_s * 1000)
        for s in range(max((n for _, _, n in cuts), default=0)):
            for pos, amount, n in cuts:
                if s >= n:
                    continue
                part = amount / n
                slice_amount = amount - part * (n - 1) if s == n - 1 else part
                intents.append(
                    OrderIntent(
                        venue=pos.venue,
                        symbol=pos.symbol,
                        side=closing_side(pos),
                        kind="market",
                        amount=slice_amount,
                        reduce_only=True,
                        leg=len(intents),
                        instrument=pos.instrument,
                        reason=(
                            f"cut {pos.side} {pos.symbol} by {fmt_amount(amount)}"
                            + (f" (slice {s + 1}/{n})" if n > 1 else "")
                        ),
                        slice_index=s,
                        slice_count=n,
                        not_before_ms=ctx.ts_ms + s * interval_ms if n > 1 else None,
                    )
                )
        cut_usd = target_usd - max(left_usd, 0.0)
        summary = (
            f"reduce_exposure: cut ${cut_usd:,.0f} of ${gross_usd:,.0f} gross "
            f"({p.fraction:.0%}) in {len(intents)} reduce-only order(s) on {len(cuts)} position(s)"
        )
        if skipped:
            summary += f"; {skipped} position(s) below min_order_usd skipped"
        if missing:
            summary += f"; {'; '.join(missing)}: not cut"
        return Plan(intents=tuple(intents), summary=summary, missing=tuple(missing))
