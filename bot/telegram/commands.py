"""Chat commands: one table, one authorization check, and the Control protocol they call.

A thin chat layer (after Freqtrade's rpc/telegram split): the runtime implements `Control`
and returns data; this module only parses, authorizes, formats and journals.

- authorize (bot.telegram.auth) on every command and button
- Control: status, positions, set_state, history, chart_input            (runtime side)
- COMMANDS: name -> (help, method)                                        (the one table)
- Commands: the handler registered on the TelegramApp; /resume asks for a confirm button
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from loguru import logger
from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update, User
from telegram.error import TelegramError

from bot.config.telegram import TelegramConfig
from bot.events import JournalKind, Portfolio, TradingState, TradingStateChanged
from bot.interfaces import Clock, Journal
from bot.notify.format import usd, utc
from bot.telegram.auth import Ballots, Voter, authorize, voter_name

if TYPE_CHECKING:
    from bot.notify.charts import ChartInput
    from bot.telegram.app import TelegramApp
    from bot.telegram.nonce import NonceStore, Redeemed


# --------------------------------------------------------------------------------- authorization
# --------------------------------------------------------------------------------- control
@dataclass(frozen=True, slots=True)
class RuleView:
    rule: str
    level: int
    window_usd: float
    threshold_usd: float
    last_anomaly_ms: int | None = None


@dataclass(frozen=True, slots=True)
class StatusView:
    mode: str
    state: TradingState
    rules: tuple[RuleView, ...] = ()
    feeds: dict[str, str] = field(default_factory=dict)  # venue -> live / blind / reconnecting
    portfolio: Portfolio | None = None
    realized_pnl_usd: float = 0.0


@dataclass(frozen=True, slots=True)
class HistoryItem:
    ts_ms: int
    kind: str
    text: str


class Control(Protocol):
    """What the chat may ask of the runtime. Implemented by the runtime; data only."""

    async def status(self) -> StatusView: ...

    async def portfolio(self) -> Portfolio: ...

    async def set_state(self, state: TradingState, reason: str, by: str) -> TradingStateChanged: ...

    async def history(self, limit: int) -> list[HistoryItem]: ...

    async def chart_input(self) -> ChartInput | None: ...


class Changes(Protocol):
    """Runtime changes to rules and policy (bot.app.overrides.OverrideDesk): the control's
    optional `changes` attribute; asked here, confirmed by the approval buttons."""

    async def ask(self, name: str, args: list[str], by: str) -> tuple[str, str | None]: ...

    def listing(self) -> str: ...


# --------------------------------------------------------------------------------- formatting
def status_text(s: StatusView, pending: int) -> str:
    lines = [f"Mode {s.mode} · trading state {s.state.value} · {pending} approval(s) pending"]
    for r in s.rules:
        last = f", last anomaly {utc(r.last_anomaly_ms)}" if r.last_anomaly_ms else ""
        lines.append(
            f"Rule {r.rule}: level {r.level}, window {usd(r.window_usd)} / "
            f"threshold {usd(r.threshold_usd)}{last}"
        )
    if s.feeds:
        lines.append("Feeds: " + ", ".join(f"{v} {st}" for v, st in sorted(s.feeds.items())))
    if s.portfolio is not None:
        p = s.portfolio
        upnl = sum(x.unrealized_pnl_usd for x in p.positions)
        lines.append(
            f"Balance {usd(p.balance_usd)}, {len(p.positions)} position(s), gross "
            f"{usd(p.gross_exposure_usd)}, net {usd(p.net_exposure_usd)}"
        )
        lines.append(f"PnL: unrealized {usd(upnl)}, realized {usd(s.realized_pnl_usd)}")
    return "\n".join(lines)


def positions_text(p: Portfolio) -> str:
    if not p.positions:
        return f"No open positions. Balance {usd(p.balance_usd)}."
    lines = [f"Balance {usd(p.balance_usd)}; positions:"]
    for x in p.positions:
        dist = x.liquidation_distance
        liq = f", liq {x.liquidation_price:g} ({dist:.1%} away)" if dist is not None else ""
        lines.append(
            f"{x.venue} {x.symbol} {x.side} {x.size:g} @ {x.entry_price:g}, mark {x.mark_price:g},"
            f" {usd(x.notional_usd)}, uPnL {usd(x.unrealized_pnl_usd)}{liq}"
        )
    return "\n".join(lines)


# --------------------------------------------------------------------------------- commands
COMMANDS: dict[str, str] = {
    "status": "mode, trading state, levels and window sums per rule, feeds, positions, PnL",
    "chart": "the rolling window sum against the thresholds, anomalies and price",
    "positions": "open positions with notional, PnL and liquidation distance",
    "pause": "switch to REDUCING: only orders that reduce exposure may pass",
    "halt": "switch to HALTED: no new orders at all",
    "resume": "back to ACTIVE (asks for a confirmation button)",
    "approve": "/approve <request id>: approve a pending action",
    "reject": "/reject <request id>: reject a pending action",
    "history": "the latest actions, decisions and orders",
    "threshold": "/threshold RULE USD: a rule's base threshold (shows the diff, asks a confirm)",
    "rule": "/rule RULE on|off: switch a rule on or off (asks a confirm)",
    "policy": "/policy [RULE:]LEVEL STEP auto|confirm|notify: a step's approval (asks a confirm)",
    "overrides": "the runtime overrides against the file (/overrides clear: back to the file)",
    "help": "this list",
}

Render = Callable[["ChartInput"], bytes]


class Commands:
    """Parses and answers commands; every command (refused ones too) is journaled."""

    def __init__(
        self,
        app: TelegramApp,
        config: TelegramConfig,
        journal: Journal,
        clock: Clock,
        nonces: NonceStore,
        approver: Ballots | None,
        control: Control | None,
        render_chart: Render | None = None,
    ) -> None:
        self.app, self.config, self.journal, self.clock = app, config, journal, clock
        self.nonces, self.approver, self.control = nonces, approver, control
        self.render_chart = render_chart
        self._handlers: dict[str, Callable[[User, list[str]], Awaitable[str | None]]] = {
            name: getattr(self, f"_cmd_{name}") for name in COMMANDS
        }
        app.on_command(list(COMMANDS), self.on_command)
        if approver is not None:
            approver.register_purpose("resume", self._confirmed_resume)

    async def publish(self) -> None:
        """Show the command list in Telegram's menu (setMyCommands)."""
        await self.app.application.bot.set_my_commands(
            [(name, text.replace("/", "")[:256]) for name, text in COMMANDS.items()]
        )

    async def on_command(self, update: Update) -> None:
        msg, user = update.effective_message, update.effective_user
        if msg is None or user is None or not msg.text:
            return
        words = msg.text.split()
        name = words[0][1:].split("@")[0].lower()
        args = words[1:]
        now = self.clock.now_ms()
        entry: dict[str, Any] = {
            "user_id": user.id,
            "user": voter_name(user),
            "chat_id": msg.chat.id,
            "command": name,
            "args": args,
        }
        refusal = authorize(self.config, user.id, msg.chat.id, msg.message_thread_id)
        reply: str | None
        if refusal is not None:
            entry["outcome"], reply = "refused", refusal
        elif self.control is None and name not in ("help", "approve", "reject"):
            entry["outcome"], reply = "unavailable", "This command needs the running bot."
        else:
            try:
                reply = await self._handlers[name](user, args)
                entry["outcome"] = "ok"
            except Exception as exc:  # a failing runtime call is answered, not fatal
                logger.exception("command /{} failed", name)
                entry["outcome"], reply = "error", f"/{name} failed: {type(exc).__name__}: {exc}"
        self.journal.append(JournalKind.TELEGRAM_COMMAND, now, entry)
        if reply:
            with contextlib.suppress(TelegramError):
                await msg.reply_text(reply[:4096])

    # each handler returns the reply text (None when it already sent something)
    async def _cmd_help(self, user: User, args: list[str]) -> str:
        return "liqguard commands:\n" + "\n".join(f"/{n} — {h}" for n, h in COMMANDS.items())

    async def _cmd_status(self, user: User, args: list[str]) -> str:
        assert self.control is not None
        pending = len(self.approver.pending()) if self.approver else 0
        return status_text(await self.control.status(), pending)

    async def _cmd_positions(self, user: User, args: list[str]) -> str:
        assert self.control is not None
        return positions_text(await self.control.portfolio())

    async def _cmd_history(self, user: User, args: list[str]) -> str:
        assert self.control is not None
        limit = int(args[0]) if args and args[0].isdigit() else 10
        items = await self.control.history(min(limit, 50))
        lines = [f"{utc(i.ts_ms)} {i.kind}: {i.text}" for i in items]
        return "\n".join(lines) or "Nothing yet."

    async def _cmd_chart(self, user: User, args: list[str]) -> str | None:
        assert self.control is not None
        data = await self.control.chart_input()
        if data is None or self.render_chart is None:
            return "No chart data yet."
        png = await asyncio.to_thread(self.render_chart, data)
        await self.app.send_photo(png, "Rolling window sum vs thresholds")
        return None

    async def _set(self, state: TradingState, user: User, args: list[str]) -> str:
        assert self.control is not None
        reason = " ".join(args) or f"/{state.value.lower()} from Telegram"
        change = await self.control.set_state(state, reason, f"telegram:{voter_name(user)}")
        return f"Trading state {change.previous.value} → {change.state.value}."

    async def _cmd_pause(self, user: User, args: list[str]) -> str:
        return await self._set(TradingState.REDUCING, user, args)

    async def _cmd_halt(self, user: User, args: list[str]) -> str:
        return await self._set(TradingState.HALTED, user, args)

    async def _cmd_resume(self, user: User, args: list[str]) -> str | None:
        now = self.clock.now_ms()
        msg = await self.app.send_text(
            f"Resume trading (back to ACTIVE)? Asked by {voter_name(user)}; "
            f"confirm within {self.config.confirm_timeout_s:.0f} s."
        )
        data = self.nonces.issue(
            purpose="resume",
            subject="resume",
            choice="y",
            chat_id=self.config.chat_id,
            message_id=msg.message_id,
            expires_ms=now + round(self.config.confirm_timeout_s * 1000),
            now_ms=now,
        )
        button = InlineKeyboardButton("▶️ Confirm resume", callback_data=data)
        await self.app.edit(msg.message_id, None, InlineKeyboardMarkup([[button]]))
        return None

    async def _confirmed_resume(self, got: Redeemed, user: User, now_ms: int) -> str:
        reply = await self._set(TradingState.ACTIVE, user, ["confirmed /resume"])
        self.journal.append(
            JournalKind.TELEGRAM_COMMAND,
            now_ms,
            {
                "user_id": user.id,
                "user": voter_name(user),
                "command": "resume",
                "outcome": "confirmed",
            },
        )
        return reply

    async def _vote(self, user: User, args: list[str], approve: bool) -> str:
        if self.approver is None:
            return "Approvals are not handled by Telegram here."
        if not args:
            ids = [r["request_id"] for r in self.approver.pending()]
            return "Pending: " + (", ".join(ids) if ids else "none")
        voter = Voter(user.id, voter_name(user))
        return await self.approver.vote(args[0], voter, approve, self.clock.now_ms())

    async def _cmd_approve(self, user: User, args: list[str]) -> str:
        return await self._vote(user, args, True)

    async def _cmd_reject(self, user: User, args: list[str]) -> str:
        return await self._vote(user, args, False)

    # runtime changes: the diff now, applied only once confirmed on the approval message
    def _changes(self) -> Changes | None:
        return getattr(self.control, "changes", None)

    async def _change(self, name: str, user: User, args: list[str]) -> str:
        changes = self._changes()
        if changes is None:
            return "Runtime changes are not available in this run."
        text, _rid = await changes.ask(name, args, f"telegram:{voter_name(user)}")
        return text

    async def _cmd_threshold(self, user: User, args: list[str]) -> str:
        return await self._change("threshold", user, args)

    async def _cmd_rule(self, user: User, args: list[str]) -> str:
        return await self._change("rule", user, args)

    async def _cmd_policy(self, user: User, args: list[str]) -> str:
        return await self._change("policy", user, args)

    async def _cmd_overrides(self, user: User, args: list[str]) -> str:
        changes = self._changes()
        if changes is None:
            return "Runtime changes are not available in this run."
        if args:
            return await self._change("overrides", user, args)
        return changes.listing()
