"""Telegram: alerts with charts, approvals by button, commands (python-telegram-bot 22).

- factory.create_telegram(settings, secrets, journal, ...) -> TelegramParts
- app: the PTB Application inside liqguard's loop; approvals: TelegramApprover;
  notifier: TelegramNotifier; commands: Control protocol + command table; nonce: button data
"""

from bot.telegram.commands import Control, HistoryItem, RuleView, StatusView
from bot.telegram.factory import TelegramParts, create_telegram

__all__ = ["Control", "HistoryItem", "RuleView", "StatusView", "TelegramParts", "create_telegram"]
