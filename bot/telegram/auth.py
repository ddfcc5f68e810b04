"""Who may act from Telegram, and how a person's answer is counted: shared by the command
layer (commands.py) and the approver (approvals.py), so neither imports the other.

- authorize(config, user_id, chat_id, thread_id) -> refusal text | None
- voter_name(user), Voter: the person behind a vote
- Ballots: what the command layer needs of the approver (/approve, /reject, /status)
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from telegram import User

from bot.config.telegram import TelegramConfig

if TYPE_CHECKING:
    from bot.telegram.nonce import Redeemed

# a feature that owns buttons of its own purpose (the /resume confirmation)
PurposeHandler = Callable[["Redeemed", User, int], Awaitable[str]]


def authorize(
    config: TelegramConfig, user_id: int, chat_id: int, thread_id: int | None
) -> str | None:
    """The one check for commands and buttons: configured chat, topic, allow-listed user."""
    if chat_id != config.chat_id:
        return f"This chat (id {chat_id}) is not liqguard's chat."
    if config.topic_id is not None and thread_id != config.topic_id:
        return "Use liqguard's topic in this chat."
    if user_id not in config.allowed_user_ids:
        return f"You are not on liqguard's allow-list (your user id is {user_id})."
    return None


def voter_name(user: User) -> str:
    return f"@{user.username}" if user.username else f"{user.first_name}({user.id})"


@dataclass(frozen=True, slots=True)
class Voter:
    user_id: int
    name: str


class Ballots(Protocol):
    """The approvals a person can answer by command (TelegramApprover is the real one)."""

    def pending(self) -> list[dict[str, Any]]: ...

    async def vote(self, request_id: str, voter: Voter, approve: bool, now_ms: int) -> str: ...

    def register_purpose(self, purpose: str, handler: PurposeHandler) -> None: ...
