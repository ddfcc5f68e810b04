"""The venues beyond Binance/Bybit/OKX: parsers on frames built from each venue's documentation,
then each through its local fake (the shared websocket client) or a node's fills file."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from bot.app.live import create_live_sources
from bot.config.loader import load_settings
from bot.config.venues import EndpointsConfig, VenueConfig
from bot.events import FeedStatus, Liquidation
from bot.sim.localexchange import serve
from bot.sim.localexchange.fakes import (
    LocalBitgetUta,
    LocalDeribitTrades,
    LocalDydxIndexer,
    LocalGateFutures,
    LocalHtxLinearSwap,
    bitget_liquidation_message,
    deribit_trade,
    deribit_trades_message,
    dydx_trade,
    dydx_trades_message,
    gate_liquidates_message,
    htx_liquidation_message,
)
from bot.sources.feeds import MergedSources
from bot.sources.validate import MalformedMessage
from bot.sources.venues import (
    parse_bitget_liquidation,
    parse_deribit_trades,
    parse_dydx_trades,
    parse_gate_liquidates,
    parse_htx_liquidation_orders,
    parse_hyperliquid_fills,
    parse_raw_message,
)
from bot.sources.wsclient import NodeFillsStream, WsVenueStream, wall_ms
from tests.live_tools import collect

WAIT_S = 10.0
T = 1_764_000_000_000
LIQUIDATED = "0x1111111111111111111111111111111111111111"
LIQUIDATOR = "0x2222222222222222222222222222222222222222"


# -- Deribit ------------------------------------------------------------------------------------
def test_deribit_liquidation_marker_names_the_liquidated_side() -> None:
    channel = "trades.future.BTC.100ms"
    msg = deribit_trades_message(
        channel,
        [
            deribit_trade("BTC-PERPETUAL", "sell", 20_000, 95_000.0, T, "T", "a"),  # taker long
            deribit_trade(
                "BTC-PERPETUAL", "sell", 10_000, 95_000.0, T + 1, "M", "b"
            ),  # maker short
            deribit_trade("BTC-27MAR26", "buy", 5_000, 96_000.0, T + 2, "MT", "c"),
            deribit_trade("BTC-PERPETUAL", "buy", 1_000, 95_000.0, T + 3),  # not a liquidation
            deribit_trade("ETH_USDC-PERPETUAL", "buy", 2.0, 3_500.0, T + 4, "T", "d"),  # linear
        ],
    )
    liqs = parse_raw_message(msg)
    got = [(x.symbol, x.side, x.notional_usd) for x in liqs]
    assert got == [
        ("BTC-PERPETUAL", "long", 20_000.0),  # inverse: amount is USD
        ("BTC-PERPETUAL", "short", 10_000.0),
        ("BTC-27MAR26", "short", 5_000.0),  # the taker bought: a short; the maker sold: a long
        ("BTC-27MAR26", "long", 5_000.0),
        ("ETH_USDC-PERPETUAL", "short", 7_000.0),  # linear: amount in ETH times price
    ]
    assert len({x.event_id for x in liqs}) == len(liqs)


def test_deribit_options_and_bad_markers_are_skipped_with_a_reason() -> None:
    msg = deribit_trades_message(
        "trades.option.BTC.100ms",
        [
            deribit_trade("BTC-27MAR26-100000-C", "sell", 1.0, 0.05, T, "T"),
            deribit_trade("BTC-PERPETUAL", "sell", 10.0, 95_000.0, T, "X"),
        ],
    )
    errors: list[str] = []
    assert parse_deribit_trades(msg, errors) == []
    assert "an option" in errors[0] and "unknown liquidation marker 'X'" in errors[1]


# -- Gate ---------------------------------------------------------------------------------------
def test_gate_frame_from_its_docs_signed_sizes_and_multiplier() -> None:
    # The documented push (2026-08-20 layout: several entries, time in ms), integer sizes
    doc = {
        "channel": "futures.public_liquidates",
        "event": "update",
        "time": 1541505434,
        "time_ms": 1541505434123,
        "result": [
            {"price": "215.1", "size": -124, "time": 1541486601123, "contract": "BTC_USDT"},
            {"price": "215.2", "size": "10.5", "time": 1541486601456, "contract": "BTC_USDT"},
        ],
    }
    liqs = parse_raw_message(doc)
    assert [(x.side, x.ts_ms) for x in liqs] == [("long", 1541486601123), ("short", 1541486601456)]
    assert liqs[0].notional_usd == pytest.approx(124 * 0.0001 * 215.1)  # quanto_multiplier 1e-4
    old = {
        **doc,
        "result": [{"price": "215.1", "size": -124, "time": 1541486601, "contract": "BTC_USDT"}],
    }
    assert parse_gate_liquidates(old)[0].ts_ms == 1541486601000  # before: seconds


def test_gate_contract_of_unknown_size_is_skipped_never_guessed() -> None:
    msg = gate_liquidates_message([("DOGE_USDT", -3, "0.2", T), ("BTC_USDT", 5, "95000", T)])
    errors: list[str] = []
    liqs = parse_gate_liquidates(msg, None, errors)
    assert [x.symbol for x in liqs] == ["BTC_USDT"]
    assert "DOGE_USDT: contract size unknown" in errors[0]
    sized = parse_gate_liquidates(msg, {"DOGE_USDT": 10.0}.get)
    assert sized[0].notional_usd == pytest.approx(3 * 10 * 0.2)


# -- Hyperliquid node fills ---------------------------------------------------------------------
def _fill(user: str, side: str, liquidated: str | None, tid: int = 7) -> list[Any]:
    fill: dict[str, Any] = {
        "coin": "ETH",
        "px": "3500.5",
        "sz": "2.0",
        "side": side,
        "time": T,
        "startPosition": "2.0" if side == "A" else "0.0",
        "dir": "Liquidated Cross Long" if side == "A" else "Open Long",
        "closedPnl": "-120.0",
        "hash": "0xabc",
        "oid": 1,
        "crossed": True,
        "fee": "0.0",
        "tid": tid,
        "feeToken": "USDC",
    }
    if liquidated is not None:
        fill["liquidation"] = {"liquidatedUser": liquidated, "markPx": "3500.0", "method": "market"}
    return [user, fill]


def test_hyperliquid_fills_count_only_the_liquidated_users_side() -> None:
    block = {
        "local_time": "2025-10-10T21:15:00.1",
        "block_time": "2025-10-10T21:15:00.0",
        "block_number": 123,
        "events": [
            _fill(LIQUIDATED, "A", LIQUIDATED),  # the liquidated long sells
            _fill(LIQUIDATOR, "B", LIQUIDATED),  # the other side of the same trade
            _fill(LIQUIDATOR, "B", None, tid=8),  # an ordinary fill
        ],
    }
    liqs = parse_raw_message(block)
    assert [(x.venue, x.symbol, x.side, x.notional_usd) for x in liqs] == [
        ("hyperliquid", "ETH", "long", 7001.0)
    ]
    assert parse_hyperliquid_fills(_fill(LIQUIDATED, "A", LIQUIDATED)) == liqs  # node_fills
    with pytest.raises(MalformedMessage, match="not a Hyperliquid node fills line"):
        parse_hyperliquid_fills({"nope": 1})


# -- through the local fakes --------------------------------------------------------------------
def _cfg(ws: str, **kw: Any) -> VenueConfig:
    return VenueConfig(endpoints=EndpointsConfig(ws=ws, allow_insecure=True), **kw)


def _liqs(events: list[Any]) -> list[Liquidation]:
    return [e for e in events if isinstance(e, Liquidation)]


async def play_and_collect(
    live: MergedSources,
    feed: Callable[[], Awaitable[None]],
    done: Callable[[list[Any]], bool] = lambda seen: bool(_liqs(seen)),
) -> list[Any]:
    """Run the fake's `feed` beside the merge until `done` (a first liquidation), then close."""
    feeder = asyncio.create_task(feed())
    events = await collect(live, done, WAIT_S)
    await feeder
    await live.close()
    return events


