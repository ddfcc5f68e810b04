"""The one delivery core of every outbound call: pagers (bot.paging) and bridges (bot.bridges).

A Delivery owns one channel. `submit(call)` only queues (the pipeline never waits on a pager
or another bot); a background task sends the calls in order, each within the channel's rate
limit (a token bucket: `max_per_minute`, a burst of as many), retried by tenacity with an
exponential backoff (or the server's Retry-After) on 429, 5xx, timeouts and network errors,
never on another 4xx. Every attempt is journaled (`kind`, outcome a DeliveryOutcome) with no
secret in it; a call that could not be delivered is handed to `on_failure`, which tells every
other channel.

- Call: what to send (op, key, summary, channel-specific body)
- Refused / Retryable: what a channel's `send` raises for a 4xx / a 429 or 5xx
- Channel: the protocol of a pager or bridge (`send(call) -> detail`, `close()`)
- Delivery(channel, kind, journal, now_ms, limits, on_failure).submit / drain / close
- http_error(status, text, retry_after): the exception for an HTTP answer that is no success
- HttpSession: the lazy aiohttp session an HTTP channel (pager or bridge) posts through
- FailureAlerts: the `on_failure` that tells every other channel (notifiers and pagers)
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import aiohttp
from loguru import logger
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
)

from bot.config.paging import DeliveryLimits
from bot.events import DeliveryOutcome, JournalKind, Notice
from bot.interfaces import Journal, Notifier
from bot.logs import redact


class Refused(Exception):
    """The far side said no (a 4xx other than 429): retrying would not help."""


class Retryable(Exception):
    """The far side is busy or broken for now (429, 5xx); `retry_after_s` if it said so."""

    def __init__(self, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


RETRIED = (Retryable, aiohttp.ClientError, TimeoutError, OSError)


def http_error(status: int, text: str, retry_after: str | None = None) -> Exception:
    """Refused or Retryable for an HTTP answer that is no success (the body cut short)."""
    message = f"HTTP {status}" + (f": {text.strip()[:160]}" if text.strip() else "")
    if status == 429 or status >= 500:
        try:
            wait_s = float(retry_after) if retry_after else None
        except ValueError:
            wait_s = None
        return Retryable(message, wait_s)
    return Refused(message)


class HttpSession:
    """One aiohttp session per channel, made on first use (in the running loop)."""

    def __init__(self, timeout_s: float) -> None:
        self._timeout_s = timeout_s
        self._session: aiohttp.ClientSession | None = None

    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self._timeout_s),
                headers={"User-Agent": "liqguard"},
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()


@dataclass(frozen=True, slots=True)
class Call:
    op: str  # what the far side is asked: trigger, resolve, pause, forceexit, start, stop, post
    key: str  # the episode or dedup key it belongs to
    summary: str  # one line for the journal and the failure alert
    body: Any = None  # the channel's own input
    alert_on_failure: bool = True  # False for a failure alert itself: no alert ping-pong
    ts_ms: int = 0


class Channel(Protocol):
    name: str

    async def send(self, call: Call) -> str:
        """Deliver once; return a short detail ("HTTP 202"); raise Refused, Retryable, or a
        network error (aiohttp.ClientError, TimeoutError, OSError)."""
        ...

    async def close(self) -> None: ...


FailureHandler = Callable[["Delivery", Call, str], Awaitable[None]]


@dataclass
class _Bucket:
    """Token bucket on the loop clock: `rate_per_s`, a burst of `capacity`."""

    capacity: float
    rate_per_s: float
    tokens: float = field(init=False)
    at: float = field(init=False, default=0.0)

    def __post_init__(self) -> None:
        self.tokens = self.capacity

    def wait_s(self, now: float) -> float:
        """Take a token; how long to wait before using it."""
        if self.at:
            self.tokens = min(self.capacity, self.tokens + (now - self.at) * self.rate_per_s)
        self.at = now
        self.tokens -= 1
        return 0.0 if self.tokens >= 0 else -self.tokens / self.rate_per_s


class Delivery:
    def __init__(
        self,
        channel: Channel,
        kind: JournalKind,
        journal: Journal,
        now_ms: Callable[[], int],
        limits: DeliveryLimits,
        on_failure: FailureHandler | None = None,
    ) -> None:
        self.channel = channel
        self.name = channel.name
        self.kind = kind
        self.journal = journal
        self.now_ms = now_ms
        self.limits = limits
        self.on_failure = on_failure
        self.bucket = _Bucket(limits.max_per_minute, limits.max_per_minute / 60)
        self.delivered = 0
        self.failed = 0
        self._queue: deque[Call] = deque()
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None

    @property
    def pending(self) -> int:
        return len(self._queue)

    def submit(self, call: Call) -> None:
        """Queue the call; never blocks."""
        self._queue.append(call)
        self._idle.clear()
        self._wake.set()
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name=f"deliver-{self.name}"
            )

    async def drain(self, deadline_s: float | None = None) -> int:
        """Wait until everything queued was delivered or given up; returns how many are left
        when the deadline passes."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(deadline_s):
                await self._idle.wait()
        return len(self._queue)

    async def close(self, deadline_s: float | None = None) -> int:
        """Deliver what is queued within `deadline_s`, then stop; returns how many were left."""
        left = await self.drain(deadline_s)
        if left:
            logger.error(
                "{}: {} call(s) not delivered before the exit; the journal holds every try",
                self.name,
                left,
            )
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.channel.close()
        return left

    async def _run(self) -> None:
        while True:
            if not self._queue:
                self._idle.set()
                self._wake.clear()
                await self._wake.wait()
                continue
            call = self._queue[0]
            try:
                await self._deliver(call)
            except Exception as exc:  # a broken channel must not stop the others' queue
                logger.error("{}: {}", self.name, redact(f"{type(exc).__name__}: {exc}"))
            self._queue.popleft()

    async def _deliver(self, call: Call) -> None:
        loop = asyncio.get_running_loop()
        if (wait_s := self.bucket.wait_s(loop.time())) > 0:
            logger.info("{}: rate limit, next call in {:.1f} s", self.name, wait_s)
            await asyncio.sleep(wait_s)
        attempts = stop_after_attempt(self.limits.retries + 1)
        backoff = wait_exponential(
            multiplier=self.limits.backoff_s,
            min=self.limits.backoff_s,
            max=self.limits.max_backoff_s,
        )

        def wait(state: RetryCallState) -> float:
            exc = state.outcome.exception() if state.outcome else None
            told = exc.retry_after_s if isinstance(exc, Retryable) else None
            return min(self.limits.max_backoff_s, told) if told is not None else backoff(state)

        attempt = 0
        try:
            async for tried in AsyncRetrying(
                stop=attempts,
                wait=wait,
                retry=retry_if_exception_type(RETRIED),
                reraise=True,
                sleep=asyncio.sleep,
            ):
                with tried:
                    attempt = tried.retry_state.attempt_number
                    try:
                        async with asyncio.timeout(self.limits.timeout_s):
                            detail = await self.channel.send(call)
                    except RETRIED as exc:
                        last = attempt > self.limits.retries
                        outcome = DeliveryOutcome.FAILED if last else DeliveryOutcome.RETRYING
                        self._journal(call, attempt, outcome, _why(exc))
                        raise
        except Refused as exc:
            self._journal(call, attempt, DeliveryOutcome.REFUSED, _why(exc))
            await self._failed(call, _why(exc), attempt)
            return
        except RETRIED as exc:
            await self._failed(call, _why(exc), attempt)
            return
        self.delivered += 1
        self._journal(call, attempt, DeliveryOutcome.DELIVERED, detail)

    def _journal(self, call: Call, attempt: int, outcome: DeliveryOutcome, detail: str) -> None:
        payload = {
            "channel": self.name,
            "op": call.op,
            "key": call.key,
            "attempt": attempt,
            "outcome": outcome.value,
            "detail": redact(detail)[:300],
            "summary": redact(call.summary)[:300],
        }
        try:
            self.journal.append(self.kind, self.now_ms(), payload)
        except Exception as exc:  # the journal's own errors surface on the pipeline's next write
            logger.warning("{}: journal: {}", self.name, exc)

    async def _failed(self, call: Call, why: str, attempts: int) -> None:
        self.failed += 1
        logger.error("{} gave up on {} after {} tr(ies): {}", self.name, call.op, attempts, why)
        if self.on_failure is not None:
            try:
                await self.on_failure(self, call, why)
            except Exception as exc:
                logger.error("{}: the failure alert failed: {}", self.name, redact(str(exc)))


