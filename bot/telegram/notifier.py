"""TelegramNotifier: alerts to the chat, bursts coalesced, 429 answers waited out, none dropped.

`notify` only queues (it never waits on Telegram); one sender task sends what is queued as one
message (split at Telegram's 4096 characters), then waits `coalesce_s` before the next send,
so a burst of anomalies becomes a few messages instead of a flood. An anomaly in a batch adds
a chart (PNG) when a chart source is given. A 429 is retried after its `retry_after` (first by
PTB's AIORateLimiter, then here) until sent; network failures are retried with a backoff.

- TelegramNotifier(app, config, chart_source).notify(event) / flush() / close()
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import warnings
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from loguru import logger
from telegram.error import NetworkError, RetryAfter, TelegramError

from bot.config.telegram import TelegramConfig
from bot.events import Anomaly, ApprovalRequest, Decision
from bot.notify.charts import render_chart
from bot.telegram.app import TelegramApp
from bot.telegram.text import format_event

if TYPE_CHECKING:
    from bot.notify.charts import ChartInput

ChartSource = Callable[[], Awaitable["ChartInput | None"]]
_MAX_TEXT = 4096
_NETWORK_TRIES = 5


def retry_after_s(exc: RetryAfter) -> float:
    """Seconds to wait from a RetryAfter (int or timedelta depending on PTB settings)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        value: Any = exc.retry_after
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


def chunks(texts: list[str], limit: int = _MAX_TEXT) -> list[str]:
    """Join alert texts with blank lines into messages of at most `limit` characters."""
    out: list[str] = []
    for text in texts:
        text = text[:limit]
        if out and len(out[-1]) + 2 + len(text) <= limit:
            out[-1] += "\n\n" + text
        else:
            out.append(text)
    return out


class TelegramNotifier:
    name = "telegram"

    def __init__(
        self,
        app: TelegramApp,
        config: TelegramConfig,
        chart_source: ChartSource | None = None,
    ) -> None:
        self.app = app
        self.config = config
        self.chart_source = chart_source
        self._queue: list[object] = []
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    async def notify(self, event: object) -> None:
        if not self.config.notifications or self._closing:
            return
        # The approval message itself is the request, and its edit shows the decision.
        if isinstance(event, ApprovalRequest | Decision):
            return
        self._queue.append(event)
        self._idle.clear()
        self._wake.set()
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._sender(), name="telegram-notifier")

    async def flush(self, timeout_s: float = 30.0) -> None:
        """Wait until everything queued so far was sent (or given up)."""
        await asyncio.wait_for(self._idle.wait(), timeout_s)

    async def close(self) -> None:
        self._closing = True
        with contextlib.suppress(TimeoutError):
            await self.flush(timeout_s=10.0)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _sender(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            batch, self._queue = self._queue, []
            if batch:
                await self._send_batch(batch)
            if not self._queue:
                self._idle.set()
            # Hold the next send back: what arrives meanwhile goes out as one message.
            await asyncio.sleep(self.config.coalesce_s)

    async def _send_batch(self, batch: list[object]) -> None:
        texts = [format_event(e) for e in batch]
        if len(texts) > 1:
            texts[0] = f"[{len(texts)} alerts]\n" + texts[0]
        for text in chunks(texts):
            await self._deliver(functools.partial(self.app.send_text, text))
        anomalies = [e for e in batch if isinstance(e, Anomaly)]
        if anomalies and self.chart_source is not None and self.config.chart.enabled:
            try:
                data = await self.chart_source()
                png = await asyncio.to_thread(render_chart, data) if data is not None else None
            except Exception as exc:  # a chart is a bonus: never lose the alert for it
                logger.warning("chart failed: {}: {}", type(exc).__name__, exc)
                png = None
            if png is not None:
                last = anomalies[-1]
                caption = f"Rule {last.rule}: window sum vs thresholds, level {last.level}"
                await self._deliver(functools.partial(self.app.send_photo, png, caption))

    async def _deliver(self, send: Callable[[], Awaitable[object]]) -> bool:
        """Send once it works: 429 waits retry_after (no limit), network errors back off."""
        network_failures = 0
        while True:
            try:
                await send()
                return True
            except RetryAfter as exc:
                wait_s = retry_after_s(exc)
                logger.info("telegram 429: retrying after {:.1f} s", wait_s)
                await asyncio.sleep(wait_s)
            except NetworkError as exc:
                network_failures += 1
                if network_failures >= _NETWORK_TRIES:
                    logger.error("telegram alert lost after {} tries: {}", network_failures, exc)
                    return False
                await asyncio.sleep(min(30.0, 0.5 * 2**network_failures))
            except TelegramError as exc:  # a bad request will not get better by retrying
                logger.error("telegram refused an alert: {}: {}", type(exc).__name__, exc)
                return False
