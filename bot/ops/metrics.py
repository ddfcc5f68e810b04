"""Prometheus metrics of a run: what came in, what the detector sees, what was done.

Counters of steps come from the committed journal (bot.ops.journal_tail), so /metrics and the
journal agree; gauges are read from the orchestrator when scraped. Names follow Prometheus
practice: base units (seconds, USD as `_usd`), `_total` on counters, labels of low cardinality
(venue, side, rule, level, strategy, outcome) and never ids.
"""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST as CONTENT_TYPE
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Enum,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)

from bot.events import Event, FeedStatus, JournalKind, Liquidation, TradingState
from bot.ops.journal_tail import JournalTail, Row

__all__ = ["CONTENT_TYPE", "Metrics"]

disable_created_metrics()  # the *_created series double the output and no alert uses them

FEED_STATES = ["connecting", "live", "reconnecting", "blind"]
# Journal commits take well under a millisecond to a few hundred on a slow disk.
COMMIT_BUCKETS_S = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
# A reaction's stages: microseconds (detect, submit) to a venue round trip of tens of ms
REACTION_BUCKETS_S = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
REACTION_STAGES = ("detect", "commit", "submit", "venue", "total")


class Metrics:
    def __init__(self, orchestrator: Any, tail: JournalTail, approver: Any = None) -> None:
        self.orchestrator = orchestrator
        self.tail = tail
        self.approver = approver
        self.registry = r = CollectorRegistry(auto_describe=True)
        self.up = Gauge("liqguard_up", "1 while the process runs", registry=r)
        self.up.set(1)
        self.start_time = Gauge(
            "liqguard_start_time_seconds", "when this process started", registry=r
        )
        self.start_time.set(time.time())
        self.events = Counter("liqguard_events", "input events handled", ["kind"], registry=r)
        self.liquidations = Counter(
            "liqguard_liquidations", "liquidations seen", ["venue", "side"], registry=r
        )
        self.liquidations_usd = Counter(
            "liqguard_liquidations_usd",
            "notional of liquidations seen",
            ["venue", "side"],
            registry=r,
        )
        self.last_event = Gauge(
            "liqguard_last_event_timestamp_seconds",
            "event time of the last event handled, per feed",
            ["feed"],
            registry=r,
        )
        self.last_event_wall = Gauge(
            "liqguard_last_event_processed_timestamp_seconds",
            "wall time the last event of each feed was handled",
            ["feed"],
            registry=r,
        )
        self.rejected = Counter(
            "liqguard_rejected_rows",
            "input rows rejected (bad values, unknown fields): a tape, onchain, or a live feed",
            ["source"], registry=r,
        )  # fmt: skip
        self.deleveraged = Counter(
            "liqguard_deleveraged", "dYdX DELEVERAGED trades seen (not liquidations, not acted on)",
            ["venue"], registry=r,
        )  # fmt: skip
        self.deleveraged_usd = Counter(
            "liqguard_deleveraged_usd", "notional of DELEVERAGED trades seen", ["venue"], registry=r
        )
        self.window = Gauge(
            "liqguard_rule_window_usd", "a rule's rolling window sum", ["rule"], registry=r
        )
        self.threshold = Gauge(
            "liqguard_rule_threshold_usd",
            "the window sum that raises the rule to its next level",
            ["rule"],
            registry=r,
        )
        self.level = Gauge(
            "liqguard_rule_level", "a rule's current level (0 calm)", ["rule"], registry=r
        )
        self.anomalies = Counter(
            "liqguard_anomalies", "anomalies raised", ["rule", "level"], registry=r
        )
        self.calms = Counter("liqguard_calms", "rules back to calm", ["rule"], registry=r)
        self.actions = Counter(
            "liqguard_actions", "actions ended, by outcome", ["strategy", "outcome"], registry=r
        )
        self.orders = Counter("liqguard_orders", "orders sent", ["venue", "side"], registry=r)
        self.order_results = Counter(
            "liqguard_order_results", "order outcomes", ["status"], registry=r
        )
        self.fills = Counter("liqguard_fills", "fills received", ["venue", "side"], registry=r)
        self.refusals = Counter(
            "liqguard_risk_refusals", "order intents refused by the risk gate", registry=r
        )
        self.approvals_requested = Counter(
            "liqguard_approvals_requested", "approvals asked of a person", registry=r
        )
        self.approvals_decided = Counter(
            "liqguard_approvals_decided",
            "approvals decided: approved, rejected, expired (nobody answered in time)",
            ["outcome"],
            registry=r,
        )
        self.approvals_pending = Gauge(
            "liqguard_approvals_pending", "approvals waiting for a person", registry=r
        )
        self.ladder = Enum(
            "liqguard_ladder_state", "the trading-state ladder",
            states=[s.value for s in TradingState], registry=r,
        )  # fmt: skip
        self.feed_state = Enum(
            "liqguard_feed_state", "each feed's state", ["venue"], states=FEED_STATES, registry=r
        )
        self.feed_silent = Gauge(
            "liqguard_feed_silent_seconds", "time since a feed last spoke", ["venue"], registry=r
        )
        self.feed_reconnects = Gauge(
            "liqguard_feed_reconnects", "reconnects of a feed so far", ["venue"], registry=r
        )
        self.feed_refused = Gauge(
            "liqguard_feed_refused_liquidations",
            "liquidations of a feed journaled but never acted on: stale or from the future",
            ["venue", "why"],
            registry=r,
        )
        self.feed_skew = Gauge(
            "liqguard_feed_clock_skew_seconds", "venue clock minus ours", ["venue"], registry=r
        )
        self.commit = Histogram(
            "liqguard_journal_commit_seconds", "journal transaction time",
            buckets=COMMIT_BUCKETS_S, registry=r,
        )  # fmt: skip
        self.reaction_s = Histogram(
            "liqguard_reaction_seconds",
            "an order sent for a live anomaly, by stage: detect (liquidation taken -> anomaly), "
            "commit (-> journal committed), submit (-> broker called), venue (-> answered), total",
            ["stage"], buckets=REACTION_BUCKETS_S, registry=r,
        )  # fmt: skip
        self._stages = tuple(self.reaction_s.labels(stage) for stage in REACTION_STAGES)
        self.last_commit = Gauge(
            "liqguard_journal_last_commit_timestamp_seconds", "last journal commit", registry=r
        )
        self.rows = Counter("liqguard_journal_rows", "journal rows committed", ["kind"], registry=r)
        self.loop_lag = Gauge(
            "liqguard_event_loop_lag_seconds", "how late the last heartbeat woke", registry=r
        )
        self.equity = Gauge("liqguard_paper_equity_usd", "paper account equity", registry=r)
        self.pnl = Gauge("liqguard_paper_pnl_usd", "paper account PnL", registry=r)
        self._asked: set[str] = set()
        self._decided: set[str] = set()
        self._feed_rejected: dict[str, int] = {}  # per live feed: the count already added
        tail.listeners.append(self.on_row)
        tail.commit_listeners.append(self.commit.observe)

    # -- inputs ---------------------------------------------------------------------------
    def on_event(self, event: Event, wall_s: float) -> None:
        if isinstance(event, Liquidation):
            self.events.labels("liquidation").inc()
            self.liquidations.labels(event.venue, event.side).inc()
            self.liquidations_usd.labels(event.venue, event.side).inc(event.notional_usd)
            feed = event.venue
        elif isinstance(event, FeedStatus):
            self.events.labels("feed_status").inc()
            feed = event.venue
        else:
            self.events.labels("price").inc()
            feed = "prices"
        self.last_event.labels(feed).set(event.ts_ms / 1000)
        self.last_event_wall.labels(feed).set(wall_s)

    def reaction(
        self, received_ns: int, detected_ns: int, committed_ns: int, submitted_ns: int,
        answered_ns: int,
    ) -> None:  # fmt: skip
        """One order's stage stamps (bot.interfaces.ReactionRecorder), perf_counter_ns."""
        detect, commit, submit, venue, total = self._stages
        detect.observe((detected_ns - received_ns) / 1e9)
        commit.observe((committed_ns - detected_ns) / 1e9)
        submit.observe((submitted_ns - committed_ns) / 1e9)
        venue.observe((answered_ns - submitted_ns) / 1e9)
        total.observe((answered_ns - received_ns) / 1e9)

    def on_rejected(self, source: str, n: int) -> None:
        if n > 0:
            self.rejected.labels(source).inc(n)

    def on_row(self, row: Row) -> None:
        kind, p = str(row["kind"]), row["payload"] or {}
        self.rows.labels(kind).inc()
        if kind == JournalKind.ANOMALY:
            self.anomalies.labels(str(p.get("rule")), str(p.get("level"))).inc()
        elif kind == JournalKind.CALM:
            self.calms.labels(str(p.get("rule"))).inc()
        elif kind == JournalKind.ACTION_END:
            self.actions.labels(str(p.get("strategy")), _outcome(p.get("status"))).inc()
        elif kind in (JournalKind.ACTION_FAILED, JournalKind.STRATEGY_FAILED):
            self.actions.labels(str(p.get("strategy")), "failed").inc()
        elif kind == JournalKind.ORDER_SENT:
            self.orders.labels(str(p.get("venue")), str(p.get("side"))).inc()
        elif kind == JournalKind.ORDER_RESULT:
            self.order_results.labels(str(p.get("status"))).inc()
        elif kind == JournalKind.FILL:
            self.fills.labels(str(p.get("venue")), str(p.get("side"))).inc()
        elif kind == JournalKind.RISK_VERDICT:
            if p.get("denied"):
                self.refusals.inc(len(p["denied"]))
        elif kind == JournalKind.APPROVAL_REQUEST:
            self._asked.add(str(p.get("action_id")))
            self.approvals_requested.inc()
        elif kind == JournalKind.DECISION and str(p.get("action_id")) in self._asked:
            self._decided.add(str(p.get("action_id")))
            state = str(p.get("state") or ("approved" if p.get("approved") else "rejected"))
            self.approvals_decided.labels(state).inc()
        elif kind == JournalKind.ONCHAIN_REJECTED:
            self.rejected.labels("onchain").inc()
        elif kind == JournalKind.LIQUIDATION_DELEVERAGED and p.get("counted", True):
            self.deleveraged.labels(str(p.get("venue"))).inc()
            self.deleveraged_usd.labels(str(p.get("venue"))).inc(float(p.get("notional_usd") or 0))

    # -- a scrape -------------------------------------------------------------------------
    def refresh(self) -> None:
        """Read the journal's new rows and the orchestrator's state into the gauges."""
        self.tail.poll()
        if self.tail.last_commit_s is not None:
            self.last_commit.set(self.tail.last_commit_s)
        status = self.orchestrator.status()
        for r in status["rules"]:
            self.window.labels(r["rule"]).set(r["window_usd"])
            self.threshold.labels(r["rule"]).set(r["threshold_usd"])
            self.level.labels(r["rule"]).set(r["level"])
        self.ladder.state(str(status["ladder"]))
        for venue, f in status.get("feeds", {}).items():
            if f.get("state") in FEED_STATES:
                self.feed_state.labels(venue).state(f["state"])
            self.feed_silent.labels(venue).set(float(f.get("silent_s") or 0))
            self.feed_reconnects.labels(venue).set(int(f.get("reconnects") or 0))
            for why in ("stale", "future"):
                if why in f:
                    self.feed_refused.labels(venue, why).set(int(f[why] or 0))
            if f.get("clock_skew_ms") is not None:
                self.feed_skew.labels(venue).set(f["clock_skew_ms"] / 1000)
            rejected = int(f.get("rejected") or 0)  # the feed's running count: add what is new
            self.on_rejected(venue, rejected - self._feed_rejected.get(venue, 0))
            self._feed_rejected[venue] = max(rejected, self._feed_rejected.get(venue, 0))
        pending = getattr(self.approver, "pending", None)
        waiting = len(pending()) if callable(pending) else len(self._asked - self._decided)
        self.approvals_pending.set(waiting)
        if "equity_usd" in status:
            self.equity.set(status["equity_usd"])
            self.pnl.set(status["pnl_usd"])

    def scrape(self) -> bytes:
        self.refresh()
        return generate_latest(self.registry)


def _outcome(status: Any) -> str:
    """An action's end status as a label of few values (its detail text stays in the journal)."""
    text = str(status or "unknown")
    return text.replace(" ", "_")


class RoleMetrics:
    """Who leads an `ha.group` (bot.app.ha): liqguard_ha_leader{group} 1 while this process
    leads, 0 standing by; liqguard_ha_term{group}: the term it holds, or the last it saw.

    Into a run's registry (the leader's Metrics), or its own with liqguard_up (a standby)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = r = registry or CollectorRegistry(auto_describe=True)
        if registry is None:
            Gauge("liqguard_up", "1 while the process runs", registry=r).set(1)
        self.leader = Gauge(
            "liqguard_ha_leader", "1 while this process leads its ha.group", ["group"], registry=r
        )
        self.term = Gauge(
            "liqguard_ha_term", "the group's leadership term (held, or last seen)", ["group"],
            registry=r,
        )  # fmt: skip

    def set(self, group: str, leading: bool, term: int | None) -> None:
        self.leader.labels(group).set(1 if leading else 0)
        self.term.labels(group).set(term or 0)

    def scrape(self) -> bytes:
        return generate_latest(self.registry)
