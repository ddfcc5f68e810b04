"""The run summary, read back from the journal (so a resumed run counts what came before)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from bot.journal import SqlJournal

KINDS = (
    "anomaly",
    "calm",
    "action_end",
    "strategy_failed",
    "risk_verdict",
    "decision",
    "order_sent",
    "fill",
    "failure",
    "paper_liquidation",
    "ladder",
)


@dataclass
class Summary:
    anomalies_by_level: Counter[int] = field(default_factory=Counter)
    calms: int = 0
    actions_by_status: Counter[tuple[str, str]] = field(default_factory=Counter)
    decisions_by: Counter[str] = field(default_factory=Counter)
    orders_sent: int = 0
    fills: int = 0
    filled_usd: float = 0.0
    fees_usd: float = 0.0
    refused_orders: int = 0
    failures: int = 0
    paper_liquidations: int = 0
    ladder: list[str] = field(default_factory=list)

    @property
    def actions(self) -> int:
        return sum(self.actions_by_status.values())


def summarize(journal: SqlJournal, session: str) -> Summary:
    out = Summary()
    for entry in journal.find(kinds=KINDS):
        p: dict[str, Any] = entry["payload"]
        if p.get("session") != session:
            continue
        kind = entry["kind"]
        if kind == "anomaly":
            out.anomalies_by_level[int(p["level"])] += 1
        elif kind == "calm":
            out.calms += 1
        elif kind == "action_end":
            out.actions_by_status[(str(p["strategy"]), str(p["status"]))] += 1
        elif kind == "strategy_failed":
            out.actions_by_status[(str(p["strategy"]), "plan failed")] += 1
            out.failures += 1
        elif kind == "risk_verdict":
            out.refused_orders += len(p.get("denied", ()))
        elif kind == "decision":
            out.decisions_by[str(p["by"])] += 1
        elif kind == "order_sent":
            out.orders_sent += 1
        elif kind == "fill":
            out.fills += 1
            out.filled_usd += float(p["amount"]) * float(p["price"])
            out.fees_usd += float(p["fee_usd"])
        elif kind == "failure":
            out.failures += 1
        elif kind == "paper_liquidation":
            out.paper_liquidations += 1
        elif kind == "ladder":
            out.ladder.append(f"{p['previous']} -> {p['state']}")
    return out
