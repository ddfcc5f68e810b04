"""Clocks: wall time live, simulated time in a replay.

- WallClock: `time.time()`; `sleep_until` sleeps on the event loop.
- SimClock: time moves only when the replay calls `advance_to(ts_ms)`; a `sleep_until` resolves
  when the replay gets past its time, so approval timeouts and TWAP slices run in tape time.
- yield_turns: a few loop turns, so woken tasks reach their next wait (SimClock.settle uses it)
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time

# Loop turns given to a woken task to reach its next wait (paper I/O never really waits).
SETTLE_TURNS = 8


async def yield_turns(turns: int = SETTLE_TURNS) -> None:
    """Let woken tasks run up to their next wait."""
    for _ in range(turns):
        await asyncio.sleep(0)


class WallClock:
    """Real time, for live and paper-on-live-streams modes."""

    def now_ms(self) -> int:
        return int(time.time() * 1000)

    async def sleep_until(self, ts_ms: int) -> None:
        delay_s = (ts_ms - self.now_ms()) / 1000
        if delay_s > 0:
            await asyncio.sleep(delay_s)


class SimClock:
    """Simulated time driven by the replay; sleepers wake in time order, one at a time."""

    def __init__(self, start_ms: int = 0) -> None:
        self._now_ms = start_ms
        self._sleepers: list[tuple[int, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()

    def now_ms(self) -> int:
        return self._now_ms

    async def sleep_until(self, ts_ms: int) -> None:
        if ts_ms <= self._now_ms:
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (ts_ms, next(self._seq), fut))
        await fut

    @property
    def next_wake_ms(self) -> int | None:
        """The earliest time a sleeper waits for (cancelled ones dropped)."""
        while self._sleepers and self._sleepers[0][2].done():
            heapq.heappop(self._sleepers)
        return self._sleepers[0][0] if self._sleepers else None

    async def advance_to(self, ts_ms: int) -> None:
        """Move time forward to `ts_ms`, waking each sleeper at its own time, in order."""
        while (wake := self.next_wake_ms) is not None and wake <= ts_ms:
            _, _, fut = heapq.heappop(self._sleepers)
            self._now_ms = max(self._now_ms, wake)
            fut.set_result(None)
            await self.settle()
        self._now_ms = max(self._now_ms, ts_ms)
        await self.settle()

    async def drain(self, limit_ms: int | None = None) -> None:
        """After the tape: keep advancing to each pending wake-up (up to `limit_ms`)."""
        while (wake := self.next_wake_ms) is not None and (limit_ms is None or wake <= limit_ms):
            await self.advance_to(wake)

    async def settle(self) -> None:
        """Let woken tasks run up to their next wait before time moves again."""
        await yield_turns()
