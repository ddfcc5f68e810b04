"""Notifications off the hot path: queued at once, delivered in order by a background task.

A console line costs ~1.5 ms and a Telegram or webhook call far more; none of it may stand
between the frame that crosses a threshold and the order it causes. `notify` only queues
(unbounded: nothing is ever dropped); the delivery task waits while the runtime holds the
path (`hold()`: an event being handled, an order on its way) and until the path has been
free for `idle_s` (a cascade's frames come in bursts: speak between bursts, not inside one),
at most `hold_max_s` after the first queued event, then delivers everything queued.
`before_delivery` runs first (the orchestrator commits the journal: nobody is told what the
journal does not hold). `flush()` delivers what is queued now; `close(deadline_s)` delivers
within a deadline, then says what it could not deliver.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable, Iterator

from loguru import logger

from bot.interfaces import Notifier

EXIT_DELIVERY_S = 10.0  # at the end of a run, notifications get this long; then reported


class BackgroundNotifier:
    name = "background"

    def __init__(
        self,
        inner: Notifier,
        hold_max_s: float = 1.0,
        idle_s: float = 0.05,
        before_delivery: Callable[[], None] | None = None,
    ) -> None:
        self.inner = inner
        self.hold_max_s = hold_max_s
        self.idle_s = idle_s
        self.before_delivery = before_delivery
        self._free_since = 0.0  # loop time the last hold ended
        self._queue: deque[object] = deque()
        self._wake = asyncio.Event()
        self._quiet = asyncio.Event()
        self._quiet.set()
        self._holds = 0
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self.undelivered = 0  # notifications given up on (a channel that did not answer)
        self._order = asyncio.Lock()  # one drain at a time: delivery keeps the queue's order

    @property
    def pending(self) -> int:
        return len(self._queue)

    async def notify(self, event: object) -> None:
        """Queue the event; never blocks, never drops."""
        self._queue.append(event)
        if self._closed:  # late events after close: deliver inline rather than lose them
            await self._drain()
            return
        self._wake.set()
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name="notify-background"
            )

    @contextlib.contextmanager
    def hold(self) -> Iterator[None]:
        """While held (nestable), deliveries wait: the hot path has the event loop."""
        self.take()
        try:
            yield
        finally:
            self.release()

    def take(self) -> None:
        """`hold` without a context manager (each paired with one `release`)."""
        self._holds += 1
        if self._holds == 1:
            self._quiet.clear()

    def release(self) -> None:
        self._holds -= 1
        if self._holds == 0:
            self._free_since = asyncio.get_running_loop().time()
            self._quiet.set()

    async def flush(self, deadline_s: float | None = None) -> int:
        """Deliver everything queued so far, now (shutdown, end of a replay, tests), within
        `deadline_s` (None: however long it takes); returns how many were given up on."""
        try:
            async with asyncio.timeout(deadline_s):
                await self._drain()
        except TimeoutError:  # an unreachable channel must not hold the exit
            logger.error(
                "{} notification(s) not delivered within {:g} s (a channel did not answer); "
                "the journal holds every step",
                len(self._queue),
                deadline_s,
            )
            return self.discard()  # reported once: a later flush does not wait on it again
        return 0

    def discard(self) -> int:
        """Forget what is queued (already reported as undelivered); returns how many."""
        n = len(self._queue)
        self._queue.clear()
        self.undelivered += n
        return n

    async def close(self, deadline_s: float | None = None) -> None:
        """Deliver what is queued, within `deadline_s` (None: however long it takes), then
        close the channels; `undelivered` counts what could not be delivered."""
        self._closed = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.flush(deadline_s)
        await self.inner.close()

    async def _run(self) -> None:
        while True:
            if not self._queue:
                self._wake.clear()
                await self._wake.wait()
                continue
            await self._wait_for_a_lull()
            await self._drain()

    async def _wait_for_a_lull(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.hold_max_s
        while (now := loop.time()) < deadline:
            if self._holds:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(deadline - now):
                        await self._quiet.wait()
                continue
            free_s = now - self._free_since
            if free_s >= self.idle_s:
                return
            await asyncio.sleep(min(self.idle_s - free_s, deadline - now))

    async def _drain(self) -> None:
        if self._queue and self.before_delivery is not None:
            try:
                self.before_delivery()
            except Exception as exc:  # the journal's own errors surface on its next write
                logger.warning("before delivery: {}: {}", type(exc).__name__, exc)
        async with self._order:
            while self._queue:
                event = self._queue[0]  # popped once delivered: a cancel mid-way loses nothing
                try:
                    await self.inner.notify(event)
                except Exception as exc:  # a notifier that raises only loses its say
                    logger.warning(
                        "notifier {} failed: {}: {}", self.inner.name, type(exc).__name__, exc
                    )
                self._queue.popleft()
