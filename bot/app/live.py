"""Factories the wiring calls: live liquidation streams and the live (ccxt) broker.

- create_live_sources(settings, secrets, names) -> one VenueStream per venue (merged by feeds)
- create_ccxt_broker(settings, secrets) -> CcxtBroker (one ccxt instance per account)
- start_live(settings, broker, journal): the --live gate, then the orders the journal sent
  without an outcome (or with an unknown one) looked up at the venue (a restart
  reconciles before trading)
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from bot.app.gate import Echo, live_gate
from bot.brokers.ccxt_broker import CcxtBroker, Reconciliation
from bot.ccxt.exchange import credentials, make_exchange
from bot.config.settings import Settings
from bot.config.venues import (
    FILE_VENUES,
    STREAM_VENUES,
    WS_VENUES,
    VenueConfig,
    check_hyperliquid_address,
    config_venue,
    enabled_stream_venues,
)
from bot.engine import ids
from bot.events import JournalKind, OrderIntent, journaled_outcome_unknown
from bot.interfaces import LiveSource
from bot.secrets import Secrets
from bot.sources.recording import RawRecorder
from bot.sources.streams import VenueStream
from bot.sources.wsclient import NodeFillsStream, WsVenueStream

_KEY_VARS = {
    "binance": "LIQGUARD_BINANCE_API_KEY and LIQGUARD_BINANCE_API_SECRET",
    "bybit": "LIQGUARD_BYBIT_API_KEY and LIQGUARD_BYBIT_API_SECRET",
    "okx": "LIQGUARD_OKX_API_KEY, LIQGUARD_OKX_API_SECRET and LIQGUARD_OKX_API_PASSWORD",
    "deribit": "LIQGUARD_DERIBIT_API_KEY and LIQGUARD_DERIBIT_API_SECRET",
}


class LiveSetupError(ValueError):
    """A live venue cannot be set up as configured; the message says what to change."""


def venue_names(names: Sequence[str] | str | None, settings: Settings) -> list[str]:
    """Normalise `--source binance,bybit,okx` (empty: every enabled venue that streams);
    a venue turned off (`enabled: false`) is refused, never streamed behind the user's back."""
    if isinstance(names, str):
        names = [n for n in names.split(",") if n.strip()]
    if not names:
        return enabled_stream_venues(settings.exchanges)
    out = []
    for raw in names:
        name = config_venue(raw)
        if name not in STREAM_VENUES:
            known = ", ".join(STREAM_VENUES)
            raise LiveSetupError(f"unknown live source {raw!r}; known: {known}")
        if not settings.exchanges.venue(name).enabled:
            raise LiveSetupError(
                f"--source {raw}: exchanges.venues.{name}.enabled is false; "
                f"set it to true or leave {name} out of --source"
            )
        if name not in out:
            out.append(name)
    return out


def create_live_sources(
    settings: Settings,
    secrets: Secrets | None,
    names: Sequence[str] | str | None,
    *,
    markets: Mapping[str, Any] | None = None,
) -> list[LiveSource]:
    """One stream per named venue (public data: no keys are used; `secrets` may name the
    fund's Hyperliquid accounts).

    `markets` (venue -> list of ccxt markets) preinstalls markets: no REST call at start.
    """
    ex_cfg = settings.exchanges
    streams: list[VenueStream] = []
    for name in venue_names(names, settings):
        cfg = ex_cfg.venue(name)
        if name == "binance":  # the paper account's symbols need live marks to fill at
            held = [p.symbol for p in settings.paper.positions if p.venue == "binance-usdm"]
            wanted = tuple(dict.fromkeys([*cfg.price_symbols, *held]))
            cfg = cfg.model_copy(update={"price_symbols": wanted})
        recorder = (
            RawRecorder(ex_cfg.record_dir, name, ex_cfg.record_max_bytes)
            if ex_cfg.record_dir
            else None
        )
        if name in FILE_VENUES:
            streams.extend(_hyperliquid_streams(cfg, secrets, markets, ex_cfg.reconnect_max_s))
            continue
        if name in WS_VENUES:  # not streamed by ccxt: the shared websocket client
            streams.append(
                WsVenueStream(
                    name,
                    cfg,
                    emit=lambda _e: None,
                    recorder=recorder,
                    reconnect_max_s=ex_cfg.reconnect_max_s,
                )
            )
            continue
        exchange = make_exchange(name, cfg, None, (markets or {}).get(name))
        streams.append(
            VenueStream(
                name,
                exchange,
                cfg,
                emit=lambda _e: None,  # replaced when its events() start
                recorder=recorder,
                reconnect_max_s=ex_cfg.reconnect_max_s,
            )
        )
    if not streams:
        raise LiveSetupError(
            "no live source enabled; list them with --source binance,bybit,okx or enable "
            "exchanges.venues.<name>.enabled"
        )
    return list(streams)


def hyperliquid_accounts(cfg: VenueConfig, secrets: Secrets | None) -> tuple[str, ...]:
    """The fund's Hyperliquid addresses: the config's, then LIQGUARD_HYPERLIQUID_ACCOUNTS."""
    extra = (secrets.hyperliquid_accounts or "") if secrets is not None else ""
    try:
        env = [
            check_hyperliquid_address(a, "LIQGUARD_HYPERLIQUID_ACCOUNTS")
            for a in extra.split(",")
            if a.strip()
        ]
    except ValueError as exc:
        raise LiveSetupError(str(exc)) from None
    return tuple(dict.fromkeys([*cfg.accounts, *env]))


