"""Paper mode on (fake) live streams with the wall clock, the scheduler jobs, and an approver
that never answers being cut off by the expiry job."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bot.app.gate import LiveRefused
from bot.app.scheduling import build_scheduler
from bot.app.wiring import build, open_session
from bot.clock import SimClock, WallClock
from bot.config.settings import Settings
from bot.events import ApprovalRequest, Decision, FeedStatus, Liquidation, PriceTick
from bot.interfaces import Clock
from bot.secrets import Secrets
from bot.sources.replay import replay_events
from tests.recorders import Told

V, S = "binance-usdm", "BTCUSDT"
SETTINGS = {
    "rules": [{"name": "t", "window_s": 60, "threshold_usd": 1000}],
    "paper": {"positions": [{"venue": V, "symbol": S, "size": 1.0}]},
}


class Hung:
    """An approver stuck on its network: never answers."""

    name = "hung"

    async def decide(self, request: ApprovalRequest, clock: Clock) -> Decision:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")


def _build(tmp_path: Path, mode: Any, settings: dict[str, Any], **kw: Any) -> Any:
    return build(
        Settings.model_validate(settings),
        Secrets(_env_file=None),  # type: ignore[call-arg]
        mode=mode,
        identity=f"{mode}-test",
        journal_url=str(tmp_path / "j.sqlite"),
        notifiers=[Told()],
        **kw,
    )


async def test_paper_on_live_streams_with_the_wall_clock(tmp_path: Path) -> None:
    rt = _build(tmp_path, "paper", SETTINGS)
    assert isinstance(rt.clock, WallClock) and rt.baseline is not None
    now = rt.clock.now_ms()

    async def stream() -> AsyncIterator[Any]:
        yield FeedStatus(now, "binance", "live")
        yield PriceTick(now, S, 50_000.0)
        yield Liquidation(now + 1, V, S, "long", 1_500.0)

    await rt.orchestrator.run(stream())
    kinds = rt.journal.count_by_kind()
    assert kinds["feed"] == 1 and kinds["anomaly"] == 1 and kinds["order_sent"] >= 1
    await rt.orchestrator.tick()
    await rt.orchestrator.refresh_portfolio()
    await rt.orchestrator.heartbeat()
    portfolio = rt.journal.get_state(f"portfolio:{rt.session}")
    assert portfolio is not None and portfolio["positions"][0]["symbol"] == S
    assert rt.journal.get_state(f"heartbeat:{rt.session}")["events"] == 3
    scheduler = build_scheduler(rt.orchestrator, live=True, on_status=lambda: None)
    assert {j.id for j in scheduler.get_jobs()} == {
        "tick",
        "portfolio",
        "expire",
        "heartbeat",
        "status",
        "freeze-heap",  # once, after start-up
    }
    await rt.close()


async def test_a_hung_approver_is_cut_off_with_the_default(tmp_path: Path) -> None:
    settings = {
        **SETTINGS,
        "policy": {
            "levels": {
                1: [
                    {
                        "strategy": "reduce_exposure",
                        "params": {"fraction": 0.5},
                        "approval": "confirm",
                        "timeout_s": 10,
                        "on_timeout": "execute",
                    }
                ]
            },
            "calm": [],
        },
    }
    rt = _build(tmp_path, "replay", settings, approver=Hung())
    clock = rt.clock
    assert isinstance(clock, SimClock)
    events = [
        PriceTick(0, S, 50_000.0),
        Liquidation(1_000, V, S, "long", 1_500.0),
        PriceTick(30_000, S, 49_000.0),
    ]
    at_end = asyncio.Event()

    def on_event(n: int, _e: object) -> None:
        if n == len(events):
            at_end.set()

    task = asyncio.create_task(
        rt.orchestrator.run(replay_events(events, clock, None, on_event=on_event))
    )
    await at_end.wait()
    await clock.settle()
    assert rt.orchestrator.executor.asking  # still waiting on the hung approver
    assert rt.orchestrator.expire_approvals() == 1
    await task
    (decision,) = [e["payload"] for e in rt.journal.find(kinds=["decision"])]
    assert decision["by"] == "timeout" and decision["approved"] is True
    assert rt.journal.count_by_kind()["fill"] == 1
    await rt.close()


def test_sessions_resume_until_finished(tmp_path: Path) -> None:
    from bot.journal import SqlJournal, default_journal_url

    j = SqlJournal(default_journal_url(tmp_path / "s.sqlite"))
    first, state = open_session(j, "tape-a")
    assert state == "new"
    # no checkpoint yet (a crash right after the start): still that session, resumed
    assert open_session(j, "tape-a") == (first, "resume")
    j.put_state(f"cursor:{first}", {"events": 3, "finished": False})
    assert open_session(j, "tape-a") == (first, "resume")
    assert open_session(j, "tape-b")[0] != first
    j.put_state(f"cursor:{first}", {"events": 9, "finished": True})
    assert open_session(j, "tape-a") == (first, "finished")  # shown, not run again
    second, state = open_session(j, "tape-a", fresh=True)
    assert second != first and state == "new"


def test_live_needs_both_switches(tmp_path: Path) -> None:
    with pytest.raises(LiveRefused, match="mode: live"):
        _build(tmp_path, "live", SETTINGS)
