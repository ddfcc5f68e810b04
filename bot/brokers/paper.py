"""Paper broker: a simulated futures account filled on the replayed or live price path.

Contents:
- liquidation_price: isolated-margin liquidation price (entry, leverage, maintenance rate)
- load_account: the starting balance and positions (liqguard.yaml or a portfolio file)
- OptionMark / OptionSettlement: a held option's model mark (journaled every
  `paper.options.mark_journal_s`), its settlement at expiry
- load_vol: the recorded vol index of `paper.options.vol_file`
- PaperBroker: submit (idempotent by client id) / lookup / portfolio; `on_price` moves marks,
  triggers resting stop and limit orders, liquidates positions (a bot.events.PaperLiquidation),
  marks and settles options (bot.events.OptionMark, OptionSettlement);
  snapshot/restore for the journal

Fill model: market orders fill at the last price, worse by `slippage_bps` plus
`cascade_slippage_bps_per_musd` per $1M liquidated in the detector's window (the orchestrator
passes it in with `set_stress`), capped at `max_slippage_bps`; a taker fee of `fee_bps`.
One-way positions (the exchanges' default, and what the risk gate checks): one net position
per (venue, symbol); an order against it reduces it first, the rest (unless reduce-only)
opens the other side. A hedge of a BTCUSDT long therefore lives on another venue or symbol.

Options (docs/options-paper.md): priced by a model, not a market. Black-76 on the underlying's
price (`BTC` -> `BTCUSDT`) with the configured implied vol (`paper.options.iv`, optionally
scaled by a recorded vol index) and rate; premiums in the settlement coin (BTC) per contract,
bid/ask = model -/+ a half-spread that widens with the detector's window like the perps'
slippage. A limit buy fills at the ask once the ask is at or below its limit (the strategies'
USD limit is converted to coin at the underlying price when the order arrives, as the live
broker does); market orders take the ask or the bid. Deribit's fee rule. Held options are
marked to model on every tick of their underlying and settle to intrinsic value at 08:00 UTC
on their expiry day. The account stays in USD: each coin amount (premium, fee, settlement) is
converted at the underlying price of its moment. Options are bought and sold back, never
written: a sell beyond what is held is refused.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass
from typing import Any

from bot.brokers.options_model import (
    OptionContract,
    Quote,
    deribit_fee_coin,
    intrinsic,
    iv_from_table,
    parse_option_symbol,
    quote_coin,
)
from bot.config.errors import ConfigError
from bot.config.paper import IvTable, PaperConfig, PaperOptionsConfig, load_account
from bot.events import (
    Fill,
    OpenOrder,
    OptionMark,
    OptionSettlement,
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


def load_vol(config: PaperOptionsConfig) -> list[tuple[int, float]]:
    """The vol index of `paper.options.vol_file` (empty when none is set)."""
    if config.vol_file is None:
        return []
    from bot.sources.prices import read_vol
    from bot.sources.validate import TapeError

    try:
        return read_vol(config.vol_file)
    except TapeError as exc:
        fix = "Fix the file or remove the key."
        raise ConfigError(f"paper.options.vol_file: {exc} {fix}") from None


@dataclass
class _Opt:
    """A held (long) option: contracts, average entry per contract, last model mark."""

    venue: str
    symbol: str
    size: float
    entry_usd: float
    entry_coin: float
    mark_coin: float
    mark_usd: float
    journaled_ms: int | None = None  # last mark written to the journal


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
        self.options: dict[tuple[str, str], _Opt] = {}  # (venue, symbol) -> held option
        self.option_limits_coin: dict[str, float] = {}  # resting option limit, in coin
        self.vol = load_vol(config.options)
        self._vol_ms = [t for t, _ in self.vol]

    # -- market input ---------------------------------------------------------------------
    def set_stress(self, window_usd: float) -> None:
        """The detector's window sum now: cascade slippage grows with it."""
        self.stress_usd = max(0.0, window_usd)

    def slippage_bps(self) -> float:
        c = self.config
        extra = c.cascade_slippage_bps_per_musd * self.stress_usd / 1e6
        return min(c.max_slippage_bps, c.slippage_bps + extra)

    # -- options: the model ---------------------------------------------------------------
    def half_spread_pct(self) -> float:
        o = self.config.options
        extra = o.cascade_half_spread_pct_per_musd * self.stress_usd / 1e6
        return min(o.max_half_spread_pct, o.half_spread_pct + extra)

    def underlying_of(self, contract: OptionContract) -> str:
        return self.config.options.underlyings.get(contract.base, f"{contract.base}USDT")

    def implied_vol(self, contract: OptionContract, underlying: float, now_ms: int) -> float:
        """The configured iv at this strike and expiry; a vol index, when given, sets its level
        (the table scaled so that its 30-day at-the-money point equals the index)."""
        o = self.config.options
        days = max(0.0, (contract.expiry_ms - now_ms) / 86_400_000)
        moneyness = contract.strike / underlying
        if not isinstance(o.iv, IvTable):
            iv, atm30 = float(o.iv), float(o.iv)
        else:
            t = o.iv
            iv = iv_from_table(t.moneyness, t.days, t.iv, moneyness, days)
            atm30 = iv_from_table(t.moneyness, t.days, t.iv, 1.0, 30.0)
        i = bisect_right(self._vol_ms, now_ms) - 1
        if i >= 0:  # before the first row of the index: the configured vol alone
            iv *= self.vol[i][1] / atm30
        return iv

    def option_quote(self, symbol: str, now_ms: int | None = None) -> Quote | None:
        """Model premium, bid and ask per contract in coin; None without an underlying price.
        Raises ValueError for a symbol that is no option."""
        o = self.config.options
        contract = parse_option_symbol(symbol, o.expiry_hour_utc)
        underlying = self.prices.get(self.underlying_of(contract))
        if underlying is None:
            return None
        now = self.clock.now_ms() if now_ms is None else now_ms
        iv = self.implied_vol(contract, underlying, now)
        return quote_coin(
            contract,
            underlying,
            now,
            iv,
            o.rate,
            self.half_spread_pct() / 100,
            o.min_half_spread_coin,
            o.contract_size,
        )

    def on_price(
        self, tick: PriceTick
    ) -> list[OrderResult | PaperLiquidation | OptionMark | OptionSettlement]:
        """Move the mark; fill triggered stops/limits; liquidate crossed positions; settle,
        fill and mark the options on this underlying."""
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
        out: list[OrderResult | PaperLiquidation | OptionMark | OptionSettlement] = []
        out += self._option_tick(tick)
        for cid, intent in list(self.resting.items()):
            if intent.instrument == "option":
                continue
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

    def _option_tick(self, tick: PriceTick) -> list[OrderResult | OptionMark | OptionSettlement]:
        """Options on this underlying: settle the expired, fill resting limits, mark the held."""
        expiry_hour = self.config.options.expiry_hour_utc
        out: list[OrderResult | OptionMark | OptionSettlement] = []
        for key, opt in list(self.options.items()):
            contract = parse_option_symbol(opt.symbol, expiry_hour)
            if self.underlying_of(contract) == tick.symbol and tick.ts_ms >= contract.expiry_ms:
                out.append(self._settle(key, opt, contract, tick))
        for cid, intent in list(self.resting.items()):
            if intent.instrument != "option":
                continue
            contract = parse_option_symbol(intent.symbol, expiry_hour)
            if self.underlying_of(contract) != tick.symbol:
                continue
            if tick.ts_ms >= contract.expiry_ms:
                del self.resting[cid]
                self.option_limits_coin.pop(cid, None)
                out.append(self._record(OrderResult(cid, "canceled", tick.ts_ms, error="expired")))
                continue
            quote = self.option_quote(intent.symbol, tick.ts_ms)
            if quote is not None and self._option_crosses(intent, cid, quote):
                del self.resting[cid]
                out.append(self._execute_option(intent, cid, quote))
        for opt in self.options.values():
            contract = parse_option_symbol(opt.symbol, expiry_hour)
            if self.underlying_of(contract) != tick.symbol:
                continue
            mark = self._mark(opt, tick.ts_ms)
            every_ms = self.config.options.mark_journal_s * 1000
            if mark is not None and (
                opt.journaled_ms is None or tick.ts_ms - opt.journaled_ms >= every_ms
            ):
                opt.journaled_ms = tick.ts_ms
                out.append(mark)
        return out

    def _mark(self, opt: _Opt, now_ms: int) -> OptionMark | None:
        quote = self.option_quote(opt.symbol, now_ms)
        if quote is None:
            return None
        opt.mark_coin = quote.model_coin
        opt.mark_usd = quote.usd(quote.model_coin)
        return OptionMark(
            now_ms,
            opt.venue,
            opt.symbol,
            opt.size,
            quote.underlying,
            quote.iv,
            opt.mark_coin,
            opt.mark_usd,
            opt.entry_usd,
            opt.size * (opt.mark_usd - opt.entry_usd),
        )

    def _settle(
        self, key: tuple[str, str], opt: _Opt, contract: OptionContract, tick: PriceTick
    ) -> OptionSettlement:
        """Expiry: intrinsic value in coin at this price, less Deribit's delivery fee."""
        o = self.config.options
        value_usd = intrinsic(contract.kind, tick.price, contract.strike) * o.contract_size
        value_coin = value_usd / tick.price
        fee_coin = deribit_fee_coin(
            opt.size,
            value_coin,
            o.settlement_fee_underlying_fraction,
            o.fee_premium_cap_fraction,
            o.contract_size,
        )
        paid_usd = opt.size * value_usd - fee_coin * tick.price
        self.balance_usd += paid_usd
        self.fees_usd += fee_coin * tick.price
        del self.options[key]
        self._cancel_option_orders(opt.venue, opt.symbol, tick.ts_ms, expired=True)
        return OptionSettlement(
            tick.ts_ms,
            opt.venue,
            opt.symbol,
            opt.size,
            tick.price,
            value_coin,
            fee_coin,
            paid_usd,
            paid_usd - opt.size * opt.entry_usd,
        )

    def _option_crosses(self, intent: OrderIntent, cid: str, quote: Quote) -> bool:
        """A limit crosses when the ask is at or below it (buy), the bid at or above (sell)."""
        if intent.kind != "limit":
            return True
        limit = self.option_limits_coin.get(cid)
        if limit is None:
            return False
        return quote.ask_coin <= limit if intent.side == "buy" else quote.bid_coin >= limit

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
        ) + tuple(
            Position(
                venue=o.venue,
                symbol=o.symbol,
                side="long",
                size=o.size,
                entry_price=o.entry_usd,
                mark_price=o.mark_usd,
                instrument="option",
            )
            for o in self.options.values()
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
            unpriced=tuple(
                sorted(p.symbol for p in self.positions.values() if p.entry_price is None)
            ),
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
            self.option_limits_coin.pop(target, None)
            self._record(OrderResult(target, "canceled", now))
            return self._record(OrderResult(client_id, "canceled", now))
        if intent.instrument == "option":
            return self._submit_option(intent, client_id, now)
        price = self.prices[intent.symbol]
        if intent.kind in ("stop", "limit") and not _triggered(intent, price):
            self.resting[client_id] = intent
            return self._record(OrderResult(client_id, "open", now, exchange_order_id=client_id))
        return self._execute(intent, client_id, price, slip=intent.kind != "limit")

    def _submit_option(self, intent: OrderIntent, cid: str, now: int) -> OrderResult:
        quote = self.option_quote(intent.symbol, now)
        assert quote is not None  # _reject_reason checked the underlying's price
        if intent.kind == "limit":
            assert intent.price is not None
            # Coin-settled venues rest the limit in coin: converted once, as the live broker does.
            self.option_limits_coin[cid] = intent.price / quote.underlying
            if not self._option_crosses(intent, cid, quote):
                self.resting[cid] = intent
                return self._record(OrderResult(cid, "open", now, exchange_order_id=cid))
        return self._execute_option(intent, cid, quote)

    def _execute_option(self, intent: OrderIntent, cid: str, quote: Quote) -> OrderResult:
        """Buy at the ask or sell at the bid; premium and fee in coin, booked in USD now."""
        o = self.config.options
        now = self.clock.now_ms()
        self.option_limits_coin.pop(cid, None)
        key = (intent.venue, intent.symbol)
        held = self.options.get(key)
        amount = intent.amount
        if intent.side == "sell":
            amount = min(amount, held.size if held is not None else 0.0)
            if amount <= _EPS:
                return self._record(
                    OrderResult(cid, "canceled", now, error="reduce-only: no option left to sell")
                )
        price_coin = quote.ask_coin if intent.side == "buy" else quote.bid_coin
        fee_coin = deribit_fee_coin(
            amount,
            price_coin,
            o.fee_underlying_fraction,
            o.fee_premium_cap_fraction,
            o.contract_size,
        )
        price_usd, fee_usd = quote.usd(price_coin), quote.usd(fee_coin)
        sign = -1.0 if intent.side == "buy" else 1.0
        self.balance_usd += sign * amount * price_usd - fee_usd
        self.fees_usd += fee_usd
        mark_usd = quote.usd(quote.model_coin)
        if intent.side == "buy":
            if held is None:
                self.options[key] = _Opt(
                    intent.venue,
                    intent.symbol,
                    amount,
                    price_usd,
                    price_coin,
                    quote.model_coin,
                    mark_usd,
                )
            else:
                total = held.size + amount
                held.entry_usd = (held.entry_usd * held.size + price_usd * amount) / total
                held.entry_coin = (held.entry_coin * held.size + price_coin * amount) / total
                held.size = total
                held.mark_coin, held.mark_usd = quote.model_coin, mark_usd
        elif held is not None:
            held.size -= amount
            if held.size <= _EPS:
                del self.options[key]
                self._cancel_option_orders(intent.venue, intent.symbol, now, keep=cid)
        fill = Fill(
            cid,
            intent.venue,
            intent.symbol,
            intent.side,
            amount,
            price_usd,
            fee_usd,
            now,
            intent.reduce_only,
        )
        return self._record(OrderResult(cid, "filled", now, exchange_order_id=cid, fills=(fill,)))

    def _cancel_option_orders(
        self, venue: str, symbol: str, now: int, expired: bool = False, keep: str | None = None
    ) -> None:
        """No option left: its resting sells go (nothing to sell); at expiry, every order."""
        for cid, intent in list(self.resting.items()):
            if cid == keep or (intent.venue, intent.symbol) != (venue, symbol):
                continue
            if expired or intent.side == "sell":
                del self.resting[cid]
                self.option_limits_coin.pop(cid, None)
                why = "expired" if expired else "option no longer held"
                self._record(OrderResult(cid, "canceled", now, error=why))

    async def lookup(self, client_id: str, intent: OrderIntent) -> OrderResult | None:
        return self.results.get(client_id)

    async def close(self) -> None:
        return None

    # -- accounting -------------------------------------------------------------------------
    def equity_usd(self) -> float:
        """Cash, the perps' unrealized PnL and the options at their model mark."""
        perps = sum(self._unrealized(p) for p in self.positions.values())
        return self.balance_usd + perps + self.options_value_usd()

    def options_value_usd(self) -> float:
        return sum(o.size * o.mark_usd for o in self.options.values())

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
            return self._option_reject_reason(intent)
        if intent.symbol not in self.prices:
            return f"no price for {intent.symbol} yet"
        if intent.kind in ("stop",) and not intent.stop_price:
            return "a stop order needs stop_price"
        if intent.kind == "limit" and not intent.price:
            return "a limit order needs price"
        if intent.reduce_only and self._reducible(intent) <= _EPS:
            return f"reduce-only {intent.side} would open a position on {intent.symbol}"
        return ""

    def _option_reject_reason(self, intent: OrderIntent) -> str:
        try:
            contract = parse_option_symbol(intent.symbol, self.config.options.expiry_hour_utc)
        except ValueError as exc:
            return str(exc)
        under = self.underlying_of(contract)
        if under not in self.prices:
            return f"no price for {under} yet to price {intent.symbol}"
        now = self.clock.now_ms()
        if now >= contract.expiry_ms:
            return f"{intent.symbol} has expired"
        if intent.kind == "stop":
            return "the paper market takes market and limit orders on options, not stops"
        if intent.kind == "limit" and not intent.price:
            return "a limit order needs price"
        held = self.options.get((intent.venue, intent.symbol))
        if intent.side == "buy" and intent.reduce_only:
            return f"reduce-only buy of {intent.symbol}: the paper account holds no short option"
        if intent.side == "sell":
            have = held.size if held is not None else 0.0
            if have <= _EPS:
                return f"reduce-only sell would open a short {intent.symbol}: no option held"
            if not intent.reduce_only and intent.amount > have + _EPS:
                return (
                    f"selling {intent.amount:g} {intent.symbol} with {have:g} held would write "
                    "options; the paper market only sells back what is held"
                )
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
            "options": [to_payload(o) for o in self.options.values()],
            "option_limits_coin": dict(self.option_limits_coin),
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
        self.options = {}
        for o in state.get("options", []):
            opt = _Opt(**o)
            self.options[(opt.venue, opt.symbol)] = opt
        self.option_limits_coin = {
            k: float(v) for k, v in state.get("option_limits_coin", {}).items()
        }


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
