"""The orchestrator's hot path, feeds and control surface.

- an action's records are committed in ONE transaction before its order goes out (a second
  connection sees them when the broker is asked), and notifications come after the order
- the garbage collector is off while an event or an order holds the path, on again after; a
  live checkpoint asked for by the crossing event is written at the next lull, not before
  the order
- blind feeds freeze the clocks of the rules that count them (no calm on a dead feed)
- a source that raises becomes a journaled, notified blind feed (its error redacted)
- set_trading_state is journaled, saved and notified; RuntimeControl uses it and shows feeds
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from bot.app.telegram_control import RuntimeControl
from bot.brokers.paper import PaperBroker
from bot.clock import SimClock
from bot.config.settings import Settings
from bot.engine.orchestrator import Orchestrator
from bot.events import (
    Calm,
    FeedStatus,
    Liquidation,
    OrderIntent,
    OrderResult,
    PriceTick,
    TradingState,
    TradingStateChanged,
)
from bot.journal import SqlJournal, default_journal_url
from bot.logs import register_secrets
from bot.notify.format import render
from bot.sources.feeds import merged_sources
from tests.engines import paper_orchestrator

V, S = "binance-usdm", "BTCUSDT"
REDUCE = {"levels": {1: [{"strategy": "reduce_exposure", "params": {"fraction": 0.5}}]}}
PAPER = {"balance_usd": 50_000, "positions": [{"venue": V, "symbol": S, "size": 1.0}]}


def _rule(name: str, venues: list[str] | None = None) -> dict[str, Any]:
    return {
        "name": name,
        "window_s": 60,
        "threshold_usd": 1000,
        "escalation_window_s": 120,
        "venues": venues or [],
    }


class Recorder:
    name = "recorder"

    def __init__(self, seen: list[str] | None = None) -> None:
        self.events: list[object] = []
        self.seen = seen if seen is not None else []

    async def notify(self, event: object) -> None:
        render(event)
        self.events.append(event)
        self.seen.append(f"notify:{type(event).__name__}")

    async def close(self) -> None:
        return None


class WatchedBroker(PaperBroker):
    """A paper broker that, when asked to submit, reads the journal on its own connection."""

    def __init__(self, *a: Any, url: str, seen: list[str], **kw: Any) -> None:
        super().__init__(*a, **kw)
        self.url, self.seen = url, seen
        self.at_submit: list[dict[str, Any]] = []
        self.cursor_at_submit: dict[str, Any] | None = None
        self.collecting_at_submit: list[bool] = []

    async def submit(self, intent: OrderIntent, client_id: str) -> OrderResult:
        other = SqlJournal(self.url)  # what a crash right now would leave on disk
        self.at_submit = other.find()
        self.cursor_at_submit = other.get_state("cursor:s1")
        other.close()
        self.collecting_at_submit.append(gc.isenabled())
        self.seen.append("submit")
        return await super().submit(intent, client_id)


def _make(
    tmp_path: Path,
    rules: list[dict[str, Any]],
    policy: dict[str, Any] | None = None,
    seen: list[str] | None = None,
    checkpoint_every: int = 200,
) -> tuple[Orchestrator, Recorder, SimClock]:
    settings = Settings.model_validate(
        {"rules": rules, "policy": policy or {"levels": {}, "calm": []}, "paper": PAPER}
    )
    seen = seen if seen is not None else []
    clock = SimClock(0)
    url = default_journal_url(tmp_path / "j.sqlite")
    recorder = Recorder(seen)
    paper = WatchedBroker(settings.paper, clock, url=url, seen=seen)
    journal = SqlJournal(url)
    orch = paper_orchestrator(
        settings, paper, journal, recorder, clock, checkpoint_every=checkpoint_every
    )
    return orch, recorder, clock


def _liq(ts_ms: int, usd: float, venue: str = V) -> Liquidation:
    return Liquidation(ts_ms, venue, S, "long", usd, price=100_000.0, quantity=usd / 100_000)


async def test_records_commit_once_before_the_order_and_notifications_follow(
    tmp_path: Path,
) -> None:
    seen: list[str] = []
    orch, rec, clock = _make(tmp_path, [_rule("t")], {**REDUCE, "calm": []}, seen)
    await orch.handle(PriceTick(0, S, 100_000.0))
    await clock.advance_to(1_000)
    await orch.handle(_liq(1_000, 1_500))
    broker = orch.broker
    assert isinstance(broker, WatchedBroker)
    on_disk = {e["kind"] for e in broker.at_submit}
    # everything that led to the order, and the order itself, was durable when it left
    assert {"anomaly", "action_planned", "risk_verdict", "decision", "order_sent"} <= on_disk
    (sent,) = [e for e in broker.at_submit if e["kind"] == "order_sent"]
    assert sent["key"] == f"order:{sent['payload']['client_id']}"
    assert "notify:Anomaly" not in seen  # queued, not yet told
    await orch.finish()
    assert seen.index("submit") < seen.index("notify:Anomaly")  # told after the order
    assert [type(e).__name__ for e in rec.events][:2] == ["Anomaly", "Action"]
    assert "notify:Fill" in seen  # nothing dropped


async def test_one_commit_carries_the_action_records(tmp_path: Path) -> None:
    orch, _rec, clock = _make(tmp_path, [_rule("t")], {**REDUCE, "calm": []})
    await orch.handle(PriceTick(0, S, 100_000.0))
    journal = orch.journal
    assert isinstance(journal, SqlJournal)
    at_submit: list[int] = []
    broker = orch.broker
    assert isinstance(broker, WatchedBroker)
    real_submit = broker.submit

    async def counted(intent: OrderIntent, client_id: str) -> OrderResult:
        at_submit.append(journal.commits - before)
        return await real_submit(intent, client_id)

    broker.submit = counted  # type: ignore[method-assign]
    await clock.advance_to(1_000)
    before = journal.commits
    await orch.handle(_liq(1_000, 1_500))
    await orch.finish()
    assert at_submit == [1]  # exactly one commit between the frame and the order
    assert journal.commits > before + 1  # the outcome and the checkpoint came after


async def test_the_collector_is_off_while_the_path_is_held_and_on_again_after(
    tmp_path: Path,
) -> None:
    orch, _rec, clock = _make(tmp_path, [_rule("t")], {**REDUCE, "calm": []})
    broker = orch.broker
    assert isinstance(broker, WatchedBroker)
    assert gc.isenabled()
    await orch.handle(PriceTick(0, S, 100_000.0))
    await clock.advance_to(1_000)
    await orch.handle(_liq(1_000, 1_500))
    assert broker.collecting_at_submit == [False]  # no collection while the order is out
    assert gc.isenabled()  # the path is free: what piled up is collected now
    await orch.finish()
    gc.disable()  # a collector the embedding program turned off stays off
    try:
        await orch.handle(_liq(2_000, 10.0))
        assert not gc.isenabled()
    finally:
        gc.enable()


async def test_a_live_checkpoint_asked_by_the_crossing_event_waits_for_the_lull(
    tmp_path: Path,
) -> None:
    orch, _rec, clock = _make(tmp_path, [_rule("t")], {**REDUCE, "calm": []}, checkpoint_every=2)
    broker = orch.broker
    assert isinstance(broker, WatchedBroker)
    await orch.handle(PriceTick(0, S, 100_000.0))
    await clock.advance_to(1_000)
    await orch.handle(_liq(1_000, 1_500))  # the second event: a checkpoint is due
    assert broker.collecting_at_submit == [False]  # the order went out ...
    assert broker.cursor_at_submit is None  # ... before any checkpoint was written
    assert orch.journal.get_state("cursor:s1") is None  # still none: the burst may go on
    await orch.notifier.flush()  # the lull: notifications, and first the journal
    cursor = orch.journal.get_state("cursor:s1")
    assert cursor is not None and cursor["events"] == 2 and not cursor["finished"]
    await orch.finish()


async def test_blind_feed_freezes_the_rules_that_count_it(tmp_path: Path) -> None:
    rules = [_rule("all"), _rule("bin", ["binance"]), _rule("byb", ["bybit"])]
    orch, rec, clock = _make(tmp_path, rules)
    await orch.handle(FeedStatus(0, "binance", "live"))
    await orch.handle(FeedStatus(0, "bybit", "live", clock_skew_ms=12))
    await orch.handle(_liq(1_000, 1_500, "binance-usdm"))  # fires `all` and `bin`
    await orch.handle(_liq(1_000, 1_500, "bybit"))  # fires `byb`
    await clock.advance_to(5_000)
    await orch.handle(
        FeedStatus(5_000, "binance", "blind", silent_s=3, reconnects=2, detail="no data for 3s")
    )
    await clock.advance_to(200_000)  # past the escalation window of every rule
    await orch.tick()
    await orch.notifier.flush()
    calms = [e.rule for e in rec.events if isinstance(e, Calm)]
    assert calms == ["byb"]  # `all` counts every feed, `bin` the blind one: no calm
    feeds = orch.status()["feeds"]
    assert feeds["binance"]["state"] == "blind" and feeds["binance"]["reconnects"] == 2
    assert feeds["binance"]["silent_s"] == 3 + (200_000 - 5_000) / 1000
    assert feeds["bybit"] == {**feeds["bybit"], "state": "live", "clock_skew_ms": 12}
    await orch.handle(FeedStatus(200_500, "binance", "live", detail="messages again"))
    await clock.advance_to(201_000)
    await orch.tick()
    await orch.notifier.flush()
    calms = [e.rule for e in rec.events if isinstance(e, Calm)]
    assert calms == ["byb"]  # back, but not live for the rules' whole interval yet (issue 15)
    await clock.advance_to(200_500 + 120_000)  # live again for a whole escalation window
    await orch.tick()
    await orch.notifier.flush()
    calms = [e.rule for e in rec.events if isinstance(e, Calm)]
    assert sorted(calms) == ["all", "bin", "byb"]
    await orch.finish()
    states = [e["payload"]["state"] for e in orch.journal.find(kinds=["feed"])]
    assert states == ["live", "live", "blind", "live"]


class Failing:
    """A source that dies at once (a chain-id mismatch, an exchange that is down)."""

    def __init__(self, name: str, error: Exception, feeds: tuple[str, ...] = ()) -> None:
        self.name, self.error = name, error
        self.feed_covers = {feed: (feed,) for feed in feeds}
        self.closed = False

    async def events(self) -> AsyncIterator[Liquidation]:
        await asyncio.sleep(0)
        raise self.error
        yield  # pragma: no cover

    async def close(self) -> None:
        self.closed = True


class Steady:
    name = "steady"

    def __init__(self) -> None:
        self.closed = False

    async def events(self) -> AsyncIterator[Liquidation]:
        yield _liq(10, 5.0, "bybit")
        await asyncio.Event().wait()

    async def close(self) -> None:
        self.closed = True


async def test_a_source_that_raises_turns_into_a_notified_blind_feed(tmp_path: Path) -> None:
    secret = "https://rpc.example/key-0123456789abcdef"
    register_secrets([secret])
    orch, rec, clock = _make(tmp_path, [_rule("all")])
    failing = Failing("binance+okx", ConnectionError(f"cannot reach {secret}"), ("binance", "okx"))
    sources = [failing, Steady()]
    stream = merged_sources(sources, clock.now_ms)  # type: ignore[arg-type]
    blind: list[FeedStatus] = []
    async for ev in stream:
        await orch.handle(ev)
        if isinstance(ev, FeedStatus):
            blind.append(ev)
        if len(blind) == 2:
            break
    await stream.aclose()
    assert failing.closed and sources[1].closed  # type: ignore[attr-defined]
    assert [b.venue for b in blind] == ["binance", "okx"]
    await orch.finish()
    rows = [e["payload"] for e in orch.journal.find(kinds=["feed"])]
    assert [r["state"] for r in rows] == ["blind", "blind"]
    for text in [r["detail"] for r in rows] + [render(e).text for e in rec.events]:
        assert secret not in text
    assert all("ConnectionError" in r["detail"] for r in rows)
    told = [e for e in rec.events if isinstance(e, FeedStatus)]
    assert [t.venue for t in told] == ["binance", "okx"]
    assert orch.status()["feeds"]["okx"]["state"] == "blind"
    assert orch.feeds.frozen_rules() == {"all"}


async def test_a_lone_source_is_read_as_it_comes_and_reported_blind_when_it_raises() -> None:
    class Twice(Failing):
        async def events(self) -> AsyncIterator[Liquidation]:
            for _ in range(2):  # the same liquidation re-sent (a reconnect's snapshot)
                yield replace(_liq(10, 5.0, "bybit"), event_id="bybit:1")
            raise self.error

    lone = Twice("bybit", ConnectionError("reset by peer"), ("bybit",))
    stream = merged_sources([lone], lambda: 99)
    got = [await anext(stream) for _ in range(2)]
    await stream.aclose()
    assert isinstance(got[0], Liquidation) and got[0].event_id == "bybit:1"  # once
    status = got[1]
    assert isinstance(status, FeedStatus) and (status.venue, status.state) == ("bybit", "blind")
    assert "ConnectionError: reset by peer" in status.detail and lone.closed


async def test_set_trading_state_and_the_runtime_control(tmp_path: Path) -> None:
    orch, rec, _clock = _make(tmp_path, [_rule("all")])
    settings = Settings.model_validate({"rules": [_rule("all")], "paper": PAPER})
    control = RuntimeControl(orch, orch.broker, orch.journal, settings)
    await orch.handle(FeedStatus(0, "bybit", "blind", silent_s=61, detail="no data for 60s"))
    change = await control.set_state(TradingState.HALTED, "ops said so", "telegram:@alice")
    assert isinstance(change, TradingStateChanged) and change.state is TradingState.HALTED
    assert orch.risk.state is TradingState.HALTED
    back = await orch.set_trading_state(TradingState.ACTIVE, "all clear", "telegram:@bob")
    assert (back.previous, back.state) == (TradingState.HALTED, TradingState.ACTIVE)
    ladder = [e["payload"] for e in orch.journal.find(kinds=["ladder"])]
    assert [(p["state"], p["by"]) for p in ladder] == [
        ("HALTED", "telegram:@alice"),
        ("ACTIVE", "telegram:@bob"),
    ]
    assert orch.journal.get_state("risk:s1") is not None  # saved with the change
    view = await control.status()
    assert view.state is TradingState.ACTIVE
    assert view.feeds["bybit"].startswith("blind, silent 61s") and "no data" in view.feeds["bybit"]
    await orch.finish()
    told = [e for e in rec.events if isinstance(e, TradingStateChanged)]
    assert [t.state for t in told] == [TradingState.HALTED, TradingState.ACTIVE]
