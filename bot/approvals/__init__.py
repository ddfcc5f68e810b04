"""Approvers behind one interface (bot.interfaces.Approver): auto, console; Telegram plugs in.

A `confirm` action becomes an ApprovalRequest; the approver returns a Decision, or the
request's timeout default once its deadline passes on the (wall or simulated) clock.
"""

from bot.approvals.auto import AutoApprover
from bot.approvals.base import (
    TRANSITIONS,
    ApprovalState,
    InvalidTransition,
    race_deadline,
    state_after,
    timeout_decision,
    transition,
)
from bot.approvals.console import ConsoleApprover

__all__ = [
    "TRANSITIONS",
    "ApprovalState",
    "AutoApprover",
    "ConsoleApprover",
    "InvalidTransition",
    "race_deadline",
    "state_after",
    "timeout_decision",
    "transition",
]
