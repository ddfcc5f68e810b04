"""RuntimeControl: the Control protocol of bot.telegram.commands over a running Orchestrator.

Data only: status, portfolio, ladder changes, history and chart input come from the
orchestrator's public surface (status, set_trading_state), its broker and the journal;
Telegram formats them.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import Any

from loguru import logger

from bot.app.overrides import OverrideDesk
from bot.config.settings import Settings
from bot.engine.orchestrator import Orchestrator
from bot.events import Anomaly, JournalKind, Portfolio, TradingState, TradingStateChanged
from bot.interfaces import Broker
from bot.journal import SqlJournal
from bot.notify.charts import ChartInput
from bot.telegram.commands import HistoryItem, RuleView, StatusView

_SAMPLES = 3000  # 25 h at one sample per 30 s
_HISTORY_KINDS = (
    JournalKind.ACTION_PLANNED,
    JournalKind.DECISION,
    JournalKind.ORDER_RESULT,
    JournalKind.LADDER,
    JournalKind.FAILURE,
)


def feed_text(f: dict[str, Any]) -> str:
    """ "blind, silent 42s, 3 reconnects, skew 120 ms: <detail>" from Orchestrator.status()."""
    parts = [str(f.get("state")), f"silent {float(f.get('silent_s') or 0):.0f}s"]
    if f.get("reconnects"):
        parts.append(f"{f['reconnects']} reconnects")
    if f.get("clock_skew_ms") is not None:
        parts.append(f"skew {f['clock_skew_ms']} ms")
    for key in ("stale", "future"):  # liquidations refused by age: journaled, not acted on
        if f.get(key):
            parts.append(f"{f[key]} {key} refused")
    if f.get("deleveraged"):  # dYdX DELEVERAGED trades: not liquidations, shown apart
        usd = float(f.get("deleveraged_usd") or 0)
        parts.append(f"{f['deleveraged']} deleveraged (${usd:,.0f}, not liquidations)")
    if f.get("rejected"):  # rows the feed's source refused (malformed, unknown, unsized)
        parts.append(f"{f['rejected']:,} rows rejected (last: {f.get('last_rejected') or '?'})")
    text = ", ".join(parts)
    return f"{text}: {f['detail']}" if f.get("state") != "live" and f.get("detail") else text


def _history_text(kind: str, p: dict[str, Any]) -> str:
    if kind == JournalKind.DECISION:
        verb = "approved" if p.get("approved") else "rejected"
        return f"{p.get('action_id')} {verb} by {p.get('by')}"
    if kind == JournalKind.ORDER_RESULT:
        return f"order {p.get('client_id')} {p.get('status')} {p.get('error') or ''}".strip()
    if kind == JournalKind.LADDER:
        return f"{p.get('previous')} → {p.get('state')} by {p.get('by')}: {p.get('reason')}"
    if kind == JournalKind.ACTION_PLANNED:
        return f"L{p.get('level')} {p.get('strategy')} [{p.get('action_id')}]"
    return str(p.get("error") or p.get("reason") or p)[:200]


class RuntimeControl:
    def __init__(
        self,
        orchestrator: Orchestrator,
        broker: Broker,
        journal: SqlJournal,
        settings: Settings,
        changes: OverrideDesk | None = None,
    ) -> None:
        self.orchestrator = orchestrator
        self.broker = broker
        self.journal = journal
        self.settings = settings
        self.changes = changes  # /threshold, /rule, /policy, /overrides
        self._windows: dict[str, deque[tuple[int, float]]] = {}
        self._prices: deque[tuple[int, float]] = deque(maxlen=_SAMPLES)
        self._price_symbol = ""
        self.role: Callable[[], str] | None = None  # ha: who leads, said by /status (bot.app.ha)
        if changes is not None:
            changes.listeners.append(self._new_settings)

    def _new_settings(self, settings: Settings) -> None:
        self.settings = settings

    async def status(self) -> StatusView:
        s = self.orchestrator.status()
        anomalies = self._anomalies()
        rules = tuple(
            RuleView(
                r["rule"],
                r["level"],
                r["window_usd"],
                r["threshold_usd"],
                max((a.ts_ms for a in anomalies if a.rule == r["rule"]), default=None),
            )
            for r in s["rules"]
        )
        role = f" · {self.role()}" if self.role is not None else ""
        return StatusView(
            mode=f"{self.settings.mode}{role}",
            state=TradingState(s["ladder"]),
            rules=rules,
            feeds={venue: feed_text(f) for venue, f in s.get("feeds", {}).items()},
            portfolio=await self.broker.portfolio(),
            realized_pnl_usd=float(s.get("pnl_usd") or 0.0),
        )

    async def portfolio(self) -> Portfolio:
        return await self.broker.portfolio()

    async def set_state(self, state: TradingState, reason: str, by: str) -> TradingStateChanged:
        return await self.orchestrator.set_trading_state(state, reason, by)

    async def history(self, limit: int) -> list[HistoryItem]:
        rows = self.journal.recent(limit, kinds=list(_HISTORY_KINDS))
        return [
            HistoryItem(r["ts_ms"], r["kind"], _history_text(r["kind"], r["payload"])) for r in rows
        ]

    def _anomalies(self) -> list[Anomaly]:
        out = []
        for r in self.journal.recent(200, kinds=[JournalKind.ANOMALY]):
            p = dict(r["payload"])
            try:
                out.append(
                    Anomaly(
                        **{
                            k: p[k]
                            for k in Anomaly.__dataclass_fields__
                            if k in p and "top_" not in k
                        }
                    )
                )
            except TypeError:
                continue
        return out

    async def sample(self) -> None:
        """Remember the window sums and a mark now (the chart's line between anomalies)."""
        now = self.orchestrator.clock.now_ms()
        for r in self.orchestrator.status()["rules"]:
            self._windows.setdefault(r["rule"], deque(maxlen=_SAMPLES)).append(
                (now, float(r["window_usd"]))
            )
        portfolio = await self.broker.portfolio()
        symbol = portfolio.positions[0].symbol if portfolio.positions else None
        price = portfolio.prices.get(symbol) if symbol else None
        if price is None and portfolio.positions:
            price = portfolio.positions[0].mark_price
        if price:
            self._prices.append((now, float(price)))
            self._price_symbol = symbol or ""

    async def run_sampler(self, interval_s: float = 30.0) -> None:
        """Sample forever (a background task of the Telegram parts)."""
        while True:
            try:
                await self.sample()
            except Exception as exc:  # a missed sample only thins the chart
                logger.debug("chart sample failed: {}", exc)
            await asyncio.sleep(interval_s)

    async def chart_input(self) -> ChartInput | None:
        await self.sample()
        rule = self.settings.rules[0]
        anomalies = [a for a in self._anomalies() if a.rule == rule.name]
        points = sorted(
            {*self._windows.get(rule.name, ()), *((a.ts_ms, a.window_usd) for a in anomalies)}
        )
        chart = self.settings.telegram.chart if self.settings.telegram else None
        return ChartInput(
            now_ms=self.orchestrator.clock.now_ms(),
            window_s=rule.window_s,
            base_threshold_usd=rule.threshold_usd,
            factor=rule.factor,
            points=points,
            anomalies=anomalies,
            prices=list(self._prices),
            price_label=f"{self._price_symbol} price" if self._price_symbol else "price",
            hours=chart.hours if chart else 6.0,
            title=f"Rule {rule.name}: rolling window sum vs thresholds",
            width_px=chart.width_px if chart else 1000,
            height_px=chart.height_px if chart else 550,
        )
