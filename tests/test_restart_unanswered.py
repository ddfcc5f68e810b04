"""A detection whose actions a stop left half planned is answered after the restart.

The window: a level with two actions; the first action's order commits the detection with it,
then the process dies while the second action waits on the account. Here the venue's account
stops answering after the first order (a venue hanging mid-cascade) and the run is stopped
there, as Ctrl-C stops it; the restart on the same journal must plan the second action (the
first is neither planned nor sent again), unless the detection is older than its rule's
escalation window by then: that is paged, journaled as not run, and never acted on late. A
policy changed between two runs does not reach back to detections answered before.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from bot.brokers.paper import PaperBroker
from bot.clock import SimClock
from bot.config.settings import Settings
from bot.engine import ids
from bot.engine.orchestrator import Orchestrator
from bot.events import JournalKind, Liquidation, Notice, OrderIntent, OrderResult, PriceTick
from bot.journal import SqlJournal, default_journal_url
from bot.sources.replay import replay_events
from tests.engines import paper_orchestrator
from tests.recorders import Told

V, S = "binance-usdm", "BTCUSDT"
RULE = {"name": "t", "window_s": 60, "threshold_usd": 1000, "factor": 2, "escalation_window_s": 120}
PAPER = {
    "balance_usd": 50_000,
    "positions": [{"venue": V, "symbol": S, "size": 1.0, "leverage": 2}],
}
CUT = {"strategy": "reduce_exposure", "params": {"fraction": 0.25}}
MORE = {"strategy": "reduce_exposure", "params": {"fraction": 0.5}}
TAPE = [PriceTick(0, S, 100_000.0), Liquidation(1_000, V, S, "long", 1_500, 100_000.0, 0.015)]


class HangingVenue(PaperBroker):
    """A paper venue whose account read never answers once an order went out."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.ordered = False
        self.hung = asyncio.Event()

    async def submit(self, intent: OrderIntent, client_id: str) -> OrderResult:
        result = await super().submit(intent, client_id)
        self.ordered = True
        return result

    async def portfolio(self) -> Any:
        if self.ordered:
            self.hung.set()
            await asyncio.Event().wait()
        return await super().portfolio()


def _make(
    journal: SqlJournal, levels: list[dict[str, Any]], broker: type[PaperBroker] = PaperBroker
) -> tuple[Orchestrator, Told, SimClock]:
    policy = {"levels": {1: levels}, "calm": []}
    settings = Settings.model_validate({"rules": [RULE], "policy": policy, "paper": PAPER})
    clock, told = SimClock(0), Told()
    paper = broker(settings.paper, clock)
    return paper_orchestrator(settings, paper, journal, told, clock), told, clock


def _rows(journal: SqlJournal, kind: str) -> list[dict[str, Any]]:
    return [e["payload"] for e in journal.find(kinds=[kind])]


async def _stopped_between_the_two_actions(path: Path) -> SqlJournal:
    journal = SqlJournal(default_journal_url(path))
    orch, _told, clock = _make(journal, [CUT, MORE], HangingVenue)
    task = asyncio.create_task(orch.run(replay_events(TAPE, clock, None)))
    assert isinstance(orch.broker, HangingVenue)
    await orch.broker.hung.wait()  # the first order is done; the second plan waits
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert len(_rows(journal, JournalKind.ACTION_PLANNED)) == 1
    assert len(_rows(journal, JournalKind.ORDER_SENT)) == 1
    assert _rows(journal, JournalKind.DETECTION_ANSWERED) == []
    return journal


def _action_ids() -> list[str]:
    return [ids.action_id("s1", "t", 1_000, 1, i) for i in (0, 1)]


async def test_a_restart_plans_the_action_a_stop_left_unplanned(tmp_path: Path) -> None:
    journal = await _stopped_between_the_two_actions(tmp_path / "j.sqlite")
    again, told, clock = _make(journal, [CUT, MORE])
    cursor = again.restore()
    assert cursor is not None
    await clock.advance_to(int(cursor["ts_ms"]) + 5_000)  # back 5 s later
    assert await again.resume() == 1
    await again.finish()
    first, second = _action_ids()
    planned = [p["action_id"] for p in _rows(journal, JournalKind.ACTION_PLANNED)]
    assert planned == [first, second]  # the first is not planned again
    sent = [p["client_id"] for p in _rows(journal, JournalKind.ORDER_SENT)]
    assert len(sent) == 2 and len(set(sent)) == 2  # the first order is not sent again
    assert second in {p["action_id"] for p in _rows(journal, JournalKind.ACTION_END)}
    assert len(_rows(journal, JournalKind.DETECTION_ANSWERED)) == 1
    assert not any(isinstance(e, Notice) and "not run" in e.title for e in told.events)
    journal.close()


async def test_a_detection_left_past_its_escalation_window_is_paged_not_acted_on(
    tmp_path: Path,
) -> None:
    journal = await _stopped_between_the_two_actions(tmp_path / "j.sqlite")
    again, told, clock = _make(journal, [CUT, MORE])
    cursor = again.restore()
    assert cursor is not None
    await clock.advance_to(1_000 + 121_000)  # the rule's escalation window is 120 s
    assert await again.resume() == 0
    await again.finish()
    first, second = _action_ids()
    assert [p["action_id"] for p in _rows(journal, JournalKind.ACTION_PLANNED)] == [first]
    assert len(_rows(journal, JournalKind.ORDER_SENT)) == 1
    (failed,) = _rows(journal, JournalKind.ACTION_FAILED)
    assert failed["action_id"] == second and "escalation window" in failed["error"]
    (notice,) = [e for e in told.events if isinstance(e, Notice) and "not run" in e.title]
    assert notice.severity == "critical" and notice.page
    journal.close()


async def test_a_policy_changed_between_runs_does_not_reach_back(tmp_path: Path) -> None:
    journal = SqlJournal(default_journal_url(tmp_path / "j.sqlite"))
    orch, _told, clock = _make(journal, [CUT])
    await orch.run(replay_events(TAPE, clock, None))
    assert len(_rows(journal, JournalKind.DETECTION_ANSWERED)) == 1
    again, told, clock = _make(journal, [CUT, MORE])  # a second action added, then a restart
    cursor = again.restore()
    assert cursor is not None
    await clock.advance_to(int(cursor["ts_ms"]) + 5_000)
    assert await again.resume() == 0
    await again.finish()
    assert len(_rows(journal, JournalKind.ACTION_PLANNED)) == 1
    assert _rows(journal, JournalKind.ACTION_FAILED) == []
    assert not any(isinstance(e, Notice) for e in told.events)
    journal.close()
