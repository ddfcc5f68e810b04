"""Auto approver: every `confirm` action is approved at once, by "auto" (paper runs, tests)."""

from __future__ import annotations

from bot.events import ApprovalRequest, Decision
from bot.interfaces import Clock


class AutoApprover:
    name = "auto"

    def __init__(self, approve: bool = True) -> None:
        self.approve = approve

    async def decide(self, request: ApprovalRequest, clock: Clock) -> Decision:
        return Decision(
            request_id=request.request_id,
            action_id=request.action.action_id,
            approved=self.approve,
            by="auto",
            ts_ms=clock.now_ms(),
            reason="approvals.channel is auto",
        )