async def test_deribit_through_its_local_fake_live_on_data_and_back_after_a_drop() -> None:
    server = LocalDeribitTrades()
    async with serve(server.app) as port:
        cfg = _cfg(f"ws://127.0.0.1:{port}/ws/api/v2", ping_s=0.05)
        stream = WsVenueStream("deribit", cfg, print, reconnect_initial_s=0.05)
        live = MergedSources([stream], wall_ms)
        now = time.time_ns() // 1_000_000
        trade = deribit_trade("BTC-PERPETUAL", "sell", 20_000, 95_000.0, now, "T", "x1")

        async def feed() -> None:
            await asyncio.wait_for(server.subscribed.wait(), WAIT_S)
            await server.play([deribit_trades_message("trades.future.BTC.100ms", [trade])])
            await asyncio.sleep(0)
            await server.drop()
            await asyncio.wait_for(server.subscribed.wait(), WAIT_S)
            again = deribit_trade("BTC-PERPETUAL", "buy", 5_000, 95_100.0, now + 5, "M", "x2")
            await server.play([deribit_trades_message("trades.future.BTC.100ms", [trade, again])])

        events = await play_and_collect(live, feed, lambda seen: len(_liqs(seen)) >= 2)
    states = [e.state for e in events if isinstance(e, FeedStatus)]
    assert [(x.side, x.notional_usd) for x in _liqs(events)] == [
        ("long", 20_000.0),
        ("long", 5_000.0),
    ]
    assert states[0] == "connecting" and "live" in states and "reconnecting" in states
    assert {c for r in server.subscribe_requests for c in r["params"]["channels"]} == {
        "trades.future.BTC.100ms",
        "trades.future.ETH.100ms",
    }


