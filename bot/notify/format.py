"""Message text shared by every notifier (console, Telegram, webhook): plain text, no markup.

Contents:
- Message: severity + title + body, what a notifier renders
- usd: money for people ($6.40M)
- floor_note: the caveat when Binance or OKX contributed to a sum (their feeds under-report)
- render(event): the Message for any bot.events event (or a Notice)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from bot.events import (
    Action,
    Anomaly,
    ApprovalRequest,
    Calm,
    Decision,
    FeedStatus,
    Fill,
    Notice,
    OrderResult,
    RiskVerdict,
    Severity,
    TradingStateChanged,
)
from bot.symbols import venue_matches

# Venues whose public feed under-reports (venues.md); Bybit and on-chain logs are complete.
FLOOR_REASONS = {
    "binance": "Binance pushes at most one liquidation per symbol per second",
    "okx": "OKX says its feed does not carry every liquidation",
}
FLOOR_NOTE = "is a floor, not the total"


def floor_note(venues: Sequence[str]) -> str:
    """The caveat for the venues that contributed, or "" when every one of them is complete."""
    families = [f for f in FLOOR_REASONS if any(venue_matches(f, v) for v in venues)]
    if not families:
        return ""
    names = " and ".join("OKX" if f == "okx" else f.capitalize() for f in families)
    reasons = "; ".join(FLOOR_REASONS[f] for f in families)
    return f"The {names} part of this sum {FLOOR_NOTE}: {reasons}."


@dataclass(frozen=True, slots=True)
class Message:
    severity: Severity
    title: str
    body: str
    page: bool = False

    @property
    def text(self) -> str:
        return f"{self.title}\n{self.body}" if self.body else self.title


def usd(value: float) -> str:
    """$1.23B, $6.40M, $12.3k, $950."""
    sign = "-" if value < 0 else ""
    v = abs(value)
    if v >= 1e9:
        return f"{sign}${v / 1e9:.2f}B"
    if v >= 1e6:
        return f"{sign}${v / 1e6:.2f}M"
    if v >= 1e4:
        return f"{sign}${v / 1e3:.1f}k"
    return f"{sign}${v:,.0f}"


def utc(ts_ms: int) -> str:
    return datetime.fromtimestamp(ts_ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _anomaly(a: Anomaly) -> Message:
    tops = ", ".join(f"{s.name} {usd(s.usd)}" for s in a.top_symbols) or "n/a"
    venues = ", ".join(f"{v.name} {usd(v.usd)}" for v in a.top_venues) or "n/a"
    lines = [
        f"Window sum {usd(a.window_usd)} >= threshold {usd(a.threshold_usd)} "
        f"(base {usd(a.base_threshold_usd)}, level {a.previous_level} -> {a.level})",
        f"Longs liquidated {usd(a.long_usd)}, shorts {usd(a.short_usd)}; {a.events} events",
        f"Top symbols: {tops}",
        f"Top venues: {venues}",
    ]
    if note := floor_note([v.name for v in a.top_venues]):
        lines.append(note)
    lines.append(f"at {utc(a.ts_ms)}")
    severity: Severity = "critical" if a.level >= 3 else "warning"
    return Message(severity, f"Liquidation anomaly L{a.level} (rule {a.rule})", "\n".join(lines))


def _action(a: Action) -> Message:
    legs = "\n".join(
        f"  {i.side.upper()} {i.amount:.6g} {i.symbol} {i.kind}"
        + (f" stop {i.stop_price:.2f}" if i.stop_price else "")
        + (" reduce-only" if i.reduce_only else "")
        + (f" slice {i.slice_index + 1}/{i.slice_count}" if i.slice_count > 1 else "")
        for i in a.intents
    )
    body = f"{a.summary}\napproval: {a.approval.value}" + (f"\n{legs}" if legs else "")
    when = f"L{a.level}" if a.level > 0 else "Calm"
    return Message("info", f"{when} action {a.strategy} [{a.action_id}]", body)


def _verdict(v: RiskVerdict) -> Message:
    reasons = "\n".join(
        f"  {i.side.upper()} {i.amount:.6g} {i.symbol}: {why}" for i, why in v.denied
    )
    title = "Risk refused the action" if v.all_denied else "Risk refused part of the action"
    return Message("warning", f"{title} [{v.action_id}] ({v.state.value})", reasons or v.reason)


def _request(r: ApprovalRequest) -> Message:
    wait_s = (r.deadline_ts_ms - r.created_ts_ms) / 1000
    body = (
        f"{r.text or r.action.summary}\n"
        f"Answer within {wait_s:.0f}s; on timeout: {r.on_timeout.value}. id {r.request_id}"
    )
    title = f"Approve L{r.action.level} {r.action.strategy}?"
    return Message("warning", title, body, page=True)


def _decision(d: Decision) -> Message:
    verb = "approved" if d.approved else "rejected"
    why = f": {d.reason}" if d.reason else ""
    return Message("info", f"Action {d.action_id} {verb} by {d.by}{why}", "")


def _fill(f: Fill) -> Message:
    title = f"Filled {f.side.upper()} {f.amount:.6g} {f.symbol} @ {f.price:,.2f}"
    return Message("info", title, f"fee {usd(f.fee_usd)}, client id {f.client_id}")


def _result(r: OrderResult) -> Message:
    severity: Severity = "warning" if r.status in ("rejected", "failed") else "info"
    return Message(severity, f"Order {r.client_id} {r.status}", r.error)


def _state(t: TradingStateChanged) -> Message:
    severity: Severity = "critical" if t.state.value == "HALTED" else "warning"
    title = f"Trading state {t.previous.value} -> {t.state.value}"
    return Message(severity, title, f"{t.reason} (by {t.by})", page=t.state.value == "HALTED")


def _feed(f: FeedStatus) -> Message:
    severity: Severity = "warning" if f.state != "live" else "info"
    parts = [f"silent {f.silent_s:.0f}s"]
    if f.reconnects:
        parts.append(f"{f.reconnects} reconnect(s)")
    if f.clock_skew_ms is not None:
        parts.append(f"clock skew {f.clock_skew_ms} ms")
    if f.detail:
        parts.append(f.detail)
    if f.state != "live":
        parts.append("no calm is declared on a rule that counts this feed until it is back")
    return Message(severity, f"Feed {f.venue} is {f.state}", "; ".join(parts))


def render(event: object) -> Message:
    """The text of any event a notifier may be handed."""
    match event:
        case Notice():
            return Message(event.severity, event.title, event.text, event.page)
        case Anomaly():
            return _anomaly(event)
        case Calm():
            return Message(
                "info",
                f"Calm (rule {event.rule})",
                f"level {event.previous_level} -> 0 at {utc(event.ts_ms)}",
            )
        case Action():
            return _action(event)
        case RiskVerdict():
            return _verdict(event)
        case ApprovalRequest():
            return _request(event)
        case Decision():
            return _decision(event)
        case Fill():
            return _fill(event)
        case OrderResult():
            return _result(event)
        case TradingStateChanged():
            return _state(event)
        case FeedStatus():
            return _feed(event)
        case _:
            return Message("info", type(event).__name__, str(event))
