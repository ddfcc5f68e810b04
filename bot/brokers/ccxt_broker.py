"""The live broker: one ccxt account (perps) plus, optionally, one options account (puts).

Contents, in the order an action meets them:
- CcxtBroker.portfolio / refresh (bot.brokers.ccxt_account): positions, balance, open orders
  (plain and stop) from the venue, and the options account's; refreshed every `refresh_s`,
  and in the background right after every action
- CcxtBroker.submit: reduce-only market orders (or IOC limits within a slippage cap of a
  fresh mark), limits, stops (`stopLossPrice`), hedges, puts on the options venue, cancels;
  only intents for this broker's venues; amounts in base units converted to the venue's
  contracts (bot.brokers.ccxt_convert); deterministic client ids within the venue's limits.
  A create is NEVER blind-retried: after a timeout or network error the order is looked up by
  client id, again once the venue can no longer accept the lost request (`accept_window_s`:
  its recvWindow), and sent again only if it is reduce-only and still absent. Any other
  doubt is `failed` with `outcome_unknown` (its error says "outcome unknown: ..."): a person
  looks.
- CcxtBroker.lookup: the order with a client id (per venue: bot.brokers.ccxt_venues)
- CcxtBroker.reconcile: at start, orders the journal sent without a result, looked up
- reads retried (tenacity) on transient ccxt errors only; errors mapped in bot.ccxt.exchange
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import ccxt
from loguru import logger

from bot.brokers.ccxt_account import STABLES, CcxtAccount, OnRejected
from bot.brokers.ccxt_convert import (
    base_to_contracts,
    contract_size,
    now_ms,
    result_from_ccxt,
)
from bot.brokers.ccxt_venues import cancel_by_client_id, client_id_params, find_order
from bot.brokers.client_ids import venue_client_id
from bot.ccxt.exchange import (
    ErrorKind,
    classify_error,
    describe_error,
)
from bot.config.venues import config_venue, venue_label
from bot.events import OUTCOME_UNKNOWN, OpenOrder, OrderIntent, OrderResult, Portfolio, Position

__all__ = ["STABLES", "CcxtBroker", "OnRejected", "Reconciliation"]


@dataclass
class Reconciliation:
    """What the venue says of orders the journal sent without recording an outcome."""

    found: dict[str, OrderResult] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    unknown: dict[str, str] = field(default_factory=dict)  # client id -> why the lookup failed
    open_orders: tuple[OpenOrder, ...] = ()
    positions: tuple[Position, ...] = ()


class CcxtBroker(CcxtAccount):
    """Broker (bot.interfaces) over ccxt; `exchange` is the account's one ccxt instance."""

    # --- orders --------------------------------------------------------------------------------
    def _route(self, intent: OrderIntent) -> tuple[Any, str]:
        """The ccxt instance and venue name that carry this intent; a venue it is not for is
        refused (a hedge meant for Bybit must not sell on the Binance account)."""
        want = config_venue(intent.venue)
        if intent.instrument == "option":
            if self.options_exchange is None or self.options_venue is None:
                raise ccxt.NotSupported(
                    "no options venue configured (exchanges.options_venue) for " + intent.symbol
                )
            if want != self.options_venue:
                raise ccxt.InvalidOrder(
                    f"option order for venue {intent.venue!r}, but puts are bought on "
                    f"{self.options_venue} (exchanges.options_venue): not sent"
                )
            return self.options_exchange, self.options_venue
        if want != self.venue:
            raise ccxt.InvalidOrder(
                f"order for venue {intent.venue!r}, but the live broker trades {self.venue} "
                f"({venue_label(self.venue)}, exchanges.trading_venue): not sent; set the "
                f"strategy's venue to {venue_label(self.venue)}"
            )
        return self.exchange, self.venue

    async def _order_args(
        self, intent: OrderIntent, cid: str, venue: str, market: dict[str, Any], ex: Any
    ) -> tuple[str, float | None, dict[str, Any]]:
        """(ccxt order type, price, params) for an intent; prices to the venue's tick."""
        params = client_id_params(venue, cid)
        if intent.reduce_only:
            params["reduceOnly"] = True
        symbol = market["symbol"]
        if intent.kind == "stop":
            assert intent.stop_price is not None
            params["stopLossPrice"] = float(ex.price_to_precision(symbol, intent.stop_price))
            return "market", None, params
        if intent.instrument == "option":
            price = await self._option_price(intent, market)
            otype = "limit" if price is not None else "market"
            return otype, _tick(ex, symbol, price), params
        if intent.kind == "limit":
            return "limit", _tick(ex, symbol, intent.price), params
        if ex.id == "binanceusdm":
            params["newOrderRespType"] = "RESULT"  # the fill in the answer, not just an ack
        cap = self.slippage_cap_bps
        if cap is None:
            return "market", None, params
        mark = await self._fresh_price(ex, market)
        sign = 1.0 if intent.side == "buy" else -1.0
        params["timeInForce"] = "IOC"
        return "limit", _tick(ex, symbol, mark * (1 + sign * cap / 10_000)), params

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

    @staticmethod
    def _venue_amount(ex: Any, market: dict[str, Any], intent: OrderIntent) -> float:
        """The intent's base units as the venue's contracts, to its step; refused if that
        rounds to nothing or below the venue's minimum (the reason says which)."""
        try:
            contracts = base_to_contracts(intent.amount, market)
        except ValueError as exc:
            raise ccxt.InvalidOrder(str(exc)) from exc
        try:
            amount = float(ex.amount_to_precision(market["symbol"], contracts))
        except ccxt.BaseError:
            amount = 0.0
        minimum = float(((market.get("limits") or {}).get("amount") or {}).get("min") or 0.0)
        if amount <= 0 or amount < minimum * (1 - 1e-9):
            size = "" if market.get("option") else f" of {contract_size(market):g}"
            raise ccxt.InvalidOrder(
                f"{intent.amount:g} {market.get('base', '')} is {contracts:g} contracts{size} on "
                f"{market['symbol']}; to the venue's step that is {amount:g}, below its "
                f"minimum of {minimum:g} contracts: not sent"
            )
        return amount

    async def submit(self, intent: OrderIntent, client_id: str) -> OrderResult:
        """Send one order or cancel. A create is sent again only when it is reduce-only and the
        venue shows no such id after the request could no longer be accepted."""
        self._order_begun()
        result: OrderResult | None = None
        try:
            result = await self._submit(intent, client_id)
            return result
        finally:
            self._order_answered(intent, result)

    async def _submit(self, intent: OrderIntent, client_id: str) -> OrderResult:
        try:
            ex, venue = self._route(intent)
            await self._markets(ex)
            cid = venue_client_id(client_id, venue)
            if intent.kind == "cancel":
                return await self._cancel(intent, client_id, ex, venue)
            market = self._market(intent.symbol, ex)
            amount = self._venue_amount(ex, market, intent)
            otype, price, params = await self._order_args(intent, cid, venue, market, ex)
        except ccxt.BaseError as exc:
            return await self._rejected(intent, client_id, exc)
        try:
            for attempt in range(1, self.create_attempts + 1):
                sent_s = time.monotonic()
                try:
                    self.creates_sent += 1
                    order = await self._create(ex, market, otype, intent, amount, price, params)
                except Exception as exc:
                    if classify_error(exc) is not ErrorKind.RETRYABLE:
                        if isinstance(exc, ccxt.BaseError):
                            return await self._rejected(intent, client_id, exc)
                        raise
                    found, why = await self._after_lost_create(intent, client_id, exc, sent_s)
                    if found is not None:
                        return found  # it landed: never send it twice
                    if why:
                        return await self._unknown(intent, client_id, why)
                    if attempt == self.create_attempts:  # absent after its window: not placed
                        return OrderResult(
                            client_id=client_id,
                            status="failed",
                            ts_ms=now_ms(),
                            error=f"not placed after {attempt} attempts (the venue shows no "
                            f"such order once it could no longer accept it): "
                            + describe_error(exc),
                            retryable=True,
                        )
                    continue
                return await self._answer(client_id, order, intent, ex, venue, market)
            raise AssertionError("unreachable")
        finally:
            self._refresh_soon()

    async def refresh(self, all_symbols: bool = False) -> Portfolio:
        self.open_order_socket()  # with every account read: up again soon after a drop
        return await super().refresh(all_symbols)

    def open_order_socket(self) -> asyncio.Future[Any] | None:
        """Dial Binance's WebSocket API ahead of the first order (and again after a drop), so
        no order waits for a handshake; None for REST. The future is done once connected."""
        ex = self.exchange
        if self.order_transport != "websocket" or ex.id != "binanceusdm":
            return None
        ex.open()  # ccxt's aiohttp session, as its own watch() does
        connected: asyncio.Future[Any] = ex.client(self._ws_api_url()).connect(ex.session, 0)
        return connected

    def _ws_api_url(self) -> str:
        return str(self.exchange.urls["api"]["ws"]["ws-api"]["linear"])

    def _over_websocket(self, ex: Any, intent: OrderIntent) -> bool:
        """Whether this create goes as `order.place` on Binance's WebSocket API: plain orders
        on the perps account (stops are algo orders: REST), while the socket is up; a socket
        down sends this order over REST (nothing went out on it) and is dialled again."""
        if not (
            self.order_transport == "websocket"
            and ex is self.exchange
            and ex.id == "binanceusdm"
            and intent.kind != "stop"
        ):
            return False
        client = ex.clients.get(self._ws_api_url())
        if client is None or client.closed():
            self.open_order_socket()
            return False
        return True

    async def _create(
        self,
        ex: Any,
        market: dict[str, Any],
        otype: str,
        intent: OrderIntent,
        amount: float,
        price: float | None,
        params: dict[str, Any],
    ) -> dict[str, Any]:
        """One create request, over REST or the WebSocket API; the same client id, params
        (reduce-only) and answer either way. ccxt's websocket call has no deadline of its own:
        past the REST timeout it is a lost create (looked up by client id, never re-sent blind)."""
        symbol = market["symbol"]
        if not self._over_websocket(ex, intent):
            return await ex.create_order(symbol, otype, intent.side, amount, price, params)
        call = ex.create_order_ws(symbol, otype, intent.side, amount, price, params)
        try:
            return await asyncio.wait_for(call, ex.timeout / 1000)
        except TimeoutError:
            raise ccxt.RequestTimeout(
                f"{ex.id} order.place: no answer within {ex.timeout / 1000:g} s"
            ) from None

    async def _after_lost_create(
        self, intent: OrderIntent, client_id: str, exc: BaseException, sent_s: float
    ) -> tuple[OrderResult | None, str]:
        """After a create with no answer: (the order found, "") or (None, why its outcome is
        unknown; "" when it is certainly absent and may be sent again)."""
        cid = venue_client_id(client_id, self._route(intent)[1])
        logger.warning(
            "{}: create {} outcome unknown ({}); looking it up", self.name, cid, describe_error(exc)
        )
        try:
            found = await self.lookup(client_id, intent)
            if found is not None:
                return found, ""
            # still in flight? the venue refuses it once its recvWindow has passed
            await asyncio.sleep(max(0.0, sent_s + self.accept_window_s - time.monotonic()))
            found = await self.lookup(client_id, intent)
        except Exception as lookup_exc:  # any doubt: outcome unknown, never "rejected"
            return None, (
                f"create {describe_error(exc)}; then the lookup failed: "
                f"{describe_error(lookup_exc)}; not sent again, check the venue"
            )
        if found is not None:
            return found, ""
        if not intent.reduce_only:
            return None, (
                f"create {describe_error(exc)}; the venue shows no order "
                f"{cid}, but an order that adds exposure is never re-sent by itself: "
                "check the venue and decide"
            )
        return None, ""

    async def _unknown(self, intent: OrderIntent, client_id: str, why: str) -> OrderResult:
        result = OrderResult(
            client_id=client_id,
            status="failed",
            ts_ms=now_ms(),
            error=f"{OUTCOME_UNKNOWN}: {why}",
            outcome_unknown=True,
        )
        logger.error("{}: order {}: {}", self.name, client_id, result.error)
        if self.on_rejected is not None:
            with contextlib.suppress(Exception):
                await self.on_rejected(intent, result)
        return result

    async def _answer(
        self,
        client_id: str,
        order: dict[str, Any],
        intent: OrderIntent,
        ex: Any,
        venue: str,
        market: dict[str, Any],
    ) -> OrderResult:
        """The create's answer; OKX and Bybit answer only an ack: their order is read once."""
        if order.get("status") is None:
            cid = venue_client_id(client_id, venue)
            with contextlib.suppress(Exception):  # the ack stands: accepted, state unread
                found = await find_order(
                    ex, venue, market, cid, stop=intent.kind == "stop", read=self._read
                )
                if found is not None:
                    order = found
        return self._result(client_id, order, venue)

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
        market = self._market(intent.symbol, ex)
        try:
            order = await cancel_by_client_id(ex, venue, market, target, read=self._read)
        except ccxt.BaseError as exc:
            return await self._rejected(intent, client_id, exc)
        self._refresh_soon()
        oid = order.get("id")
        return OrderResult(
            client_id=client_id,
            status="canceled",
            ts_ms=int(order.get("timestamp") or now_ms()),
            exchange_order_id=str(oid) if oid else None,
        )

    async def lookup(self, client_id: str, intent: OrderIntent) -> OrderResult | None:
        """The order with this client id at the venue, or None if it has none."""
        ex, venue = self._route(intent)
        await self._markets(ex)
        cid = venue_client_id(client_id, venue)
        market = self._market(intent.symbol, ex)
        order = await find_order(
            ex, venue, market, cid, stop=intent.kind == "stop", read=self._read
        )
        return None if order is None else self._result(client_id, order, venue)

    def _result(self, client_id: str, order: dict[str, Any], venue: str) -> OrderResult:
        market = self._market(order["symbol"], self._exchange_of(venue))
        return result_from_ccxt(client_id, order, market, venue_label(venue))

    def _exchange_of(self, venue: str) -> Any:
        return self.options_exchange if venue == self.options_venue else self.exchange

    # --- start and stop ------------------------------------------------------------------------
    async def reconcile(self, sent: Iterable[tuple[str, OrderIntent]]) -> Reconciliation:
        """At start: look up every (client id, intent) the journal sent without an outcome."""
        out = Reconciliation()
        for client_id, intent in sent:
            if intent.kind == "cancel":
                continue
            try:
                found = await self.lookup(client_id, intent)
            except Exception as exc:  # one order's doubt must not stop the start: report it
                out.unknown[client_id] = describe_error(exc)
                continue
            if found is None:
                out.missing.append(client_id)
            else:
                out.found[client_id] = found
        # every symbol's open orders, unless the --live gate has just read them all
        fresh = self._portfolio is not None and self._all_symbols_read
        portfolio = await self.portfolio() if fresh else await self.refresh(all_symbols=True)
        out.open_orders, out.positions = portfolio.open_orders, portfolio.positions
        return out


def _tick(ex: Any, symbol: str, price: float | None) -> float | None:
    return None if price is None else float(ex.price_to_precision(symbol, price))
