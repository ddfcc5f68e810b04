"""Runtime changes to the rules and the policy: asked, confirmed, journaled, applied, reloaded.

The journal is the source of the overrides: at start the file's settings get every journaled
override in order (bot.config.overrides.replay); one that no longer applies is skipped with a
notice, never a crash. Telegram and the status page ask through the same OverrideDesk:

- start_overlay(file, journal) -> (Overlay, skipped lines)    (the start-up path)
- OverrideDesk.ask(name, args, by): the diff, then a confirmation (the approver's ballots when
  it has them: Telegram buttons, /approve, the page's approve button; else the page's confirm)
- OverrideDesk.vote(request_id, ...): one person's answer to a pending change
- OverrideDesk.reload(): SIGHUP; a valid file replaces the running one (overrides on top)
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loguru import logger

from bot.app.sessions import secret_values
from bot.config.errors import ConfigError
from bot.config.loader import load_settings
from bot.config.overrides import (
    CONFIG_STRATEGY,
    Overlay,
    Override,
    OverrideError,
    diff_lines,
    parse_command,
    replay,
)
from bot.config.settings import Settings
from bot.engine.orchestrator import Orchestrator
from bot.engine.policy import check_policy
from bot.events import (
    Action,
    ApprovalMode,
    ApprovalRequest,
    JournalKind,
    Notice,
    TimeoutDefault,
)
from bot.interfaces import Approver, Clock, Journal
from bot.logs import redact, register_secrets

LIVE_SECTIONS = ("rules", "policy", "approvals")  # what a reload applies while running
CHANGE_PREFIX = "cfg-"  # the request (and action) id of a change: cfg-<ms>-<n>


def journaled(journal: Journal) -> list[tuple[Override, dict[str, Any]]]:
    """Every confirmed override in the journal, oldest first, with its row's payload."""
    rows = journal.find(kinds=[JournalKind.CONFIG_OVERRIDE])
    return [
        (Override.from_json(r["payload"]["override"]), {**r["payload"], "ts_ms": r["ts_ms"]})
        for r in rows
    ]


def start_overlay(file: Settings, journal: Journal) -> tuple[Overlay, list[str]]:
    """The file's settings with the journaled overrides; the skipped ones are journaled."""
    overlay, skipped = replay(file, journaled(journal))
    for line in skipped:
        logger.warning("{}", line)
    return overlay, skipped


@dataclass
class Proposal:
    request_id: str
    override: Override
    by: str
    diff: list[str]
    deadline_ms: int


