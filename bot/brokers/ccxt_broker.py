"""The live broker: one ccxt account (perps) plus, optionally, one options account (puts).

Contents, in the order an action meets them:
- CcxtBroker.portfolio / refresh: positions, balance, open orders (plain and stop) from the
  venue; refreshed every `refresh_s`, and in the background right after every action
- CcxtBroker.submit: reduce-only market orders (or IOC limits within a slippage cap), limits,
  stops (`stopLossPrice`), hedges, puts on the options venue, cancels; deterministic client
  ids within the venue's limits. A create is NEVER blind-retried: after a timeout or network
  error the order is looked up by client id and sent again only if the venue has none.
- CcxtBroker.lookup: the order with a client id (stops: `trigger`)
- CcxtBroker.reconcile: at start, orders the journal sent without a result, looked up
- reads retried (tenacity) on transient ccxt errors only; errors mapped in bot.live.exchange
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import ccxt
from loguru import logger
from tenacity import (
    AsyncRetrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential_jitter,
)

from bot.brokers.ccxt_convert import (
    now_ms,
    open_order_from_ccxt,
    position_from_ccxt,
    result_from_ccxt,
)
from bot.events import OpenOrder, OrderIntent, OrderResult, Portfolio, Position
from bot.live.client_ids import venue_client_id
from bot.live.exchange import (
    ErrorKind,
    MarketsKeeper,
    classify_error,
    describe_error,
    is_transient,
)

STABLES = ("USDT", "USDC", "USD", "FDUSD", "BUSD")
# the venue names events carry (bot.sources.venues) for each config venue
VENUE_LABELS = {"binance": "binance-usdm", "bybit": "bybit", "okx": "okx", "deribit": "deribit"}

OnRejected = Callable[[OrderIntent, OrderResult], Awaitable[None]]


@dataclass
class Reconciliation:
    """What the venue says of orders the journal sent without recording an outcome."""

    found: dict[str, OrderResult] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    open_orders: tuple[OpenOrder, ...] = ()
    positions: tuple[Position, ...] = ()


class CcxtBroker:
    """Broker (bot.interfaces) over ccxt; `exchange` is the account's one ccxt instance."""

    def __init__(
        self,
        venue: str,
        exchange: Any,
        *,
        options_venue: str | None = None,
        options_exchange: Any | None = None,
        refresh_s: float = 30.0,
        slippage_cap_bps: float | None = None,
        create_attempts: int = 2,
        read_attempts: int = 3,
        on_rejected: OnRejected | None = None,
        watch_symbols: Iterable[str] = (),
        markets_refresh_s: float = 86_400.0,
        refresh_delay_s: float = 0.25,
    ) -> None:
        self.venue = venue
        self.name = exchange.id
        self.exchange = exchange
        self.options_venue = options_venue
        self.options_exchange = options_exchange
        self.refresh_s = refresh_s
        self.slippage_cap_bps = slippage_cap_bps
        self.create_attempts = create_attempts
        self.read_attempts = read_attempts
        self.on_rejected = on_rejected
        self.watch_symbols = tuple(watch_symbols)  # venue ids whose open orders are read
        self.label = VENUE_LABELS.get(venue, venue)
        self._portfolio: Portfolio | None = None
        self._refreshed_s = 0.0
        self._refresh_task: asyncio.Task[Portfolio] | None = None
        self._all_symbols_read = False
        self.refresh_delay_s = refresh_delay_s
        self._dirty_handle: asyncio.TimerHandle | None = None  # a refresh is due after orders
        self.creates_sent = 0  # create requests sent (tests and status)
        self._keepers = {
            id(e): MarketsKeeper(e, markets_refresh_s)
            for e in (exchange, options_exchange)
            if e is not None
        }

    async def _markets(self, exchange: Any) -> None:
        """Markets loaded once, reloaded when a day old (cheap when fresh)."""
        await self._keepers[id(exchange)].ensure()

    # --- reads -------------------------------------------------------------------------------
    async def _read(self, call: Callable[[], Awaitable[Any]]) -> Any:
        """A read, retried with backoff on transient ccxt errors only."""
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.read_attempts),
            wait=wait_exponential_jitter(multiplier=0.05, max=2.0, jitter=0.1),
            retry=retry_if_exception(is_transient),
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                return await call()
        raise AssertionError("unreachable")

    def _market(self, symbol: str, exchange: Any | None = None) -> dict[str, Any]:
        ex = exchange or self.exchange
        if symbol in ex.markets:
            return ex.markets[symbol]
        found = ex.markets_by_id.get(symbol) if ex.markets_by_id else None
        if found:
            return found[0]
        raise ccxt.BadSymbol(f"{ex.id}: {symbol!r} is not a market of this venue")

    async def refresh(self, all_symbols: bool = False) -> Portfolio:
        """Read positions, balance and open orders (plain and stop) from the venue now.

        Open orders are read per symbol held or watched: on Binance a read without a symbol
        costs 40 weight and ccxt's limiter would hold the next order back ~2 s behind it.
        `all_symbols` reads every symbol (at start, to find orders on symbols not held).
        """
        ex = self.exchange
        await self._markets(ex)
        raw_positions, balance = await asyncio.gather(
            self._read(ex.fetch_positions), self._read(ex.fetch_balance)
        )
        positions = tuple(p for p in (self._position(r) for r in raw_positions) if p is not None)
        symbols: list[str | None] = [None]
        if not all_symbols:
            held = {self._market(p.symbol)["symbol"] for p in positions}
            symbols = sorted(held | {self._market(s)["symbol"] for s in self.watch_symbols})
        stops = ({}, {"trigger": True}) if ex.id == "binanceusdm" else ({},)  # algo orders apart
        reads = [self._read(self._open_orders_call(ex, s, p)) for s in symbols for p in stops]
        raw_orders = [o for batch in await asyncio.gather(*reads) for o in batch]
        orders = tuple(self._open_order(o) for o in raw_orders)
        totals = balance.get("total", {}) or {}
        balance_usd = sum(float(totals.get(c) or 0.0) for c in STABLES)
        prices = {p.symbol: p.mark_price for p in positions}
        self._portfolio = Portfolio(
            ts_ms=now_ms(),
            balance_usd=balance_usd,
            positions=positions,
            open_orders=orders,
            prices=prices,
        )
        self._refreshed_s = time.monotonic()
        self._all_symbols_read = all_symbols
        return self._portfolio

    @staticmethod
    def _open_orders_call(
        ex: Any, symbol: str | None, params: dict[str, Any]
    ) -> Callable[[], Awaitable[Any]]:
        return lambda: ex.fetch_open_orders(symbol, None, None, dict(params))

    def _position(self, raw: dict[str, Any]) -> Position | None:
        return position_from_ccxt(raw, self._market(raw["symbol"]), self.label)

    def _open_order(self, raw: dict[str, Any]) -> OpenOrder:
        return open_order_from_ccxt(raw, self._market(raw["symbol"]), self.label)

    async def portfolio(self) -> Portfolio:
        """The account: re-read when older than `refresh_s`, or when an order went out since."""
        if self._refresh_task is not None:
            with contextlib.suppress(Exception):  # a failed background refresh: read again
                return await asyncio.shield(self._refresh_task)
        stale = self._portfolio is None or time.monotonic() - self._refreshed_s >= self.refresh_s
        if stale or self._dirty_handle is not None:
            self._cancel_dirty()
            return await self.refresh()
        assert self._portfolio is not None
        return self._portfolio

    def _refresh_soon(self) -> None:
        """Re-read the account `refresh_delay_s` after the last order: the legs of one action
        go out first (a refresh costs ~12 Binance weights that ccxt's limiter makes the next
        request wait for)."""
        self._cancel_dirty()
        loop = asyncio.get_running_loop()
        self._dirty_handle = loop.call_later(self.refresh_delay_s, self._start_refresh)

    def _cancel_dirty(self) -> None:
        if self._dirty_handle is not None:
            self._dirty_handle.cancel()
            self._dirty_handle = None

    def _start_refresh(self) -> None:
        self._dirty_handle = None
        if self._refresh_task is None or self._refresh_task.done():
            self._refresh_task = asyncio.create_task(self.refresh(), name="broker-refresh")
            self._refresh_task.add_done_callback(self._refresh_done)

    def _refresh_done(self, task: asyncio.Task[Portfolio]) -> None:
        if task is self._refresh_task:
            self._refresh_task = None
        if not task.cancelled() and task.exception() is not None:
            logger.warning("{}: portfolio refresh failed: {}", self.name, task.exception())
            self._portfolio = None  # read again on the next call

    # --- orders --------------------------------------------------------------------------------
    def _route(self, intent: OrderIntent) -> tuple[Any, str]:
        """The ccxt instance and venue name that carry this intent."""
        if intent.instrument == "option":
            if self.options_exchange is None or self.options_venue is None:
                raise ccxt.NotSupported(
                    "no options venue configured (exchanges.options_venue) for " + intent.symbol
                )
            return self.options_exchange, self.options_venue
        return self.exchange, self.venue

    def _order_args(
        self, intent: OrderIntent, cid: str, venue: str, market: dict[str, Any]
    ) -> tuple[str, float | None, dict[str, Any]]:
        """(ccxt order type, price, params) for an intent."""
        params: dict[str, Any] = {}
        if venue == "deribit":
            params["label"] = cid  # Deribit has no client id mapping in ccxt
        else:
            params["clientOrderId"] = cid
        if intent.reduce_only:
            params["reduceOnly"] = True
        if intent.kind == "stop":
            params["stopLossPrice"] = intent.stop_price
            return "market", None, params
        if intent.kind == "limit":
            return "limit", intent.price, params
        cap = self.slippage_cap_bps
        mark = self._portfolio.prices.get(market["id"]) if self._portfolio else None
        if intent.instrument != "option" and cap is not None and mark:
            sign = 1.0 if intent.side == "buy" else -1.0
            params["timeInForce"] = "IOC"
            return "limit", mark * (1 + sign * cap / 10_000), params
        return "market", intent.price if intent.instrument == "option" else None, params

    async def _option_price(self, intent: OrderIntent, market: dict[str, Any]) -> float | None:
        """Strategies price options in USD; coin-settled options (Deribit, OKX) quote in coin."""
        if intent.price is None or market.get("settle") in STABLES:
            return intent.price
        base = market["base"]
        index_usd = (self._portfolio.prices if self._portfolio else {}).get(f"{base}USDT")
        if not index_usd:
            await self._markets(self.exchange)
            perp = self._market(f"{base}USDT")["symbol"]
            mark = await self._read(lambda: self.exchange.fetch_mark_price(perp))
            index_usd = float(mark.get("markPrice") or 0.0)
        if not index_usd:
            raise ccxt.InvalidOrder(f"no {base} price to convert the option premium from USD")
        return intent.price / index_usd

    async def submit(self, intent: OrderIntent, client_id: str) -> OrderResult:
        """Send one order or cancel. A create is retried only once the venue shows no such id."""
        try:
            ex, venue = self._route(intent)
            await self._markets(ex)
            cid = venue_client_id(client_id, venue)
            if intent.kind == "cancel":
                return await self._cancel(intent, client_id, ex, venue)
            market = self._market(intent.symbol, ex)
            otype, price, params = self._order_args(intent, cid, venue, market)
            if intent.instrument == "option":
                price = await self._option_price(intent, market)
        except ccxt.BaseError as exc:
            return await self._rejected(intent, client_id, exc)
        try:
            for attempt in range(1, self.create_attempts + 1):
                try:
                    self.creates_sent += 1
                    order = await ex.create_order(
                        market["symbol"], otype, intent.side, intent.amount, price, params
                    )
                    return self._result(client_id, order, venue)
                except Exception as exc:
                    if classify_error(exc) is not ErrorKind.RETRYABLE:
                        raise
                    logger.warning(
                        "{}: create {} outcome unknown ({}); looking it up",
                        venue,
                        cid,
                        describe_error(exc),
                    )
                    found = await self.lookup(client_id, intent)
                    if found is not None:
                        return found  # it landed: never send it twice
                    if attempt == self.create_attempts:
                        return OrderResult(
                            client_id=client_id,
                            status="failed",
                            ts_ms=now_ms(),
                            error=describe_error(exc),
                            retryable=True,
                        )
            raise AssertionError("unreachable")
        except ccxt.BaseError as exc:
            if classify_error(exc) is ErrorKind.RETRYABLE:  # the lookup itself kept failing
                return OrderResult(
                    client_id=client_id,
                    status="failed",
                    ts_ms=now_ms(),
                    error="outcome unknown, lookup failed: " + describe_error(exc),
                    retryable=True,
                )
            return await self._rejected(intent, client_id, exc)
        finally:
            self._refresh_soon()

    async def _rejected(
        self, intent: OrderIntent, client_id: str, exc: BaseException
    ) -> OrderResult:
        result = OrderResult(
            client_id=client_id, status="rejected", ts_ms=now_ms(), error=describe_error(exc)
        )
        logger.error("{}: order {} rejected: {}", self.name, client_id, result.error)
        if self.on_rejected is not None:
            with contextlib.suppress(Exception):
                await self.on_rejected(intent, result)
        return result

    async def _cancel(
        self, intent: OrderIntent, client_id: str, ex: Any, venue: str
    ) -> OrderResult:
        target = venue_client_id(intent.cancel_client_id or client_id, venue)
        symbol = self._market(intent.symbol, ex)["symbol"]
        last: BaseException | None = None
        for extra in ({}, {"trigger": True}):  # a plain order, else a stop
            params = {"clientOrderId": target, **extra}
            try:
                order = await self._read(self._cancel_call(ex, symbol, params))
                self._refresh_soon()
                res = self._result(client_id, order, venue)
                return OrderResult(
                    client_id=client_id,
                    status="canceled",
                    ts_ms=res.ts_ms,
                    exchange_order_id=res.exchange_order_id,
                )
            except ccxt.OrderNotFound as exc:
                last = exc
            except ccxt.BaseError as exc:
                return await self._rejected(intent, client_id, exc)
        assert last is not None
        return await self._rejected(intent, client_id, last)

    @staticmethod
    def _cancel_call(ex: Any, symbol: str, params: dict[str, Any]) -> Callable[[], Awaitable[Any]]:
        return lambda: ex.cancel_order(None, symbol, params)

    async def lookup(self, client_id: str, intent: OrderIntent) -> OrderResult | None:
        """The order with this client id at the venue, or None if it has none."""
        ex, venue = self._route(intent)
        await self._markets(ex)
        cid = venue_client_id(client_id, venue)
        market = self._market(intent.symbol, ex)
        if venue == "deribit":  # no client ids there: the order carries our id as its label
            query = {"currency": market["base"], "label": cid}
            found = await self._read(lambda: ex.private_get_get_order_state_by_label(query))
            rows = found.get("result") or []
            return (
                self._result(client_id, ex.parse_order(rows[-1], market), venue) if rows else None
            )
        params: dict[str, Any] = {"clientOrderId": cid}
        if intent.kind == "stop":
            params["trigger"] = True
        try:
            order = await self._read(lambda: ex.fetch_order(None, market["symbol"], params))
        except ccxt.OrderNotFound:
            return None
        return self._result(client_id, order, venue)

    def _result(self, client_id: str, order: dict[str, Any], venue: str) -> OrderResult:
        market = self._market(order["symbol"], self._exchange_of(venue))
        return result_from_ccxt(client_id, order, market, VENUE_LABELS.get(venue, venue))

    def _exchange_of(self, venue: str) -> Any:
        return self.options_exchange if venue == self.options_venue else self.exchange

    # --- start and stop ------------------------------------------------------------------------
    async def reconcile(self, sent: Iterable[tuple[str, OrderIntent]]) -> Reconciliation:
        """At start: look up every (client id, intent) the journal sent without an outcome."""
        out = Reconciliation()
        for client_id, intent in sent:
            if intent.kind == "cancel":
                continue
            found = await self.lookup(client_id, intent)
            if found is None:
                out.missing.append(client_id)
            else:
                out.found[client_id] = found
        # every symbol's open orders, unless the --live gate has just read them all
        fresh = self._portfolio is not None and self._all_symbols_read
        portfolio = await self.portfolio() if fresh else await self.refresh(all_symbols=True)
        out.open_orders, out.positions = portfolio.open_orders, portfolio.positions
        return out

    async def close(self) -> None:
        self._cancel_dirty()
        if self._refresh_task is not None:
            self._refresh_task.cancel()
            with contextlib.suppress(BaseException):
                await self._refresh_task
        instances = {id(e): e for e in (self.exchange, self.options_exchange) if e is not None}
        for ex in instances.values():
            if ex is not None:
                with contextlib.suppress(Exception):
                    await ex.close()
