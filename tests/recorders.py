"""Notifiers for tests: one that tells nobody, ones that keep what the channels were handed."""

from __future__ import annotations

from bot.events import FeedStatus
from bot.notify.format import render


class Quiet:
    """Tells nobody (a replay without the console's output)."""

    name = "quiet"

    async def notify(self, event: object) -> None:
        return None

    async def close(self) -> None:
        return None


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
