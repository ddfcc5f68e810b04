"""The run summary, read back from the journal (so a resumed run counts what came before)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from bot.events import JournalKind as K
from bot.interfaces import Journal

KINDS = (
    K.ANOMALY,
    K.CALM,
    K.ACTION_END,
    K.STRATEGY_FAILED,
    K.RISK_VERDICT,
    K.DECISION,
    K.ORDER_SENT,
    K.FILL,
    K.FAILURE,
    K.PAPER_LIQUIDATION,
    K.LADDER,
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


def summarize(journal: Journal, session: str) -> Summary:
    out = Summary()
    for entry in journal.find(kinds=KINDS):
        p: dict[str, Any] = entry["payload"]
        if p.get("session") != session:
            continue
        kind = entry["kind"]
        if kind == K.ANOMALY:
            out.anomalies_by_level[int(p["level"])] += 1
        elif kind == K.CALM:
            out.calms += 1
        elif kind == K.ACTION_END:
            out.actions_by_status[(str(p["strategy"]), str(p["status"]))] += 1
        elif kind == K.STRATEGY_FAILED:
            out.actions_by_status[(str(p["strategy"]), "plan failed")] += 1
            out.failures += 1
        elif kind == K.RISK_VERDICT:
            out.refused_orders += len(p.get("denied", ()))
        elif kind == K.DECISION:
            out.decisions_by[str(p["by"])] += 1
        elif kind == K.ORDER_SENT:
            out.orders_sent += 1
        elif kind == K.FILL:
            out.fills += 1
            out.filled_usd += float(p["amount"]) * float(p["price"])
            out.fees_usd += float(p["fee_usd"])
        elif kind == K.FAILURE:
            out.failures += 1
        elif kind == K.PAPER_LIQUIDATION:
            out.paper_liquidations += 1
        elif kind == K.LADDER:
            out.ladder.append(f"{p['previous']} -> {p['state']}")
    return out