def _hyperliquid_streams(
    cfg: VenueConfig,
    secrets: Secrets | None,
    markets: Mapping[str, Any] | None,
    reconnect_max_s: float,
) -> list[VenueStream]:
    """A node's fills (the whole venue) and/or the fund's own accounts (ccxt, userFills)."""
    accounts = hyperliquid_accounts(cfg, secrets)
    if not cfg.fills_path and not accounts:
        raise LiveSetupError(
            "exchanges.venues.hyperliquid.fills_path is not set and no account is given: set "
            "fills_path to the folder a non-validating node run with --write-fills writes "
            "(~/hl/data/node_fills_by_block: the whole venue), or accounts (or "
            "LIQGUARD_HYPERLIQUID_ACCOUNTS) to the fund's own 0x addresses"
        )
    out: list[VenueStream] = []
    if cfg.fills_path:
        out.append(NodeFillsStream(cfg, emit=lambda _e: None))
    if accounts:
        watched = cfg.model_copy(update={"accounts": accounts})
        exchange = make_exchange("hyperliquid", watched, None, (markets or {}).get("hyperliquid"))
        out.append(
            VenueStream(
                "hyperliquid",
                exchange,
                watched,
                emit=lambda _e: None,
                reconnect_max_s=reconnect_max_s,
                name="hyperliquid-accounts",
            )
        )
    return out


def create_ccxt_broker(
    settings: Settings,
    secrets: Secrets | None,
    *,
    markets: Mapping[str, Any] | None = None,
    price_symbols: Sequence[str] = (),
) -> CcxtBroker:
    """The live broker on `exchanges.trading_venue` (and `options_venue` for puts);
    `price_symbols`: venue ids priced at every account read even when not held (the hedge
    instrument)."""
    ex_cfg = settings.exchanges
    venue = ex_cfg.trading_venue
    if not credentials(venue, secrets):
        raise LiveSetupError(f"live trading on {venue} needs keys: set {_KEY_VARS[venue]}")
    cfg = ex_cfg.venue(venue)
    exchange = make_exchange(venue, cfg, secrets, (markets or {}).get(venue))
    options_exchange = None
    if ex_cfg.options_venue is not None:
        ov = ex_cfg.options_venue
        if ov == venue:
            options_exchange = exchange  # one account, one instance, one rate limiter
        else:
            if not credentials(ov, secrets):
                raise LiveSetupError(f"puts on {ov} need keys: set {_KEY_VARS[ov]}")
            options_exchange = make_exchange(ov, ex_cfg.venue(ov), secrets, (markets or {}).get(ov))
    windows_ms = [cfg.recv_window_ms]
    if ex_cfg.options_venue is not None:
        windows_ms.append(ex_cfg.venue(ex_cfg.options_venue).recv_window_ms)
    return CcxtBroker(
        venue,
        exchange,
        options_venue=ex_cfg.options_venue,
        options_exchange=options_exchange,
        refresh_s=ex_cfg.portfolio_refresh_s,
        slippage_cap_bps=ex_cfg.slippage_cap_bps,
        watch_symbols=cfg.symbols,
        price_symbols=price_symbols,
        # a lost create may land until its recvWindow ends (+1 s for the clocks' skew)
        accept_window_s=max(windows_ms) / 1000 + 1.0,
        order_transport=cfg.order_transport,
    )


def unsettled_orders(journal: Any) -> list[tuple[str, OrderIntent]]:
    """(client id, intent) of every order journaled as sent without a final result, or whose
    outcome is unknown (the broker could not tell whether it landed)."""
    out = []
    fields = OrderIntent.__dataclass_fields__
    for key in sorted(journal.keys_with_prefix(ids.ORDER_KEY_PREFIX)):
        cid = ids.client_id_of_order_key(key)
        if journal.has(ids.result_key(cid)):
            result = (journal.find_key(ids.result_key(cid)) or {}).get("payload") or {}
            if not journaled_outcome_unknown(result):
                continue
        entry = journal.find_key(key) or {}
        payload = entry.get("payload") or {}
        try:
            intent = OrderIntent(**{k: v for k, v in payload.items() if k in fields})
        except TypeError:
            continue  # not an order entry of this version: nothing to look up
        out.append((cid, intent))
    return out


async def start_live(
    settings: Settings, broker: CcxtBroker, journal: Any, *, echo: Echo = print
) -> Reconciliation:
    """Before the first event: the gate (refuses or prints the banner), then reconciliation."""
    await live_gate(settings, broker, echo=echo)
    pending = unsettled_orders(journal)
    rec = await broker.reconcile(pending)
    journal.append(
        JournalKind.RECONCILE,
        int(time.time() * 1000),
        {
            "found": {cid: r.status for cid, r in rec.found.items()},
            "missing": rec.missing,
            "unknown": rec.unknown,
            "positions": len(rec.positions),
            "open_orders": [o.client_id for o in rec.open_orders],
        },
    )
    echo(
        f"reconciled: {len(pending)} order(s) without outcome in the journal, "
        f"{len(rec.found)} found at the venue, {len(rec.missing)} never arrived; "
        f"{len(rec.positions)} position(s), {len(rec.open_orders)} open order(s)"
    )
    for cid, why in rec.unknown.items():
        echo(f"WARNING: order {cid}: could not look it up ({why}); check the venue")
    return rec
