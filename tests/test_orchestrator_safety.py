"""Money safety in the orchestrator: the ladder and the hourly budget are checked again when an
order is sent, only sent actions use the budget, and a venue that cannot be read mid-cascade
does not end the bot."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from bot.approvals import ConsoleApprover
from bot.clock import SimClock
from bot.engine import ids
from bot.engine.orchestrator import Orchestrator
from bot.events import (
    Action,
    ApprovalMode,
    ApprovalRequest,
    Decision,
    OrderIntent,
    Portfolio,
    RiskVerdict,
    TradingState,
)
from bot.risk import RiskGate
from tests.test_orchestrator import S, V, _from_queue, _kinds, _liq, _make, _price

HEDGE_THEN_HALT = {
    "levels": {
        1: [
            {
                "strategy": "hedge",
                "params": {"venue": "other", "when": "always"},
                "approval": "confirm",
                "timeout_s": 600,
            }
        ],
        2: [{"strategy": "halt", "params": {"state": "HALTED"}}],
    },
    "calm": [],
}


class LateApprover:
    """Approves only once the ladder is HALTED: a stale button pressed after the halt."""

    name = "late"

    def __init__(self) -> None:
        self.risk: RiskGate | None = None

    async def decide(self, request: ApprovalRequest, clock: SimClock) -> Decision:  # type: ignore[override]
        assert self.risk is not None
        while self.risk.state is not TradingState.HALTED:  # noqa: ASYNC110 - polls the gate
            await asyncio.sleep(0)
        return Decision(request.request_id, request.action.action_id, True, "alice", clock.now_ms())


async def test_an_approval_after_a_halt_sends_nothing_that_adds_risk(tmp_path: Path) -> None:
    human = LateApprover()
    orch, recorder, _clock = _make(tmp_path, HEDGE_THEN_HALT, approver=human)
    human.risk = orch.risk
    await orch.handle(_price(0))
    await orch.handle(_liq(1_000, 1_500.0))  # level 1: the hedge waits for a person
    await orch.handle(_liq(2_000, 3_000.0))  # level 2: halt
    await orch.finish()

    assert orch.risk.state is TradingState.HALTED
    assert _kinds(orch, "order_sent") == []  # the approved hedge never left
    (skipped,) = _kinds(orch, "order_skipped")
    assert "HALTED" in skipped["reason"] and skipped["side"] == "sell"
    book = await orch.broker.portfolio()
    assert [(p.venue, p.symbol, p.side) for p in book.positions] == [(V, S, "long")]
    assert any("dropped" in getattr(e, "title", "") for e in recorder.events)


CUT = {
    "strategy": "reduce_exposure",
    "params": {"fraction": 0.25},
    "approval": "confirm",
    "timeout_s": 600,
}
CUT_AT_EACH_LEVEL = {"levels": {1: [CUT], 2: [CUT], 3: [CUT]}, "calm": []}
ONE_AN_HOUR = {"max_actions_per_hour": 1}


async def _answered(orch: Orchestrator, clock: SimClock) -> None:
    """Let the running actions take a typed answer to their end (bounded: never hangs)."""
    for _ in range(20):
        if not orch.tasks:
            return
        await clock.settle()


async def test_a_rejected_confirm_uses_no_hourly_budget_an_executed_one_does(
    tmp_path: Path,
) -> None:
    lines: asyncio.Queue[str] = asyncio.Queue()
    person = ConsoleApprover(lines=_from_queue(lines), console=None)
    orch, _recorder, clock = _make(tmp_path, CUT_AT_EACH_LEVEL, person, risk=ONE_AN_HOUR)
    await orch.handle(_price(0))
    await orch.handle(_liq(1_000, 1_500.0))  # level 1: asked
    lines.put_nowait("n")
    await _answered(orch, clock)
    await orch.handle(_liq(2_000, 1_000.0))  # level 2: asked, the rejected cut used nothing
    lines.put_nowait("y")
    await _answered(orch, clock)
    await orch.handle(_liq(3_000, 2_000.0))  # level 3: the executed cut used the hour
    await orch.finish()
    await person.close()

    ends = {p["level"]: p["status"] for p in _kinds(orch, "action_end")}
    assert ends == {1: "rejected", 2: "executed", 3: "refused"}
    assert len(_kinds(orch, "order_sent")) == 1
    (refusal,) = [p["reason"] for p in _kinds(orch, "risk_verdict") if p["denied"]]
    assert "1 actions already in the last hour, max_actions_per_hour is 1" in refusal
    orch.journal.close()
    again, _, _ = _make(tmp_path, CUT_AT_EACH_LEVEL, risk=ONE_AN_HOUR)  # after a restart
    assert again.restore() is not None
    assert again.risk.actions_in_last_hour(3_000) == 1  # the budget still counts the cut


async def test_the_hourly_budget_is_checked_again_when_an_approved_order_leaves(
    tmp_path: Path,
) -> None:
    lines: asyncio.Queue[str] = asyncio.Queue()
    person = ConsoleApprover(lines=_from_queue(lines), console=None)
    orch, recorder, clock = _make(tmp_path, CUT_AT_EACH_LEVEL, person, risk=ONE_AN_HOUR)
    await orch.handle(_price(0))
    await orch.handle(_liq(1_000, 1_500.0))  # level 1: asked
    await orch.handle(_liq(2_000, 1_000.0))  # level 2: asked too, nothing sent yet
    asked = [p["request_id"] for p in _kinds(orch, "approval_request")]
    assert len(asked) == 2
    for request_id in asked:  # a person approves both
        lines.put_nowait(f"y {request_id[:8]}")
    await _answered(orch, clock)
    await orch.finish()
    await person.close()

    assert len(_kinds(orch, "order_sent")) == 1  # one action an hour, as configured
    (skipped,) = _kinds(orch, "order_skipped")
    assert "1 actions already in the last hour, max_actions_per_hour is 1" in skipped["reason"]
    details = sorted(p["detail"] for p in _kinds(orch, "action_end"))
    assert details == ["0 order(s), 0 failed, 1 skipped", "1 order(s), 0 failed"]
    assert any("dropped" in getattr(e, "title", "") for e in recorder.events)


class FlakyAccount:
    """The paper account, except that reading it fails once (a venue timing out)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.name = inner.name
        self.failures = 1

    async def portfolio(self) -> Portfolio:
        if self.failures:
            self.failures -= 1
            raise TimeoutError("GET /fapi/v2/positionRisk timed out")
        return await self.inner.portfolio()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


