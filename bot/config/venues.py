"""Exchanges: liquidation streams and the live broker through ccxt (see README "Going live").

Contents: VenueName, venue_label / config_venue (the one mapping between config names and
the names events carry), EndpointsConfig, VenueConfig (one per venue), ExchangesConfig (the
section: venues, which one trades, which one buys puts, raw recording).
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from bot.symbols import STREAM_VENUES

VenueName = Literal[
    "binance", "bybit", "okx", "deribit", "gate", "dydx", "bitget", "htx", "hyperliquid"
]

# streamed by bot.sources.wsclient (aiohttp) or read from a node's files, not through ccxt
WS_VENUES = ("deribit", "gate", "dydx", "bitget", "htx")
FILE_VENUES = ("hyperliquid",)


# ccxt class per venue: USD-M futures on Binance; the others are one class each.
CCXT_IDS: dict[str, str] = {
    "binance": "binanceusdm",
    "bybit": "bybit",
    "okx": "okx",
    "deribit": "deribit",
}

# ccxt classes of the streams: the trading venues, plus Hyperliquid (the fund's own accounts,
# read-only through watchMyLiquidations: liqguard does not trade there)
STREAM_CCXT_IDS: dict[str, str] = {**CCXT_IDS, "hyperliquid": "hyperliquid"}

_HL_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")

# the venue names events carry (bot.sources.venues, the paper account) for each config venue
VENUE_LABELS: dict[str, str] = {
    "binance": "binance-usdm",
    "bybit": "bybit",
    "okx": "okx",
    "deribit": "deribit",
    "gate": "gate",
    "dydx": "dydx",
    "bitget": "bitget",
    "htx": "htx",
    "hyperliquid": "hyperliquid",
}
_ALIASES: dict[str, str] = {"binance-usdm": "binance", "binanceusdm": "binance"}


def venue_label(name: str) -> str:
    """Config venue (`binance`) -> the name events carry (`binance-usdm`); others unchanged."""
    return VENUE_LABELS.get(config_venue(name), name)


def config_venue(name: str) -> str:
    """Any spelling of a venue (`binance`, `binance-usdm`, `binanceusdm`) -> its config name."""
    low = name.strip().lower()
    return _ALIASES.get(low, low)


class EndpointsConfig(BaseModel):
    """Where ccxt connects instead of the venue's own hosts (proxies, regional hosts, tests).

    `rest` replaces the scheme+host of every REST URL; `ws` is the public websocket base as
    ccxt expects it for that venue (Binance `.../ws`, Bybit the linear public URL, OKX the base
    to which ccxt appends `/public`).
    """

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    rest: str | None = Field(default=None, description="e.g. http://127.0.0.1:8080")
    ws: str | None = Field(default=None, description="e.g. ws://127.0.0.1:8080/ws")
    ws_api: str | None = Field(
        default=None,
        description="Binance: the WebSocket API that takes orders (order_transport: websocket), "
        "e.g. ws://127.0.0.1:8080/ws-fapi/v1",
    )
    allow_insecure: bool = Field(
        default=False, description="permit http:// and ws:// (only for local test servers)"
    )

    @model_validator(mode="after")
    def _secure_unless_told(self) -> EndpointsConfig:
        for name in ("rest", "ws", "ws_api"):
            url = getattr(self, name)
            if url is None:
                continue
            if not url.startswith(("http://", "https://", "ws://", "wss://")):
                raise ValueError(f"{name}: {url!r} must start with http(s):// or ws(s)://")
            if url.startswith(("http://", "ws://")) and not self.allow_insecure:
                raise ValueError(
                    f"{name}: {url!r} is not encrypted; use https:// / wss://, or set "
                    "allow_insecure: true for a local test server"
                )
        return self


class VenueConfig(BaseModel):
    """One venue: its liquidation stream and, with keys, its account."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    enabled: bool = Field(default=True, description="stream this venue's liquidations")
    symbols: tuple[str, ...] = Field(
        default=(),
        description="venue ids (BTCUSDT); empty = all (Bybit: every linear perpetual loaded; "
        "Bitget: instTypes such as usdt-futures; HTX: contract codes, default `*`)",
    )
    silence_s: float = Field(
        default=120.0, gt=0, description="no message for this long = the feed is blind"
    )
    demo: bool = Field(
        default=False,
        description="the venue's paper venue: Binance demo trading, sandbox elsewhere",
    )
    endpoints: EndpointsConfig = Field(default_factory=EndpointsConfig)
    order_transport: Literal["rest", "websocket"] = Field(
        default="rest",
        description="Binance: send orders over REST, or as `order.place` on the WebSocket API "
        "(one socket kept open; see docs/performance.md)",
    )
    markets_refresh_s: float = Field(default=86_400.0, gt=0, description="reload markets")
    request_timeout_s: float = Field(default=10.0, gt=0, description="one REST call, at most")
    connect_timeout_s: float = Field(
        default=10.0, ge=1, description="websocket connect + handshake, at most (then reconnect)"
    )
    recv_window_ms: int = Field(
        default=5_000,
        gt=0,
        le=60_000,
        description="a signed request is refused by the venue this long after it was signed "
        "(Binance, Bybit); after a timed-out create the broker waits this out before "
        "concluding the order never arrived",
    )
    price_symbols: tuple[str, ...] = Field(
        default=(),
        description="Binance only: mark prices streamed as PriceTicks (paper fills on live data)",
    )
    okx_inst_types: tuple[Literal["SWAP", "FUTURES"], ...] = Field(
        default=("SWAP", "FUTURES"), description="OKX only: liquidation-orders instTypes"
    )
    # on a non-Binance host, ccxt cannot tell futures errors apart (see venues.md)
    map_futures_errors: bool = Field(
        default=True, description="Binance: read -2019 etc. with the futures error table"
    )
    contract_sizes: dict[str, float] = Field(
        default_factory=dict,
        description="Gate: base units per contract (quanto_multiplier) by contract, over what "
        "Gate's contracts endpoint lists; a contract of unknown size is rejected, never guessed",
    )
    ping_s: float = Field(
        default=15.0, gt=0, description="Deribit, Gate, Bitget: application ping interval"
    )
    fills_path: str | None = Field(
        default=None,
        description="Hyperliquid: a node's --write-fills output (a file, or the folder "
        "node_fills_by_block whose newest file is followed)",
    )
    accounts: tuple[str, ...] = Field(
        default=(),
        description="Hyperliquid: the fund's own account addresses (0x + 40 hex digits) whose "
        "liquidations are watched (ccxt watchMyLiquidations, the userFills channel); public "
        "reads, no key; LIQGUARD_HYPERLIQUID_ACCOUNTS (comma-separated) adds more",
    )

    @field_validator("accounts")
    @classmethod
    def _addresses(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(check_hyperliquid_address(a, "accounts") for a in value)


def check_hyperliquid_address(address: str, where: str) -> str:
    """A Hyperliquid account address, lower-cased; else a ValueError naming `where`."""
    text = address.strip()
    if not _HL_ADDRESS.match(text):
        raise ValueError(
            f"{where}: {text[:50]!r} is not a Hyperliquid address; give 0x and 40 hex digits"
        )
    return text.lower()


def _default_venues() -> dict[VenueName, VenueConfig]:
    return {
        "binance": VenueConfig(price_symbols=("BTCUSDT", "ETHUSDT")),
        "bybit": VenueConfig(symbols=("BTCUSDT", "ETHUSDT", "SOLUSDT")),
        "okx": VenueConfig(),
    }


class ExchangesConfig(BaseModel):
    """Live venues: which stream, which trades, which buys puts, where raw messages go."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    venues: dict[VenueName, VenueConfig] = Field(default_factory=_default_venues)
    trading_venue: VenueName = Field(
        default="binance", description="the account the live broker trades (perps)"
    )
    options_venue: VenueName | None = Field(
        default=None, description="where puts are bought (deribit, okx or bybit); none = no puts"
    )
    allow_withdrawal_keys: bool = Field(
        default=False, description="start even if the keys may withdraw (not recommended)"
    )
    slippage_cap_bps: float | None = Field(
        default=None,
        ge=0,
        description="send limit orders capped this far from the mark instead of market orders",
    )
    portfolio_refresh_s: float = Field(default=30.0, gt=0, description="broker re-reads account")
    record_dir: str | None = Field(
        default=None, description="write every raw stream message here (JSON lines, rotating)"
    )
    record_max_bytes: int = Field(default=50_000_000, gt=0, description="rotate files at this")
    dedupe_memory: int = Field(default=50_000, gt=0, description="event ids remembered")
    max_event_age_s: float = Field(
        default=60.0, gt=0, description="a live liquidation older than this (venue time vs "
        "local receive time) is journaled and counted, never acted on",
    )  # fmt: skip
    future_tolerance_s: float = Field(
        default=5.0, ge=0, description="a live liquidation stamped further ahead is refused too"
    )
    clock_skew_alert_s: float = Field(
        default=5.0, gt=0, description="alert when every recent liquidation of a venue is "
        "skewed by more than this",
    )  # fmt: skip
    feed_alert_hold_s: float = Field(
        default=30.0, ge=0, description="a feed back after a down alert is told once it held "
        "this long (flaps meanwhile are summed up, each journaled)",
    )  # fmt: skip
    reconnect_max_s: float = Field(default=30.0, gt=0, description="longest reconnect backoff")

    @model_validator(mode="after")
    def _venues_known(self) -> ExchangesConfig:
        if self.options_venue == "binance":
            raise ValueError(
                "options_venue: 'binance' has no options through ccxt; use deribit, okx or bybit"
            )
        for field_name in ("trading_venue", "options_venue"):
            chosen = getattr(self, field_name)
            if chosen is not None and chosen not in CCXT_IDS:
                raise ValueError(
                    f"{field_name}: {chosen!r} is a liquidation source only, liqguard does "
                    f"not trade there; use one of {', '.join(CCXT_IDS)}"
                )
        for name, cfg in self.venues.items():
            if cfg.order_transport == "websocket" and name != "binance":
                raise ValueError(
                    f"venues.{name}.order_transport: 'websocket' is for Binance USD-M only "
                    "(its WebSocket API); use 'rest'"
                )
        return self

    def venue(self, name: str) -> VenueConfig:
        """The config of a venue; a venue not listed gets the defaults."""
        return self.venues.get(name, VenueConfig())  # type: ignore[call-overload]


def enabled_stream_venues(exchanges: ExchangesConfig) -> list[str]:
    """The streamable venues listed under exchanges.venues and not `enabled: false`."""
    listed = exchanges.venues
    return [v for v in STREAM_VENUES if v in listed and listed[v].enabled]