async def test_gate_through_its_local_fake_subscribes_all_and_pings() -> None:
    server = LocalGateFutures()
    async with serve(server.app) as port:
        rest, ws = f"http://127.0.0.1:{port}", f"ws://127.0.0.1:{port}/v4/ws/usdt"
        endpoints = EndpointsConfig(rest=rest, ws=ws, allow_insecure=True)
        cfg = VenueConfig(endpoints=endpoints, ping_s=0.05)
        live = MergedSources([WsVenueStream("gate", cfg, print)], wall_ms)
        now = time.time_ns() // 1_000_000

        async def feed() -> None:
            await asyncio.wait_for(server.subscribed.wait(), WAIT_S)
            await server.play([gate_liquidates_message([("BTC_USDT", -2000, "95000", now)])])

        events = await play_and_collect(live, feed)
    (liq,) = _liqs(events)
    assert (liq.venue, liq.side, liq.notional_usd) == ("gate", "long", pytest.approx(19_000.0))
    assert server.subscribe_requests[0]["payload"] == ["!all"]


async def test_hyperliquid_node_fills_followed_as_the_node_writes(tmp_path: Path) -> None:
    folder = tmp_path / "node_fills_by_block" / "hourly" / "20251010"
    folder.mkdir(parents=True)
    old = folder / "20"
    old.write_text(
        json.dumps({"block_number": 1, "events": [_fill(LIQUIDATED, "A", LIQUIDATED)]}) + "\n"
    )
    settings = load_settings(
        overrides={
            "exchanges": {
                "venues": {"hyperliquid": {"fills_path": str(tmp_path / "node_fills_by_block")}}
            }
        }
    )
    (stream,) = create_live_sources(settings, None, ["hyperliquid"])
    assert isinstance(stream, NodeFillsStream)
    live = MergedSources([stream], wall_ms)

    async def write() -> None:
        async def until(cond: Callable[[], bool]) -> None:
            while not cond():  # noqa: ASYNC110 - the reader's own progress
                await asyncio.sleep(0.01)

        await until(lambda: stream.following == old)  # opened the newest file, at its end
        new = folder / "21"  # the node rotates to a new hourly file
        now = time.time_ns() // 1_000_000
        block = {"block_number": 2, "events": [_fill(LIQUIDATED, "A", LIQUIDATED, tid=9)]}
        block["events"][0][1]["time"] = now
        text = json.dumps(block)
        new.write_text(text[:20])  # a line still being written
        await until(lambda: stream.following == new and stream.offset == 20)
        with new.open("a") as f:
            f.write(text[20:] + "\n")

    writer = asyncio.create_task(write())
    events = await collect(live, lambda seen: bool(_liqs(seen)), WAIT_S)
    await writer
    await live.close()
    (liq,) = _liqs(events)  # the old file's history was not replayed; the new line counted once
    assert (liq.venue, liq.symbol, liq.side) == ("hyperliquid", "ETH", "long")
    assert liq.received_ms is not None


