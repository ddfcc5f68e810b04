"""The venues beyond Binance/Bybit/OKX, part 2: refused subscriptions (HTX, Bitget) through the
real wiring; the fund's own Hyperliquid accounts (userFills over ccxt); Gate contract sizes
from its contracts endpoint; dYdX DELEVERAGED trades counted and shown apart."""

from __future__ import annotations

import asyncio
import time
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import pytest

from bot.app.live import LiveSetupError, create_live_sources
from bot.app.telegram_control import feed_text
from bot.config.loader import load_settings
from bot.config.venues import EndpointsConfig, VenueConfig
from bot.events import FeedStatus, Liquidation
from bot.secrets import Secrets
from bot.sim.localexchange import serve
from bot.sim.localexchange.fakes import (
    LocalBitgetUta,
    LocalDydxIndexer,
    LocalGateFutures,
    LocalHtxLinearSwap,
    dydx_trade,
    dydx_trades_message,
    gate_liquidates_message,
)
from bot.sim.localexchange.hyperliquid import LocalHyperliquid, hyperliquid_fill
from bot.sources.feeds import MergedSources
from bot.sources.streams import wall_ms
from bot.sources.venues import (
    parse_hyperliquid_fills,
    parse_hyperliquid_user_fills,
    parse_raw_message,
)
from bot.sources.wsclient import WsVenueStream, refusal
from tests.live_tools import WAIT_S, Run, collect, now_ms, until
from tests.live_tools import running as live_run

T = 1_764_000_000_000


def venue_settings(venues: dict[str, Any], **ex: Any) -> Any:
    return load_settings(
        overrides={
            "mode": "paper",
            "rules": [{"name": "all", "window_s": 3600, "threshold_usd": 100_000.0}],
            "policy": {"levels": {1: [{"strategy": "halt", "params": {}}]}, "calm": []},
            "exchanges": {"venues": venues, "reconnect_max_s": 0.3, **ex},
        }
    )


def local(ws: str, **kw: Any) -> dict[str, Any]:
    return {"endpoints": {"ws": ws, "allow_insecure": True}, **kw}


def hyperliquid_endpoints(port: int) -> dict[str, Any]:
    """The local Hyperliquid's REST (info) and WebSocket endpoints."""
    return {
        "rest": f"http://127.0.0.1:{port}",
        "ws": f"ws://127.0.0.1:{port}/ws",
        "allow_insecure": True,
    }


def running(tmp_path: Path, settings: Any, names: list[str]) -> AbstractAsyncContextManager[Run]:
    return live_run(tmp_path, settings, names, mode="paper", identity="venues2")


# -- a refused subscription: blind, with the venue's reason -------------------------------------
async def test_htx_refused_subscription_is_blind_with_its_reason_journaled_and_told_once(
    tmp_path: Path,
) -> None:
    server = LocalHtxLinearSwap()
    topic = "public.NOPE-USDT.liquidation_orders"
    server.refuse[topic] = (2011, "invalid topic")  # HTX's refusal layout: err-code, err-msg
    async with serve(server.app) as port:
        ws = f"ws://127.0.0.1:{port}/linear-swap-notification"
        settings = venue_settings({"htx": local(ws, symbols=["NOPE-USDT"])})
        async with running(tmp_path, settings, ["htx"]) as run:
            feed, rows, told = await run.until_blind("htx")
            requests = len(server.subscribe_requests)
    reason = f"HTX refused {topic}: err-code 2011: invalid topic"
    assert reason in feed["detail"]
    assert [r["state"] for r in rows] == ["connecting", "blind"]
    assert reason in rows[-1]["detail"]
    assert len(told) == 1 and reason in told[0].detail  # one alert, the venue's words
    assert requests == 1  # refused once: not re-sent in a loop


