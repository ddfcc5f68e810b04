"""What a restart needs, in the journal: detector, ladder, paper accounts, the event cursor.

- Counters: what the session has seen (for the live view; the summary reads the journal)
- StateStore: checkpoint (all states in ONE transaction, with the actions still running),
  save_account (after each fill or ladder change; a replay keeps only checkpoints, so what is
  restored is one moment), save_portfolio / heartbeat (scheduler jobs), restore
- run_status: the live view's numbers
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bot.detector import Detector
from bot.events import Portfolio
from bot.interfaces import Clock, Journal, PaperMarket
from bot.journal import JournalError, to_payload
from bot.risk import RiskGate


@dataclass
class Counters:
    events: int = 0
    liquidations: int = 0
    prices: int = 0
    anomalies_by_level: dict[int, int] = field(default_factory=dict)
    calms: int = 0
    actions: int = 0

    @classmethod
    def from_payload(cls, events: int, c: dict[str, Any]) -> Counters:
        return cls(
            events=events,
            liquidations=int(c.get("liquidations", 0)),
            prices=int(c.get("prices", 0)),
            calms=int(c.get("calms", 0)),
            actions=int(c.get("actions", 0)),
            anomalies_by_level={int(k): int(v) for k, v in c.get("anomalies_by_level", {}).items()},
        )


class StateStore:
    def __init__(
        self,
        session: str,
        journal: Journal,
        detector: Detector,
        risk: RiskGate,
        paper: PaperMarket | None,
        baseline: PaperMarket | None,
        clock: Clock,
        rewinds: bool = False,
    ) -> None:
        self.journal = journal
        self.rewinds = rewinds
        self.detector = detector
        self.risk = risk
        self.paper = paper
        self.baseline = baseline
        self.clock = clock
        self.names = {
            k: f"{k}:{session}"
            for k in ("detector", "risk", "paper", "baseline", "cursor", "portfolio", "heartbeat")
        }

    def checkpoint(
        self, counters: Counters, finished: bool = False, running: list[str] | None = None
    ) -> None:
        values: dict[str, dict[str, Any]] = {
            self.names["detector"]: self.detector.snapshot(),
            self.names["risk"]: self.risk.snapshot(),
            self.names["cursor"]: {
                "events": counters.events,
                "ts_ms": self.clock.now_ms(),
                "finished": finished,
                "counters": to_payload(counters),
                "running": list(running or ()),
            },
        }
        if self.paper is not None:
            values[self.names["paper"]] = self.paper.snapshot()
        if self.baseline is not None:
            values[self.names["baseline"]] = self.baseline.snapshot()
        self.journal.checkpoint(values)

    def save_account(self) -> None:
        if self.rewinds:
            # A replay restores the checkpoint and plays the events after it again: an account
            # saved in between would be ahead of the events (stops, marks, drawdown).
            self.journal.flush()
            return
        values: dict[str, dict[str, Any]] = {self.names["risk"]: self.risk.snapshot()}
        if self.paper is not None:
            values[self.names["paper"]] = self.paper.snapshot()
        self.journal.checkpoint(values)

    def save_portfolio(self, portfolio: Portfolio) -> None:
        """The broker's account as last read (live balances drift without us)."""
        self.journal.put_state(
            self.names["portfolio"],
            {
                "ts_ms": portfolio.ts_ms,
                "balance_usd": portfolio.balance_usd,
                "positions": [to_payload(p) for p in portfolio.positions],
                "open_orders": len(portfolio.open_orders),
            },
        )

    def heartbeat(self, events: int) -> None:
        self.journal.put_state(
            self.names["heartbeat"], {"ts_ms": self.clock.now_ms(), "events": events}
        )

    def restore(self) -> tuple[dict[str, Any], Counters] | None:
        """The last checkpoint back into the detector, the risk gate and the accounts; a saved
        state that does not read back (edited by hand, another version) is a JournalError."""
        name = self.names["cursor"]
        try:
            return self._restore()
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise JournalError(
                f"the journal's saved state of session {name.removeprefix('cursor:')} is "
                f"damaged ({type(exc).__name__}: {exc}); start over with --fresh"
            ) from None

    def _restore(self) -> tuple[dict[str, Any], Counters] | None:
        cursor = self.journal.get_state(self.names["cursor"])
        if cursor is None:
            return None
        int(cursor["events"]), int(cursor["ts_ms"])  # a damaged cursor fails before any restore
        if (det := self.journal.get_state(self.names["detector"])) is not None:
            self.detector.restore(det)
        if (risk := self.journal.get_state(self.names["risk"])) is not None:
            self.risk.restore(risk)
        if self.paper is not None and (acct := self.journal.get_state(self.names["paper"])):
            self.paper.restore(acct)
        if self.baseline is not None and (base := self.journal.get_state(self.names["baseline"])):
            self.baseline.restore(base)
        return cursor, Counters.from_payload(int(cursor["events"]), cursor.get("counters", {}))


def run_status(state: StateStore, counters: Counters, running: int) -> dict[str, Any]:
    out: dict[str, Any] = {
        "ts_ms": state.clock.now_ms(),
        "events": counters.events,
        "ladder": state.risk.state.value,
        "rules": [
            {
                "rule": s.rule,
                "level": s.level,
                "window_usd": s.window_usd,
                "threshold_usd": s.threshold_usd,
            }
            for s in state.detector.status()
        ],
        "anomalies_by_level": dict(counters.anomalies_by_level),
        "actions": counters.actions,
        "running_actions": running,
    }
    if state.paper is not None:
        out["positions"] = [
            {
                "symbol": p.symbol,
                "side": p.side,
                "size": p.size,
                "entry": p.entry_price,
                "liq": p.liquidation_price,
            }
            for p in state.paper.positions.values()
        ] + [
            {"symbol": o.symbol, "side": "long", "size": o.size, "entry": o.entry_usd, "liq": None}
            for o in state.paper.options.values()
        ]
        out["equity_usd"] = state.paper.equity_usd()
        out["pnl_usd"] = state.paper.pnl_usd()
    if state.baseline is not None:
        out["baseline_pnl_usd"] = state.baseline.pnl_usd()
    return out
