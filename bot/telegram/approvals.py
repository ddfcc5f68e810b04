"""TelegramApprover: ask in the chat, decide by button (or /approve, /reject), default on time.

An approval's life: pending -> approved / rejected / expired (then the orchestrator executes).
Pending approvals live in the Journal's state ("telegram.approvals"), so after a restart a
re-asked request re-attaches to its message and keeps its original deadline, and a press made
while liqguard was down still counts. If Telegram cannot be reached, the request falls back at
once to its timeout default and `report` (the other channels) is told.

- decide(request, clock) -> Decision           (the Approver protocol)
- on_press(update)                              (the CallbackQueryHandler)
- vote(request_id, voter, approve, now_ms)      (buttons and /approve, /reject)
- pending() -> list of pending records          (for /status and /approve listings)
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace
from typing import Any

from loguru import logger
from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.error import TelegramError

from bot.approvals.base import race_deadline, timeout_decision
from bot.clock import WallClock
from bot.config.telegram import TelegramConfig
from bot.events import ApprovalRequest, Decision, JournalKind, Notice
from bot.interfaces import Clock, Journal
from bot.telegram.app import TelegramApp
from bot.telegram.auth import PurposeHandler, Voter, authorize, voter_name
from bot.telegram.nonce import NonceStore, Redeemed
from bot.telegram.text import action_notional_usd, approval_text, decision_line

STATE_NAME = "telegram.approvals"
Report = Callable[[object], Awaitable[None]]


class TelegramApprover:
    name = "telegram"

    def __init__(
        self,
        app: TelegramApp,
        nonces: NonceStore,
        journal: Journal,
        config: TelegramConfig,
        clock: Clock | None = None,
        prices: Callable[[], Mapping[str, float]] | None = None,
        report: Report | None = None,
    ) -> None:
        self.app = app
        self.nonces = nonces
        self.journal = journal
        self.config = config
        self.clock: Clock = clock or WallClock()
        self._prices = prices
        self.report = report
        self._records: dict[str, dict[str, Any]] = dict(
            (journal.get_state(STATE_NAME) or {}).get("pending", {})
        )
        self._waiters: dict[str, asyncio.Future[Decision]] = {}
        self._purposes: dict[str, PurposeHandler] = {}
        app.on_callback(self.on_press)

    # ------------------------------------------------------------------ Approver protocol
    async def decide(self, request: ApprovalRequest, clock: Clock) -> Decision:
        rid = request.request_id
        rec = self._records.get(rid)
        if rec is None:
            asked = await self._ask(request, clock)
            if isinstance(asked, str):
                return await self._fallback(request, clock, asked)
            rec = asked
        elif rec.get("outcome") is None:
            logger.info("approval {} re-attached to message {}", rid, rec["message_id"])
        waiter: asyncio.Future[Decision] = asyncio.get_running_loop().create_future()
        self._waiters[rid] = waiter
        try:
            if rec.get("outcome") is None:  # else pressed while liqguard was down
                d = await race_deadline(waiter, request, clock, rec["deadline_ts_ms"])
                if rec.get("outcome") is None:  # the deadline came first
                    await self._conclude(rec, d, "timeout")
            decision = Decision(**rec["outcome"])
        finally:
            self._waiters.pop(rid, None)
        self._records.pop(rid, None)
        self._save()
        return decision

    async def _ask(self, request: ApprovalRequest, clock: Clock) -> dict[str, Any] | str:
        """Post the question and its buttons; the error text when Telegram cannot be reached."""
        prices = self._prices() if self._prices else {}
        needed = max(1, request.approvers_needed)
        limit = self.config.two_person_above_usd
        if limit is not None and action_notional_usd(request.action, prices) > limit:
            needed = max(needed, self.config.approvers_needed)
        text = approval_text(request, prices, needed)
        try:
            if not self.app.available:
                raise TelegramError("the bot is not connected")
            msg = await self.app.send_text(text)
            rec: dict[str, Any] = {
                "request_id": request.request_id,
                "action_id": request.action.action_id,
                "message_id": msg.message_id,
                "text": text,
                "deadline_ts_ms": request.deadline_ts_ms,
                "on_timeout": request.on_timeout.value,
                "reduces": request.action.reduces_exposure,
                "needed": needed,
                "approvals": [],
                "outcome": None,
            }
            self._records[request.request_id] = rec
            self._save()
            await self.app.edit(msg.message_id, None, self._buttons(rec, clock.now_ms()))
        except TelegramError as exc:
            self._records.pop(request.request_id, None)
            self._save()
            return f"{type(exc).__name__}: {exc}"
        self.journal.append(
            JournalKind.TELEGRAM_APPROVAL_SENT,
            clock.now_ms(),
            {"request_id": request.request_id, "message_id": msg.message_id, "needed": needed},
        )
        return rec

    async def _fallback(self, request: ApprovalRequest, clock: Clock, why: str) -> Decision:
        now = clock.now_ms()
        d = replace(
            timeout_decision(request, now),
            reason=f"telegram unreachable ({why}); timeout default applied at once",
        )
        logger.warning("approval {}: telegram unreachable, default {}", request.request_id, d)
        self.journal.append(
            JournalKind.TELEGRAM_UNREACHABLE,
            now,
            {"request_id": request.request_id, "error": why, "approved": d.approved},
        )
        if self.report is not None:
            verb = "EXECUTED" if d.approved else "CANCELED"
            await self.report(
                Notice(
                    now,
                    f"Telegram unreachable: approval {request.request_id} defaulted",
                    f"{why}. Action {request.action.action_id} ({request.action.strategy}) "
                    f"was {verb} by its timeout default ({request.on_timeout.value}).",
                    severity="critical",
                    page=True,
                )
            )
        return d

    # ------------------------------------------------------------------ buttons and votes
    def _buttons(self, rec: dict[str, Any], now_ms: int) -> InlineKeyboardMarkup:
        def data(choice: str) -> str:
            return self.nonces.issue(
                purpose="approval",
                subject=rec["request_id"],
                choice=choice,
                chat_id=self.config.chat_id,
                message_id=rec["message_id"],
                expires_ms=rec["deadline_ts_ms"],
                now_ms=now_ms,
            )

        n = len(rec["approvals"])
        label = "✅ Approve" + (f" ({n}/{rec['needed']})" if rec["needed"] > 1 else "")
        return InlineKeyboardMarkup(
            [
                [
                    InlineKeyboardButton(label, callback_data=data("y")),
                    InlineKeyboardButton("❌ Reject", callback_data=data("n")),
                ]
            ]
        )

    def register_purpose(self, purpose: str, handler: PurposeHandler) -> None:
        """Let another feature (the /resume confirmation) own buttons of its own purpose."""
        self._purposes[purpose] = handler

    async def on_press(self, update: Update) -> None:
        query = update.callback_query
        if query is None or query.message is None:
            return
        user, msg = query.from_user, query.message
        now = self.clock.now_ms()
        thread_id = getattr(msg, "message_thread_id", None)
        base = {"user_id": user.id, "user": voter_name(user), "message_id": msg.message_id}
        refusal = authorize(self.config, user.id, msg.chat.id, thread_id)
        answer = refusal
        if refusal is None:
            got = self.nonces.redeem(query.data or "", msg.chat.id, msg.message_id, now)
            if not isinstance(got, Redeemed):
                answer = got.text
                base["reason"] = got.reason
            elif got.purpose == "approval":
                voter = Voter(user.id, voter_name(user))
                answer = await self.vote(got.subject, voter, got.choice == "y", now)
            elif got.purpose in self._purposes:
                answer = await self._purposes[got.purpose](got, user, now)
        if refusal is not None or "reason" in base:
            self.journal.append(JournalKind.TELEGRAM_REFUSED, now, {**base, "why": answer})
            logger.warning("telegram press refused: {}", {**base, "why": answer})
        else:
            self.journal.append(JournalKind.TELEGRAM_PRESS, now, {**base, "answer": answer})
        with contextlib.suppress(TelegramError):
            await query.answer(answer, show_alert=refusal is not None)

    async def vote(self, request_id: str, voter: Voter, approve: bool, now_ms: int) -> str:
        """Count one person's answer; returns the text to show that person."""
        rec = self._records.get(request_id)
        if rec is None or rec.get("outcome") is not None:
            return f"No pending approval {request_id} (already decided or expired)."
        if now_ms > rec["deadline_ts_ms"]:
            return "Too late: this approval has timed out."
        if not approve:
            d = Decision(request_id, rec["action_id"], False, f"telegram:{voter.name}", now_ms)
            await self._conclude(rec, d, voter.name)
            return "Rejected."
        if any(a["user_id"] == voter.user_id for a in rec["approvals"]):
            reply = "You already approved; another approver is needed."
        else:
            rec["approvals"].append({"user_id": voter.user_id, "name": voter.name, "ts_ms": now_ms})
            reply = "Approved."
        names = [a["name"] for a in rec["approvals"]]
        if len(names) >= rec["needed"]:
            by = "telegram:" + "+".join(names)
            d = Decision(request_id, rec["action_id"], True, by, now_ms)
            await self._conclude(rec, d, ", ".join(names))
            return reply
        self._save()
        # The pressed nonce is spent: fresh buttons for the next approver.
        self.nonces.revoke(request_id)
        progress = f"\n\nApproved by {', '.join(names)} ({len(names)}/{rec['needed']}); waiting."
        with contextlib.suppress(TelegramError):
            await self.app.edit(
                rec["message_id"], rec["text"] + progress, self._buttons(rec, now_ms)
            )
        return reply + f" {len(names)}/{rec['needed']}."

    async def _conclude(self, rec: dict[str, Any], decision: Decision, who: str) -> None:
        """Record the outcome first (no await before it), then tidy the message."""
        rec["outcome"] = {
            "request_id": decision.request_id,
            "action_id": decision.action_id,
            "approved": decision.approved,
            "by": decision.by,
            "ts_ms": decision.ts_ms,
            "reason": decision.reason,
        }
        self._save()
        self.nonces.revoke(rec["request_id"])
        waiter = self._waiters.get(rec["request_id"])
        if waiter is not None and not waiter.done():
            waiter.set_result(decision)
        self.journal.append(
            JournalKind.TELEGRAM_DECISION,
            decision.ts_ms,
            {**rec["outcome"], "message_id": rec["message_id"]},
        )
        try:  # buttons removed: an edit of the text without reply_markup drops them
            await self.app.edit(
                rec["message_id"], rec["text"] + "\n\n" + decision_line(decision, who), None
            )
        except TelegramError as exc:
            logger.warning("could not edit approval message: {}", exc)

    def pending(self) -> list[dict[str, Any]]:
        return [dict(r) for r in self._records.values() if r.get("outcome") is None]

    def _save(self) -> None:
        self.journal.put_state(STATE_NAME, {"pending": self._records})
