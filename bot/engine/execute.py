"""Execute one planned action: approval, ladder change, orders, fills; every step journaled.

Order of steps (each with an idempotency key, so a resumed action skips what is done):
    approval request -> decision (who, when) -> ladder change -> per intent, in leg order:
    wait for not_before_ms (TWAP) -> order sent (client id) -> result -> fills -> end
An order journaled as sent but without a result (a crash in between) is looked up at the
broker by its client id before anything is sent again.

Durability: `log` stages rows; they are committed (one transaction) before anything that
waits on the outside world: an order (lookup or submit), a person, a TWAP sleep, the end.
So the `order_sent` row, with everything that led to it, is on disk before the request leaves.

Reaction stages (only with a `reactions` recorder, i.e. metrics served): an action spawned for a
live anomaly carries the orchestrator's receive and detect stamps in `stamps`; each of its
orders adds commit, submit and answer stamps (perf_counter_ns) and is recorded once answered.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from contextlib import AbstractContextManager
from time import perf_counter_ns
from typing import Any

from loguru import logger

from bot.approvals.base import ApprovalState, state_after, timeout_decision, transition
from bot.engine import ids
from bot.events import (
    OUTCOME_UNKNOWN,
    Action,
    ApprovalMode,
    ApprovalRequest,
    Decision,
    JournalKind,
    Notice,
    OrderIntent,
    OrderResult,
    RiskVerdict,
    TradingState,
    journaled_outcome_unknown,
)
from bot.interfaces import Approver, Broker, Clock, Journal, Notifier, ReactionRecorder
from bot.journal import to_payload
from bot.risk import RiskGate

APPROVAL_GRACE_MS = 5_000  # an approver still silent this long after its deadline is cut off


class ActionExecutor:
    def __init__(
        self,
        *,
        session: str,
        journal: Journal,
        broker: Broker,
        approver: Approver,
        notifier: Notifier,
        clock: Clock,
        risk: RiskGate,
        on_change: Callable[[], None],
        hold: Callable[[], AbstractContextManager[Any]] = contextlib.nullcontext,
        rewinds: bool = False,
    ) -> None:
        self.session = session
        self.journal = journal
        self.broker = broker
        self.approver = approver
        self.notifier = notifier
        self.clock = clock
        self.risk = risk
        self.on_change = on_change  # persist broker/ladder state after a change
        self.hold = hold  # notifications wait while an order is on its way
        # A replay's restart rewinds the simulated venue with the events: an order it no
        # longer knows was never placed in this timeline, and is placed again (same client id).
        self.rewinds = rewinds
        self.asking: dict[str, tuple[ApprovalRequest, asyncio.Task[Decision]]] = {}
        self.reactions: ReactionRecorder | None = None
        self.stamps: dict[str, tuple[int, int]] = {}  # action id -> (received_ns, detected_ns)

    def log(self, kind: JournalKind, obj: Any, key: str | None = None, **extra: Any) -> bool:
        """Stage one row; the next flush (see the module doc) commits it with its neighbours.
        False: its key was journaled before (a replayed step), nothing staged."""
        if key is not None and self.journal.has(key):
            return False
        payload = to_payload(obj, session=self.session, **extra)
        self.journal.stage(kind, self.clock.now_ms(), payload, key=key)
        return True

    # -- the action ---------------------------------------------------------------------------
    async def execute(self, action: Action, verdict: RiskVerdict, page_humans: bool) -> str:
        """Run the action to its end; return its final status (also journaled)."""
        aid = action.action_id
        stamps = self.stamps.pop(aid, None) if self.stamps else None
        decision = await self._decide(action)
        if not decision.approved:
            status = "rejected" if decision.by != "timeout" else "expired"
            return self.end(action, status, decision.reason)
        if action.ladder_target is not None:
            await self._ladder(action, action.ladder_target, page_humans)
        elif page_humans:
            await self.notifier.notify(Notice(self.clock.now_ms(), action.summary, page=True))
        sent = failed = skipped = 0
        counted = False  # toward max_actions_per_hour, once its first order leaves
        for intent in verdict.allowed:
            if intent.not_before_ms is not None and intent.not_before_ms > self.clock.now_ms():
                self.journal.flush()
                await self.clock.sleep_until(intent.not_before_ms)
                stamps = None  # a TWAP slice waited on purpose: not a reaction time
            # The ladder may have moved up during the approval or a TWAP wait: check again.
            denial = self.risk.still_allowed(intent, verdict.state)
            if denial is None and not counted:  # later legs ride on the action's first order
                denial = self.risk.over_budget(intent, aid, self.clock.now_ms())
                if denial is not None and self.journal.has(ids.order_key(action.client_id(intent))):
                    denial = None  # sent before a restart: looked up, whatever the budget
            if denial is not None:
                skipped += 1
                self.log(
                    JournalKind.ORDER_SKIPPED,
                    intent,
                    key=f"skipped:{action.client_id(intent)}",
                    client_id=action.client_id(intent),
                    action_id=aid,
                    reason=denial,
                )
                await self.notifier.notify(
                    Notice(self.clock.now_ms(), f"Order of {action.strategy} dropped", denial)
                )
                continue
            if intent.kind != "cancel" and not counted:
                self.risk.record_executed(aid, self.clock.now_ms())
                counted = True
            result = await self._send(action, intent, stamps)
            sent += 1
            if result is None or result.status in ("rejected", "failed"):
                failed += 1
        status = "executed" if failed == 0 else ("failed" if failed == sent else "partial")
        if action.approval == ApprovalMode.CONFIRM:
            after = ApprovalState.EXECUTED if status != "failed" else ApprovalState.FAILED
            transition(state_after(decision), after)
            self.log(
                JournalKind.APPROVAL,
                {"action_id": aid, "state": after.value},
                key=f"approval-final:{aid}",
            )
        detail = f"{sent} order(s), {failed} failed" + (f", {skipped} skipped" if skipped else "")
        return self.end(action, status, detail)

    def end(self, action: Action, status: str, detail: str = "", flush: bool = True) -> str:
        """Journal the action's final status (without `flush`, with the next commit)."""
        self.log(
            JournalKind.ACTION_END,
            {
                "action_id": action.action_id,
                "strategy": action.strategy,
                "level": action.level,
                "status": status,
                "detail": detail,
            },
            key=ids.end_key(action.action_id),
        )
        if flush:
            self.journal.flush()
        return status

    # -- approval -----------------------------------------------------------------------------
    async def _decide(self, action: Action) -> Decision:
        aid = action.action_id
        done = self.journal.find_key(ids.decision_key(aid))
        if done is not None:  # resumed after a restart: the decision stands
            p = done["payload"]
            return Decision(
                p["request_id"],
                aid,
                bool(p["approved"]),
                p["by"],
                int(p["ts_ms"]),
                p.get("reason", ""),
            )
        now = self.clock.now_ms()
        if action.approval != ApprovalMode.CONFIRM:
            decision = Decision(f"{aid}-auto", aid, True, "policy", now, "approval: auto")
            self.log(JournalKind.DECISION, decision, key=ids.decision_key(aid), state="approved")
            return decision
        request = self._request(action, now)
        decision = await self._ask(request)
        state = transition(ApprovalState.PENDING, state_after(decision))
        self.log(JournalKind.DECISION, decision, key=ids.decision_key(aid), state=state.value)
        await self.notifier.notify(decision)
        return decision

    def _request(self, action: Action, now: int) -> ApprovalRequest:
        aid = action.action_id
        asked = self.journal.find_key(ids.request_key(aid))
        created = int(asked["payload"]["created_ts_ms"]) if asked else now
        request = ApprovalRequest(
            request_id=f"{aid}-approval",
            action=action,
            created_ts_ms=created,
            deadline_ts_ms=created + int(action.timeout_s * 1000),
            on_timeout=action.on_timeout,
            text=action.summary,
        )
        if asked is None:
            self.log(
                JournalKind.APPROVAL_REQUEST,
                {
                    "request_id": request.request_id,
                    "action_id": aid,
                    "created_ts_ms": created,
                    "deadline_ts_ms": request.deadline_ts_ms,
                    "on_timeout": request.on_timeout.value,
                    "approver": self.approver.name,
                },
                key=ids.request_key(aid),
                state=ApprovalState.PENDING.value,
            )
        return request

    async def _ask(self, request: ApprovalRequest) -> Decision:
        """The approver's answer; if the approver is cut off past its deadline, the default."""
        self.journal.flush()  # the question is on disk before anyone is asked
        await self.notifier.notify(request)
        task = asyncio.ensure_future(self.approver.decide(request, self.clock))
        self.asking[request.request_id] = (request, task)
        try:
            return await task
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise  # we are being stopped, not the approver
            return timeout_decision(request, self.clock.now_ms())
        finally:
            self.asking.pop(request.request_id, None)

    def expire_overdue(self) -> int:
        """Cut off approvers still silent past deadline + grace (scheduler job)."""
        now = self.clock.now_ms()
        cut = 0
        for request, task in list(self.asking.values()):
            if now > request.deadline_ts_ms + APPROVAL_GRACE_MS and not task.done():
                logger.warning("approval {} overdue: applying its default", request.request_id)
                task.cancel()
                cut += 1
        return cut

    # -- ladder and orders ----------------------------------------------------------------------
    async def _ladder(self, action: Action, target: TradingState, page: bool) -> None:
        change = self.risk.escalate(
            target, action.summary, by=f"strategy:{action.strategy}", ts_ms=self.clock.now_ms()
        )
        if change is None:
            return
        new = self.log(
            JournalKind.LADDER, change, key=f"ladder:{action.action_id}", action_id=action.action_id
        )
        self.on_change()
        if not new:
            return  # replayed after a restart: told before
        await self.notifier.notify(change)
        if page and change.state != TradingState.HALTED:  # HALTED already pages
            await self.notifier.notify(Notice(change.ts_ms, action.summary, page=True))

    async def _send(
        self, action: Action, intent: OrderIntent, stamps: tuple[int, int] | None = None
    ) -> OrderResult | None:
        cid = action.client_id(intent)
        if self.journal.has(ids.result_key(cid)):
            journaled = _result_of(self.journal.find_key(ids.result_key(cid)))
            if not self.rewinds or await self.broker.lookup(cid, intent) is not None:
                return journaled
        result: OrderResult | None = None
        try:
            with self.hold():
                if self.journal.has(ids.order_key(cid)):
                    self.journal.flush()
                    result = await self.broker.lookup(cid, intent)  # sent before a crash?
                    if result is None and not intent.reduce_only and not self.rewinds:
                        # It may still land; a second hedge would double the risk: a person decides.
                        result = OrderResult(
                            cid,
                            "failed",
                            self.clock.now_ms(),
                            error=f"{OUTCOME_UNKNOWN}: sent before a restart and not found at "
                            "the venue; not re-sent because it is not reduce-only; check the "
                            "account",
                            outcome_unknown=True,
                        )
                if result is None:
                    self.log(
                        JournalKind.ORDER_SENT,
                        intent,
                        key=ids.order_key(cid),
                        client_id=cid,
                        action_id=action.action_id,
                        broker=self.broker.name,
                    )
                    self.journal.flush()  # durable BEFORE the request: never lost, never twice
                    if stamps is None or self.reactions is None:
                        result = await self.broker.submit(intent, cid)
                    else:
                        committed_ns = perf_counter_ns()
                        submitted_ns = perf_counter_ns()  # the broker's own work is `venue`
                        result = await self.broker.submit(intent, cid)
                        answered_ns = perf_counter_ns()
                        self.reactions.reaction(*stamps, committed_ns, submitted_ns, answered_ns)
        except Exception as exc:  # the broker boundary: journal, tell, carry on with other legs
            self.log(
                JournalKind.FAILURE,
                {
                    "action_id": action.action_id,
                    "client_id": cid,
                    "error": f"{type(exc).__name__}: {exc}",
                },
                key=f"failure:{cid}",
            )
            self.journal.flush()
            await self.notifier.notify(
                Notice(
                    self.clock.now_ms(),
                    f"Order {cid} failed",
                    f"{type(exc).__name__}: {exc}",
                    "warning",
                )
            )
            return None
        await self.record_result(result, action.action_id)
        return result

    async def record_result(self, result: OrderResult, action_id: str = "") -> None:
        """Journal an order's outcome and its fills (orders the bot sent, or stops triggered)."""
        key = (
            ids.result_key(result.client_id)
            if result.status != "open"
            else (f"open:{result.client_id}")
        )
        new = self.log(JournalKind.ORDER_RESULT, result, key=key, action_id=action_id)
        for n, fill in enumerate(result.fills):
            self.log(
                JournalKind.FILL, fill, key=ids.fill_key(result.client_id, n), action_id=action_id
            )
        self.on_change()
        self.journal.flush()  # on_change may not write (live broker): the outcome is durable
        if not new:
            return  # the same outcome, replayed after a restart: told before
        for fill in result.fills:
            await self.notifier.notify(fill)
        if result.status in ("rejected", "failed"):
            await self.notifier.notify(result)


def _result_of(entry: dict[str, Any] | None) -> OrderResult | None:
    if entry is None:
        return None
    p = entry["payload"]
    return OrderResult(
        client_id=p["client_id"],
        status=p["status"],
        ts_ms=int(p["ts_ms"]),
        error=p.get("error", ""),
        outcome_unknown=journaled_outcome_unknown(p),
    )
