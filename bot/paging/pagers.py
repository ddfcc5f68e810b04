"""Pagers: the Notifier that decides what wakes a person, and hands it to every pager.

What pages (`paging.triggers`):
- halt: the response pages the humans (a `Notice(page=True)`, e.g. the halt strategy with
  `page_humans`, an action that could not run) or a strategy moved the ladder to HALTED
- feed_blind: a feed went blind (resolved when it is live again)
- unhealthy: the watchdog found the bot unhealthy (resolved when healthy again)
- approval_expired: an approval request timed out unanswered

Episodes: everything paged from the moment the ladder leaves ACTIVE (or the first page while
ACTIVE) until a person resumes shares ONE dedup key, `liqguard-<session>-<start ms>`, so
PagerDuty and Opsgenie keep one incident; the resume resolves it. The open episode is kept in
the journal's state, so a restart resolves the same incident. A feed outage and an unhealthy
spell have their own keys. Nothing here waits on a pager: calls are queued (bot.notify.delivery).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from bot.config.paging import PagingConfig
from bot.events import Decision, FeedStatus, Notice, TradingState, TradingStateChanged
from bot.interfaces import Journal
from bot.notify.delivery import Call, Delivery
from bot.notify.format import render
from bot.paging.channels import Page

EPISODE_STATE = "paging:episode"


class Pagers:
    name = "paging"

    def __init__(
        self,
        config: PagingConfig,
        deliveries: Sequence[Delivery],
        journal: Journal,
        now_ms: Callable[[], int],
        session: str,
    ) -> None:
        self.config = config
        self.deliveries = list(deliveries)
        self.journal = journal
        self.now_ms = now_ms
        self.session = session
        self._blind: dict[str, str] = {}  # venue -> the key of its outage
        self._unhealthy: str | None = None
        kept = journal.get_state(EPISODE_STATE) or {}
        self._episode: str | None = kept.get("key")
        self._paged = bool(kept.get("paged"))  # a resume resolves only what was paged

    # -- the episode ------------------------------------------------------------------------
    def episode(self, ts_ms: int, paging: bool = True) -> str:
        """The open episode's key; opens one at `ts_ms` if none is open."""
        opened = self._episode is None
        if self._episode is None:
            self._episode, self._paged = f"liqguard-{self.session}-{ts_ms}", False
        if opened or (paging and not self._paged):
            self._paged = self._paged or paging
            state = {"key": self._episode, "paged": self._paged}
            self.journal.put_state(EPISODE_STATE, state)
        return self._episode

    def _close_episode(self) -> str | None:
        """The key to resolve (None when nothing of the episode was paged); closes it."""
        key, paged = self._episode, self._paged
        self._episode, self._paged = None, False
        if key is not None:
            self.journal.put_state(EPISODE_STATE, {"key": None, "closed": key})
        return key if paged else None

    # -- the notifier -----------------------------------------------------------------------
    async def notify(self, event: object) -> None:
        on = self.config.triggers
        match event:
            case TradingStateChanged(state=TradingState.ACTIVE):
                if key := self._close_episode():
                    self._all(Call("resolve", key, f"resumed by {event.by}", _resolved(event)))
            case TradingStateChanged():
                by_policy = event.by.startswith("strategy:") or event.by == "policy"
                pages = "halt" in on and by_policy and render(event).page
                key = self.episode(event.ts_ms, pages)  # a person's pause opens it: one incident
                if pages:
                    self._page(key, "halt", event, chart=True)
            case Notice(page=True) if "halt" in on:
                self._page(self.episode(event.ts_ms), "halt", event, chart=True)
            case Decision(by="timeout") if "approval_expired" in on:
                text = f"action {event.action_id}: nobody answered; {event.reason or 'default'}"
                page = Page("approval_expired", f"Approval expired unanswered: {event.action_id}")
                key = self.episode(event.ts_ms)
                self._all(Call("trigger", key, page.title, _with(page, text)))
            case FeedStatus(state="blind") if "feed_blind" in on:
                if event.venue not in self._blind:
                    key = f"liqguard-{self.session}-feed-{event.venue}-{event.ts_ms}"
                    self._blind[event.venue] = key
                    self._page(key, "feed_blind", event)
            case FeedStatus(state="live") if event.venue in self._blind:
                key = self._blind.pop(event.venue)
                page = Page("feed_blind", f"Feed {event.venue} is live again", severity="info")
                self._all(Call("resolve", key, page.title, page))

    def health_changed(self, ok: bool, why: str) -> None:
        """The watchdog's verdict changed (called from its beat; never waits)."""
        if "unhealthy" not in self.config.triggers:
            return
        if not ok and self._unhealthy is None:
            self._unhealthy = f"liqguard-{self.session}-unhealthy-{self.now_ms()}"
            page = Page("unhealthy", "liqguard is unhealthy", why)
            self._all(Call("trigger", self._unhealthy, f"unhealthy: {why}", page))
        elif ok and self._unhealthy is not None:
            key, self._unhealthy = self._unhealthy, None
            page = Page("unhealthy", "liqguard is healthy again", why, severity="info")
            self._all(Call("resolve", key, page.title, page))

    def page_failure(self, notice: Notice, exclude: str) -> None:
        """A channel failed: page it on the others (their own failure is not paged again)."""
        page = Page("failure", notice.title, notice.text)
        key = f"liqguard-{self.session}-failure-{exclude}"
        call = Call("trigger", key, notice.title, page, alert_on_failure=False)
        for d in self.deliveries:
            if d.name != exclude:
                d.submit(call)

    async def close(self) -> None:
        for d in self.deliveries:
            await d.close(10.0)

    async def drain(self, deadline_s: float | None = None) -> int:
        """Wait for every pager (a failure on one queues a page on the others: twice round)."""
        for _ in range(2):
            for d in self.deliveries:
                await d.drain(deadline_s)
        return sum(d.pending for d in self.deliveries)

    # -- helpers ----------------------------------------------------------------------------
    def _page(self, key: str, trigger: str, event: object, chart: bool = False) -> None:
        msg = render(event)
        severity = "critical" if msg.page else msg.severity  # it wakes a person: critical
        page = Page(trigger, msg.title, msg.body, severity, _details(event), chart)
        self._all(Call("trigger", key, msg.title, page))

    def _all(self, call: Call) -> None:
        for d in self.deliveries:
            d.submit(call)


def _with(page: Page, text: str) -> Page:
    return Page(page.trigger, page.title, text, page.severity, page.details, page.chart)


def _resolved(change: TradingStateChanged) -> Page:
    return Page("halt", f"liqguard resumed by {change.by}", change.reason, severity="info")


def _details(event: object) -> dict[str, Any]:
    if isinstance(event, TradingStateChanged):
        return {"state": event.state.value, "previous": event.previous.value, "by": event.by}
    if isinstance(event, FeedStatus):
        return {"venue": event.venue, "silent_s": round(event.silent_s, 1)}
    return {}
