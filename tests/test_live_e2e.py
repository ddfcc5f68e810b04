"""An anomaly on the live stream becomes the right orders on the local exchange.

Everything real except the exchange: ccxt.pro stream -> Detector -> Orchestrator (policy, risk,
auto approval, journal) -> CcxtBroker -> signed REST on the local Binance, all via bot.app.wiring.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Literal

import pytest

from bot.app.live import create_live_sources
from bot.app.wiring import build
from bot.config.loader import load_settings
from bot.sim.localexchange import local_secrets, serve
from bot.sim.localexchange.binance import LocalBinance
from bot.sim.localexchange.tapes import tape_messages
from bot.sources.venues import parse_raw_message
from tests.live_tools import until

TAPE = Path(__file__).resolve().parents[1] / "bot/data/binance-btcusdt_2024-12-04_06.csv"
THRESHOLD_USD = 100_000.0


def crossing_messages() -> list[dict[str, Any]]:
    """The first tape messages up to the one whose running sum crosses the threshold."""
    messages, total_usd = [], 0.0
    for msg in tape_messages(TAPE, 400):
        messages.append(msg)
        total_usd += sum(liq.notional_usd for liq in parse_raw_message(msg))
        if total_usd >= THRESHOLD_USD:
            return messages
    raise AssertionError("the tape never crosses the threshold")


def _at(msg: dict[str, Any], ts_ms: int) -> dict[str, Any]:
    return {**msg, "E": ts_ms + 1, "o": {**msg["o"], "T": ts_ms}}


REDUCE_HALF = {"levels": {1: [{"strategy": "reduce_exposure", "params": {"fraction": 0.5}}]}}


def settings_for(port: int, mode: str = "live", policy: dict[str, Any] = REDUCE_HALF) -> Any:
    endpoints = {
        "rest": f"http://127.0.0.1:{port}",
        "ws": f"ws://127.0.0.1:{port}/ws",
        "allow_insecure": True,
    }
    return load_settings(
        overrides={
            "mode": mode,
            "rules": [{"name": "all", "window_s": 3600, "threshold_usd": THRESHOLD_USD}],
            "policy": {**policy, "calm": []},
            "exchanges": {"venues": {"binance": {"endpoints": endpoints}}},
        }
    )


@asynccontextmanager
async def live_run(
    settings: Any, tmp_path: Path, mode: Literal["paper", "live"] = "live"
) -> AsyncIterator[Any]:
    """`liqguard run --live` (or a paper account on the live stream, no keys) on the local
    Binance's stream with auto approvals, while in the block; yields the runtime."""
    secrets = local_secrets()
    runtime = build(
        settings,
        secrets,
        mode=mode,
        identity=f"e2e-{mode}",
        journal_url=str(tmp_path / "journal.sqlite"),
        approvals="auto",
    )
    keys = secrets if mode == "live" else None
    source = create_live_sources(settings, keys, ["binance"])[0]
    runner = asyncio.create_task(runtime.orchestrator.run(source.events()))
    try:
        yield runtime
    finally:
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)
        await source.close()
        await runtime.close()


async def test_anomaly_on_stream_sends_reduce_only_order(tmp_path: Path) -> None:
    server = LocalBinance()
    server.set_position("BTCUSDT", 0.8, 96_000.0)
    messages = crossing_messages()
    async with serve(server.app) as port, live_run(settings_for(port), tmp_path):
        await asyncio.wait_for(server.subscribed.wait(), 10)
        now_ms = time.time_ns() // 1_000_000  # fresh frames: stale ones never trade
        messages = [_at(m, now_ms + k) for k, m in enumerate(messages)]
        await server.play(messages[:-1])
        await asyncio.sleep(0.2)
        assert server.order_requests() == []  # below the threshold: nothing
        await server.play(messages[-1:])

        await asyncio.wait_for(server.order_arrived.wait(), 10)
        await asyncio.sleep(0.2)
    assert len(server.orders) == 1
    order = server.orders[0]
    assert (order["symbol"], order["side"], order["type"]) == ("BTCUSDT", "SELL", "MARKET")
    assert order["reduceOnly"] is True
    assert float(order["origQty"]) == pytest.approx(0.4)  # half of the 0.8 long
    assert order["clientOrderId"].startswith("lg") and order["clientOrderId"].endswith("-0")
    assert server.positions["BTCUSDT"].amount == pytest.approx(0.4)


