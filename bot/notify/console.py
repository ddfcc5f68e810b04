"""Console notifier: each event as a short rich panel line on the terminal (stderr by default)."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape

from bot.events import Severity
from bot.notify.format import render

_STYLE: dict[Severity, str] = {"info": "cyan", "warning": "yellow", "critical": "bold red"}


class ConsoleNotifier:
    """Prints every event it is given; `min_severity` hides the chatter (fills, decisions)."""

    name = "console"

    def __init__(self, console: Console | None = None, min_severity: Severity = "info") -> None:
        self.console = console or Console(stderr=True)
        self._min = ("info", "warning", "critical").index(min_severity)

    async def notify(self, event: object) -> None:
        msg = render(event)
        if ("info", "warning", "critical").index(msg.severity) < self._min and not msg.page:
            return
        style = _STYLE[msg.severity]
        page = " [bold magenta](paging humans)[/]" if msg.page else ""
        self.console.print(f"[{style}]{escape(msg.title)}[/]{page}")
        for line in msg.body.splitlines():
            self.console.print(f"  {escape(line)}", highlight=False)

    async def close(self) -> None:
        return None
