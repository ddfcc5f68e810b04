"""Live liquidation streams through ccxt.pro: one LiveSource per venue.

VenueStream: one venue's socket. ccxt.pro dials, subscribes and pings; every raw message is
tapped (bot.ccxt.exchange) and parsed by the venue parsers of bot.sources.venues, so USD,
sides and OKX's extra details are ours, not ccxt's. Reconnects with exponential backoff and
jitter (tenacity), counts reconnects, measures clock skew, watches for silence (FeedStatus
blind/live). The streams of several venues (and chains) are merged by bot.sources.feeds.
  binance: watch_liquidations_for_symbols([]) -> `!forceOrder@arr`
  bybit:   watch_liquidations(symbol) per symbol, all on one socket (`allLiquidation.<SYM>`)
  okx:     `liquidation-orders` for SWAP and FUTURES (two subscriptions, one socket)
  hyperliquid: watch_my_liquidations_for_symbols per account of the fund (`userFills`),
           feed `hyperliquid-accounts` (the whole venue comes from a node: bot.sources.wsclient);
           a `channel: error` refusal of a subscription stops it blind with Hyperliquid's words
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from functools import partial
from typing import Any

import ccxt
from loguru import logger
from tenacity import AsyncRetrying, retry_if_exception, wait_exponential_jitter

from bot.ccxt.exchange import MarketsKeeper, classify_error, describe_error
from bot.config.venues import VenueConfig
from bot.events import Event, FeedStatus, Liquidation, PriceTick
from bot.sources.feeds import FeedHealth
from bot.sources.recording import RawRecorder
from bot.sources.refusals import SubscriptionRefused, refusal
from bot.sources.venues import MalformedMessage, parse_raw_message

REJECTED_REPORT_S = 10.0  # a new rejected count, while the state holds, is reported this often
Emit = Callable[[Event], None]
NowMs = Callable[[], int]


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


def _venue_time_ms(msg: dict[str, Any]) -> int | None:
    """The venue's own send time of a message (Binance E, Bybit ts, OKX detail ts)."""
    for key in ("E", "ts"):
        value = msg.get(key)
        if isinstance(value, int | str) and str(value).isdigit():
            return int(value)
    data = msg.get("data")
    if isinstance(data, list) and data and isinstance(data[0], dict):
        details = data[0].get("details")
        if isinstance(details, list) and details and isinstance(details[0], dict):
            ts = details[0].get("ts")
            if isinstance(ts, str) and ts.isdigit():
                return int(ts)
    return None


def _worth_reconnecting(exc: BaseException) -> bool:
    """Everything but a configuration the venue refuses (unknown symbol, keys, no stream)."""
    permanent = (ValueError, ccxt.BadSymbol, ccxt.NotSupported, ccxt.AuthenticationError)
    return not isinstance(exc, (asyncio.CancelledError, *permanent))


