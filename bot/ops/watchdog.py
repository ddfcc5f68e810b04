"""The watchdog: a heartbeat in the event loop that proves the pipeline turns.

Each beat measures how late the loop woke (its lag) and, while healthy, tells the outside:
- systemd (`Type=notify`): READY=1 once started, WATCHDOG=1 every beat, STOPPING=1 at the end,
  over $NOTIFY_SOCKET (a unix datagram socket); a loop that hangs sends nothing, so systemd's
  WatchdogSec= restarts the process
- healthcheck.ping_url: a GET every interval_s (a dead-man's switch: a missed ping is theirs
  to alarm on); never awaited by the beat, so a slow endpoint cannot stall it
- health(): "ok"/"unhealthy" and one line why, for /healthz and `liqguard health`
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
from collections.abc import Callable, Mapping

import aiohttp
from loguru import logger

from bot.config.ops import HealthcheckConfig
from bot.logs import redact

PING_TIMEOUT_S = 10.0


class SdNotify:
    """sd_notify(3) without libsystemd: one datagram per message to $NOTIFY_SOCKET."""

    def __init__(self, env: Mapping[str, str]) -> None:
        path = env.get("NOTIFY_SOCKET") or ""
        self.path = "\0" + path[1:] if path.startswith("@") else path
        self.sock: socket.socket | None = None
        usec = env.get("WATCHDOG_USEC", "")
        # systemd asks for a ping at least every WATCHDOG_USEC; half of it leaves a margin
        self.every_s = int(usec) / 2e6 if usec.isdigit() and int(usec) > 0 else None

    @property
    def enabled(self) -> bool:
        return bool(self.path)

    def send(self, message: str) -> bool:
        if not self.path:
            return False
        try:
            if self.sock is None:
                self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            self.sock.sendto(message.encode(), self.path)
            return True
        except OSError as exc:  # systemd gone or the socket removed: the run goes on
            logger.warning("sd_notify {}: {}", message.split("=", 1)[0], exc)
            return False

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None


class Watchdog:
    def __init__(
        self,
        config: HealthcheckConfig,
        last_commit_s: Callable[[], float | None],
        last_events: Callable[[], Mapping[str, float]],
        env: Mapping[str, str] | None = None,
        on_lag: Callable[[float], None] | None = None,
        on_health: Callable[[bool, str], None] | None = None,
    ) -> None:
        self.config = config
        self.last_commit_s = last_commit_s
        self.last_events = last_events
        self.notify = SdNotify(os.environ if env is None else env)
        self.on_lag = on_lag
        self.on_health = on_health  # called when the verdict changes (paging: unhealthy)
        self._healthy = True
        self.lag_s = 0.0
        self.beats = 0
        self.pings = 0
        self.last_beat_s: float | None = None
        self._task: asyncio.Task[None] | None = None
        self._pinging: asyncio.Task[None] | None = None
        self._session: aiohttp.ClientSession | None = None
        self._last_ping_s = 0.0

    @property
    def beat_s(self) -> float:
        every = self.notify.every_s
        return min(self.config.beat_s, every) if every else self.config.beat_s

    def start(self) -> None:
        self.last_beat_s = time.time()
        self.notify.send("READY=1\nSTATUS=liqguard running")
        self._task = asyncio.create_task(self._run(), name="liqguard-watchdog")

    async def close(self) -> None:
        for task in (self._task, self._pinging):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self.notify.send("STOPPING=1")
        self.notify.close()
        if self._session is not None:
            await self._session.close()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            began = loop.time()
            await asyncio.sleep(self.beat_s)
            self.beat(max(0.0, loop.time() - began - self.beat_s))

    def beat(self, lag_s: float) -> None:
        self.lag_s = lag_s
        self.last_beat_s = time.time()
        self.beats += 1
        if self.on_lag is not None:
            self.on_lag(lag_s)
        ok, why = self.health()
        if ok != self._healthy and self.on_health is not None:
            self._healthy = ok
            self.on_health(ok, why)
        if not ok:  # no ping while unhealthy: the outside sees the silence
            self.notify.send(f"STATUS=unhealthy: {why}")
            return
        self.notify.send("WATCHDOG=1")
        url = self.config.ping_url
        now = time.monotonic()
        due = url and now - self._last_ping_s >= self.config.interval_s
        if due and (self._pinging is None or self._pinging.done()):
            self._last_ping_s = now
            self._pinging = asyncio.create_task(self._ping(str(url)), name="liqguard-ping")

    async def _ping(self, url: str) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=PING_TIMEOUT_S)
            )
        try:
            async with self._session.get(url) as resp:
                await resp.read()
                if resp.status >= 400:
                    logger.warning("healthcheck.ping_url answered HTTP {}", resp.status)
                else:
                    self.pings += 1
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            logger.warning(
                "healthcheck.ping_url failed: {}", redact(f"{type(exc).__name__}: {exc}")
            )

    def health(self) -> tuple[bool, str]:
        """(healthy?, one line why)."""
        now = time.time()
        cfg = self.config
        if self.lag_s > cfg.max_loop_lag_s:
            return False, f"the event loop lagged {self.lag_s:.1f} s (max {cfg.max_loop_lag_s:g} s)"
        stale_s = now - (self.last_beat_s or now)
        if stale_s > max(3 * self.beat_s, cfg.max_loop_lag_s):
            return False, f"no heartbeat for {stale_s:.1f} s"
        commit = self.last_commit_s()
        if cfg.max_commit_age_s is not None and commit is not None:
            age = now - commit
            if age > cfg.max_commit_age_s:
                return False, f"no journal commit for {age:.0f} s (max {cfg.max_commit_age_s:g} s)"
        parts = [f"loop lag {self.lag_s * 1000:.0f} ms"]
        events = self.last_events()
        if events:
            feed, at = max(events.items(), key=lambda kv: kv[1])
            parts.append(f"last event {now - at:.0f} s ago ({feed})")
        else:
            parts.append("no event yet")
        if commit is not None:
            parts.append(f"last journal commit {now - commit:.0f} s ago")
        return True, ", ".join(parts)
