"""Feeds: every source merged into one stream, and the one book of feed health.

A feed is one connection liquidations arrive through (a venue's socket, a chain's node); its
FeedStatus says its state and, in `covers`, the liquidation venues it carries (filled by its
source: "binance" covers binance-usdm and binance-coinm, a chain feed its lending markets).

- FeedHealth: what `status` shows of one venue socket (counters, skew, last error)
- ChainHealth: a chain feed's state from its problems and the age of the node's newest block
- FeedBook: the last FeedStatus per feed, liquidation arrivals, the rules a dead feed freezes
  (their clocks do not advance: the detector never reports calm on a dead feed), debounced
  alerts, stale/future liquidations refused and counted, persistent clock skews, the rows
  each feed's source rejected (from its statuses), the view
- tick_rules: Detector.on_tick for the rules that are not frozen
- MergedSources / merged_sources: THE merge: every LiveSource (venue streams, chains) as one
  stream, liquidations deduplicated by event id (reconnects and overlapping snapshots re-send),
  a source that raises or ends reported as blind feeds carrying its (redacted) error; one
  source alone is read in the consumer's task (no pump task and queue hop per event)
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncGenerator, Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from loguru import logger

from bot.config.rules import RuleConfig
from bot.detector import Detector
from bot.events import Calm, Event, FeedStatus, Liquidation
from bot.interfaces import LiveSource
from bot.logs import redact
from bot.sources.recording import Dedupe
from bot.symbols import venue_matches

# ---------------------------------------------------------------------------------------------
# One feed's health, as its source measures it
# ---------------------------------------------------------------------------------------------


@dataclass
class FeedHealth:
    """What `status` shows per venue socket."""

    venue: str
    state: str = "connecting"  # connecting | live | blind | reconnecting
    last_message_ms: int | None = None  # the last liquidation message
    last_frame_ms: int | None = None  # the last frame of any kind (data, ack, pong)
    messages: int = 0
    liquidations: int = 0
    skipped: int = 0  # unresolved symbols (COIN-M on the USD-M socket), bad entries
    rejected: int = 0  # entries of a liquidation message refused with a reason (of them)
    last_rejected: str = ""  # e.g. "Gate public_liquidates result[0]: X_USDT: contract size ..."
    reconnects: int = 0
    clock_skew_ms: int | None = None  # min(local receive - venue time) over recent messages
    last_error: str = ""


Problem = Literal["loop", "rpc", "ws"]
State = Literal["live", "blind", "reconnecting"]


class ChainHealth:
    """The state of one chain's feed; check() says when it changed.

    States, worst first:
    - `blind`: reading the chain keeps failing (`loop`: the node answers nonsense, a bad key,
      a bug), or the head is older than `max_head_age_s`: no new block arrived for that long
      (a stuck node, or no answer at all), or the newest block's own timestamp is that old
      (a node that advances but lags behind the chain);
    - `reconnecting`: the node is down or throttling (`rpc`), or the websocket is down (`ws`:
      eth_getLogs polling meanwhile);
    - `live`.
    Pure: the clock is injected, no I/O.
    """

    def __init__(
        self,
        venue: str,
        max_head_age_s: float,
        now_ms: Callable[[], int],
        covers: tuple[str, ...] = (),
    ) -> None:
        self.venue = venue
        self.covers = covers
        self.max_head_age_s = max_head_age_s
        self._now_ms = now_ms
        self.state: State = "live"
        self.head: int | None = None
        self._arrived_s = now_ms() / 1000  # before any head: the age counts from the start
        self._head_ts_s: float | None = None
        self._problems: dict[Problem, str] = {}

    def problem(self, key: Problem, detail: str | None) -> None:
        """Set (detail) or clear (None) one problem."""
        if detail is None:
            self._problems.pop(key, None)
        else:
            self._problems[key] = detail

    def head_seen(self, number: int, timestamp_s: int) -> None:
        if self.head is None or number > self.head:
            self.head = number
            self._arrived_s = self._now_ms() / 1000
            self._head_ts_s = float(timestamp_s)

    def ages_s(self) -> tuple[float, float]:
        """(since the newest block arrived, since its timestamp), never negative."""
        now_s = self._now_ms() / 1000
        lag_s = now_s - self._head_ts_s if self._head_ts_s is not None else 0.0
        return max(0.0, now_s - self._arrived_s), max(0.0, lag_s)

    def seconds_to_stale(self) -> float:
        """Until the head is too old (<= 0: it is already)."""
        return self.max_head_age_s - max(self.ages_s())

    def check(self) -> FeedStatus | None:
        """The new status if the state changed since the last check, else None."""
        quiet_s, lag_s = self.ages_s()
        limit = f"max_head_age_s {self.max_head_age_s:g}"
        state: State
        if "loop" in self._problems:
            state, detail = "blind", self._problems["loop"]
        elif quiet_s > self.max_head_age_s:
            head = f"last block {self.head}" if self.head is not None else "no block read yet"
            state = "blind"
            detail = f"no new block for {quiet_s:.0f}s ({head}; {limit}): node stuck or down"
        elif lag_s > self.max_head_age_s:
            state = "blind"
            detail = (
                f"the node's newest block {self.head} is {lag_s:.0f}s old ({limit}): "
                "node lagging (or this machine's clock is off)"
            )
        elif self._problems:
            state, detail = "reconnecting", "; ".join(self._problems.values())
        else:
            state, detail = "live", f"block {self.head}, {lag_s:.0f}s old"
        if state == self.state:
            return None
        self.state = state
        silent_s = max(quiet_s, lag_s)
        return FeedStatus(
            self._now_ms(), self.venue, state, silent_s=silent_s, detail=detail, covers=self.covers
        )


# ---------------------------------------------------------------------------------------------
# The book: every feed's last status, and what a dead one freezes
# ---------------------------------------------------------------------------------------------


def covers(status: FeedStatus) -> tuple[str, ...]:
    """The liquidation venues a feed carries (its own name when its source did not say)."""
    return status.covers or (status.venue,)


def _related(token: str, venue: str) -> bool:
    """One venue name covers the other ("binance" rule or feed, "binance-usdm" liquidations)."""
    return venue_matches(token, venue) or venue_matches(venue, token)


DOWN_STATES = ("blind", "reconnecting")  # a feed that is not live and not just starting


@dataclass
class _Feed:
    status: FeedStatus
    last_seen_ms: int | None = None  # local time of the last liquidation of this venue
    live_since_ms: int | None = None  # None: not live now
    alerted: str = ""  # what people were last told: "" (nothing yet), "up" or "down"
    back_since_ms: int | None = None  # live again after a "down" alert, not yet told
    flaps: int = 0  # times it went down again before the "back" alert
    down_since_ms: int | None = None  # when people were told it went down
    stale: int = 0  # liquidations older than max_event_age_s (journaled, not acted on)
    future: int = 0  # liquidations stamped beyond the future tolerance
    deleveraged: int = 0  # dYdX DELEVERAGED trades: shown apart, never acted on
    deleveraged_usd: float = 0.0
    rejected: int = 0  # rows the feed's source refused (its running count, from its statuses)
    last_rejected: str = ""
    skews_ms: deque[int] = field(default_factory=lambda: deque(maxlen=SKEW_SAMPLES))
    skew_alerted: bool = False


SKEW_SAMPLES = 20  # liquidations a clock skew must persist over before it is alerted
SKEW_MIN_SAMPLES = 5


class FeedBook:
    """Every feed's last status (fed by every source through the merge) and what follows.

    - a rule is frozen (no calm, no drain) unless every feed it counts has been live for the
      rule's whole interval (its window, or escalation window if longer);
    - people are told once when a feed goes down and once when it is back (after it stayed
      live for `flap_hold_s`, with how often it flapped meanwhile); every change is journaled;
    - a live venue liquidation older than `max_event_age_s`, or stamped more than
      `future_tolerance_s` ahead, is refused (counted; the orchestrator journals it);
    - a venue whose every recent liquidation is skewed by more than `skew_alert_s` is alerted.
    """

    def __init__(
        self,
        rules: Sequence[RuleConfig],
        *,
        max_event_age_s: float = 60.0,
        future_tolerance_s: float = 5.0,
        skew_alert_s: float = 5.0,
        flap_hold_s: float = 30.0,
    ) -> None:
        self.rules = list(rules)
        self.feeds: dict[str, _Feed] = {}
        self.max_event_age_ms = round(max_event_age_s * 1000)
        self.future_tolerance_ms = round(future_tolerance_s * 1000)
        self.skew_alert_ms = round(skew_alert_s * 1000)
        self.flap_hold_ms = round(flap_hold_s * 1000)

    # -- statuses -------------------------------------------------------------------------------
    def on_status(self, status: FeedStatus) -> list[FeedStatus]:
        """Record a status; return what people should be told of it now (debounced)."""
        feed = self.feeds.get(status.venue)
        if feed is None:
            feed = self.feeds[status.venue] = _Feed(status)
        was_live = feed.live_since_ms is not None
        feed.status = status
        if status.rejected > feed.rejected:  # a blind report of the merge carries no count
            feed.rejected, feed.last_rejected = status.rejected, status.last_rejected
        if status.state == "live":
            if was_live:
                return []  # a refresh (a new rejected count): nothing changed for people
            feed.live_since_ms = status.ts_ms
            if feed.alerted == "down":
                feed.back_since_ms = status.ts_ms  # told once it has held
                return []
            if feed.alerted == "":
                feed.alerted = "up"
                return [status]
            return []
        feed.live_since_ms = None
        if status.state not in DOWN_STATES:
            return []  # connecting: nothing to tell yet
        if feed.alerted == "down":
            if feed.back_since_ms is not None:
                feed.flaps += 1  # down again before the "back" alert: counted, not told
                feed.back_since_ms = None
            return []
        feed.alerted, feed.down_since_ms, feed.flaps = "down", status.ts_ms, 0
        return [status]

    def due(self, now_ms: int) -> list[FeedStatus]:
        """ "Back" alerts of feeds that stayed live for `flap_hold_s` since they came back."""
        out = []
        for feed in self.feeds.values():
            back = feed.back_since_ms
            if back is None or now_ms - back < self.flap_hold_ms:
                continue
            s = feed.status
            detail = s.detail
            if feed.flaps:
                down_ms = back - (feed.down_since_ms or back)
                detail = (
                    f"{detail}; flapped {feed.flaps} time(s) in {down_ms / 1000:.0f}s "
                    f"before holding for {self.flap_hold_ms / 1000:g}s"
                ).lstrip("; ")
            out.append(replace(s, ts_ms=now_ms, detail=detail))
            feed.alerted, feed.back_since_ms, feed.flaps = "up", None, 0
        return out

    # -- liquidations ---------------------------------------------------------------------------
    def feeds_of(self, venue: str) -> list[str]:
        """The feeds that carry liquidations of `venue`."""
        return [
            name
            for name, feed in self.feeds.items()
            if any(_related(c, venue) for c in covers(feed.status))
        ]

    def on_liquidation(self, venue: str, now_ms: int) -> None:
        for name in self.feeds_of(venue):
            self.feeds[name].last_seen_ms = now_ms

    def admit(self, liq: Liquidation) -> tuple[str, str] | None:
        """None if `liq` may be acted on, else (kind, reason): "deleveraged", "stale" or
        "future".

        A DELEVERAGED trade is never a liquidation: counted apart, whatever its time. Only
        events stamped with a receive time (live venue streams) are judged by age: a replay
        keeps the tape's own time, and a chain releases at its confirmation depth."""
        if liq.kind == "deleveraged":
            why = (
                f"{liq.venue} {liq.symbol} DELEVERAGED ${liq.notional_usd:,.0f}: a profitable "
                "position closed against a bankrupt one, not a liquidation; not acted on"
            )
            if not self.counts_deleveraged(liq):  # the subscribe snapshot's old trades
                age_ms = (liq.received_ms or 0) - liq.ts_ms
                return "deleveraged", f"{why} ({age_ms:,} ms old: not counted)"
            for feed in (self.feeds[n] for n in self.feeds_of(liq.venue)):
                feed.deleveraged += 1
                feed.deleveraged_usd += liq.notional_usd
            return "deleveraged", why
        if liq.received_ms is None:
            return None
        skew_ms = liq.received_ms - liq.ts_ms
        feeds = [self.feeds[n] for n in self.feeds_of(liq.venue)]
        for feed in feeds:
            feed.skews_ms.append(skew_ms)
        if skew_ms > self.max_event_age_ms:
            for feed in feeds:
                feed.stale += 1
            limit = f"max_event_age_s {self.max_event_age_ms / 1000:g}"
            return "stale", f"{liq.venue} liquidation {skew_ms:,} ms old ({limit})"
        if -skew_ms > self.future_tolerance_ms:
            for feed in feeds:
                feed.future += 1
            limit = f"future tolerance {self.future_tolerance_ms / 1000:g}s"
            return "future", f"{liq.venue} liquidation stamped {-skew_ms:,} ms ahead ({limit})"
        return None

    def counts_deleveraged(self, liq: Liquidation) -> bool:
        """A DELEVERAGED trade is counted unless it is older than `max_event_age_s`."""
        age_ms = (liq.received_ms - liq.ts_ms) if liq.received_ms is not None else 0
        return age_ms <= self.max_event_age_ms

    def skew_alerts(self, now_ms: int) -> list[FeedStatus]:
        """A feed whose recent liquidations are ALL skewed beyond `skew_alert_s`, once."""
        out = []
        for name, feed in self.feeds.items():
            skews = feed.skews_ms
            if len(skews) < SKEW_MIN_SAMPLES:
                continue
            low, high = min(skews), max(skews)
            skewed = low > self.skew_alert_ms or high < -self.skew_alert_ms
            if skewed and not feed.skew_alerted:
                typical = low if low > 0 else high
                detail = (
                    f"clock skew: {name}'s last {len(skews)} liquidations are all "
                    f"{abs(typical):,} ms or more {'behind' if typical > 0 else 'ahead of'} "
                    "this machine's clock: the venue's clock or this machine's is off"
                )
                out.append(replace(feed.status, ts_ms=now_ms, clock_skew_ms=typical, detail=detail))
            feed.skew_alerted = skewed
        return out

    # -- rules ----------------------------------------------------------------------------------
    def dead(self) -> list[str]:
        """Feeds that are not live (blind, reconnecting, connecting: no data either way)."""
        return [v for v, f in self.feeds.items() if f.status.state != "live"]

    def frozen_rules(self, now_ms: int | None = None) -> set[str]:
        """Rules that count a feed that is dead (or, given `now_ms`, was dead at any time of the
        rule's interval); a rule with no venue filter counts every feed."""
        frozen = set()
        for rule in self.rules:
            interval_ms = max(rule.window_ms, rule.escalation_window_ms)
            for feed in self.feeds.values():
                since = feed.live_since_ms
                whole = since is not None and (now_ms is None or since <= now_ms - interval_ms)
                if whole:
                    continue
                counted = not rule.venues or any(
                    _related(t, c) for t in rule.venues for c in covers(feed.status)
                )
                if counted:
                    frozen.add(rule.name)
                    break
        return frozen

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
                "stale": feed.stale,
                "future": feed.future,
                "deleveraged": feed.deleveraged,
                "deleveraged_usd": round(feed.deleveraged_usd, 2),
                "rejected": feed.rejected,
                "last_rejected": feed.last_rejected,
            }
        return out