async def test_bitget_error_event_is_blind_with_its_reason(tmp_path: Path) -> None:
    server = LocalBitgetUta()
    server.refuse["usdc-futures"] = ("30001", "instType:usdc-futures doesn't exist")
    async with serve(server.app) as port:
        ws = f"ws://127.0.0.1:{port}/v3/ws/public"
        settings = venue_settings({"bitget": local(ws)})
        async with running(tmp_path, settings, ["bitget"]) as run:
            feed, rows, told = await run.until_blind("bitget")
    reason = "Bitget refused usdc-futures liquidation: code 30001: instType:usdc-futures"
    assert reason in feed["detail"] and reason in rows[-1]["detail"]
    assert len(told) == 1 and reason in told[0].detail


# -- Hyperliquid: the fund's own accounts -------------------------------------------------------
FUND = "0x3333333333333333333333333333333333333333"
FUND2 = "0x4444444444444444444444444444444444444444"
OTHER = "0x5555555555555555555555555555555555555555"


def test_hyperliquid_user_fills_from_its_docs_count_only_the_accounts_own_liquidation() -> None:
    fills = [
        hyperliquid_fill("BTC", "A", "95000.0", "0.5", T, 11, FUND),  # the fund's long, sold
        hyperliquid_fill("ETH", "B", "3500.0", "2.0", T, 12, OTHER),  # the fund was the buyer
        hyperliquid_fill("ETH", "B", "3500.0", "1.0", T, 13),  # an ordinary fill
    ]
    push = {"channel": "userFills", "data": {"user": FUND, "fills": fills}}
    liqs = parse_raw_message(push)
    assert [(x.venue, x.symbol, x.side, x.notional_usd) for x in liqs] == [
        ("hyperliquid", "BTC", "long", 47_500.0)
    ]
    # the same fill in a node's fills file gets the same id: one event if both feeds run
    assert parse_hyperliquid_fills([FUND, fills[0]])[0].event_id == liqs[0].event_id
    snapshot = {"channel": "userFills", "data": {"isSnapshot": True, "user": FUND, "fills": fills}}
    assert parse_hyperliquid_user_fills(snapshot) == []  # history on (re)subscribe: not counted
    ack = {"channel": "subscriptionResponse", "data": {"method": "subscribe"}}
    assert parse_raw_message(ack) == [] and parse_raw_message({"channel": "pong"}) == []


def test_hyperliquid_accounts_must_be_addresses() -> None:
    with pytest.raises(ValueError, match=r"accounts: '0x12' is not a Hyperliquid address"):
        VenueConfig(accounts=("0x12",))
    settings = load_settings(overrides={"exchanges": {"venues": {"hyperliquid": {}}}})
    bad = Secrets(_env_file=None, hyperliquid_accounts="nope")  # type: ignore[call-arg]
    with pytest.raises(LiveSetupError, match="LIQGUARD_HYPERLIQUID_ACCOUNTS: 'nope'"):
        create_live_sources(settings, bad, ["hyperliquid"])