def test_hyperliquid_without_a_fills_path_is_refused_with_the_fix() -> None:
    settings = load_settings(overrides={"exchanges": {"venues": {"hyperliquid": {}}}})
    with pytest.raises(ValueError, match="fills_path is not set"):
        create_live_sources(settings, None, ["hyperliquid"])


# -- dYdX v4 ------------------------------------------------------------------------------------
def test_dydx_liquidated_trades_count_and_deleveraged_come_apart() -> None:
    msg = dydx_trades_message(
        "BTC-USD",
        [
            dydx_trade("t1", "SELL", "0.5", "95000", "2025-10-10T21:15:00.123Z", "LIQUIDATED"),
            dydx_trade("t2", "BUY", "0.2", "95010", "2025-10-10T21:15:00.200Z", "DELEVERAGED"),
            dydx_trade("t3", "BUY", "1.0", "95020", "2025-10-10T21:15:00.300Z", "LIMIT"),
        ],
    )
    apart: list[Liquidation] = []
    liqs = parse_dydx_trades(msg, None, apart)
    assert [(x.venue, x.symbol, x.side, x.notional_usd) for x in liqs] == [
        ("dydx", "BTC-USD", "long", 47_500.0)
    ]
    assert liqs[0].ts_ms == 1760130900123
    assert [x.side for x in apart] == ["short"]  # reported apart, never counted as liquidations
    assert parse_raw_message(msg) == liqs


async def test_dydx_through_its_local_fake() -> None:
    server = LocalDydxIndexer()
    async with serve(server.app) as port:
        cfg = _cfg(f"ws://127.0.0.1:{port}/v4/ws")
        live = MergedSources([WsVenueStream("dydx", cfg, print)], wall_ms)
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())

        async def feed() -> None:
            await asyncio.wait_for(server.subscribed.wait(), WAIT_S)
            trade = dydx_trade("z1", "BUY", "2", "3500", stamp, "LIQUIDATED")
            await server.play([dydx_trades_message("ETH-USD", [trade])])

        events = await play_and_collect(live, feed)
    (liq,) = _liqs(events)
    assert (liq.venue, liq.symbol, liq.side, liq.notional_usd) == (
        "dydx",
        "ETH-USD",
        "short",
        7000.0,
    )
    assert {r["id"] for r in server.subscribe_requests} == {"BTC-USD", "ETH-USD"}


# -- Bitget UTA v3 ------------------------------------------------------------------------------
def test_bitget_frame_from_its_docs_sell_is_a_long_and_usd_is_amount_times_price() -> None:
    doc = {  # the Liquidation Channel's push example, plus a sell of the same second
        "data": [
            {
                "symbol": "BTCUSDT",
                "side": "buy",
                "price": "89000",
                "amount": "37.722858",
                "ts": "1736371332162",
            },
            {
                "symbol": "BTCUSDT",
                "side": "sell",
                "price": "88990",
                "amount": "2",
                "ts": "1736371332170",
            },
        ],
        "arg": {"instType": "usdt-futures", "topic": "liquidation"},
        "action": "update",
        "ts": 1736371332162,
    }
    liqs = parse_raw_message(doc)
    assert [(x.venue, x.symbol, x.side, x.ts_ms) for x in liqs] == [
        ("bitget", "BTCUSDT", "short", 1736371332162),
        ("bitget", "BTCUSDT", "long", 1736371332170),
    ]
    assert liqs[0].notional_usd == pytest.approx(37.722858 * 89000)
    assert liqs[1].notional_usd == pytest.approx(2 * 88990)
    ack = {"event": "subscribe", "arg": doc["arg"], "connId": "c1"}
    assert parse_raw_message(ack) == []


def test_bitget_bad_entries_are_skipped_with_a_reason() -> None:
    msg = bitget_liquidation_message(
        "usdt-futures", [("ETHUSDT", "close", "3500", "1", T), ("ETHUSDT", "sell", "3500", "0", T)]
    )
    errors: list[str] = []
    assert parse_bitget_liquidation(msg, errors) == []
    assert "unknown side 'close'" in errors[0] and "amount must be positive" in errors[1]
    with pytest.raises(MalformedMessage, match="instType 'spot'"):
        parse_bitget_liquidation({**msg, "arg": {"instType": "spot", "topic": "liquidation"}})


