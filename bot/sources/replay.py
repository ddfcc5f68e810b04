"""Replay a recorded tape with its prices, paced on a simulated clock.

Contents:
- merge: tape (arrival order) + price ticks (time order) -> one time-ordered stream; prices
  before the tape keep only the last one (the entry mark), prices after the tape are dropped
- parse_speed / speed_for: `--speed N` (tape seconds per wall second), `max`, or `auto`
- replay_events: the async stream the orchestrator consumes (bot.app.runner drives it); it
  moves the SimClock to each event's time first (waking TWAP slices and approval timeouts in
  order) and sleeps so the replay takes (tape span / speed) of wall time
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence

from bot.clock import SimClock
from bot.events import Liquidation, PriceTick

Replayed = Liquidation | PriceTick

AUTO_TARGET_S = 55.0  # `--speed auto`: the whole tape in about a minute with start-up


def merge(tape: Iterable[Liquidation], prices: Sequence[PriceTick]) -> Iterator[Replayed]:
    """Liquidations in file order with price ticks slotted in by time (prices first on ties)."""
    ordered = sorted(prices, key=lambda t: t.ts_ms)
    i = 0
    started = False
    for liq in tape:
        if not started:
            started = True
            while i + 1 < len(ordered) and ordered[i + 1].ts_ms <= liq.ts_ms:
                i += 1  # skip ahead: only the last price before the tape matters
            if i < len(ordered) and ordered[i].ts_ms <= liq.ts_ms:
                yield ordered[i]
                i += 1
        while i < len(ordered) and ordered[i].ts_ms <= liq.ts_ms:
            yield ordered[i]
            i += 1
        yield liq


def parse_speed(text: str) -> float | str | None:
    """`max` -> None (no pacing), `auto` -> 'auto', a number > 0 -> that factor."""
    value = text.strip().lower()
    if value in ("max", "auto"):
        return None if value == "max" else "auto"
    try:
        speed = float(value)
    except ValueError:
        raise ValueError(f"--speed {text!r}: use a number > 0, 'max' or 'auto'") from None
    if speed <= 0:
        raise ValueError(f"--speed {text!r}: must be above 0")
    return speed


def speed_for(span: tuple[int, int] | None, target_s: float = AUTO_TARGET_S) -> float | None:
    """The speed that plays `span` in about `target_s` wall seconds."""
    if span is None or span[1] <= span[0]:
        return None
    return (span[1] - span[0]) / 1000 / target_s


async def replay_events(
    events: Iterable[Replayed],
    clock: SimClock,
    speed: float | None,
    skip: int = 0,
    on_event: Callable[[int, Replayed], None] | None = None,
) -> AsyncIterator[Replayed]:
    """Yield events at `speed` x real time (None: as fast as possible) on the simulated clock.

    The first `skip` events are consumed silently (a resumed replay: they were handled before).
    """
    wall_start: float | None = None
    sim_start = 0
    n = 0
    for event in events:
        n += 1
        if n <= skip:
            continue
        if speed is not None:
            if wall_start is None:
                wall_start, sim_start = time.monotonic(), event.ts_ms
            due_s = (event.ts_ms - sim_start) / 1000 / speed
            delay_s = due_s - (time.monotonic() - wall_start)
            if delay_s > 0:
                await asyncio.sleep(delay_s)
        elif n % 100 == 0:
            await asyncio.sleep(0)  # let the live view redraw
        await clock.advance_to(event.ts_ms)
        if on_event is not None:
            on_event(n, event)
        yield event
    await clock.drain()  # TWAP tails and approval timeouts after the last event