def _why(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    if not isinstance(exc, Refused | Retryable):
        text = f"{type(exc).__name__}: {text}"
    return redact(text)


class FailureAlerts:
    """`on_failure` of every Delivery: a call that failed is told on every other channel —
    the notifiers (console, Telegram, webhooks) and the other pagers. A failure alert that
    fails itself is told to the notifiers only (no ping-pong between two broken pagers)."""

    def __init__(self, now_ms: Callable[[], int]) -> None:
        self.now_ms = now_ms
        self.notifiers: list[Notifier] = []  # set by the wiring once they are built
        self.pagers: list[Pages] = []

    async def __call__(self, delivery: Delivery, call: Call, why: str) -> None:
        what = "Paging" if delivery.kind == JournalKind.PAGE else "Bridge"
        notice = Notice(
            self.now_ms(),
            f"{what} {delivery.name} failed: {call.op} not delivered",
            f"{why}. It was: {call.summary}. The journal holds every try.",
            "critical",
            page=True,
        )
        for n in self.notifiers:
            try:
                await n.notify(notice)
            except Exception as exc:  # one notifier down must not silence the others
                logger.warning("notifier {} failed: {}", n.name, exc)
        if call.alert_on_failure:
            for pager in self.pagers:
                pager.page_failure(notice, exclude=delivery.name)


class Pages(Protocol):
    def page_failure(self, notice: Notice, exclude: str) -> None:
        """Page `notice` on every pager but `exclude`; their failure is not paged again."""
        ...