class VenueStream:
    """One venue's liquidation socket; `run()` forever, reconnecting."""

    def __init__(
        self,
        venue: str,
        exchange: Any,
        cfg: VenueConfig,
        emit: Emit,
        *,
        recorder: RawRecorder | None = None,
        now_ms: NowMs = wall_ms,
        reconnect_max_s: float = 30.0,
        reconnect_initial_s: float = 0.2,
        name: str | None = None,
    ) -> None:
        self.venue = venue
        self.name = name or venue  # the feed's name (hyperliquid-accounts: not the whole venue)
        self.feed_covers = {self.name: (venue,)}  # "binance" carries binance-usdm and -coinm
        self.exchange = exchange
        self.cfg = cfg
        self.emit = emit
        self.recorder = recorder
        self.now_ms = now_ms
        self.reconnect_max_s = reconnect_max_s
        self.reconnect_initial_s = reconnect_initial_s
        self.health = FeedHealth(venue)
        self.markets = MarketsKeeper(exchange, cfg.markets_refresh_s)
        self._skews: deque[int] = deque(maxlen=100)
        self._sessions = 0
        self._told_rejections: set[str] = set()
        self._rejected_told = 0  # the count the last FeedStatus carried
        self._rejected_report_ms = -(10**15)  # when a new count was last reported
        self._refused = ""  # the venue's refusal of a subscription (Hyperliquid, over ccxt)
        self._detail = ""  # of the last status (a refresh of the rejected count keeps it)
        self._session_frames = 0  # frames since this session's socket was dialled
        self._tasks: list[asyncio.Task[None]] = []
        if exchange is not None:  # None: a venue read without ccxt (bot.sources.wsclient)
            exchange.raw_sink = self.on_raw

    # --- raw messages ----------------------------------------------------------------------
    def on_raw(self, message: Any) -> None:
        """Called by ccxt for every decoded message, before ccxt's own handling."""
        now = self.now_ms()
        self.health.last_frame_ms = now
        self._session_frames += 1
        if not isinstance(message, dict | list):
            self._heard("heartbeat")  # OKX "pong" and the like
            return
        if self.venue == "hyperliquid" and (reason := refusal(self.venue, message)):
            self._refused = reason  # ccxt fails the watch with it next: blind, not a retry
            return
        if isinstance(message, dict) and message.get("e") == "markPriceUpdate":
            self._mark_price(message)
            self._set_state("live", "data flowing")
            return
        if self.recorder is not None:
            self.recorder.write(message)
        errors: list[str] = []
        apart: list[Liquidation] = []  # dYdX DELEVERAGED: shown apart by the feed book
        try:
            events = parse_raw_message(message, self._contract_size, errors, apart)
        except MalformedMessage as exc:
            self._reject(f"unreadable message: {exc}")
            return
        for reason in errors:  # a liquidation we could not size or read: counted, said once
            self._reject(reason)
        for trade in apart:
            self.emit(replace(trade, received_ms=now))
        if apart and not events:
            self._set_state("live", "data flowing")
            return
        if not events:
            self._heard("subscription acknowledged, then a frame")
            return
        self.health.messages += 1
        self.health.last_message_ms = now
        venue_ms = _venue_time_ms(message) if isinstance(message, dict) else None
        if venue_ms is not None:
            self._skews.append(now - venue_ms)
            self.health.clock_skew_ms = min(self._skews)
        for liq in events:
            if self.venue == "binance" and liq.symbol not in self.exchange.markets_by_id:
                self.health.skipped += 1  # e.g. COIN-M on the USD-M socket (venues.md)
                continue
            self.health.liquidations += 1
            self.emit(replace(liq, received_ms=now))
        self._set_state("live", "data flowing")

    def _reject(self, reason: str) -> None:
        """A row refused with its reason: counted (status, metrics), each reason logged once."""
        self.health.skipped += 1
        self.health.rejected += 1
        self.health.last_rejected = reason
        if reason not in self._told_rejections and len(self._told_rejections) < 1000:
            self._told_rejections.add(reason)
            logger.warning("{}: row rejected: {}", self.venue, reason)

    def _heard(self, detail: str) -> None:
        """A control frame (ack, pong): live once the subscription was answered and the
        socket still speaks after it; it keeps a live feed live."""
        if self._session_frames >= 2:
            self._set_state("live", detail)

    def _mark_price(self, msg: dict[str, Any]) -> None:
        """Binance `<sym>@markPrice@1s` -> PriceTick (what the paper broker fills at)."""
        try:
            tick = PriceTick(int(msg["E"]), str(msg["s"]), float(msg["p"]), "binance-usdm")
        except (KeyError, TypeError, ValueError) as exc:
            self._reject(f"unreadable markPriceUpdate: {type(exc).__name__}: {exc}")
            return
        self.emit(tick)

    def _contract_size(self, inst_id: str) -> float | None:
        found = (self.exchange.markets_by_id or {}).get(inst_id)
        if not found:
            return None
        size = found[0].get("contractSize")
        return float(size) if size else None

    # --- subscriptions -----------------------------------------------------------------------
    def _symbols(self) -> list[str]:
        """Unified ccxt symbols for the configured venue ids (bybit: all linear perps if none)."""
        ex = self.exchange
        if self.cfg.symbols:
            return [self._unified(s) for s in self.cfg.symbols]
        if self.venue == "bybit":
            return sorted(
                s
                for s, m in ex.markets.items()
                if m.get("swap") and m.get("linear") and m.get("active", True)
            )
        return []

    def _unified(self, venue_id: str) -> str:
        found = self.exchange.markets_by_id.get(venue_id)
        if not found:
            raise ValueError(f"{self.venue}: symbol {venue_id!r} is not a market there")
        return str(found[0]["symbol"])

    async def _session(self) -> None:
        await self.markets.ensure()
        ex = self.exchange
        symbols = self._symbols()
        self._sessions += 1
        self._session_frames = 0
        self._refused = ""
        watches: list[Callable[[], Any]] = []
        if self.venue == "binance":
            watches = [partial(ex.watch_liquidations_for_symbols, symbols)]
            marks = [self._unified(s) for s in self.cfg.price_symbols]
            if marks:
                watches.append(partial(ex.watch_mark_prices, marks))
        elif self.venue == "bybit":
            watches = [partial(ex.watch_liquidations, s) for s in symbols]
        elif self.venue == "okx":
            url = ex.get_url("liquidation-orders", "public")
            for inst_type in self.cfg.okx_inst_types:
                request = {
                    "op": "subscribe",
                    "args": [{"channel": "liquidation-orders", "instType": inst_type}],
                }
                # one subscribe hash per instType: ccxt's own call would send only the first
                hashes = [f"liquidation-orders::{inst_type}"]
                watches.append(partial(ex.watch_multiple, url, ["liquidations"], request, hashes))
        elif self.venue == "hyperliquid":  # the fund's own accounts: userFills, one each
            watches = [
                partial(ex.watch_my_liquidations_for_symbols, [], None, None, {"user": a})
                for a in self.cfg.accounts
            ]
            if not watches:
                raise ValueError(
                    "hyperliquid: no account to watch (exchanges.venues.hyperliquid.accounts)"
                )
        else:
            raise ValueError(f"{self.venue}: no liquidation stream through ccxt")
        # not live yet: a subscription sent says nothing; the first frame will
        await asyncio.gather(*(self._keep_watching(w) for w in watches))

    async def _keep_watching(self, watch: Callable[[], Any]) -> None:
        while True:  # the data arrives through on_raw; this keeps the subscription alive
            try:
                await watch()
            except Exception as exc:
                if self._refused:  # the venue said no to the subscription: say why, stop
                    raise SubscriptionRefused(self._refused) from exc
                raise

    async def run(self) -> None:
        """Connect, subscribe, and reconnect with backoff + jitter whenever the socket fails."""
        retrying = AsyncRetrying(
            wait=wait_exponential_jitter(
                multiplier=self.reconnect_initial_s, max=self.reconnect_max_s, jitter=0.5
            ),
            retry=retry_if_exception(_worth_reconnecting),
            before_sleep=self._on_failure,
            reraise=True,
        )
        await retrying(self._session)

    async def _on_failure(self, state: Any) -> None:
        exc = state.outcome.exception() if state.outcome else None
        self.health.reconnects += 1
        self.health.last_error = describe_error(exc) if exc else ""
        kind = classify_error(exc) if exc else None
        logger.warning(
            "{}: stream failed ({}; {}), reconnect #{}",
            self.venue,
            self.health.last_error,
            kind,
            self.health.reconnects,
        )
        if self.exchange is not None:
            with contextlib.suppress(Exception):
                await self.exchange.close_ws_clients()  # the next session dials a fresh socket
            # ccxt keeps its own per-URL dial backoff (up to 30 s): ours (reconnect_max_s) rules
            self.exchange.ws_dial_backoff = {}
        self._set_state("reconnecting", self.health.last_error)

    def _set_state(self, state: str, detail: str = "") -> None:
        if state == self.health.state:
            return
        self.health.state = state
        self.emit(self.status_event(detail))

    def status_event(self, detail: str = "") -> FeedStatus:
        self._detail = detail
        now = self.now_ms()
        last = self.health.last_frame_ms
        silent_s = (now - last) / 1000 if last is not None else 0.0
        return FeedStatus(
            ts_ms=now,
            venue=self.name,
            state=self.health.state,  # type: ignore[arg-type]
            silent_s=silent_s,
            reconnects=self.health.reconnects,
            clock_skew_ms=self.health.clock_skew_ms,
            detail=detail,
            covers=self.feed_covers[self.name],
            rejected=self._reported_rejected(),
            last_rejected=self.health.last_rejected,
        )

    def _reported_rejected(self) -> int:
        self._rejected_told = self.health.rejected
        return self._rejected_told

    def report_rejected(self) -> None:
        """Rows refused since the last status: the same state again, with the new count (the
        feed book and the metrics read it from there); at most every REJECTED_REPORT_S, as
        each status is a journal row."""
        now = self.now_ms()
        due = now - self._rejected_report_ms >= REJECTED_REPORT_S * 1000
        if self.health.rejected != self._rejected_told and due:
            self._rejected_report_ms = now
            self.emit(self.status_event(self._detail))

    def check_silence(self, started_ms: int) -> None:
        """Blind if no frame (data or heartbeat) arrived for `silence_s` (since start if never);
        live again comes with the next frame (on_raw)."""
        now = self.now_ms()
        last = self.health.last_frame_ms
        since = last if last is not None and last >= started_ms else started_ms
        silent = (now - since) / 1000 >= self.cfg.silence_s
        if silent and self.health.state != "blind":
            self._set_state(
                "blind", f"no liquidation message or heartbeat for {self.cfg.silence_s:g}s"
            )

    # --- LiveSource -------------------------------------------------------------------------
    async def events(self) -> AsyncIterator[Event]:
        """Liquidations, marks and status changes of this venue, until close()."""
        queue: asyncio.Queue[Event] = asyncio.Queue()
        self.emit = queue.put_nowait
        self.emit(self.status_event("dialling"))  # known to the book, not live: rules wait
        self._tasks = [
            asyncio.create_task(self._run_stopping_blind(), name=f"stream-{self.venue}"),
            asyncio.create_task(self._watchdog(), name=f"watchdog-{self.venue}"),
        ]
        try:
            while True:
                yield await queue.get()
        finally:
            await self._stop_tasks()

    async def _run_stopping_blind(self) -> None:
        try:
            await self.run()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # configuration errors (unknown symbol) end this venue only
            logger.error("{}: stream stopped: {}", self.venue, describe_error(exc))
            self.health.last_error = describe_error(exc)
            self._set_state("blind", f"stopped: {describe_error(exc)}")

    async def _watchdog(self) -> None:
        started_ms = self.now_ms()
        period_s = min(1.0, self.cfg.silence_s / 4)
        while True:
            await asyncio.sleep(period_s)
            self.check_silence(started_ms)
            self.report_rejected()  # however many rows were refused meanwhile

    async def _stop_tasks(self) -> None:
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        self._tasks = []

    async def close(self) -> None:
        await self._stop_tasks()
        if self.recorder is not None:
            self.recorder.close()
        with contextlib.suppress(Exception):
            await self.exchange.close()
