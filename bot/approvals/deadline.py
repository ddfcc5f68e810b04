"""Nobody answers: each `confirm` step gets its own `on_timeout` default at its deadline, in the
run's clock (simulated time in a backtest), as when a person never replies."""

from __future__ import annotations

import asyncio

from bot.approvals.base import race_deadline
from bot.events import ApprovalRequest, Decision
from bot.interfaces import Clock


class DeadlineApprover:
    name = "nobody"

    async def decide(self, request: ApprovalRequest, clock: Clock) -> Decision:
        never: asyncio.Future[Decision] = asyncio.get_running_loop().create_future()
        return await race_deadline(never, request, clock)
