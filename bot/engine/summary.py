"""The run summary, read back from the journal (so a resumed run counts what came before).

Options (paper model): premium paid, sold back and settled come from the fills and the
settlements; what is still held counts at the paper account's last model mark (its state).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from bot.brokers.options_model import is_option_symbol
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
    K.OPTION_MARK,
    K.OPTION_SETTLEMENT,
    K.LIQUIDATION_DELEVERAGED,
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
    option_bought: float = 0.0  # contracts
    option_premium_usd: float = 0.0
    option_sold: float = 0.0
    option_sold_usd: float = 0.0
    option_settled_usd: float = 0.0  # intrinsic paid at expiry, less the delivery fee
    option_fees_usd: float = 0.0
    option_marks: int = 0
    option_held_usd: float = 0.0  # still held, at the last model mark
    # dYdX DELEVERAGED trades by venue: not liquidations, never acted on, shown apart
    deleveraged: Counter[str] = field(default_factory=Counter)
    deleveraged_usd: dict[str, float] = field(default_factory=dict)

    @property
    def actions(self) -> int:
        return sum(self.actions_by_status.values())

    @property
    def has_options(self) -> bool:
        return self.option_bought > 0 or self.option_marks > 0

    @property
    def option_pnl_usd(self) -> float:
        """What the options returned: sold + settled + still held, less premium and fees."""
        back = self.option_sold_usd + self.option_settled_usd + self.option_held_usd
        return back - self.option_premium_usd - self.option_fees_usd


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
            if is_option_symbol(str(p["symbol"])):
                _option_fill(out, p)
        elif kind == K.FAILURE:
            out.failures += 1
        elif kind == K.PAPER_LIQUIDATION:
            out.paper_liquidations += 1
        elif kind == K.LADDER:
            out.ladder.append(f"{p['previous']} -> {p['state']}")
        elif kind == K.OPTION_MARK:
            out.option_marks += 1
        elif kind == K.OPTION_SETTLEMENT:
            out.option_settled_usd += float(p["paid_usd"])
        elif kind == K.LIQUIDATION_DELEVERAGED and p.get("counted", True):
            venue = str(p["venue"])  # the subscribe snapshot's old trades are not counted
            out.deleveraged[venue] += 1
            out.deleveraged_usd[venue] = out.deleveraged_usd.get(venue, 0.0) + float(
                p["notional_usd"]
            )
    paper = journal.get_state(f"paper:{session}") or {}
    out.option_held_usd = sum(
        float(o["size"]) * float(o["mark_usd"]) for o in paper.get("options", [])
    )
    return out


def _option_fill(out: Summary, p: dict[str, Any]) -> None:
    amount, usd = float(p["amount"]), float(p["amount"]) * float(p["price"])
    out.option_fees_usd += float(p["fee_usd"])
    if p["side"] == "buy":
        out.option_bought += amount
        out.option_premium_usd += usd
    else:
        out.option_sold += amount
        out.option_sold_usd += usd
