"""Deterministic ids and idempotency keys, and decoding journaled actions.

An action id depends only on (session, rule, trigger time, level, action index), so running
the same tape again after a restart produces the same ids, and the journal's keys tell which
steps already happened. Client ids (`{action_id}-{leg}`) stay within exchange limits (36).
"""

from __future__ import annotations

import hashlib
from typing import Any

from bot.engine.policy import ResolvedAction
from bot.events import (
    Action,
    Anomaly,
    ApprovalMode,
    Calm,
    JournalKind,
    OrderIntent,
    SymbolUsd,
    TimeoutDefault,
    TradingState,
)
from strategies.base import Plan


def action_id(session: str, rule: str, trigger_ts_ms: int, level: int | str, index: int) -> str:
    digest = hashlib.sha1(
        f"{session}|{rule}|{trigger_ts_ms}|{level}|{index}".encode(), usedforsecurity=False
    )
    return "lg" + digest.hexdigest()[:14]


# Idempotency keys, one per step; `end` marks an action finished (skipped on resume).
def anomaly_key(session: str, rule: str, ts_ms: int, level: int) -> str:
    return f"anomaly:{session}:{rule}:{ts_ms}:{level}"


def calm_key(session: str, rule: str, ts_ms: int) -> str:
    return f"calm:{session}:{rule}:{ts_ms}"


def answered_key(detection_key: str) -> str:
    return f"answered:{detection_key}"


def plan_key(aid: str) -> str:
    return f"plan:{aid}"


def risk_key(aid: str) -> str:
    return f"risk:{aid}"


def request_key(aid: str) -> str:
    return f"approval:{aid}"


def decision_key(aid: str) -> str:
    return f"decision:{aid}"


def end_key(aid: str) -> str:
    return f"end:{aid}"


ORDER_KEY_PREFIX = "order:"


def order_key(client_id: str) -> str:
    return f"{ORDER_KEY_PREFIX}{client_id}"


def client_id_of_order_key(key: str) -> str:
    """The client id in an order_key (the journal lists sent orders by the prefix)."""
    return key.removeprefix(ORDER_KEY_PREFIX)


def result_key(client_id: str) -> str:
    return f"result:{client_id}"


def fill_key(client_id: str, n: int) -> str:
    return f"fill:{client_id}:{n}"


def intent_from(d: dict[str, Any]) -> OrderIntent:
    return OrderIntent(**d)


def action_from(d: dict[str, Any]) -> Action:
    """The Action of a journaled `action_planned` payload."""
    fields = {k: d[k] for k in Action.__dataclass_fields__ if k in d}
    fields["intents"] = tuple(intent_from(i) for i in d["intents"])
    fields["approval"] = ApprovalMode(d["approval"])
    fields["on_timeout"] = TimeoutDefault(d["on_timeout"])
    target = d.get("ladder_target")
    fields["ladder_target"] = TradingState(target) if target else None
    return Action(**fields)


def detection_from(kind: str, d: dict[str, Any]) -> Anomaly | Calm:
    """The Anomaly (or Calm) of a journaled `anomaly` (or `calm`) payload."""
    if kind == JournalKind.CALM:
        return Calm(d["rule"], int(d["ts_ms"]), int(d.get("previous_level", 0)))
    fields = {k: d[k] for k in Anomaly.__dataclass_fields__ if k in d}
    for name in ("top_symbols", "top_venues"):
        fields[name] = tuple(SymbolUsd(s["name"], int(s["cents"])) for s in d.get(name, ()))
    return Anomaly(**fields)


def new_action(
    aid: str, trigger: Anomaly | Calm, level: int, spec: ResolvedAction, plan: Plan, now: int
) -> Action:
    """The Action of a policy entry's plan, as the journal records it."""
    cfg = spec.config
    return Action(
        action_id=aid,
        rule=trigger.rule,
        level=level,
        strategy=cfg.strategy,
        params=spec.params.model_dump(mode="json"),
        intents=plan.intents,
        approval=cfg.approval,
        created_ts_ms=now,
        trigger_ts_ms=trigger.ts_ms,
        timeout_s=cfg.timeout_s,
        on_timeout=cfg.on_timeout,
        reduces_exposure=bool(spec.strategy.reduces_exposure),
        ladder_target=plan.ladder_target,
        summary=plan.summary,
    )
