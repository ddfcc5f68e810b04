"""hedge and unhedge: short a correlated perpetual (or buy puts) against net long exposure.

A hedge position is recognised by what it is, with no tag needed: a SHORT position in the
configured `instrument_symbol` (perp mode), or a LONG put option on `option_base` (puts
mode). Pending hedge orders (open, not reduce-only, same symbol and side) count as hedge
too, so planning twice does not double the hedge.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from bot.events import OpenOrder, OrderIntent, Portfolio, Position
from strategies.base import (
    Plan,
    StrategyContext,
    cancel_intent,
    closing_side,
    fmt_amount,
    number_legs,
    params_as,
    price_of,
    sides_to_protect,
)
from strategies.puts import is_put_of, option_symbol, put_contracts, round_to_increment
from strategies.registry import register


class HedgeParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    mode: Literal["perp", "puts"] = Field(default="perp", description="short a perp, or buy puts")
    instrument_symbol: str = Field(
        default="BTCUSDT", min_length=1, description="perp shorted; its price prices the puts"
    )
    venue: str | None = Field(default=None, description="hedge venue; default: largest long's")
    beta: float = Field(default=1.0, gt=0, le=5, description="hedged book vs instrument")
    hedge_ratio: float = Field(default=0.5, gt=0, le=1, description="share of exposure hedged")
    symbols: tuple[str, ...] = Field(default=(), description="exposure hedged; empty = all")
    when: Literal["threatened", "always"] = Field(
        default="threatened",
        description="threatened: only while longs are liquidated most (the hedge is a short)",
    )
    min_order_usd: float = Field(default=10.0, ge=0, description="skip smaller top-ups")
    expiry_days: int = Field(default=7, ge=1, le=365, description="puts: days to expiry")
    moneyness: float = Field(default=0.9, gt=0.5, le=1.0, description="puts: strike / price")
    strike_increment_usd: float = Field(default=1000.0, gt=0, description="puts: strike grid")
    premium_budget_usd: float = Field(default=5000.0, gt=0, description="puts: spend cap")
    premium_estimate: float = Field(
        default=0.01, gt=0, lt=0.5, description="puts: premium per unit / underlying price"
    )
    contract_size: float = Field(default=1.0, gt=0, description="puts: underlying per contract")
    contract_step: float = Field(default=0.1, gt=0, description="puts: smallest contract step")
    option_venue: str = Field(default="deribit", min_length=1)
    option_base: str = Field(default="BTC", min_length=1)
    option_quote: str = Field(default="USD", min_length=1)
    option_settle: str = Field(default="BTC", min_length=1)


class UnhedgeParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    mode: Literal["perp", "puts", "both"] = Field(default="both", description="what to unwind")
    instrument_symbol: str = Field(default="BTCUSDT", min_length=1)
    option_base: str = Field(default="BTC", min_length=1)
    fraction: float = Field(default=1.0, gt=0, le=1, description="share of the hedge unwound")
    cancel_pending: bool = Field(default=True, description="cancel unfilled hedge orders")


def is_perp_hedge(pos: Position, instrument_symbol: str) -> bool:
    return pos.symbol == instrument_symbol and pos.side == "short" and pos.instrument != "option"


def is_put_hedge(pos: Position, option_base: str) -> bool:
    return pos.instrument == "option" and pos.side == "long" and is_put_of(pos.symbol, option_base)


def _pending_perp(orders: tuple[OpenOrder, ...], symbol: str) -> list[OpenOrder]:
    return [o for o in orders if o.symbol == symbol and o.side == "sell" and not o.reduce_only]


def _pending_puts(orders: tuple[OpenOrder, ...], base: str) -> list[OpenOrder]:
    return [
        o for o in orders if is_put_of(o.symbol, base) and o.side == "buy" and not o.reduce_only
    ]


def _exposure(ctx: StrategyContext, p: HedgeParams) -> tuple[float, str | None]:
    """Net USD exposure of the hedged positions (no hedges or options), the largest long's venue."""
    net = 0.0
    venue, largest = None, 0.0
    for pos in ctx.portfolio.positions:
        if pos.instrument == "option" or is_perp_hedge(pos, p.instrument_symbol):
            continue
        if p.symbols and pos.symbol not in p.symbols:
            continue
        price = price_of(ctx, pos.symbol, pos)
        if price is None:
            continue
        usd = pos.size * price
        net += usd if pos.side == "long" else -usd
        if pos.side == "long" and usd > largest:
            venue, largest = pos.venue, usd
    return net, venue


