"""Waiting on the local exchanges: a bound for round trips (never a timing assertion)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from bot.app.live import create_live_sources
from bot.app.wiring import Runtime, build
from bot.events import FeedStatus
from bot.sim.localexchange import local_secrets
from bot.sources.feeds import MergedSources, merged_sources
from tests.recorders import RenderedTold

WAIT_S = 15.0  # a bound for local round trips and reconnects; never a timing assertion


def now_ms() -> int:
    return time.time_ns() // 1_000_000


async def until(cond: Callable[[], bool], wait_s: float = WAIT_S) -> None:
    async def poll() -> None:
        while not cond():  # noqa: ASYNC110 - any condition over the run's state
            await asyncio.sleep(0.02)

    await asyncio.wait_for(poll(), wait_s)


async def collect(
    live: MergedSources, cond: Callable[[list[Any]], bool], wait_s: float = WAIT_S
) -> list[Any]:
    """The merged events up to the first point where cond holds on all seen so far."""
    seen: list[Any] = []

    async def run() -> None:
        async for ev in live.events():
            seen.append(ev)
            if cond(seen):
                return

    await asyncio.wait_for(run(), wait_s)
    return seen


class Run:
    """A paper or live run on the local exchanges: its runtime, what it told, its journal."""

    def __init__(self, runtime: Runtime, told: RenderedTold, sources: list[Any]) -> None:
        self.rt, self.told, self.sources = runtime, told, sources
        self.orch = runtime.orchestrator

    def rows(self, kind: str) -> list[dict[str, Any]]:
        self.rt.journal.flush()
        return [e["payload"] for e in self.rt.journal.find(kinds=[kind])]

    def feed_states(self) -> list[str]:
        return [r["state"] for r in self.rows("feed") if not r["detail"].startswith("clock")]

    def feed(self, name: str = "binance") -> dict[str, Any]:
        return dict(self.orch.status()["feeds"].get(name, {}))

    async def until_blind(
        self, name: str
    ) -> tuple[dict[str, Any], list[dict[str, Any]], list[FeedStatus]]:
        """Once the feed is blind: its status, its journaled feed rows, the alerts not `live`."""
        await until(lambda: self.feed(name).get("state") == "blind")
        await self.orch.notifier.flush()
        feed = self.feed(name)
        rows = [r for r in self.rows("feed") if r["venue"] == name]
        return feed, rows, [s for s in self.told.feeds() if s.state != "live"]


@asynccontextmanager
async def running(
    tmp_path: Path, settings: Any, names: list[str], *, mode: str, identity: str
) -> AsyncIterator[Run]:
    """The real wiring on the named venues' live sources, until the block ends."""
    told = RenderedTold()
    runtime = build(
        settings,
        local_secrets(),
        mode=mode,  # type: ignore[arg-type]
        identity=identity,
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
