"""Paper broker: a simulated futures account filled on the replayed or live price path.

Contents:
- liquidation_price: isolated-margin liquidation price (entry, leverage, maintenance rate)
- load_account: the starting balance and positions (liqguard.yaml or a portfolio file)
- PaperBroker: submit (idempotent by client id) / lookup / portfolio; `on_price` moves marks,
  triggers resting stop and limit orders, liquidates positions (a bot.events.PaperLiquidation);
  snapshot/restore for the journal

Fill model: market orders fill at the last price, worse by `slippage_bps` plus
`cascade_slippage_bps_per_musd` per $1M liquidated in the detector's window (the orchestrator
passes it in with `set_stress`), capped at `max_slippage_bps`; a taker fee of `fee_bps`.
One-way positions (the exchanges' default, and what the risk gate checks): one net position
per (venue, symbol); an order against it reduces it first, the rest (unless reduce-only)
opens the other side. A hedge of a BTCUSDT long therefore lives on another venue or symbol.
Options are not priced: such orders are rejected.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bot.config.paper import PaperConfig, load_account
from bot.events import (
    Fill,
    OpenOrder,
    OrderIntent,
    OrderResult,
    PaperLiquidation,
    Portfolio,
    Position,
    PriceTick,
)
from bot.interfaces import Clock

_EPS = 1e-12


def liquidation_price(side: str, entry: float, leverage: float, mmr: float) -> float | None:
    """Isolated margin: the price where margin left equals maintenance (None when never)."""
    if side == "long":
        value = entry * (1 - 1 / leverage + mmr)
        return value if value > 0 else None
    return entry * (1 + 1 / leverage - mmr)


@dataclass
class _Pos:
    venue: str
    symbol: str
    side: str
    size: float
    entry_price: float | None  # None until the first price of the symbol
    leverage: float
    liquidation_price: float | None
    fixed_liquidation: bool = False  # given in the config: never recomputed


class PaperBroker:
    name = "paper"

    def __init__(self, config: PaperConfig, clock: Clock) -> None:
        self.config = config
        self.clock = clock
        balance, positions = load_account(config)
        self.balance_usd = balance
        self.initial_balance_usd = balance
        self.initial_equity_usd: float | None = None  # set once every position has a price
        self.fees_usd = 0.0
        self.stress_usd = 0.0
        # Worst fall of equity from its running peak, on the price path: what protection is for.
        self.peak_equity_usd: float | None = None
        self.max_drawdown_usd = 0.0
        self.prices: dict[str, float] = {}
        self.positions: dict[tuple[str, str, str], _Pos] = {}
        for p in positions:
            liq = p.liquidation_price
            if liq is None and p.entry_price is not None:
                liq = liquidation_price(
                    p.side, p.entry_price, p.leverage, config.maintenance_margin_rate
                )
            self.positions[(p.venue, p.symbol, p.side)] = _Pos(
                p.venue,
                p.symbol,
                p.side,
                p.size,
                p.entry_price,
                p.leverage,
                liq,
                p.liquidation_price is not None,
            )
        self.resting: dict[str, OrderIntent] = {}  # client id -> stop/limit waiting
        self.results: dict[str, OrderResult] = {}  # client id -> latest result (idempotency)

    # -- market input ---------------------------------------------------------------------
    def set_stress(self, window_usd: float) -> None:
        """The detector's window sum now: cascade slippage grows with it."""
        self.stress_usd = max(0.0, window_usd)

    def slippage_bps(self) -> float:
        c = self.config
        extra = c.cascade_slippage_bps_per_musd * self.stress_usd / 1e6
        return min(c.max_slippage_bps, c.slippage_bps + extra)

    def on_price(self, tick: PriceTick) -> list[OrderResult | PaperLiquidation]:
        """Move the mark; fill triggered stops/limits; liquidate crossed positions."""
        self.prices[tick.symbol] = tick.price
        for pos in self.positions.values():
            if pos.symbol == tick.symbol and pos.entry_price is None:
                pos.entry_price = tick.price
                if not pos.fixed_liquidation:
                    pos.liquidation_price = liquidation_price(
                        pos.side, tick.price, pos.leverage, self.config.maintenance_margin_rate
                    )
        if self.initial_equity_usd is None and all(
            p.entry_price is not None for p in self.positions.values()
        ):
            self.initial_equity_usd = self.equity_usd()
        out: list[OrderResult | PaperLiquidation] = []
        for cid, intent in list(self.resting.items()):
            if intent.symbol == tick.symbol and _triggered(intent, tick.price):
                del self.resting[cid]
                price = intent.price if intent.kind == "limit" and intent.price else tick.price
                out.append(self._execute(intent, cid, price, slip=intent.kind == "stop"))
        for key, pos in list(self.positions.items()):
            liq = pos.liquidation_price
            if pos.symbol != tick.symbol or liq is None:
                continue
            if (pos.side == "long" and tick.price <= liq) or (
                pos.side == "short" and tick.price >= liq
            ):
                out.append(self._liquidate(key, pos, liq))
        self._track_drawdown()
        return out

    def _track_drawdown(self) -> None:
        if self.initial_equity_usd is None:
            return
        equity = self.equity_usd()
        if self.peak_equity_usd is None or equity > self.peak_equity_usd:
            self.peak_equity_usd = equity
        self.max_drawdown_usd = max(self.max_drawdown_usd, self.peak_equity_usd - equity)

    # -- Broker interface -------------------------------------------------------------------
    async def portfolio(self) -> Portfolio:
        positions = tuple(
            Position(
                venue=p.venue,
                symbol=p.symbol,
                side="long" if p.side == "long" else "short",
                size=p.size,
                entry_price=p.entry_price,
                mark_price=self.prices.get(p.symbol, p.entry_price),
                liquidation_price=p.liquidation_price,
                leverage=p.leverage,
            )
            for p in self.positions.values()
            if p.entry_price is not None
        )
        orders = tuple(
            OpenOrder(
                venue=i.venue,
                symbol=i.symbol,
                client_id=cid,
                side=i.side,
                kind="stop" if i.kind == "stop" else "limit",
                amount=i.amount,
                price=i.price,
                stop_price=i.stop_price,
                reduce_only=i.reduce_only,
            )
            for cid, i in self.resting.items()
        )
        return Portfolio(
            ts_ms=self.clock.now_ms(),
            balance_usd=self.balance_usd,
            positions=positions,
            open_orders=orders,
            prices=dict(self.prices),
        )

    async def submit(self, intent: OrderIntent, client_id: str) -> OrderResult:
        """Execute or rest one order; the same client id twice returns the first result."""
        if client_id in self.results:
            return self.results[client_id]
        now = self.clock.now_ms()
        reject = self._reject_reason(intent)
        if reject:
            return self._record(OrderResult(client_id, "rejected", now, error=reject))
        if intent.kind == "cancel":
            target = intent.cancel_client_id or ""
            self.resting.pop(target, None)
            self._record(OrderResult(target, "canceled", now))
            return self._record(OrderResult(client_id, "canceled", now))
        price = self.prices[intent.symbol]
        if intent.kind in ("stop", "limit") and not _triggered(intent, price):
            self.resting[client_id] = intent
            return self._record(OrderResult(client_id, "open", now, exchange_order_id=client_id))
        return self._execute(intent, client_id, price, slip=intent.kind != "limit")

    async def lookup(self, client_id: str, intent: OrderIntent) -> OrderResult | None:
        return self.results.get(client_id)

    async def close(self) -> None:
        return None

    # -- accounting -------------------------------------------------------------------------
    def equity_usd(self) -> float:
        return self.balance_usd + sum(self._unrealized(p) for p in self.positions.values())

    def pnl_usd(self) -> float:
        start = self.initial_equity_usd
        return self.equity_usd() - (start if start is not None else self.initial_balance_usd)

    def _unrealized(self, p: _Pos) -> float:
        if p.entry_price is None:
            return 0.0
        mark = self.prices.get(p.symbol, p.entry_price)
        sign = 1.0 if p.side == "long" else -1.0
        return sign * p.size * (mark - p.entry_price)

    def _reject_reason(self, intent: OrderIntent) -> str:
        if intent.kind == "cancel":
            if intent.cancel_client_id not in self.resting:
                return f"no open order {intent.cancel_client_id!r} to cancel"
            return ""
        if intent.instrument == "option":
            return "the paper broker does not price options; hedge with a perpetual instead"
        if intent.symbol not in self.prices:
            return f"no price for {intent.symbol} yet"
        if intent.kind in ("stop",) and not intent.stop_price:
            return "a stop order needs stop_price"
        if intent.kind == "limit" and not intent.price:
            return "a limit order needs price"
        if intent.reduce_only and self._reducible(intent) <= _EPS:
            return f"reduce-only {intent.side} would open a position on {intent.symbol}"
        return ""

    def _reducible(self, intent: OrderIntent) -> float:
        closes = "long" if intent.side == "sell" else "short"
        pos = self.positions.get((intent.venue, intent.symbol, closes))
        return pos.size if pos is not None else 0.0

    def _execute(self, intent: OrderIntent, cid: str, ref_price: float, slip: bool) -> OrderResult:
        now = self.clock.now_ms()
        amount = intent.amount
        if intent.reduce_only:
            amount = min(amount, self._reducible(intent))
            if amount <= _EPS:
                return self._record(
                    OrderResult(cid, "canceled", now, error="reduce-only: nothing left to reduce")
                )
        sign = 1.0 if intent.side == "buy" else -1.0
        price = ref_price * (1 + sign * self.slippage_bps() / 1e4) if slip else ref_price
        fee = amount * price * self.config.fee_bps / 1e4
        self._apply(intent.venue, intent.symbol, intent.side, amount, price, intent.reduce_only)
        self.balance_usd -= fee
        self.fees_usd += fee
        fill = Fill(
            cid,
            intent.venue,
            intent.symbol,
            intent.side,
            amount,
            price,
            fee,
            now,
            intent.reduce_only,
        )
        return self._record(OrderResult(cid, "filled", now, exchange_order_id=cid, fills=(fill,)))

    def _apply(
        self, venue: str, symbol: str, side: str, amount: float, price: float, reduce_only: bool
    ) -> None:
        """Book an execution on the one-way position: reduce first, then (not reduce-only) open."""
        against = "long" if side == "sell" else "short"
        if (venue, symbol, against) in self.positions:
            held = self.positions[(venue, symbol, against)].size
            self._close(venue, symbol, against, amount, price)
            amount -= min(held, amount)
        if reduce_only or amount <= _EPS:
            return
        pos_side = "long" if side == "buy" else "short"
        key = (venue, symbol, pos_side)
        pos = self.positions.get(key)
        if pos is None or pos.entry_price is None:
            self.positions[key] = self._new_pos(venue, symbol, pos_side, amount, price)
        else:
            total = pos.size + amount
            pos.entry_price = (pos.entry_price * pos.size + price * amount) / total
            pos.size = total
            if not pos.fixed_liquidation:
                pos.liquidation_price = liquidation_price(
                    pos.side, pos.entry_price, pos.leverage, self.config.maintenance_margin_rate
                )

    def _close(self, venue: str, symbol: str, pos_side: str, amount: float, price: float) -> None:
        key = (venue, symbol, pos_side)
        pos = self.positions[key]
        entry = pos.entry_price if pos.entry_price is not None else price
        closed = min(pos.size, amount)
        sign = 1.0 if pos.side == "long" else -1.0
        self.balance_usd += sign * closed * (price - entry)
        pos.size -= closed
        if pos.size <= _EPS:
            del self.positions[key]
            self._cancel_reduce_only(venue, symbol, pos_side)

    def _new_pos(self, venue: str, symbol: str, side: str, size: float, price: float) -> _Pos:
        lev = 1.0  # orders open unlevered positions: hedges are collateralised in full
        liq = liquidation_price(side, price, lev, self.config.maintenance_margin_rate)
        return _Pos(venue, symbol, side, size, price, lev, liq)

    def _liquidate(self, key: tuple[str, str, str], pos: _Pos, price: float) -> PaperLiquidation:
        sign = 1.0 if pos.side == "long" else -1.0
        entry = pos.entry_price if pos.entry_price is not None else price
        fee = pos.size * price * self.config.liquidation_fee_bps / 1e4
        realized = sign * pos.size * (price - entry) - fee
        self.balance_usd += realized
        self.fees_usd += fee
        del self.positions[key]
        self._cancel_reduce_only(pos.venue, pos.symbol, pos.side)
        now = self.clock.now_ms()
        return PaperLiquidation(now, pos.venue, pos.symbol, pos.side, pos.size, price, realized)

    def _cancel_reduce_only(self, venue: str, symbol: str, pos_side: str) -> None:
        """A closed position's protective orders go with it."""
        now = self.clock.now_ms()
        closing = "sell" if pos_side == "long" else "buy"
        for cid, intent in list(self.resting.items()):
            if intent.reduce_only and (intent.venue, intent.symbol, intent.side) == (
                venue,
                symbol,
                closing,
            ):
                del self.resting[cid]
                self._record(OrderResult(cid, "canceled", now, error="position closed"))

    def _record(self, result: OrderResult) -> OrderResult:
        self.results[result.client_id] = result
        return result

    # -- journal state ----------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        from bot.journal import to_payload

        return {
            "balance_usd": self.balance_usd,
            "initial_equity_usd": self.initial_equity_usd,
            "fees_usd": self.fees_usd,
            "stress_usd": self.stress_usd,
            "peak_equity_usd": self.peak_equity_usd,
            "max_drawdown_usd": self.max_drawdown_usd,
            "prices": dict(self.prices),
            "positions": [to_payload(p) for p in self.positions.values()],
            "resting": {cid: to_payload(i) for cid, i in self.resting.items()},
            "results": {cid: to_payload(r) for cid, r in self.results.items()},
        }

    def restore(self, state: dict[str, Any]) -> None:
        self.balance_usd = float(state["balance_usd"])
        self.initial_equity_usd = state.get("initial_equity_usd")
        self.fees_usd = float(state.get("fees_usd", 0.0))
        self.stress_usd = float(state.get("stress_usd", 0.0))
        self.peak_equity_usd = state.get("peak_equity_usd")
        self.max_drawdown_usd = float(state.get("max_drawdown_usd", 0.0))
        self.prices = {k: float(v) for k, v in state.get("prices", {}).items()}
        self.positions = {}
        for p in state.get("positions", []):
            pos = _Pos(**p)
            self.positions[(pos.venue, pos.symbol, pos.side)] = pos
        self.resting = {cid: OrderIntent(**d) for cid, d in state.get("resting", {}).items()}
        self.results = {cid: _result_from(d) for cid, d in state.get("results", {}).items()}


def _triggered(intent: OrderIntent, price: float) -> bool:
    """A stop triggers when the price reaches it against the position; a limit when crossed."""
    if intent.kind == "stop" and intent.stop_price:
        return price <= intent.stop_price if intent.side == "sell" else price >= intent.stop_price
    if intent.kind == "limit" and intent.price:
        return price <= intent.price if intent.side == "buy" else price >= intent.price
    return True


def _result_from(d: dict[str, Any]) -> OrderResult:
    fills = tuple(Fill(**f) for f in d.get("fills", ()))
    return OrderResult(**{**d, "fills": fills})