@register
class Hedge:
    """Hedge hedge_ratio x beta of the net long exposure (never more than the exposure), minus
    the hedge already held or pending. Not reduce-only: the risk gate decides, and in REDUCING
    lets it pass only if it lowers the absolute net exposure."""

    name: ClassVar[str] = "hedge"
    Params: ClassVar[type[BaseModel]] = HedgeParams
    reduces_exposure: ClassVar[bool] = False

    def plan(self, ctx: StrategyContext, params: BaseModel) -> Plan:
        p = params_as(params, HedgeParams)
        if p.when == "threatened" and "long" not in sides_to_protect(ctx.trigger, "threatened"):
            return Plan((), "hedge: shorts are being liquidated, a short hedge would add risk")
        net_usd, long_venue = _exposure(ctx, p)
        if net_usd <= 0:
            return Plan((), f"hedge: nothing to hedge (net exposure ${net_usd:,.0f})")
        target_usd = min(1.0, p.hedge_ratio * p.beta) * net_usd
        price = price_of(ctx, p.instrument_symbol)
        if price is None:
            why = f"no price for {p.instrument_symbol}"
            return Plan((), f"hedge: {why}; nothing planned", missing=(why,))
        if p.mode == "puts":
            return self._puts(ctx, p, target_usd, price)
        book = ctx.portfolio
        held = [pos for pos in book.positions if is_perp_hedge(pos, p.instrument_symbol)]
        pending = _pending_perp(book.open_orders, p.instrument_symbol)
        have_usd = (sum(x.size for x in held) + sum(o.amount for o in pending)) * price
        add_usd = target_usd - have_usd
        if add_usd < max(p.min_order_usd, 1e-9):
            return Plan(
                (),
                f"hedge: ${have_usd:,.0f} of {p.instrument_symbol} short already covers the "
                f"${target_usd:,.0f} target",
            )
        venue = p.venue or (held[0].venue if held else long_venue) or "paper"
        amount = add_usd / price
        intent = OrderIntent(
            venue=venue,
            symbol=p.instrument_symbol,
            side="sell",
            kind="market",
            amount=amount,
            reduce_only=False,
            reason=f"hedge {p.hedge_ratio:g} x beta {p.beta:g} of net long ${net_usd:,.0f}",
        )
        return Plan(
            number_legs([intent]),
            f"hedge: short {fmt_amount(amount)} {p.instrument_symbol} (${add_usd:,.0f}) for a "
            f"${target_usd:,.0f} hedge of ${net_usd:,.0f} net long (${have_usd:,.0f} held)",
        )

    def _puts(self, ctx: StrategyContext, p: HedgeParams, target_usd: float, price: float) -> Plan:
        book: Portfolio = ctx.portfolio
        held = sum(pos.size for pos in book.positions if is_put_hedge(pos, p.option_base)) + sum(
            o.amount for o in _pending_puts(book.open_orders, p.option_base)
        )
        strike = round_to_increment(p.moneyness * price, p.strike_increment_usd)
        symbol = option_symbol(
            p.option_base, p.option_quote, p.option_settle, ctx.ts_ms, p.expiry_days, strike, "P"
        )
        premium_usd = p.premium_estimate * price * p.contract_size
        contracts, bound = put_contracts(
            target_units=target_usd / price,
            existing_units=held * p.contract_size,
            contract_size=p.contract_size,
            contract_step=p.contract_step,
            premium_per_contract_usd=premium_usd,
            premium_budget_usd=p.premium_budget_usd,
        )
        if contracts <= 0:
            return Plan((), f"hedge: puts already cover the target ({fmt_amount(held)} held)")
        intent = OrderIntent(
            venue=p.option_venue,
            symbol=symbol,
            side="buy",
            kind="limit",
            amount=contracts,
            reduce_only=False,
            price=premium_usd,
            instrument="option",
            reason=f"puts at {p.moneyness:.0%} of {price:g}, {p.expiry_days}d, sized by {bound}",
        )
        return Plan(
            number_legs([intent]),
            f"hedge: buy {fmt_amount(contracts)} {symbol} at <= ${premium_usd:,.2f} each "
            f"(~${contracts * premium_usd:,.0f} premium, sized by {bound}; "
            f"{fmt_amount(held)} held)",
        )


@register
class Unhedge:
    """Unwind hedges with reduce-only orders: buy back the perp short, sell the puts."""

    name: ClassVar[str] = "unhedge"
    Params: ClassVar[type[BaseModel]] = UnhedgeParams
    reduces_exposure: ClassVar[bool] = True

    def plan(self, ctx: StrategyContext, params: BaseModel) -> Plan:
        p = params_as(params, UnhedgeParams)
        intents: list[OrderIntent] = []
        orders = ctx.portfolio.open_orders
        pending: list[OpenOrder] = []
        if p.mode in ("perp", "both"):
            pending += _pending_perp(orders, p.instrument_symbol)
        if p.mode in ("puts", "both"):
            pending += _pending_puts(orders, p.option_base)
        if p.cancel_pending:
            for o in pending:
                intents.append(cancel_intent(o, "unhedge: cancel pending hedge order"))
        unwound = 0
        for pos in ctx.portfolio.positions:
            perp = p.mode in ("perp", "both") and is_perp_hedge(pos, p.instrument_symbol)
            put = p.mode in ("puts", "both") and is_put_hedge(pos, p.option_base)
            if not (perp or put):
                continue
            intents.append(
                OrderIntent(
                    venue=pos.venue,
                    symbol=pos.symbol,
                    side=closing_side(pos),
                    kind="market",
                    amount=pos.size * p.fraction,
                    reduce_only=True,
                    instrument=pos.instrument,
                    reason=f"unhedge {p.fraction:.0%} of {pos.side} {pos.symbol}",
                )
            )
            unwound += 1
        summary = (
            f"unhedge: unwind {p.fraction:.0%} of {unwound} hedge position(s), "
            f"cancel {len(pending) if p.cancel_pending else 0} pending hedge order(s)"
        )
        return Plan(number_legs(intents), summary)
