"""Console approver: approve or reject at the terminal while the timeout runs.

Answers, one per line: `y` / `n` (the oldest pending request), or `y ID` / `n ID [reason]`
with an id prefix when several wait. Lines come from stdin (a daemon thread, so a blocked read
never holds up exit) or from any async iterator of lines (tests inject one).
"""

from __future__ import annotations

import asyncio
import getpass
import sys
import threading
from collections.abc import AsyncIterator

from rich.console import Console
from rich.markup import escape

from bot.approvals.base import race_deadline
from bot.events import ApprovalRequest, Decision
from bot.interfaces import Clock
from bot.notify.format import render

_YES = {"y", "yes", "a", "approve"}
_NO = {"n", "no", "r", "reject"}


async def stdin_lines() -> AsyncIterator[str]:
    """Lines typed at the terminal, read on a daemon thread."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[str | None] = asyncio.Queue()

    def reader() -> None:
        try:
            # no stdin at all (fd 0 closed: sys.stdin is None) reads as an empty one
            for line in sys.stdin or ():
                loop.call_soon_threadsafe(queue.put_nowait, line)
        except (OSError, ValueError):  # a terminal gone, or stdin closed under the reader
            pass
        finally:  # nobody will type: the deadlines apply each request's on_timeout
            loop.call_soon_threadsafe(queue.put_nowait, None)

    threading.Thread(target=reader, name="console-approvals", daemon=True).start()
    while (line := await queue.get()) is not None:
        yield line


class ConsoleApprover:
    name = "console"

    def __init__(
        self, lines: AsyncIterator[str] | None = None, console: Console | None = None
    ) -> None:
        self._lines = lines
        self.console = console or Console(stderr=True)
        self._pending: dict[str, tuple[ApprovalRequest, asyncio.Future[Decision], Clock]] = {}
        self._reader: asyncio.Task[None] | None = None
        self._who = f"console:{_user()}"

    async def decide(self, request: ApprovalRequest, clock: Clock) -> Decision:
        answer: asyncio.Future[Decision] = asyncio.get_running_loop().create_future()
        self._pending[request.request_id] = (request, answer, clock)
        if self._reader is None:
            self._reader = asyncio.create_task(self._read(), name="console-approvals")
        msg = render(request)
        self.console.print(f"[bold yellow]{escape(msg.title)}[/]")
        self.console.print(escape(msg.body), highlight=False)
        self.console.print(f"  type [bold]y {request.request_id[:8]}[/] or [bold]n ...[/]")
        try:
            return await race_deadline(answer, request, clock)
        finally:
            self._pending.pop(request.request_id, None)

    async def _read(self) -> None:
        lines = self._lines if self._lines is not None else stdin_lines()
        async for raw in lines:
            self._answer(raw.strip())

    def _answer(self, line: str) -> None:
        if not line:
            return
        word, _, rest = line.partition(" ")
        word = word.lower()
        if word not in _YES | _NO:
            self.console.print("answer [bold]y[/] / [bold]n[/], optionally followed by an id")
            return
        prefix, _, reason = rest.strip().partition(" ")
        matches = [rid for rid in self._pending if rid.startswith(prefix)]
        if not matches:
            self.console.print(f"no pending approval matches {escape(prefix)!r}")
            return
        request, future, clock = self._pending[matches[0]]  # insertion order: oldest first
        if future.done():
            return
        approved = word in _YES
        future.set_result(
            Decision(
                request_id=request.request_id,
                action_id=request.action.action_id,
                approved=approved,
                by=self._who,
                ts_ms=clock.now_ms(),
                reason=reason.strip(),
            )
        )

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "operator"
