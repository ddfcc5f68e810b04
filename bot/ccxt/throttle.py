"""ccxt's client-side rate limiter, with idle time credited.

ccxt 4.5.90's leaky bucket (ccxt/async_support/base/throttler.py) refills only while a request
waits in its loop: the time between requests is never credited, so every request waited
`cost of the previous request x rateLimit` however long ago that was (on Binance USD-M 200 ms
before each order after an order, 250 ms after a position read). Same weights, same rate,
same capacity here; the bucket refills with wall time, and a request that finds tokens is
let through at once instead of after a hop through the loop. A request that must wait sleeps
until its tokens are there: ccxt's loop woke every millisecond of the wait, and each wake-up
ran on the event loop the live pipeline reacts on.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from ccxt.async_support.base.throttler import Throttler


class IdleCreditThrottler(Throttler):
    def __init__(self, config: dict[str, Any], loop: Any = None) -> None:
        super().__init__(config, loop)
        self.running: bool = False
        self._last_ms: float | None = None

    def _refill(self) -> None:
        now_ms = time.monotonic() * 1000
        if self._last_ms is not None:
            cfg = self.config
            gained = (now_ms - self._last_ms) * cfg["refillRate"]
            cfg["tokens"] = min(cfg["tokens"] + gained, cfg["capacity"])
        self._last_ms = now_ms

    def __call__(self, cost: float | None = None) -> asyncio.Future[None]:
        if not self.queue:  # nothing waiting ahead (a looper may be winding down: harmless)
            self._refill()
            if self.config["tokens"] >= 0:  # tokens available: no wait, no loop hop
                self.config["tokens"] -= self.config["cost"] if cost is None else cost
                done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
                done.set_result(None)
                return done
        return super().__call__(cost)

    async def leaky_bucket_loop(self) -> None:
        while self.running:
            future, cost = self.queue[0]
            cost = self.config["cost"] if cost is None else cost
            self._refill()
            if self.config["tokens"] >= 0:
                self.config["tokens"] -= cost
                if not future.done():
                    future.set_result(None)
                self.queue.popleft()
                await asyncio.sleep(0)
                if len(self.queue) == 0:
                    self.running = False
            else:  # asleep until the debt is paid back, not awake every `delay` (1 ms)
                rate = self.config["refillRate"]
                debt_ms = -self.config["tokens"] / rate if rate > 0 else 0.0
                await asyncio.sleep(max(self.config["delay"], debt_ms / 1000))