async def test_a_hedge_planned_after_a_reduction_sizes_on_what_the_reduction_left(
    tmp_path: Path,
) -> None:
    # the default level 2's shape: reduce, then hedge. The hedge plans while the reduction's
    # order is on its way and must hedge the half left, as paper mode does (it hedged 0.189
    # BTC, the whole $36,000, before plans waited for orders on their way; and without a BTC
    # position it had no price for its perp at all)
    server = LocalBinance()
    server.set_position("ETHUSDT", 10.0, 3_500.0)  # $36,000 at the local mark of $3,600
    # no BTC held: the hedge's perp is priced at each account read all the same
    server.slow_next_orders = [0.1]  # the reduction's round trip: longer than a few loop turns
    eth = ["ETHUSDT"]
    reduce = {"strategy": "reduce_exposure", "params": {"fraction": 0.5, "symbols": eth}}
    hedge = {"strategy": "hedge", "params": {"hedge_ratio": 0.5, "when": "always", "symbols": eth}}
    messages = crossing_messages()
    async with serve(server.app) as port:
        settings = settings_for(port, policy={"levels": {1: [reduce, hedge]}})
        async with live_run(settings, tmp_path):
            await asyncio.wait_for(server.subscribed.wait(), 10)
            now_ms = time.time_ns() // 1_000_000
            await server.play([_at(m, now_ms + k) for k, m in enumerate(messages)])
            await until(lambda: len(server.orders) == 2)  # the reduction, then the hedge
    sold, hedged = server.orders
    assert (sold["symbol"], sold["side"], sold["reduceOnly"]) == ("ETHUSDT", "SELL", True)
    assert float(sold["origQty"]) == pytest.approx(5.0)
    assert (hedged["symbol"], hedged["side"], hedged["reduceOnly"]) == ("BTCUSDT", "SELL", False)
    # half of the $18,000 left, at BTC's $95,000: 0.0947 BTC (to the venue's 0.001 step)
    assert float(hedged["origQty"]) == pytest.approx(9_000 / 95_000, abs=0.001)


async def test_paper_broker_on_live_data_fills_at_live_marks(tmp_path: Path) -> None:
    """`liqguard run --source binance`: live stream and marks, paper account, no keys."""
    server = LocalBinance()
    server.marks["BTCUSDT"] = 93_000.0
    async with (
        serve(server.app) as port,
        live_run(settings_for(port, mode="paper"), tmp_path, "paper") as runtime,
    ):
        await asyncio.wait_for(server.marks_subscribed.wait(), 10)
        await asyncio.wait_for(server.subscribed.wait(), 10)
        await server.send_marks()  # the paper account opens at the first live price
        for _ in range(500):
            held = sum(p.size for p in (await runtime.broker.portfolio()).positions)
            if held:
                break
            await asyncio.sleep(0.01)
        now_ms = time.time_ns() // 1_000_000  # after the marks: events must not be late
        await server.play([_at(m, now_ms + k) for k, m in enumerate(crossing_messages())])
        fills: list[Any] = []
        for _ in range(500):
            fills = runtime.journal.find(kinds=["fill"])
            if fills:
                break
            await asyncio.sleep(0.01)
    assert server.orders == []  # paper: nothing reached the exchange
    assert held > 0 and len(fills) == 1
    fill = fills[0]["payload"]
    assert fill["side"] == "sell" and fill["amount"] == pytest.approx(held / 2)
    assert fill["price"] == pytest.approx(93_000.0, rel=0.02)  # the live mark, with slippage
