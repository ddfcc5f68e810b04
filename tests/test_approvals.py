"""Approvals: timeouts in simulated time with each default, the console approver driven by an
injected input stream, and the lifecycle transition table."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator

import pytest
from rich.console import Console

from bot.approvals import (
    ApprovalState,
    AutoApprover,
    ConsoleApprover,
    InvalidTransition,
    transition,
)
from bot.clock import SimClock
from bot.events import Action, ApprovalMode, ApprovalRequest, TimeoutDefault


def _request(default: TimeoutDefault, reduces: bool, rid: str = "r1") -> ApprovalRequest:
    action = Action(
        action_id=f"act-{rid}",
        rule="all",
        level=3,
        strategy="reduce_exposure",
        params={},
        intents=(),
        approval=ApprovalMode.CONFIRM,
        created_ts_ms=1_000,
        trigger_ts_ms=1_000,
        timeout_s=60,
        on_timeout=default,
        reduces_exposure=reduces,
    )
    return ApprovalRequest(rid, action, 1_000, 61_000, default, text="cut 50%")


class Lines:
    """An input stream the test writes to."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[str] = asyncio.Queue()

    async def stream(self) -> AsyncIterator[str]:
        while True:
            yield await self.queue.get()


def _console() -> Console:
    return Console(file=io.StringIO(), width=120)


@pytest.mark.parametrize(
    ("default", "reduces", "approved"),
    [
        (TimeoutDefault.EXECUTE, False, True),
        (TimeoutDefault.CANCEL, True, False),
        (TimeoutDefault.EXECUTE_IF_REDUCING, True, True),
        (TimeoutDefault.EXECUTE_IF_REDUCING, False, False),
    ],
)
async def test_timeout_default_in_simulated_time(
    default: TimeoutDefault, reduces: bool, approved: bool
) -> None:
    clock = SimClock(1_000)
    approver = ConsoleApprover(lines=Lines().stream(), console=_console())
    request = _request(default, reduces)
    task = asyncio.create_task(approver.decide(request, clock))
    await clock.advance_to(60_999)
    assert not task.done()  # one ms before the deadline nobody decided
    await clock.advance_to(request.deadline_ts_ms)
    decision = await task
    assert decision.by == "timeout" and decision.approved is approved
    assert decision.ts_ms == request.deadline_ts_ms
    assert default.value in decision.reason
    await approver.close()


async def test_console_approve_and_reject_by_id_prefix() -> None:
    clock = SimClock(1_000)
    lines = Lines()
    approver = ConsoleApprover(lines=lines.stream(), console=_console())
    first = asyncio.create_task(
        approver.decide(_request(TimeoutDefault.CANCEL, True, "aaa1"), clock)
    )
    second = asyncio.create_task(
        approver.decide(_request(TimeoutDefault.EXECUTE, True, "bbb2"), clock)
    )
    await clock.advance_to(2_000)
    lines.queue.put_nowait("maybe\n")  # not an answer: ignored with a hint
    lines.queue.put_nowait("n bbb too risky\n")
    lines.queue.put_nowait("y\n")  # no id: the oldest pending
    d2, d1 = await second, await first
    assert (d1.approved, d2.approved) == (True, False)
    assert d2.reason == "too risky" and d2.by.startswith("console:")
    assert d1.ts_ms == 2_000 and d1.action_id == "act-aaa1"
    await approver.close()


async def test_auto_approver() -> None:
    clock = SimClock(5)
    decision = await AutoApprover().decide(_request(TimeoutDefault.CANCEL, False), clock)
    assert decision.approved and decision.by == "auto" and decision.ts_ms == 5


def test_lifecycle_table() -> None:
    s = transition(ApprovalState.PENDING, ApprovalState.EXPIRED)
    assert transition(s, ApprovalState.EXECUTED) == ApprovalState.EXECUTED
    assert transition(ApprovalState.APPROVED, ApprovalState.FAILED) == ApprovalState.FAILED
    with pytest.raises(InvalidTransition, match="rejected -> executed"):
        transition(ApprovalState.REJECTED, ApprovalState.EXECUTED)
    with pytest.raises(InvalidTransition):
        transition(ApprovalState.EXECUTED, ApprovalState.PENDING)