class OverrideDesk:
    """Where a person's change goes: diff, confirmation, journal, the running bot."""

    def __init__(
        self,
        orchestrator: Orchestrator,
        journal: Journal,
        clock: Clock,
        overlay: Overlay,
        approver: Approver,
        config_path: str | None,
        skipped: list[str] | None = None,
    ) -> None:
        self.orchestrator = orchestrator
        self.journal = journal
        self.clock = clock
        self.overlay = overlay
        self.approver = approver
        self.config_path = config_path
        self.skipped = list(skipped or [])
        self.listeners: list[Callable[[Settings], None]] = []  # told the running settings
        self.pending: dict[str, Proposal] = {}  # asked, not yet answered
        self._tasks: set[asyncio.Task[None]] = set()
        self._seq = itertools.count(1)

    # -- start ------------------------------------------------------------------------------
    async def start(self) -> None:
        """Tell people about overrides that no longer apply; journal them once per start; a
        change still asked on Telegram when the last run stopped is rejected (ask again)."""
        now = self.clock.now_ms()
        ballots = self._ballots()
        for rec in ballots.pending() if ballots is not None else []:
            if str(rec.get("action_id", "")).startswith(CHANGE_PREFIX):
                from bot.telegram.auth import Voter  # the Telegram library: only with Telegram

                await ballots.vote(rec["request_id"], Voter(0, "restart"), False, now)
                self.journal.append(
                    JournalKind.CONFIG_DECLINED,
                    now,
                    {"request_id": rec["request_id"], "why": "liqguard restarted; ask again"},
                )
        for line in self.skipped:
            self.journal.append(JournalKind.CONFIG_SKIPPED, now, {"text": line})
            await self.orchestrator.notifier.notify(
                Notice(now, "Runtime override skipped", line, "warning")
            )

    @property
    def settings(self) -> Settings:
        return self.overlay.running()

    def _ballots(self) -> Any:
        a = self.approver
        ok = all(callable(getattr(a, m, None)) for m in ("vote", "pending", "decide"))
        return a if ok and getattr(a, "name", "") == "telegram" else None

    # -- asking -----------------------------------------------------------------------------
    def preview(self, name: str, args: list[str]) -> tuple[Override, list[str]]:
        """The change a command asks for and its diff; OverrideError if it cannot apply."""
        ov = parse_command(name, args)
        diff = diff_lines(self.overlay, self.overlay.apply(ov))
        if not diff:
            raise OverrideError(f"{ov.text()} changes nothing: the running value is already that")
        return ov, diff

    async def ask(self, name: str, args: list[str], by: str) -> tuple[str, str | None]:
        """(text for the person, request id or None when refused): the diff and how to confirm."""
        try:
            ov, diff = self.preview(name, args)
        except OverrideError as exc:
            return f"Not changed: {exc}", None
        now = self.clock.now_ms()
        needed = self.settings.approvals.override_approvers
        timeout_s = self.settings.approvals.override_timeout_s
        ballots = self._ballots()
        if ballots is None and needed > 1:
            return (
                f"Not changed: approvals.override_approvers is {needed}, and only Telegram "
                "counts distinct people here; set approvals.channel: telegram or set it to 1",
                None,
            )
        rid = f"{CHANGE_PREFIX}{now}-{next(self._seq)}"
        p = Proposal(rid, ov, by, diff, now + round(timeout_s * 1000))
        self.pending[rid] = p
        self.journal.append(
            JournalKind.CONFIG_PROPOSED,
            now,
            {"request_id": rid, "override": ov.to_json(), "by": by, "diff": diff},
        )
        text = "\n".join([f"Proposed by {by}: {ov.text()}", *diff])
        if ballots is not None:
            task = asyncio.create_task(self._await_ballots(ballots, p, text, needed, timeout_s))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            who = f"{needed} different people" if needed > 1 else "one person"
            return f"{text}\nConfirm on the approval message ({who}, {timeout_s:.0f} s).", rid
        return f"{text}\nConfirm within {timeout_s:.0f} s (request {rid}).", rid

    async def _await_ballots(
        self, ballots: Any, p: Proposal, text: str, needed: int, timeout_s: float
    ) -> None:
        now = self.clock.now_ms()
        action = Action(
            action_id=p.request_id,
            rule=p.override.rule or "*",
            level=0,
            strategy=CONFIG_STRATEGY,
            params=p.override.to_json(),
            intents=(),
            approval=ApprovalMode.CONFIRM,
            created_ts_ms=now,
            trigger_ts_ms=now,
            timeout_s=timeout_s,
            on_timeout=TimeoutDefault.CANCEL,
            reduces_exposure=False,
            summary=text,
        )
        request = ApprovalRequest(
            p.request_id, action, now, p.deadline_ms, TimeoutDefault.CANCEL, text, needed
        )
        reason = ""
        try:
            decision = await ballots.decide(request, self.clock)
        except Exception as exc:  # the change is dropped, the bot runs on
            logger.exception("config change {} not decided", p.request_id)
            decision = None
            reason = f"{type(exc).__name__}: {exc}"
        self.pending.pop(p.request_id, None)
        if decision is not None and decision.approved:
            await self._apply(p, decision.by)
        else:
            why = reason if decision is None else (decision.reason or f"by {decision.by}")
            self._declined(p, why)

    async def close(self) -> None:
        """Stop waiting on unanswered changes (a restart rejects them on Telegram)."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def settled(self) -> None:
        """Until every change waiting on the approver's ballots is decided (and applied)."""
        if self._tasks:
            await asyncio.gather(*self._tasks)

    async def vote(self, request_id: str, voter: str, user_id: int, approve: bool) -> str:
        """One person's answer to a pending change (the page's confirm; /approve in chat)."""
        now = self.clock.now_ms()
        ballots = self._ballots()
        if ballots is not None:
            from bot.telegram.auth import Voter  # the Telegram library: only when voting

            return str(await ballots.vote(request_id, Voter(user_id, voter), approve, now))
        p = self.pending.get(request_id)
        if p is None:
            return f"No pending change {request_id} (already decided or expired)."
        del self.pending[request_id]
        if now > p.deadline_ms:
            self._declined(p, "timed out")
            return "Too late: this change has timed out; ask again."
        if not approve:
            self._declined(p, f"rejected by {voter}")
            return "Rejected: nothing changed."
        return await self._apply(p, voter)

    def _declined(self, p: Proposal, why: str) -> None:
        self.journal.append(
            JournalKind.CONFIG_DECLINED,
            self.clock.now_ms(),
            {"request_id": p.request_id, "override": p.override.to_json(), "by": p.by, "why": why},
        )

    # -- applying ---------------------------------------------------------------------------
    async def _apply(self, p: Proposal, approved_by: str) -> str:
        try:  # on the overlay of now: a reload since the proposal may have removed the rule
            after = self.overlay.apply(p.override)
        except OverrideError as exc:
            self._declined(p, str(exc))
            return f"Not changed: {exc}"
        diff = diff_lines(self.overlay, after)
        now = self.clock.now_ms()
        self.journal.append(
            JournalKind.CONFIG_OVERRIDE,
            now,
            {
                "request_id": p.request_id,
                "override": p.override.to_json(),
                "text": p.override.text(),
                "by": p.by,
                "approved_by": approved_by,
                "diff": diff,
            },
        )
        await self.install(after)
        logger.info(
            "override {} applied (by {}, confirmed by {})", p.override.text(), p.by, approved_by
        )
        return "Applied: " + "; ".join(diff)

    async def install(self, overlay: Overlay) -> None:
        """Run with `overlay` from now: detector (windows kept), policy, feeds, listeners."""
        s = overlay.running()
        orch = self.orchestrator
        resolved = check_policy(s.policy, self.config_path or "liqguard.yaml")
        events = orch.detector.reconfigure(s.rules)
        orch.policy, orch.resolved = s.policy, resolved
        orch.feeds.rules = list(s.rules)
        self.overlay = overlay
        for listener in self.listeners:
            listener(s)
        for event in events:  # a lower threshold may fire at once: answered as any anomaly
            await orch.respond(event)

    def listing(self) -> str:
        """The overrides in force, one line each (for /overrides)."""
        lines = diff_lines(Overlay.of(self.overlay.file), self.overlay)
        return "\n".join(["Overrides against the file:", *lines]) if lines else "No overrides."

    # -- SIGHUP -----------------------------------------------------------------------------
    async def reload(self) -> str:
        """Read the config file again; a valid one replaces the running file settings."""
        now = self.clock.now_ms()
        path = self.config_path
        if path is None:
            msg = "SIGHUP: this run has no config file (defaults); nothing to reload"
            self.journal.append(JournalKind.CONFIG_RELOAD, now, {"ok": False, "error": msg})
            return msg
        try:
            file = load_settings(Path(path))
            check_policy(file.policy, path)
        except ConfigError as exc:
            error = redact(str(exc))  # a value quoted from the file may be a webhook's secret
            self.journal.append(
                JournalKind.CONFIG_RELOAD, now, {"ok": False, "path": path, "error": error}
            )
            logger.error("SIGHUP: {} (the running configuration stays)", error)
            await self.orchestrator.notifier.notify(
                Notice(now, "Config reload refused", f"{error}\nThe running configuration stays.",
                       "warning")
            )  # fmt: skip
            return f"reload refused: {error.splitlines()[0]} (the running configuration stays)"
        register_secrets(secret_values(file))  # webhook and RPC URLs of the new file
        old = self.overlay.file
        later = [
            name
            for name in type(file).model_fields
            if name not in LIVE_SECTIONS and getattr(file, name) != getattr(old, name)
        ]
        if file.approvals.channel != old.approvals.channel:  # the approver is built at start
            later.append("approvals.channel")
        overlay, skipped = replay(file, journaled(self.journal))
        diff = _file_diff(self.overlay, overlay)
        await self.install(overlay)
        payload: dict[str, Any] = {"ok": True, "path": path, "diff": diff, "skipped": skipped}
        if later:
            payload["restart_needed"] = later
        self.journal.append(JournalKind.CONFIG_RELOAD, now, payload)
        text = f"reloaded {path}: " + ("; ".join(diff) or "no change to the rules or the policy")
        if later:
            text += f"; changed sections that apply at the next start: {', '.join(later)}"
        for line in skipped:
            text += f"; {line}"
        logger.info("SIGHUP: {}", text)
        return text


def _file_diff(before: Overlay, after: Overlay) -> list[str]:
    """What a reload changes in the running rules (added, removed, changed) and policy."""
    a = {r.name: r for r in before.running().rules}
    b = {r.name: r for r in after.running().rules}
    out = [f"rules.{n}: added" for n in b if n not in a]
    out += [f"rules.{n}: removed" for n in a if n not in b]
    out += [f"rules.{n}: changed" for n in b if n in a and a[n] != b[n]]
    if before.running().policy != after.running().policy:
        out.append("policy: changed")
    return out
