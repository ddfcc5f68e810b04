"""Notifiers: tell people what happened. Console now; Telegram and webhook plug in via wiring.

- Message, render: the shared text (bot.notify.format) of any bot.events event or Notice
- ConsoleNotifier: rich output on the terminal (bot.notify.console)
- FanOut: one Notifier that hands each event to several, isolating their failures
"""

from __future__ import annotations

from collections.abc import Sequence

from loguru import logger

from bot.interfaces import Notifier
from bot.notify.format import Message, render

__all__ = ["FanOut", "Message", "render"]


class FanOut:
    """Several notifiers as one; a failing notifier is logged and never stops the others."""

    name = "fanout"

    def __init__(self, notifiers: Sequence[Notifier]) -> None:
        self.notifiers = list(notifiers)

    async def notify(self, event: object) -> None:
        for n in self.notifiers:
            try:
                await n.notify(event)
            except Exception as exc:  # a notifier must not break the response
                logger.warning("notifier {} failed: {}: {}", n.name, type(exc).__name__, exc)

    async def close(self) -> None:
        for n in self.notifiers:
            try:
                await n.close()
            except Exception as exc:
                logger.warning("notifier {} failed to close: {}", n.name, exc)