async def test_an_unreadable_account_fails_one_action_and_the_bot_goes_on(tmp_path: Path) -> None:
    policy = {
        "levels": {
            1: [{"strategy": "stop_loss"}],
            2: [{"strategy": "reduce_exposure", "params": {"fraction": 0.5}}],
        },
        "calm": [],
    }
    orch, recorder, _clock = _make(tmp_path, policy)
    orch.broker = orch.executor.broker = FlakyAccount(orch.broker)
    await orch.handle(_price(0))
    await orch.handle(_liq(1_000, 1_500.0))  # level 1: the account read fails
    await orch.handle(_liq(2_000, 3_000.0))  # level 2: read works again, the cut goes out
    await orch.finish()

    (failed,) = _kinds(orch, "action_failed")
    assert failed["strategy"] == "stop_loss" and "cannot read the account" in failed["error"]
    sent = _kinds(orch, "order_sent")
    assert [(o["side"], o["reduce_only"]) for o in sent] == [("sell", True)]
    assert any(getattr(e, "page", False) for e in recorder.events)


async def test_a_hedge_sent_before_a_crash_and_not_found_is_not_sent_again(
    tmp_path: Path,
) -> None:
    orch, _recorder, clock = _make(tmp_path, {"levels": {}, "calm": []})
    await orch.handle(_price(0))
    hedge = OrderIntent("other", S, "sell", "market", 0.5, reduce_only=False)
    cut = OrderIntent(V, S, "sell", "market", 0.25, reduce_only=True, leg=1)
    action = Action(
        "lgcrash", "t", 2, "hedge", {}, (hedge, cut), ApprovalMode.AUTO, clock.now_ms(), 0
    )
    # The journal says both orders were sent; the crash came before either reached the venue.
    for intent in (hedge, cut):
        orch.journal.append(
            "order_sent",
            clock.now_ms(),
            {"client_id": action.client_id(intent)},
            key=ids.order_key(action.client_id(intent)),
        )
    status = await orch.executor.execute(action, RiskVerdict("lgcrash", (hedge, cut)), False)

    results = {r["client_id"]: r for r in _kinds(orch, "order_result")}
    assert results["lgcrash-0"]["status"] == "failed"
    assert "outcome unknown" in results["lgcrash-0"]["error"]
    assert results["lgcrash-0"]["outcome_unknown"] is True  # a status a restart tests, not text
    assert results["lgcrash-1"]["outcome_unknown"] is False
    assert results["lgcrash-1"]["status"] == "filled"  # reduce-only: safe to send again
    assert status == "partial"
    book = await orch.broker.portfolio()
    assert [(p.venue, p.side, p.size) for p in book.positions] == [(V, "long", 0.75)]
