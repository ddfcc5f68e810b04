"""Notifiers for tests that keep what the channels were handed (the console/Telegram stand-in)."""

from __future__ import annotations

from bot.events import FeedStatus
from bot.notify.format import render


class Told:
    """Every notification, as the channels receive it."""

    name = "told"

    def __init__(self) -> None:
        self.events: list[object] = []

    async def notify(self, event: object) -> None:
        self.events.append(event)

    async def close(self) -> None:
        return None

    def feeds(self) -> list[FeedStatus]:
        return [e for e in self.events if isinstance(e, FeedStatus)]


class RenderedTold(Told):
    """Told, and every notice must render (a notice that cannot fails the run's notifier)."""

    async def notify(self, event: object) -> None:
        render(event)
        await super().notify(event)
