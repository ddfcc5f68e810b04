"""Live liquidation streams: real ccxt.pro against local Binance / Bybit / OKX websockets."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from bot.ccxt.exchange import make_exchange
from bot.config.venues import EndpointsConfig, VenueConfig
from bot.events import FeedStatus, Liquidation, PriceTick
from bot.sim.localexchange import serve
from bot.sim.localexchange.binance import LocalBinance
from bot.sim.localexchange.fakes import LocalBybit, LocalOkx, bybit_message, okx_message
from bot.sim.localexchange.markets import bybit_markets, okx_markets
from bot.sim.localexchange.tapes import force_order_message, tape_messages
from bot.sources.feeds import MergedSources
from bot.sources.files import open_tape
from bot.sources.recording import Dedupe, RawRecorder
from bot.sources.streams import VenueStream, wall_ms
from bot.sources.venues import parse_raw_message

TAPE = Path(__file__).resolve().parents[1] / "bot/data/binance-btcusdt_2024-12-04_06.csv"
WAIT_S = 10.0  # generous upper bound for a local round trip; never a timing assertion


def _cfg(ws: str, rest: str | None = None, **kw: Any) -> VenueConfig:
    return VenueConfig(endpoints=EndpointsConfig(rest=rest, ws=ws, allow_insecure=True), **kw)


class Collector:
    """Consume the merged streams into lists; wait for conditions."""

    def __init__(self, live: MergedSources) -> None:
        self.live = live
        self.liqs: list[Liquidation] = []
        self.status: list[FeedStatus] = []
        self.ticks: list[PriceTick] = []
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        async for ev in self.live.events():
            if isinstance(ev, Liquidation):
                self.liqs.append(ev)
            elif isinstance(ev, FeedStatus):
                self.status.append(ev)
            elif isinstance(ev, PriceTick):
                self.ticks.append(ev)

    async def until(self, cond: Callable[[], bool]) -> None:
        async def poll() -> None:
            while not cond():  # noqa: ASYNC110 - any condition over the collected events
                await asyncio.sleep(0.01)

        await asyncio.wait_for(poll(), WAIT_S)

    async def close(self) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)
        await self.live.close()


@asynccontextmanager
async def binance_stream(**cfg_kw: Any) -> AsyncIterator[tuple[LocalBinance, Collector]]:
    server = LocalBinance()
    async with serve(server.app) as port:
        cfg = _cfg(f"ws://127.0.0.1:{port}/ws", f"http://127.0.0.1:{port}", **cfg_kw)
        stream = VenueStream(
            "binance", make_exchange("binance", cfg), cfg, print, reconnect_initial_s=0.05
        )
        col = Collector(MergedSources([stream], wall_ms))
        try:
            await asyncio.wait_for(server.subscribed.wait(), WAIT_S)
            yield server, col
        finally:
            await col.close()


def expected(messages: list[dict[str, Any]]) -> list[Liquidation]:
    return [liq for m in messages for liq in parse_raw_message(m)]


async def test_three_venues_parsed_and_merged() -> None:
    b, y, o = LocalBinance(), LocalBybit(), LocalOkx()
    async with serve(b.app) as bp, serve(y.app) as yp, serve(o.app) as op:
        bcfg = _cfg(f"ws://127.0.0.1:{bp}/ws", f"http://127.0.0.1:{bp}")
        ycfg = _cfg(f"ws://127.0.0.1:{yp}/v5/public/linear")  # no symbols: every linear perp
        ocfg = _cfg(f"ws://127.0.0.1:{op}/ws/v5")
        streams = [
            VenueStream("binance", make_exchange("binance", bcfg), bcfg, print),
            VenueStream(
                "bybit", make_exchange("bybit", ycfg, markets=bybit_markets()), ycfg, print
            ),
            VenueStream("okx", make_exchange("okx", ocfg, markets=okx_markets()), ocfg, print),
        ]
        col = Collector(MergedSources(streams, wall_ms))
        try:
            for server in (b, y, o):
                await asyncio.wait_for(server.subscribed.wait(), WAIT_S)
            await col.until(lambda: len(o.topics()) == 2 and len(y.topics()) == 2)
            b_msgs = tape_messages(TAPE, 5)
            y_msgs = [bybit_message("ETHUSDT", "Sell", "3.5", "3600.5", 1_700_000_000_000)]
            o_msgs = [
                okx_message(
                    "SWAP",
                    "BTC-USDT-SWAP",
                    [
                        ("sell", "250", "60000.1", 1_700_000_000_100),
                        ("sell", "120", "59990.5", 1_700_000_000_200),
                    ],
                ),
                okx_message(
                    "FUTURES", "BTC-USD-250328", [("buy", "3", "61000", 1_700_000_000_300)]
                ),
            ]
            await b.play(b_msgs)
            await y.play(y_msgs)
            await o.play(o_msgs)
            want = expected(b_msgs + y_msgs + o_msgs)
            await col.until(lambda: len(col.liqs) >= len(want))
        finally:
            await col.close()
    assert sorted(col.liqs, key=str) == sorted(want, key=str)
    assert {liq.venue for liq in col.liqs} == {"binance-usdm", "bybit", "okx"}
    # OKX: both details of one message (ccxt alone keeps only the first), FUTURES subscribed
    assert sum(liq.symbol == "BTC-USDT-SWAP" for liq in col.liqs) == 2
    assert {a["args"][0]["instType"] for a in o.subscribe_requests} == {"SWAP", "FUTURES"}
    assert {t for r in y.subscribe_requests for t in r["args"]} == {
        "allLiquidation.BTCUSDT",
        "allLiquidation.ETHUSDT",
    }
    # Bybit's S is the position side: Sell = a short was liquidated
    assert next(liq for liq in col.liqs if liq.venue == "bybit").side == "short"


async def test_reconnect_after_drop_counts_no_event_twice() -> None:
    first, overlap = tape_messages(TAPE, 6)[:4], tape_messages(TAPE, 6)
    async with binance_stream() as (server, col):
        await server.play(first)
        await col.until(lambda: len(col.liqs) == 4)
        await server.drop()
        await col.until(lambda: server.subscribed.is_set())
        await server.play(overlap)  # the venue re-sends what it sent before the drop
        await col.until(lambda: len(col.liqs) >= 6)
        await server.play(overlap)
        await server.play([tape_messages(TAPE, 7)[6]])
        await col.until(lambda: len(col.liqs) >= 7)
        health = col.live.sources[0].health  # type: ignore[attr-defined]
    assert [liq.event_id for liq in col.liqs] == [liq.event_id for liq in expected(overlap)] + [
        expected([tape_messages(TAPE, 7)[6]])[0].event_id
    ]
    assert health.reconnects >= 1
    assert col.live.dedupe.duplicates == 4 + 6
    states = [s.state for s in col.status]
    assert "reconnecting" in states
    assert states[-1] == "live"


async def test_silence_raises_blind_then_live_again() -> None:
    async with binance_stream(silence_s=0.3) as (server, col):
        await col.until(lambda: any(s.state == "blind" for s in col.status))
        blind = next(s for s in col.status if s.state == "blind")
        await server.play(tape_messages(TAPE, 1))
        await col.until(lambda: col.status[-1].state == "live" and len(col.liqs) == 1)
    assert blind.venue == "binance"
    assert "no liquidation message" in blind.detail
    assert col.live.sources[0].health.state == "live"  # type: ignore[attr-defined]


async def test_clock_skew_measured_and_unknown_symbols_skipped() -> None:
    now_ms = time.time_ns() // 1_000_000
    behind_ms = 5_000
    msg = force_order_message("BTCUSDT", "SELL", "0.5", "95000", now_ms - behind_ms)
    coinm = force_order_message("BTCUSD_PERP", "SELL", "3", "95000", now_ms)
    coinm["o"]["ps"] = "BTCUSD"
    async with binance_stream() as (server, col):
        await server.play([msg])
        await col.until(lambda: len(col.liqs) == 1)
        health = col.live.sources[0].health  # type: ignore[attr-defined]
        skew_ms = health.clock_skew_ms
        await server.play([coinm])
        await col.until(lambda: health.skipped == 1)  # COIN-M is not a USD-M market
    assert skew_ms is not None
    assert skew_ms >= behind_ms - 2  # E = T + 2 in the local server's messages
    assert len(col.liqs) == 1
    assert col.liqs[0].symbol == "BTCUSDT"


async def test_recorded_raw_messages_replay_as_a_tape(tmp_path: Path) -> None:
    msgs = tape_messages(TAPE, 20)
    server = LocalBinance()
    async with serve(server.app) as port:
        cfg = _cfg(f"ws://127.0.0.1:{port}/ws", f"http://127.0.0.1:{port}")
        recorder = RawRecorder(tmp_path, "binance", max_bytes=2_000)
        stream = VenueStream(
            "binance", make_exchange("binance", cfg), cfg, print, recorder=recorder
        )
        col = Collector(MergedSources([stream], wall_ms))
        try:
            await asyncio.wait_for(server.subscribed.wait(), WAIT_S)
            await server.play(msgs)
            await col.until(lambda: len(col.liqs) == 20)
        finally:
            await col.close()
    assert len(recorder.files) > 1  # rotated by size
    replayed = [liq for f in recorder.files for liq in open_tape(f)]
    assert replayed == col.liqs == expected(msgs)


def test_dedupe_memory_is_bounded() -> None:
    d = Dedupe(capacity=3)
    assert [d.seen(x) for x in "abcd"] == [False] * 4
    assert len(d) == 3
    assert d.seen("a") is False  # forgotten: the oldest went first
    assert d.seen("d") is True


async def test_binance_mark_prices_become_price_ticks() -> None:
    async with binance_stream(price_symbols=("BTCUSDT",)) as (server, col):
        server.marks["BTCUSDT"] = 91_234.5
        await asyncio.wait_for(server.marks_subscribed.wait(), WAIT_S)
        await server.send_marks()
        await col.until(lambda: bool(col.ticks))
    assert [(t.symbol, t.price, t.venue) for t in col.ticks] == [
        ("BTCUSDT", 91_234.5, "binance-usdm")
    ]
    assert col.liqs == []  # marks are prices, not liquidations


async def test_unknown_symbol_stops_that_venue_with_a_reason() -> None:
    server = LocalBinance()
    async with serve(server.app) as port:
        cfg = _cfg(f"ws://127.0.0.1:{port}/ws", f"http://127.0.0.1:{port}", symbols=("NOPEUSDT",))
        stream = VenueStream("binance", make_exchange("binance", cfg), cfg, print)
        col = Collector(MergedSources([stream], wall_ms))
        try:
            await col.until(lambda: any(s.state == "blind" for s in col.status))
        finally:
            await col.close()
    assert "'NOPEUSDT' is not a market there" in col.status[-1].detail
    assert stream.health.reconnects == 0  # a configuration error is not retried
    assert not server.subscribed.is_set()