async def test_hyperliquid_accounts_through_ccxt_and_the_local_fake() -> None:
    server = LocalHyperliquid()
    old = hyperliquid_fill("BTC", "A", "90000.0", "1.0", T, 1, FUND)
    server.history[FUND] = [old]  # a liquidation of last year, in the snapshot
    async with serve(server.app) as port:
        endpoints = hyperliquid_endpoints(port)
        settings = load_settings(
            overrides={
                "exchanges": {
                    "venues": {"hyperliquid": {"accounts": [FUND], "endpoints": endpoints}}
                }
            }
        )
        mixed_case = FUND2.upper().replace("X", "x")  # addresses are compared lower-cased
        env = Secrets(_env_file=None, hyperliquid_accounts=mixed_case)  # type: ignore[call-arg]
        (stream,) = create_live_sources(settings, env, ["hyperliquid"])
        live = MergedSources([stream], wall_ms)
        now = now_ms()

        async def feed() -> None:
            await until(lambda: len(server.subscribe_requests) == 2)
            mine = hyperliquid_fill("ETH", "B", "3500.0", "4.0", now, 21, FUND2)  # short closed
            theirs = hyperliquid_fill("ETH", "A", "3500.0", "4.0", now, 21, FUND2)
            await server.play_fills(FUND, [theirs])  # FUND sold into FUND2's liquidation
            await server.play_fills(FUND2, [mine])

        feeder = asyncio.create_task(feed())
        events = await collect(live, lambda seen: any(isinstance(e, Liquidation) for e in seen))
        await feeder
        await live.close()
    (liq,) = [e for e in events if isinstance(e, Liquidation)]
    assert (liq.venue, liq.symbol, liq.side, liq.notional_usd) == (
        "hyperliquid",
        "ETH",
        "short",
        14_000.0,
    )
    assert liq.received_ms is not None and liq.event_id.endswith(FUND2)
    users = sorted(r["subscription"]["user"] for r in server.subscribe_requests)
    assert users == [FUND, FUND2]  # config and LIQGUARD_HYPERLIQUID_ACCOUNTS, one each
    assert all(r["subscription"]["type"] == "userFills" for r in server.subscribe_requests)
    statuses = [e for e in events if isinstance(e, FeedStatus)]
    assert {s.venue for s in statuses} == {"hyperliquid-accounts"}
    assert statuses[0].state == "connecting" and statuses[0].covers == ("hyperliquid",)
    # the tokens and the perps only: no spot markets, no HIP-3 dex lists
    assert sorted(i["type"] for i in server.info_requests) == ["metaAndAssetCtxs", "spotMeta"]


# -- Gate: every contract's size from its contracts endpoint ------------------------------------
async def test_gate_sizes_every_contract_from_its_list_and_rejects_one_it_does_not_know() -> None:
    server = LocalGateFutures()  # lists BTC_USDT 0.0001 and ETH_USDT 0.01 at start
    async with serve(server.app) as port:
        endpoints = EndpointsConfig(
            rest=f"http://127.0.0.1:{port}",
            ws=f"ws://127.0.0.1:{port}/v4/ws/usdt",
            allow_insecure=True,
        )
        stream = WsVenueStream("gate", VenueConfig(endpoints=endpoints), print)
        live = MergedSources([stream], wall_ms)
        now = now_ms()

        async def feed() -> None:
            await asyncio.wait_for(server.subscribed.wait(), WAIT_S)
            await server.play([gate_liquidates_message([("ETH_USDT", -300, "3500", now)])])
            server.contracts["PEPE_USDT"] = "10000000"  # listed after the run started
            await server.play([gate_liquidates_message([("PEPE_USDT", 2, "0.00001", now + 1)])])
            await server.play([gate_liquidates_message([("NOPE_USDT", -5, "1.5", now + 2)])])
            await server.play([gate_liquidates_message([("BTC_USDT", 10, "95000", now + 3)])])

        feeder = asyncio.create_task(feed())
        events = await collect(
            live,
            lambda seen: any(isinstance(e, Liquidation) and e.symbol == "BTC_USDT" for e in seen),
        )
        await feeder
        await live.close()
    got = [
        (e.symbol, e.side, round(e.notional_usd, 2)) for e in events if isinstance(e, Liquidation)
    ]
    assert got == [
        ("ETH_USDT", "long", 10_500.0),  # 300 x 0.01 x 3500: a contract beyond the built-in table
        ("PEPE_USDT", "short", 200.0),  # 2 x 10,000,000 x 0.00001: sized by reloading the list
        ("BTC_USDT", "short", 95.0),  # 10 x 0.0001 x 95,000
    ]
    assert stream.health.rejected == 1  # NOPE_USDT: never guessed
    assert "NOPE_USDT: contract size unknown" in stream.health.last_rejected
    assert server.contract_requests == 3  # at start, then once for each contract it lacked


