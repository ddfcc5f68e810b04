"""The venues beyond Binance/Bybit/OKX, part 2: refused subscriptions (HTX, Bitget) through the
real wiring; the fund's own Hyperliquid accounts (userFills over ccxt); Gate contract sizes
from its contracts endpoint; dYdX DELEVERAGED trades counted and shown apart."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from bot.app.live import create_live_sources
from bot.app.wiring import Runtime, build
from bot.config.loader import load_settings
from bot.events import FeedStatus
from bot.notify.format import render
from bot.sim.localexchange import local_secrets, serve
from bot.sim.localexchange.fakes import LocalBitgetUta, LocalHtxLinearSwap
from bot.sources.feeds import merged_sources

WAIT_S = 15.0  # a bound for local round trips; never a timing assertion


def now_ms() -> int:
    return time.time_ns() // 1_000_000


async def until(cond: Callable[[], bool]) -> None:
    async def poll() -> None:
        while not cond():  # noqa: ASYNC110 - any condition over the run's state
            await asyncio.sleep(0.02)

    await asyncio.wait_for(poll(), WAIT_S)


class Told:
    """Every notification, as the channels receive it."""

    def __init__(self) -> None:
        self.events: list[object] = []

    async def notify(self, event: object) -> None:
        render(event)  # every notice must render
        self.events.append(event)

    async def close(self) -> None:
        return None

    def feeds(self) -> list[FeedStatus]:
        return [e for e in self.events if isinstance(e, FeedStatus)]


class Run:
    def __init__(self, runtime: Runtime, told: Told, sources: list[Any]) -> None:
        self.rt, self.told, self.sources = runtime, told, sources
        self.orch = runtime.orchestrator

    def rows(self, kind: str) -> list[dict[str, Any]]:
        self.rt.journal.flush()
        return [e["payload"] for e in self.rt.journal.find(kinds=[kind])]

    def feed(self, name: str) -> dict[str, Any]:
        return dict(self.orch.status()["feeds"].get(name, {}))


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


@asynccontextmanager
async def running(tmp_path: Path, settings: Any, names: list[str]) -> AsyncIterator[Run]:
    told = Told()
    runtime = build(
        settings,
        local_secrets(),
        mode="paper",
        identity="venues2",
        journal_url=str(tmp_path / "journal.sqlite"),
        approvals="auto",
        notifiers=[told],
    )
    sources = create_live_sources(settings, None, names)
    stream = merged_sources(sources, runtime.clock.now_ms)
    task = asyncio.create_task(runtime.orchestrator.run(stream))
    try:
        yield Run(runtime, told, list(sources))
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await stream.aclose()
        await runtime.close()


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
            await until(lambda: run.feed("htx").get("state") == "blind")
            await run.orch.notifier.flush()
            feed = run.feed("htx")
            rows = [r for r in run.rows("feed") if r["venue"] == "htx"]
            told = [s for s in run.told.feeds() if s.state != "live"]
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
            await until(lambda: run.feed("bitget").get("state") == "blind")
            await run.orch.notifier.flush()
            feed = run.feed("bitget")
            rows = [r for r in run.rows("feed") if r["venue"] == "bitget"]
            told = [s for s in run.told.feeds() if s.state != "live"]
    reason = "Bitget refused usdc-futures liquidation: code 30001: instType:usdc-futures"
    assert reason in feed["detail"] and reason in rows[-1]["detail"]
    assert len(told) == 1 and reason in told[0].detail
