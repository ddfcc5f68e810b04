"""The account side of the live broker: what the venue says is held, resting and priced.

CcxtAccount (the base of CcxtBroker): markets kept fresh, reads retried on transient ccxt
errors only, `refresh` (positions, balance, open orders; the options account's positions and
open orders merged in as instrument "option"), `portfolio` (cached, re-read after orders;
until the re-read, our own filled reduce-only orders are applied to the last read),
`note_price` / `_fresh_price` (marks for IOC caps at most `price_max_age_s` old), `close`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import ccxt
from loguru import logger
from tenacity import (
    AsyncRetrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential_jitter,
)

from bot.brokers.ccxt_convert import now_ms, open_order_from_ccxt, position_from_ccxt
from bot.ccxt.exchange import MarketsKeeper, is_transient
from bot.config.venues import venue_label
from bot.events import Fill, OpenOrder, OrderIntent, OrderResult, Portfolio, Position

STABLES = ("USDT", "USDC", "USD", "FDUSD", "BUSD")
# open-order reads per ccxt id: plain orders, then stops (Binance algo, OKX conditional algo)
_STOP_READS: dict[str, tuple[dict[str, Any], ...]] = {
    "binanceusdm": ({}, {"trigger": True}),
    "okx": ({}, {"ordType": "conditional"}),
}

OnRejected = Callable[[OrderIntent, OrderResult], Awaitable[None]]


class CcxtAccount:
    """The reads of the live broker; `exchange` is the account's one ccxt instance."""

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
        price_symbols: Iterable[str] = (),
        markets_refresh_s: float = 86_400.0,
        refresh_delay_s: float = 0.25,
        accept_window_s: float = 6.0,
        price_max_age_s: float = 2.0,
        order_transport: str = "rest",
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
        self.price_symbols = tuple(price_symbols)  # venue ids priced even when not held
        self.label = venue_label(venue)
        # a lost create can still land this long after it was sent (recvWindow + clock margin)
        self.accept_window_s = accept_window_s
        self.price_max_age_s = price_max_age_s  # IOC caps use marks at most this old
        self._marks: dict[str, tuple[float, float]] = {}  # venue id -> (price, monotonic s)
        self._portfolio: Portfolio | None = None
        self._refreshed_s = 0.0
        self._refresh_task: asyncio.Task[Portfolio] | None = None
        self._all_symbols_read = False
        self.refresh_delay_s = refresh_delay_s
        self._dirty_handle: asyncio.TimerHandle | None = None  # a refresh is due after orders
        self.creates_sent = 0  # create requests sent (tests and status)
        # Orders answered, and the fills of those answered since the last read: the last read
        # plus these is what the venue holds while `_derivable` (see portfolio)
        self._orders_answered = 0
        self._unread: list[Fill] = []
        self._derivable = False
        self._on_way: dict[asyncio.Task[Any] | None, int] = {}  # orders unanswered, by task
        self._an_order_answered = asyncio.Event()  # wakes plans waiting for orders on their way
        self.order_transport = order_transport  # "rest" | "websocket" (Binance perps only)
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
        """Read positions, balance and open orders (plain and stop) from the venue now, and
        the options account's positions and open orders (puts) when it is another instance.

        Open orders are read per symbol held or watched: on Binance a read without a symbol
        costs 40 weight and ccxt's limiter would hold the next order back ~2 s behind it.
        `all_symbols` reads every symbol (at start, to find orders on symbols not held).
        """
        ex = self.exchange
        idle_before, answered_before = not self._on_way, self._orders_answered
        await self._markets(ex)
        opt = self.options_exchange if self.options_exchange is not ex else None
        raw_positions, balance, (opt_positions, opt_orders) = await asyncio.gather(
            self._read(ex.fetch_positions), self._read(ex.fetch_balance), self._options_book(opt)
        )
        positions = tuple(p for p in (self._position(r) for r in raw_positions) if p is not None)
        symbols: list[str | None] = [None]
        if not all_symbols:
            held = {self._market(p.symbol)["symbol"] for p in positions if p.instrument != "option"}
            symbols = sorted(held | {self._market(s)["symbol"] for s in self.watch_symbols})
        stops = _STOP_READS.get(ex.id, ({},))  # stop orders live apart on Binance and OKX
        reads = [self._read(self._open_orders_call(ex, s, p)) for s in symbols for p in stops]
        raw_orders = [o for batch in await asyncio.gather(*reads) for o in batch]
        orders = tuple(o for o in (self._open_order(r, ex) for r in raw_orders) if o is not None)
        totals = balance.get("total", {}) or {}
        balance_usd = sum(float(totals.get(c) or 0.0) for c in STABLES)
        prices = {p.symbol: p.mark_price for p in positions if p.instrument != "option"}
        for symbol, price in prices.items():
            self.note_price(symbol, price)
        unheld = [s for s in self.price_symbols if s not in prices]
        marks = await asyncio.gather(*map(self._price, unheld))
        prices |= {s: mark for s, mark in zip(unheld, marks, strict=True) if mark is not None}
        self._portfolio = Portfolio(
            ts_ms=now_ms(),
            balance_usd=balance_usd,
            positions=positions + opt_positions,
            open_orders=orders + opt_orders,
            prices=prices,
        )
        self._refreshed_s = time.monotonic()
        self._all_symbols_read = all_symbols
        self._unread = []
        # an order on its way while the account was read may or may not be in what was read
        self._derivable = (
            idle_before and not self._on_way and self._orders_answered == answered_before
        )
        return self._portfolio

    async def _price(self, symbol: str) -> float | None:
        """A fresh mark of an instrument the policy trades without holding it (a hedge's
        perp), or None: the strategy then says it has no price."""
        try:
            return await self._fresh_price(self.exchange, self._market(symbol))
        except Exception as exc:  # an unknown symbol or a failed read: unpriced, said
            logger.warning("{}: no price for {}: {}", self.name, symbol, exc)
            return None

    async def _options_book(
        self, opt: Any | None
    ) -> tuple[tuple[Position, ...], tuple[OpenOrder, ...]]:
        """Options positions and open orders on the options account (held and resting puts)."""
        if opt is None:
            return (), ()
        await self._markets(opt)
        raw_positions, raw_orders = await asyncio.gather(
            self._read(opt.fetch_positions), self._read(self._open_orders_call(opt, None, {}))
        )
        positions = (self._position(r, opt) for r in raw_positions)
        orders = (self._open_order(r, opt) for r in raw_orders)
        return (
            tuple(p for p in positions if p is not None and p.instrument == "option"),
            tuple(o for o in orders if o is not None and o.symbol in opt.markets),
        )

    @staticmethod
    def _open_orders_call(
        ex: Any, symbol: str | None, params: dict[str, Any]
    ) -> Callable[[], Awaitable[Any]]:
        return lambda: ex.fetch_open_orders(symbol, None, None, dict(params))

    def _known(self, raw: dict[str, Any], ex: Any) -> dict[str, Any] | None:
        """The market of a structure, or None (logged) for one not loaded: never a crash."""
        try:
            return self._market(str(raw.get("symbol")), ex)
        except ccxt.BadSymbol:
            logger.warning("{}: {} is not a loaded market; skipped", ex.id, raw.get("symbol"))
            return None

    def _position(self, raw: dict[str, Any], ex: Any | None = None) -> Position | None:
        ex = ex or self.exchange
        market = self._known(raw, ex)
        label = self.label if ex is self.exchange else venue_label(self.options_venue or "")
        return None if market is None else position_from_ccxt(raw, market, label)

    def _open_order(self, raw: dict[str, Any], ex: Any) -> OpenOrder | None:
        market = self._known(raw, ex)
        label = self.label if ex is self.exchange else venue_label(self.options_venue or "")
        return None if market is None else open_order_from_ccxt(raw, market, label)

    async def portfolio(self) -> Portfolio:
        """The account: re-read when older than `refresh_s`, or when an order went out since.

        After orders that were all plain reduce-only fills on this account (the legs of a
        reduction), the next plan does not wait for that re-read (~0.25 s on Binance with its
        rate limit): it gets the last read with those fills taken off the positions, and the
        re-read follows as before. Any other order since (resting, unknown outcome, a cancel,
        opening, options), or one on its way during the last read, and it waits for the read.

        An order of this account still on its way is waited for first (its round trip, or its
        own bounded timeout and lookup): a plan right after it (the default level 2's hedge, a
        few loop turns after its reduction went out) sizes on what it left, as in paper mode."""
        me = asyncio.current_task()  # its own orders are not waited for (no wait on itself)
        while any(task is not me for task in self._on_way):
            self._an_order_answered.clear()
            await self._an_order_answered.wait()
        if self._refresh_task is not None or self._dirty_handle is not None:
            derived = self._derived()
            if derived is not None:
                return derived
        if self._refresh_task is not None:
            with contextlib.suppress(Exception):  # a failed background refresh: read again
                return await asyncio.shield(self._refresh_task)
        stale = self._portfolio is None or time.monotonic() - self._refreshed_s >= self.refresh_s
        if stale or self._dirty_handle is not None:
            self._cancel_dirty()
            return await self.refresh()
        assert self._portfolio is not None
        return self._portfolio

    def _order_begun(self) -> None:
        task = asyncio.current_task()
        self._on_way[task] = self._on_way.get(task, 0) + 1

    def _order_answered(self, intent: OrderIntent, result: OrderResult | None) -> None:
        """Keep the fills of a plain reduce-only fill for the next plan; any other answer (or
        none: the submit raised) makes the next plan read the venue."""
        self._orders_answered += 1
        task = asyncio.current_task()
        left = self._on_way.pop(task, 1) - 1
        if left > 0:
            self._on_way[task] = left
        self._an_order_answered.set()
        if result is not None and result.status == "rejected" and not result.outcome_unknown:
            return  # the venue refused it (or it was never sent): nothing changed there
        plain = (
            result is not None
            and result.status == "filled"
            and not result.outcome_unknown
            and intent.kind == "market"
            and intent.reduce_only
            and intent.instrument != "option"
            and bool(result.fills)
            and all(f.reduce_only and f.venue == self.label for f in result.fills)
        )
        if plain and result is not None:
            self._unread.extend(result.fills)
        else:
            self._derivable = False

    def _derived(self) -> Portfolio | None:
        """The last read with our fills since taken off its positions; None when that is not
        known to be what the venue holds (or the read is older than `refresh_s`)."""
        read = self._portfolio
        if not self._derivable or read is None or self._on_way:
            return None  # an order still on its way: its fill is not known yet
        if time.monotonic() - self._refreshed_s >= self.refresh_s:
            return None
        positions = list(read.positions)
        for fill in self._unread:
            side = "long" if fill.side == "sell" else "short"  # a reduce-only sell closes a long
            at = next(
                (
                    i
                    for i, p in enumerate(positions)
                    if (p.venue, p.symbol, p.side) == (fill.venue, fill.symbol, side)
                    and p.instrument != "option"
                ),
                None,
            )
            if at is None:
                return None  # a fill of nothing we read: only the venue can say
            held = positions[at]
            left = held.size - fill.amount
            if left < -1e-9 * held.size:
                return None
            if left <= 1e-9 * held.size:
                del positions[at]
            else:
                positions[at] = dataclasses.replace(held, size=left)
        return dataclasses.replace(read, positions=tuple(positions))

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

    def note_price(self, symbol: str, price: float) -> None:
        """A fresh mark (venue id) from a stream: caps IOC prices without a REST read."""
        if price > 0:
            self._marks[symbol] = (price, time.monotonic())

    async def _fresh_price(self, ex: Any, market: dict[str, Any]) -> float:
        """A mark at most `price_max_age_s` old: the one noted, else read from the venue now."""
        noted = self._marks.get(market["id"])
        if noted is not None and time.monotonic() - noted[1] <= self.price_max_age_s:
            return noted[0]
        symbol = market["symbol"]
        if ex.has.get("fetchMarkPrice"):
            raw = await self._read(lambda: ex.fetch_mark_price(symbol))
        else:
            raw = await self._read(lambda: ex.fetch_ticker(symbol))
        price = float(raw.get("markPrice") or raw.get("last") or 0.0)
        if price <= 0:
            raise ccxt.InvalidOrder(f"no fresh price for {symbol} to cap the order at")
        self.note_price(market["id"], price)
        return price

    # --- stop ------------------------------------------------------------------------------
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
