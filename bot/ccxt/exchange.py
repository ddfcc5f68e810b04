"""ccxt instances for liqguard, and the one place ccxt's errors are read.

Contents:
- classify_error / ErrorKind / VenueError: ccxt exception -> rejected | retryable | unknown
- make_exchange: one ccxt.pro instance per account (or per public stream), demo/sandbox
  switches, endpoint overrides, no ccxt-side retries, a raw-message tap for the streams,
  ccxt's rate limiters (REST and each websocket) with idle time credited (bot.ccxt.throttle)
- MarketsKeeper: markets loaded once, refreshed daily (per instance)
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from enum import StrEnum
from typing import Any

import ccxt
import ccxt.pro as ccxtpro
from loguru import logger

from bot.ccxt.throttle import IdleCreditThrottler
from bot.config.venues import STREAM_CCXT_IDS, VenueConfig
from bot.logs import scrub
from bot.secrets import Secrets

# ---------------------------------------------------------------------------------------------
# Errors: two outcomes for callers (venues.md), plus "unknown" for a create that may have landed
# ---------------------------------------------------------------------------------------------


class ErrorKind(StrEnum):
    REJECTED = "rejected"  # the venue said no: never retry (auth, funds, invalid order)
    RETRYABLE = "retryable"  # transient (network, rate limit, maintenance): retry a read
    UNKNOWN = "unknown"  # not a ccxt error: a bug or cancellation, let it surface


def classify_error(exc: BaseException) -> ErrorKind:
    """Map a ccxt exception by type (never by message text) to what the caller may do."""
    if isinstance(exc, ccxt.OperationFailed):  # NetworkError, RequestTimeout, BadResponse...
        return ErrorKind.RETRYABLE
    if isinstance(exc, ccxt.ExchangeError):  # AuthenticationError, InsufficientFunds, ...
        return ErrorKind.REJECTED
    if isinstance(exc, (asyncio.TimeoutError, ConnectionError)):
        return ErrorKind.RETRYABLE
    return ErrorKind.UNKNOWN


def is_transient(exc: BaseException) -> bool:
    """For tenacity: retry reads on transient ccxt errors only."""
    return classify_error(exc) is ErrorKind.RETRYABLE


def describe_error(exc: BaseException) -> str:
    """A short, key-free description for journals and notifications: ccxt puts the signed
    URL (query string with `signature=`, a proxy's user:password@) in its messages: no URL
    and no registered secret is kept."""
    kind = type(exc).__name__
    text = scrub(str(exc).replace("\n", " "))
    return f"{kind}: {text[:300]}"


# ---------------------------------------------------------------------------------------------
# Construction
# ---------------------------------------------------------------------------------------------

RawSink = Callable[[Any], None]


def _tapped_class(base: type) -> type:
    """A subclass of a ccxt.pro class that hands every raw websocket message to `raw_sink`."""

    class Tapped(base):
        raw_sink: RawSink | None = None
        futures_error_prefix: str | None = None

        def init_throttler(self, cost: Any = None) -> None:
            self.throttler = IdleCreditThrottler(self.tokenBucket, self.asyncio_loop)

        def client(self, url: str) -> Any:
            # each socket's own limiter, idle time credited as for REST: ccxt's stock bucket
            # made every websocket message (an order.place too) wait 5 x 50 ms on Binance
            client = super().client(url)
            if not isinstance(client.throttle, IdleCreditThrottler):
                client.throttle = IdleCreditThrottler(self.tokenBucket, self.asyncio_loop)
            return client

        def handle_message(self, client: Any, message: Any) -> Any:
            sink = self.raw_sink
            if sink is not None:
                try:
                    sink(message)
                except Exception:  # a bad message must not kill ccxt's receive loop
                    logger.exception("{}: raw message handler failed", self.id)
                if _ours_alone(message):
                    return None
            return super().handle_message(client, message)

        def get_exceptions_by_url(self, url: str | None, exact_or_broad: str) -> Any:
            # Binance picks the futures error table by host; an overridden host loses it
            prefix = self.futures_error_prefix
            ws_api = self.id == "binanceusdm" and url is not None and "/ws-fapi/" in url
            if ws_api or (prefix and url and url.startswith(prefix) and "/fapi/" in url):
                table = self.exceptions.get("linear", {})
                return table.get(exact_or_broad, {})
            return super().get_exceptions_by_url(url, exact_or_broad)

    Tapped.__name__ = f"Tapped_{base.__name__}"
    return Tapped


def _ours_alone(message: Any) -> bool:
    """A Binance liquidation frame, read by our tap alone: ccxt's own parse of it, and the
    wake-up of the watch that keeps the subscription, cost ~0.1 ms per frame ahead of the
    frame that crosses the threshold (the watch stays pending: errors still end it)."""
    return isinstance(message, dict) and message.get("e") == "forceOrder"


_CLASSES: dict[str, type] = {}


def ccxt_class(ccxt_id: str) -> type:
    if ccxt_id not in _CLASSES:
        _CLASSES[ccxt_id] = _tapped_class(getattr(ccxtpro, ccxt_id))
    return _CLASSES[ccxt_id]


def _replace_hosts(node: Any, base: str) -> Any:
    """Every REST URL under urls['api'] (not the websockets) with scheme+host swapped for base."""
    if isinstance(node, str):
        if node.startswith(("https://", "http://")):
            rest = node.split("://", 1)[1]
            path = rest[rest.find("/") :] if "/" in rest else ""
            return base.rstrip("/") + path
        return node
    if isinstance(node, dict):
        return {k: (v if k == "ws" else _replace_hosts(v, base)) for k, v in node.items()}
    return node


def _set_ws(exchange: Any, ccxt_id: str, ws: str) -> None:
    api = exchange.urls["api"]
    if ccxt_id == "binanceusdm":
        api["ws"]["linear"] = ws
    elif ccxt_id == "bybit":
        api["ws"]["public"]["linear"] = ws
    elif ccxt_id == "hyperliquid":
        api["ws"]["public"] = ws
    else:  # okx appends /public itself; deribit uses the URL as is
        api["ws"] = ws


def credentials(venue: str, secrets: Secrets | None) -> dict[str, str]:
    """The ccxt credential fields for a venue, or {} when its keys are not set."""
    if secrets is None:
        return {}
    pairs = {
        "binance": ("binance_api_key", "binance_api_secret", None),
        "bybit": ("bybit_api_key", "bybit_api_secret", None),
        "okx": ("okx_api_key", "okx_api_secret", "okx_api_password"),
        "deribit": ("deribit_api_key", "deribit_api_secret", None),
    }
    key_f, secret_f, pass_f = pairs[venue]
    key, secret = getattr(secrets, key_f), getattr(secrets, secret_f)
    if key is None or secret is None:
        return {}
    out = {"apiKey": key.get_secret_value(), "secret": secret.get_secret_value()}
    if pass_f is not None:
        pw = getattr(secrets, pass_f)
        if pw is None:
            return {}
        out["password"] = pw.get_secret_value()
    return out


def make_exchange(
    venue: str,
    cfg: VenueConfig,
    secrets: Secrets | None = None,
    markets: dict[str, Any] | list[dict[str, Any]] | None = None,
) -> Any:
    """One ccxt.pro instance for `venue`: keys if given, demo/sandbox, endpoint overrides.

    With `markets`, they are installed and `load_markets()` does no HTTP (tests, snapshots).
    ccxt's `maxRetriesOnFailure` stays 0: order creation is never retried behind our back.
    """
    ccxt_id = STREAM_CCXT_IDS[venue]
    config: dict[str, Any] = {
        "enableRateLimit": True,
        "timeout": int(cfg.request_timeout_s * 1000),
        "options": {
            "fetchCurrencies": False,  # sapi on Binance; not needed for derivatives
            "maxRetriesOnFailure": 0,
            "warnOnFetchOpenOrdersWithoutSymbol": False,  # the broker reads all symbols at once
            # a signed request the venue refuses after this: bounds when a lost create can land
            "recvWindow": int(cfg.recv_window_ms),
            # a socket that accepts TCP and never answers the upgrade: a timeout, reconnecting
            "ws": {"connectionTimeout": int(cfg.connect_timeout_s * 1000)},
        },
        **credentials(venue, secrets),
    }
    if ccxt_id == "hyperliquid":  # perps only: its spot and HIP-3 lists are not read
        config["options"]["fetchMarkets"] = {"types": ["swap"]}
    exchange = ccxt_class(ccxt_id)(config)
    if cfg.demo:
        if ccxt_id == "binanceusdm":
            exchange.enable_demo_trading(True)  # the futures testnet is blocked in ccxt
        else:
            exchange.set_sandbox_mode(True)
    if cfg.endpoints.rest is not None:
        exchange.urls["api"] = _replace_hosts(exchange.urls["api"], cfg.endpoints.rest)
        if ccxt_id == "binanceusdm" and cfg.map_futures_errors:
            exchange.futures_error_prefix = cfg.endpoints.rest.rstrip("/")
    if cfg.endpoints.ws is not None:
        _set_ws(exchange, ccxt_id, cfg.endpoints.ws)
    if cfg.endpoints.ws_api is not None and ccxt_id == "binanceusdm":
        exchange.urls["api"]["ws"]["ws-api"]["linear"] = cfg.endpoints.ws_api
    if markets is not None:
        exchange.set_markets(list(markets.values()) if isinstance(markets, dict) else markets)
    if exchange.options.get("maxRetriesOnFailure", 0) != 0:
        raise RuntimeError("ccxt maxRetriesOnFailure must stay 0: creates are never retried")
    return exchange


class MarketsKeeper:
    """Load markets once; reload when older than `refresh_s` (checked by callers, cheap)."""

    def __init__(self, exchange: Any, refresh_s: float) -> None:
        self.exchange = exchange
        self.refresh_s = refresh_s
        self.loaded_at_s: float | None = None
        self._lock = asyncio.Lock()

    async def ensure(self) -> None:
        now_s = time.monotonic()
        if self.loaded_at_s is not None and now_s - self.loaded_at_s < self.refresh_s:
            return
        async with self._lock:
            if self.loaded_at_s is not None and now_s - self.loaded_at_s < self.refresh_s:
                return
            reload = self.loaded_at_s is not None or not self.exchange.markets
            if reload:
                await self.exchange.load_markets(reload=self.loaded_at_s is not None)
            self.loaded_at_s = time.monotonic()
            logger.debug("{}: {} markets ready", self.exchange.id, len(self.exchange.markets))
