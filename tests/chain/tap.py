"""Drive a live on-chain source in the tests: its events() in a task, queued."""

from __future__ import annotations

import asyncio
from typing import Any

from bot.events import FeedStatus, Liquidation
from bot.sources.onchain.history import LogReader
from bot.sources.onchain.live import OnchainSource
from bot.sources.onchain.rpc import http_web3
from tests.chain.world import World

STEP_S = 10.0  # generous bound for one awaited event; tests never assert on timing


class Tap:
    """Runs a source's events() in a task and queues what it yields."""

    def __init__(self, source: OnchainSource) -> None:
        self.source = source
        self.queue: asyncio.Queue[Liquidation | FeedStatus] = asyncio.Queue()
        self.statuses: list[FeedStatus] = []  # every status seen, in order
        self.task = asyncio.create_task(self._pump())

    async def _pump(self) -> None:
        async for item in self.source.events():
            if isinstance(item, FeedStatus):
                self.statuses.append(item)
            await self.queue.put(item)

    async def next_liquidation(self) -> Liquidation:
        while True:
            item = await asyncio.wait_for(self.queue.get(), STEP_S)
            if isinstance(item, Liquidation):
                return item

    async def next_status(self, state: str) -> FeedStatus:
        while True:
            item = await asyncio.wait_for(self.queue.get(), STEP_S)
            if isinstance(item, FeedStatus) and item.state == state:
                return item

    def drained(self) -> list[Liquidation | FeedStatus]:
        items = []
        while not self.queue.empty():
            items.append(self.queue.get_nowait())
        return items

    async def stop(self) -> None:
        await self.source.close()
        await asyncio.wait_for(self.task, STEP_S)


def make_source(world: World, http: str, ws: str | None, journal: Any, **cfg: Any) -> OnchainSource:
    chain = world.chain_config(**cfg)
    return OnchainSource("test", LogReader(http_web3(http), "test", chain), journal, ws)
