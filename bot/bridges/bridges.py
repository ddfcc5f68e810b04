"""Bridges: the Notifier that tells the desk's other bots when liqguard's ladder moves.

| ladder | Freqtrade | Hummingbot | webhook |
|---|---|---|---|
| -> REDUCING | pause (no new entries) | stop, if `stop_on: REDUCING` | the change |
| -> HALTED | forceexit all if `forceexit_on_halt`, pause | stop | the change |
| -> ACTIVE (a person resumes) | start, if `start_on_resume` | (a person starts them) | the change |

A call is queued on its bridge's delivery (bot.notify.delivery): liqguard's own actions never
wait on another bot; every call is journaled (`bridge`), retried with backoff, and a bridge
that fails is alerted on every channel.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from bot.config.bridges import Bridge, FreqtradeBridge, HummingbotBridge, WebhookBridge
from bot.events import TradingState, TradingStateChanged
from bot.notify.delivery import Call, Delivery

_RANK = {TradingState.ACTIVE: 0, TradingState.REDUCING: 1, TradingState.HALTED: 2}


class Bridges:
    name = "bridges"

    def __init__(
        self,
        bridges: Sequence[tuple[Bridge, Delivery]],
        now_ms: Callable[[], int],
        session: str,
    ) -> None:
        self.bridges = list(bridges)
        self.now_ms = now_ms
        self.session = session
        self._done: dict[str, set[str]] = {}  # bridge -> what it was told this episode

    async def notify(self, event: object) -> None:
        if not isinstance(event, TradingStateChanged) or event.state == event.previous:
            return
        key = f"liqguard-{self.session}-ladder-{event.ts_ms}"
        why = f"ladder {event.previous.value} -> {event.state.value} by {event.by}: {event.reason}"
        person = not (event.by.startswith("strategy:") or event.by == "policy")
        for config, delivery in self.bridges:
            done = self._done.setdefault(config.name, set())
            for op, body in _calls(config, event, person, done):
                delivery.submit(Call(op, key, f"{op} ({why})"[:300], body, ts_ms=event.ts_ms))
            if event.state == TradingState.ACTIVE:
                done.clear()  # the next episode tells them again

    async def drain(self, deadline_s: float | None = None) -> int:
        for _, d in self.bridges:
            await d.drain(deadline_s)
        return sum(d.pending for _, d in self.bridges)

    async def close(self) -> None:
        for _, d in self.bridges:
            await d.close(10.0)


def _calls(
    config: Bridge, change: TradingStateChanged, person: bool, done: set[str]
) -> list[tuple[str, object]]:
    """(op, body) to send one bridge for this change; `done` remembers the episode's."""
    state = change.state
    out: list[tuple[str, object]] = []
    if isinstance(config, FreqtradeBridge):
        if state == TradingState.ACTIVE:
            # the ladder left ACTIVE, so it was paused (before a restart, maybe): start it
            if person and config.start_on_resume and change.previous != TradingState.ACTIVE:
                out.append(("start", None))
        else:
            # straight to HALTED: exit first, while the bot surely still accepts a forceexit
            halted = state == TradingState.HALTED
            if halted and config.forceexit_on_halt and "forceexit" not in done:
                out.append(("forceexit", None))
            if "pause" not in done:
                out.append(("pause", None))
    elif isinstance(config, HummingbotBridge):
        if _RANK[state] >= _RANK[TradingState(config.stop_on)]:
            out += [("stop", bot) for bot in config.bots if f"stop:{bot}" not in done]
            done.update(f"stop:{bot}" for bot in config.bots)
    elif isinstance(config, WebhookBridge):
        out.append(
            (
                "post",
                {
                    "source": "liqguard",
                    "state": state.value,
                    "previous": change.previous.value,
                    "reason": change.reason,
                    "by": change.by,
                    "ts_ms": change.ts_ms,
                    "time": datetime.fromtimestamp(change.ts_ms / 1000, UTC).isoformat(),
                },
            )
        )
    done.update(op for op, _ in out if op != "stop")
    return out
