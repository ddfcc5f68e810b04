"""The orchestrator as the engine tests build it: a paper broker in simulated time, session s1."""

from __future__ import annotations

from typing import Any

from bot.approvals import AutoApprover
from bot.brokers.paper import PaperBroker
from bot.clock import SimClock
from bot.config.settings import Settings
from bot.detector import Detector
from bot.engine.orchestrator import Orchestrator
from bot.engine.policy import check_policy
from bot.interfaces import Approver, Journal, Notifier
from bot.risk import RiskGate


def paper_orchestrator(
    settings: Settings,
    paper: PaperBroker,
    journal: Journal,
    notifier: Notifier,
    clock: SimClock,
    approver: Approver | None = None,
    **extra: Any,
) -> Orchestrator:
    """`settings`' rules and policy over `paper` (its account and its market), auto approvals
    unless `approver` is given; `extra`: the Orchestrator's other keywords."""
    return Orchestrator(
        session="s1",
        detector=Detector(settings.rules),
        risk=RiskGate(settings.risk),
        broker=paper,
        market=paper,
        journal=journal,
        approver=approver or AutoApprover(),
        notifier=notifier,
        clock=clock,
        policy=settings.policy,
        resolved=check_policy(settings.policy),
        settle=clock.settle,
        **extra,
    )
