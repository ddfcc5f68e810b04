"""Feed health: which venues the bot can see, and what may not advance while one is blind.

- FeedBook: the last FeedStatus per venue, liquidation arrivals, the rules a blind feed
  freezes (their clocks do not advance: the detector never reports calm on a dead feed),
  and the status view (state, silent_s, reconnects, clock skew)
- tick_rules: Detector.on_tick for the rules that are not frozen
- merged_sources: every LiveSource as one stream; a source that raises or ends is reported as
  a blind feed carrying its (redacted) error instead of dying silently
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from loguru import logger

from bot.config.rules import RuleConfig
from bot.detector import Detector
from bot.events import Calm, Event, FeedStatus
from bot.interfaces import LiveSource
from bot.logs import redact
from bot.symbols import venue_matches

# A chain feed ("onchain-ethereum") carries the liquidations of the lending protocols on it.
_ONCHAIN_FAMILIES = ("aave", "compound")


def _related(a: str, b: str) -> bool:
    """One venue name covers the other ("binance" feed, "binance-usdm" liquidations).

    A chain feed covers every on-chain protocol venue, whichever chain a rule meant: when in
    doubt a dead feed freezes a rule, so calm is never reported on what may be a dead feed.
    """
    if venue_matches(a, b) or venue_matches(b, a):
        return True
    for chain, other in ((a, b), (b, a)):
        if chain.startswith("onchain-") and other.split("-")[0].lower() in _ONCHAIN_FAMILIES:
            return True
    return False


@dataclass
class _Feed:
    status: FeedStatus
    last_seen_ms: int | None = None  # local time of the last liquidation of this venue


class FeedBook:
    def __init__(self, rules: Sequence[RuleConfig]) -> None:
        self.rules = list(rules)
        self.feeds: dict[str, _Feed] = {}

    def on_status(self, status: FeedStatus) -> None:
        feed = self.feeds.get(status.venue)
        if feed is None:
            self.feeds[status.venue] = _Feed(status)
        else:
            feed.status = status

    def on_liquidation(self, venue: str, now_ms: int) -> None:
        for name, feed in self.feeds.items():
            if _related(name, venue):
                feed.last_seen_ms = now_ms

    def dead(self) -> list[str]:
        """Venues whose feed is not live (blind, or reconnecting: no data either way)."""
        return [v for v, f in self.feeds.items() if f.status.state != "live"]

    def frozen_rules(self) -> set[str]:
        """Rules that count a dead feed; a rule with no venue filter counts every feed."""
        dead = self.dead()
        if not dead:
            return set()
        return {
            r.name
            for r in self.rules
            if not r.venues or any(_related(t, v) for t in r.venues for v in dead)
        }

    def view(self, now_ms: int) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for venue, feed in sorted(self.feeds.items()):
            s = feed.status
            if s.state == "live":
                since = max(feed.last_seen_ms or s.ts_ms, s.ts_ms)
                silent_s = max(0.0, (now_ms - since) / 1000)
            else:  # silent since the report said so, and for as long again as it lasts
                silent_s = s.silent_s + max(0.0, (now_ms - s.ts_ms) / 1000)
            out[venue] = {
                "state": s.state,
                "silent_s": round(silent_s, 1),
                "reconnects": s.reconnects,
                "clock_skew_ms": s.clock_skew_ms,
                "detail": s.detail,
                "since_ms": s.ts_ms,
            }
        return out


def tick_rules(detector: Detector, now_ms: int, frozen: set[str]) -> list[Calm]:
    """Advance the clocks of the rules that are not frozen; emit their Calm on time."""
    if not frozen:
        return detector.on_tick(now_ms)
    return detector.on_tick(now_ms, skip=frozen)


def source_venues(source: LiveSource) -> list[str]:
    """The venues a source feeds ("live:binance,bybit" carries two)."""
    name = source.name
    if name.startswith("live:"):
        return [v for v in name.removeprefix("live:").split(",") if v] or [name]
    return [name]


async def merged_sources(
    sources: Sequence[LiveSource], now_ms: Callable[[], int], maxsize: int = 10_000
) -> AsyncGenerator[Event, None]:
    """Every source's events as one stream, in arrival order; a failed source turns blind."""
    queue: asyncio.Queue[Event] = asyncio.Queue(maxsize=maxsize)

    async def pump(src: LiveSource) -> None:
        try:
            async for event in src.events():
                await queue.put(event)
            detail = "source stopped: its stream ended"
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # chain-id mismatch, exchange down, bad keys: say it, go on
            detail = redact(f"source stopped: {type(exc).__name__}: {exc}")
        logger.error("source {} is blind: {}", src.name, detail)
        for venue in source_venues(src):
            await queue.put(FeedStatus(now_ms(), venue, "blind", detail=detail))

    tasks = [asyncio.create_task(pump(s), name=f"source-{s.name}") for s in sources]
    try:
        while True:
            yield await queue.get()
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for s in sources:
            try:
                await s.close()
            except Exception as exc:  # closing one source must not keep the others open
                logger.warning("source {} failed to close: {}", s.name, redact(str(exc)))