async def test_bitget_through_its_local_fake_subscribes_every_product_type_and_pings() -> None:
    server = LocalBitgetUta()
    async with serve(server.app) as port:
        cfg = _cfg(f"ws://127.0.0.1:{port}/v3/ws/public", ping_s=0.05)
        stream = WsVenueStream("bitget", cfg, print)
        live = MergedSources([stream], wall_ms)
        now = time.time_ns() // 1_000_000

        async def feed() -> None:
            await asyncio.wait_for(server.subscribed.wait(), WAIT_S)
            await asyncio.wait_for(server.pinged.wait(), WAIT_S)  # the text "ping"
            msg = bitget_liquidation_message(
                "usdt-futures", [("SOLUSDT", "sell", "150", "100", now)]
            )
            await server.play([msg])

        events = await play_and_collect(live, feed)
    (liq,) = _liqs(events)
    assert (liq.venue, liq.symbol, liq.side, liq.notional_usd) == (
        "bitget",
        "SOLUSDT",
        "long",
        15_000.0,
    )
    assert [a["instType"] for a in server.subscribe_requests[0]["args"]] == [
        "usdt-futures",
        "coin-futures",
        "usdc-futures",
    ]
    states = [e.state for e in events if isinstance(e, FeedStatus)]
    assert states[0] == "connecting" and "live" in states


# -- HTX linear swaps ---------------------------------------------------------------------------
def test_htx_frame_from_its_docs_direction_sell_is_a_long_usd_is_turnover() -> None:
    doc = {  # the documented data update of `public.$contract_code.liquidation_orders`
        "op": "notify",
        "topic": "public.O3-USDT.liquidation_orders",
        "ts": 1639122193214,
        "data": [
            {
                "symbol": "O3",
                "contract_code": "O3-USDT",
                "direction": "sell",
                "offset": "close",
                "volume": 432,
                "price": 0.7858,
                "created_at": 1639122193172,
                "amount": 432,
                "trade_turnover": 339.4656,
                "contract_type": "swap",
                "pair": "O3-USDT",
                "business_type": "swap",
            }
        ],
    }
    (liq,) = parse_raw_message(doc)
    assert (liq.venue, liq.symbol, liq.side, liq.ts_ms) == ("htx", "O3-USDT", "long", 1639122193172)
    assert liq.notional_usd == pytest.approx(339.4656)
    no_turnover = {**doc, "data": [{**doc["data"][0], "direction": "buy"}]}
    del no_turnover["data"][0]["trade_turnover"]
    (short,) = parse_htx_liquidation_orders(no_turnover)
    assert (short.side, short.notional_usd) == ("short", pytest.approx(432 * 0.7858))
    ack = {"op": "sub", "cid": "x", "topic": doc["topic"], "ts": 1670903745088, "err-code": 0}
    assert parse_raw_message(ack) == [] and parse_raw_message({"op": "ping", "ts": "1"}) == []


async def test_htx_through_its_local_fake_gzip_frames_and_pings_answered() -> None:
    server = LocalHtxLinearSwap()
    async with serve(server.app) as port:
        cfg = _cfg(f"ws://127.0.0.1:{port}/linear-swap-notification")
        live = MergedSources([WsVenueStream("htx", cfg, print)], wall_ms)
        now = time.time_ns() // 1_000_000

        async def feed() -> None:
            await asyncio.wait_for(server.subscribed.wait(), WAIT_S)
            await server.ping()
            await asyncio.wait_for(server.ponged.wait(), WAIT_S)
            entry = ("BTC-USDT", "buy", 250, "0.25", "23750.0", "95000", now)
            await server.play(
                [htx_liquidation_message("public.BTC-USDT.liquidation_orders", [entry])]
            )

        events = await play_and_collect(live, feed)
    (liq,) = _liqs(events)
    assert (liq.venue, liq.symbol, liq.side, liq.notional_usd) == (
        "htx",
        "BTC-USDT",
        "short",
        23_750.0,
    )
    assert server.subscribe_requests[0]["topic"] == "public.*.liquidation_orders"
    assert server.pongs[0]["op"] == "pong" and server.pongs[0]["ts"].isdigit()