# -- dYdX v4: DELEVERAGED trades counted and shown apart -----------------------------------------
async def test_dydx_deleveraged_trades_are_journaled_and_shown_apart_never_counted(
    tmp_path: Path,
) -> None:
    server = LocalDydxIndexer()
    async with serve(server.app) as port:
        ws = f"ws://127.0.0.1:{port}/v4/ws"
        settings = venue_settings({"dydx": local(ws, symbols=["BTC-USD"])})
        settings = settings.model_copy(
            update={
                "rules": [r.model_copy(update={"threshold_usd": 10_000.0}) for r in settings.rules]
            }
        )
        async with running(tmp_path, settings, ["dydx"]) as run:
            await asyncio.wait_for(server.subscribed.wait(), WAIT_S)
            stamp = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
            trades = [
                dydx_trade("d1", "BUY", "0.2", "95010", stamp, "DELEVERAGED"),  # $19,002
                dydx_trade("l1", "SELL", "0.01", "95000", stamp, "LIQUIDATED"),  # $950
            ]
            await server.play([dydx_trades_message("BTC-USD", trades)])
            await until(lambda: run.orch.counters.liquidations == 1)
            await until(lambda: run.feed("dydx").get("deleveraged") == 1)
            feed = run.feed("dydx")
            apart = run.rows("liquidation_deleveraged")
            anomalies = run.rows("anomaly")
            window = {r["rule"]: r["window_usd"] for r in run.orch.status()["rules"]}
    assert feed["deleveraged_usd"] == 19_002.0
    assert "1 deleveraged ($19,002, not liquidations)" in feed_text(feed)  # the status view
    assert len(apart) == 1 and apart[0]["kind"] == "deleveraged"
    assert "DELEVERAGED $19,002" in apart[0]["reason"] and "not a liquidation" in apart[0]["reason"]
    assert anomalies == []  # $19,002 deleveraged would cross 10,000: it is not counted
    assert window == {"all": 950.0}


def test_refusals_read_from_each_venues_answer_and_acks_are_not_refusals() -> None:
    htx_sub = {"op": "sub", "cid": "c", "topic": "public.X.liquidation_orders", "ts": 1}
    assert refusal("htx", {**htx_sub, "err-code": 0}) is None  # HTX's accepted sub
    assert refusal("htx", {**htx_sub, "err-code": 2011, "err-msg": "invalid topic"}) == (
        "HTX refused public.X.liquidation_orders: err-code 2011: invalid topic"
    )
    other_form = {"status": "error", "err-code": "bad-request", "err-msg": "invalid topic"}
    assert "err-code bad-request: invalid topic" in str(refusal("htx", other_form))
    arg = {"instType": "usdt-futures", "topic": "liquidation"}
    assert refusal("bitget", {"event": "subscribe", "arg": arg, "connId": "c1"}) is None
    error = {"event": "error", "arg": arg, "code": "30001", "msg": "bad"}
    assert refusal("bitget", error) == "Bitget refused usdt-futures liquidation: code 30001: bad"
    assert refusal("gate", error) is None  # each venue reads only its own answers


def test_gate_deribit_dydx_refusals_name_the_venues_reason() -> None:
    gate = {
        "time": 1,
        "channel": "futures.public_liquidates",
        "event": "subscribe",
        "error": {"code": 2, "message": "unknown contract NOPE_USDT"},
        "result": None,
    }
    assert refusal("gate", gate) == (
        "Gate refused futures.public_liquidates: code 2: unknown contract NOPE_USDT"
    )
    assert refusal("gate", {**gate, "error": None, "result": {"status": "success"}}) is None
    rpc = {"jsonrpc": "2.0", "id": 1, "error": {"code": -32602, "message": "Invalid params"}}
    assert (
        refusal("deribit", rpc) == "Deribit refused public/subscribe: code -32602: Invalid params"
    )
    assert refusal("deribit", {"jsonrpc": "2.0", "id": 1, "result": ["trades.x"]}) is None
    dydx = {"type": "error", "message": "Invalid subscribe message: id NOPE-USD", "message_id": 1}
    assert refusal("dydx", dydx) == (
        "dYdX refused the subscription: Invalid subscribe message: id NOPE-USD"
    )