def tick_rules(detector: Detector, now_ms: int, frozen: set[str]) -> list[Calm]:
    """Advance the clocks of the rules that are not frozen; emit their Calm on time."""
    if not frozen:
        return detector.on_tick(now_ms)
    return detector.on_tick(now_ms, skip=frozen)


# ---------------------------------------------------------------------------------------------
# The merge
# ---------------------------------------------------------------------------------------------


def source_feeds(source: LiveSource) -> dict[str, tuple[str, ...]]:
    """Feed -> the venues it covers, of a source (its `feed_covers`, else its own name)."""
    feeds = getattr(source, "feed_covers", None)
    return dict(feeds) if feeds else {source.name: ()}


class MergedSources:
    """Every source's events as one stream (a LiveSource), in arrival order."""

    def __init__(
        self,
        sources: Sequence[LiveSource],
        now_ms: Callable[[], int],
        *,
        dedupe_capacity: int = 50_000,
        maxsize: int = 10_000,
    ) -> None:
        self.sources = list(sources)
        self.name = ",".join(s.name for s in self.sources)
        self.now_ms = now_ms
        self.dedupe = Dedupe(dedupe_capacity)
        self.maxsize = maxsize

    def _repeated(self, event: Event) -> bool:
        return (
            isinstance(event, Liquidation)
            and event.event_id is not None
            and self.dedupe.seen(event.event_id)
        )

    def _blind(self, src: LiveSource, detail: str) -> list[FeedStatus]:
        logger.error("source {} is blind: {}", src.name, detail)
        return [
            FeedStatus(self.now_ms(), feed, "blind", detail=detail, covers=covered)
            for feed, covered in source_feeds(src).items()
        ]

    async def events(self) -> AsyncGenerator[Event, None]:
        if len(self.sources) == 1:  # nothing to merge: no task and queue hop per event
            src = self.sources[0]
            stream = src.events()
            try:
                try:
                    async for event in stream:
                        if not self._repeated(event):
                            yield event
                    detail = "source stopped: its stream ended"
                except Exception as exc:  # chain-id mismatch, exchange down, bad keys: say it
                    detail = redact(f"source stopped: {type(exc).__name__}: {exc}")
                for status in self._blind(src, detail):
                    yield status
                await asyncio.Event().wait()  # as a merge whose pumps all stopped: no end
            finally:
                aclose = getattr(stream, "aclose", None)  # a generator: its own finally runs now
                if aclose is not None:
                    await aclose()
                await self.close()
        queue: asyncio.Queue[Event] = asyncio.Queue(maxsize=self.maxsize)

        async def pump(src: LiveSource) -> None:
            try:
                async for event in src.events():
                    if not self._repeated(event):
                        await queue.put(event)
                detail = "source stopped: its stream ended"
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # chain-id mismatch, exchange down, bad keys: say it, go on
                detail = redact(f"source stopped: {type(exc).__name__}: {exc}")
            for status in self._blind(src, detail):
                await queue.put(status)

        tasks = [asyncio.create_task(pump(s), name=f"source-{s.name}") for s in self.sources]
        try:
            while True:
                yield await queue.get()
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self.close()

    async def close(self) -> None:
        for s in self.sources:
            try:
                await s.close()
            except Exception as exc:  # closing one source must not keep the others open
                logger.warning("source {} failed to close: {}", s.name, redact(str(exc)))


def merged_sources(
    sources: Sequence[LiveSource],
    now_ms: Callable[[], int],
    maxsize: int = 10_000,
    dedupe_capacity: int = 50_000,
) -> AsyncGenerator[Event, None]:
    """Every source's events as one stream; closing it closes every source."""
    merged = MergedSources(sources, now_ms, dedupe_capacity=dedupe_capacity, maxsize=maxsize)
    return merged.events()
