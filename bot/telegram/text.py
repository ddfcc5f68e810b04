"""Telegram's own texts: the approval question and its outcome; alerts use bot.notify.format.

- format_event(event) -> str (the shared formatter's text, one formatter for every channel)
- intent_line, action_notional_usd, on_timeout_text
- approval_text(request, prices, approvers_needed) -> str ; decision_line(decision, who) -> str
"""

from __future__ import annotations

from collections.abc import Mapping

from bot.config.overrides import CONFIG_STRATEGY
from bot.events import Action, ApprovalRequest, Decision, OrderIntent, TimeoutDefault
from bot.notify.format import render, usd, utc


def intent_line(i: OrderIntent, prices: Mapping[str, float] | None = None) -> str:
    price = i.price if i.price is not None else (prices or {}).get(i.symbol)
    where = f"@ {i.price:g}" if i.price is not None else "@ market"
    if i.kind == "stop" and i.stop_price is not None:
        where = f"stop {i.stop_price:g}"
    if i.kind == "cancel":
        return f"cancel order {i.cancel_client_id} on {i.venue} {i.symbol}"
    notional = f", ~{usd(i.notional_usd(price))}" if price else ", notional unknown (no price)"
    ro = "reduce-only" if i.reduce_only else "NOT reduce-only (may add exposure)"
    return f"{i.side.upper()} {i.amount:g} {i.symbol} {where} on {i.venue}, {ro}{notional}"


def action_notional_usd(action: Action, prices: Mapping[str, float] | None = None) -> float:
    total = 0.0
    for i in action.intents:
        price = i.price if i.price is not None else (prices or {}).get(i.symbol)
        if price and i.kind != "cancel":
            total += i.notional_usd(price)
    return total


def on_timeout_text(on_timeout: TimeoutDefault, reduces_exposure: bool) -> str:
    if on_timeout is TimeoutDefault.EXECUTE:
        return "it will be EXECUTED"
    if on_timeout is TimeoutDefault.EXECUTE_IF_REDUCING:
        verdict = "EXECUTED (it reduces exposure)" if reduces_exposure else "CANCELED"
        return f"it will be {verdict}"
    return "it will be CANCELED"


def approval_text(
    request: ApprovalRequest, prices: Mapping[str, float] | None, approvers_needed: int
) -> str:
    a = request.action
    timeout_s = max(0, (request.deadline_ts_ms - request.created_ts_ms) // 1000)
    if a.strategy == CONFIG_STRATEGY:  # a runtime change: the diff is the whole question
        lines = [f"🟡 Confirm a configuration change · request {request.request_id}", request.text]
        lines.append(
            f"Timeout {timeout_s} s (at {utc(request.deadline_ts_ms)}): then nothing changes."
        )
        if approvers_needed > 1:
            lines.append(f"Needs {approvers_needed} different approvers; any reject vetoes.")
        lines.append(f"Or type /approve {request.request_id} or /reject {request.request_id}")
        return "\n".join(lines)
    lines = [
        f"🟡 Approval needed: {a.strategy} for rule {a.rule} level {a.level}",
        f"Action {a.action_id} · request {request.request_id}",
    ]
    if a.summary or request.text:
        lines.append(request.text or a.summary)
    lines.append("Orders:")
    lines += [f"{n}. {intent_line(i, prices)}" for n, i in enumerate(a.intents, 1)] or ["(none)"]
    if a.ladder_target is not None:
        lines.append(f"Trading state will switch to {a.ladder_target.value}.")
    lines.append(f"Total notional ~{usd(action_notional_usd(a, prices))}")
    lines.append(
        f"Timeout {timeout_s} s (at {utc(request.deadline_ts_ms)}): if nobody decides, "
        f"{on_timeout_text(request.on_timeout, a.reduces_exposure)}."
    )
    if approvers_needed > 1:
        lines.append(f"Needs {approvers_needed} different approvers; any reject vetoes.")
    lines.append(f"Or type /approve {request.request_id} or /reject {request.request_id}")
    return "\n".join(lines)


def decision_line(decision: Decision, who: str) -> str:
    verb = "✅ APPROVED" if decision.approved else "❌ REJECTED"
    if decision.by == "timeout":
        return f"⏱ No answer in time: {verb.split()[1]} by default at {utc(decision.ts_ms)}"
    return f"{verb} by {who} at {utc(decision.ts_ms)}" + (
        f" ({decision.reason})" if decision.reason else ""
    )


def format_event(event: object) -> str:
    """One alert text for an event of bot.events or a Notice (the shared formatter's text)."""
    return render(event).text
