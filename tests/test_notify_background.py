"""The background notifier: queued at once, delivered in order once the path is free, never
dropped (flush and close deliver everything), a failing notifier only loses its own say."""

from __future__ import annotations

import asyncio

from bot.events import Notice
from bot.notify.background import BackgroundNotifier


class Slow:
    name = "slow"

    def __init__(self, fail_on: str = "") -> None:
        self.got: list[str] = []
        self.fail_on = fail_on
        self.closed = False

    async def notify(self, event: object) -> None:
        assert isinstance(event, Notice)
        await asyncio.sleep(0)
        if event.title == self.fail_on:
            raise RuntimeError("down")
        self.got.append(event.title)

    async def close(self) -> None:
        self.closed = True


async def _turns(n: int = 20) -> None:
    for _ in range(n):
        await asyncio.sleep(0)


async def test_deliveries_wait_for_the_hold_and_keep_their_order() -> None:
    inner = Slow()
    committed: list[int] = []
    bg = BackgroundNotifier(
        inner, hold_max_s=30, idle_s=0, before_delivery=lambda: committed.append(len(inner.got))
    )
    with bg.hold():
        for title in ("a", "b", "c"):
            await bg.notify(Notice(0, title))
        await _turns()
        assert inner.got == [] and bg.pending == 3  # the hot path has the loop
    await _turns()
    assert inner.got == ["a", "b", "c"] and bg.pending == 0
    assert committed and committed[0] == 0  # the journal is committed before anyone is told
    await bg.close()
    assert inner.closed


async def test_flush_and_close_deliver_everything_even_while_held() -> None:
    inner = Slow(fail_on="bad")
    bg = BackgroundNotifier(inner, hold_max_s=30)
    with bg.hold():
        for title in ("1", "bad", "2"):
            await bg.notify(Notice(0, title))
        await bg.flush()
        assert inner.got == ["1", "2"]  # the failing one is logged, the rest delivered
        await bg.notify(Notice(0, "3"))
    await bg.close()
    await bg.notify(Notice(0, "after close"))  # delivered inline, not lost
    assert inner.got == ["1", "2", "3", "after close"]


async def test_a_hold_that_lasts_too_long_does_not_starve_delivery() -> None:
    inner = Slow()
    bg = BackgroundNotifier(inner, hold_max_s=0.01, idle_s=30)
    with bg.hold():
        await bg.notify(Notice(0, "x"))
        for _ in range(200):
            if inner.got:
                break
            await asyncio.sleep(0.005)
        assert inner.got == ["x"]
    await bg.close()
