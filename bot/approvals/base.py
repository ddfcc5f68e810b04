"""What every approver shares: the approval lifecycle, timeout defaults, and the deadline race.

Lifecycle (a transition table, journaled at each step):
    pending -> approved | rejected | expired
    approved -> executed | failed
    expired -> executed | failed      (only when the timeout default says execute)
"""

from __future__ import annotations

import asyncio
from enum import StrEnum
from typing import Any

from bot.events import ApprovalRequest, Decision, TimeoutDefault
from bot.interfaces import Clock


class ApprovalState(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    EXPIRED = "expired"
    EXECUTED = "executed"
    FAILED = "failed"


TRANSITIONS: dict[ApprovalState, frozenset[ApprovalState]] = {
    ApprovalState.PENDING: frozenset(
        {ApprovalState.APPROVED, ApprovalState.REJECTED, ApprovalState.EXPIRED}
    ),
    ApprovalState.APPROVED: frozenset({ApprovalState.EXECUTED, ApprovalState.FAILED}),
    ApprovalState.EXPIRED: frozenset({ApprovalState.EXECUTED, ApprovalState.FAILED}),
    ApprovalState.REJECTED: frozenset(),
    ApprovalState.EXECUTED: frozenset(),
    ApprovalState.FAILED: frozenset(),
}


class InvalidTransition(ValueError):
    """An approval was moved along an edge the lifecycle does not have."""


def transition(current: ApprovalState, new: ApprovalState) -> ApprovalState:
    if new not in TRANSITIONS[current]:
        allowed = ", ".join(sorted(TRANSITIONS[current])) or "nothing (final)"
        raise InvalidTransition(f"approval cannot go {current} -> {new}; from {current}: {allowed}")
    return new


def state_after(decision: Decision) -> ApprovalState:
    """The lifecycle state a decision puts its request in."""
    if decision.by == "timeout":
        return ApprovalState.EXPIRED
    return ApprovalState.APPROVED if decision.approved else ApprovalState.REJECTED


def timeout_decision(request: ApprovalRequest, ts_ms: int) -> Decision:
    """Nobody answered: apply the request's default (execute_if_reducing looks at the action)."""
    default = request.on_timeout
    approved = default == TimeoutDefault.EXECUTE or (
        default == TimeoutDefault.EXECUTE_IF_REDUCING and request.action.reduces_exposure
    )
    wait_s = (request.deadline_ts_ms - request.created_ts_ms) / 1000
    return Decision(
        request_id=request.request_id,
        action_id=request.action.action_id,
        approved=approved,
        by="timeout",
        ts_ms=ts_ms,
        reason=f"no answer in {wait_s:g}s; default {default.value}"
        + ("" if approved else " (not executed)"),
    )


async def race_deadline(
    answer: asyncio.Future[Decision],
    request: ApprovalRequest,
    clock: Clock,
    deadline_ts_ms: int | None = None,
) -> Decision:
    """The person's answer, or the timeout default once the clock passes the deadline.

    `deadline_ts_ms`: a deadline kept from before a restart (else the request's own).
    """
    wake_ms = request.deadline_ts_ms if deadline_ts_ms is None else deadline_ts_ms
    timer: asyncio.Future[None] = asyncio.ensure_future(clock.sleep_until(wake_ms))
    try:
        waiting: set[asyncio.Future[Any]] = {answer, timer}
        done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        if answer in done:
            return answer.result()
        return timeout_decision(request, max(clock.now_ms(), request.deadline_ts_ms))
    finally:
        timer.cancel()
        if not answer.done():
            answer.cancel()
