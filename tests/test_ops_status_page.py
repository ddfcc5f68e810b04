"""The status page in a real headless Chromium (Debian's package, driven by Playwright).

The bundled crash is replayed in this event loop with Telegram approvals (the local Bot API
server); the page must load without a console error, its chart must follow the rule's window
while events are fed, an Approve pressed in the page must execute the action through the same
vote as a Telegram button, and a request without the token must be refused.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable, Iterator
from importlib.resources import files
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from loguru import logger

from bot.app.wiring import Runtime, build
from bot.clock import SimClock
from bot.config.policy import PolicyConfig
from bot.config.rules import RuleConfig
from bot.events import JournalKind, Liquidation
from bot.ops.service import Ops
from bot.sources.files import open_tape
from bot.sources.prices import read_prices
from bot.sources.replay import merge, replay_events
from tests.telegram_server import TOKEN, FakeTelegram, telegram_secrets, telegram_settings

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
DATA = Path(str(files("bot").joinpath("data")))
TAPE = DATA / "binance-btcusdt_2024-12-04_06.csv"
PRICES = DATA / "BTCUSDT-5m_2024-12-04_06.csv"
WEB_TOKEN = "FAKE-page-token"
POLICY = {
    "levels": {
        1: [
            {
                "strategy": "reduce_exposure",
                "params": {"fraction": 0.25},
                "approval": "confirm",
                "timeout_s": 72000,  # 20 h of tape: only the press can execute it
                "on_timeout": "cancel",
            }
        ]
    },
    "calm": [],
}


@pytest.fixture
async def server() -> AsyncIterator[FakeTelegram]:
    s = FakeTelegram(TOKEN)
    await s.start()
    yield s
    await s.stop()


@pytest.fixture
def chromium() -> Iterator[Path]:
    if not CHROMIUM.is_file():
        pytest.fail(
            f"{CHROMIUM} is absent: the status page is tested in a real browser; "
            "install Debian's chromium (apt-get install -y chromium)"
        )
    yield CHROMIUM


def runtime(server: FakeTelegram, tmp_path: Path) -> Runtime:
    base = telegram_settings(server, chart={"enabled": False})
    settings = base.model_copy(
        update={
            "policy": PolicyConfig.model_validate(POLICY),
            "rules": (RuleConfig(),),  # $1M over every venue: the crash escalates from its start
            "http": base.http.model_copy(update={"listen": "127.0.0.1:0"}),
        }
    )
    return build(
        settings,
        telegram_secrets(),
        mode="replay",
        identity="ops-page-test",
        journal_url=f"sqlite:///{tmp_path / 'journal.db'}",
        notifiers=[],
    )


async def until(cond: Callable[[], Any], what: str, within_s: float = 60.0) -> Any:
    """Poll `cond` (a function, or a coroutine function) until it is truthy."""
    end = asyncio.get_running_loop().time() + within_s
    while True:
        got = cond()
        if asyncio.iscoroutine(got):
            got = await got
        if got:
            return got
        assert asyncio.get_running_loop().time() < end, f"never: {what}"
        await asyncio.sleep(0.05)


def text_is(page: Any, selector: str, want: str) -> Callable[[], Any]:
    """The page's CSP forbids eval (wait_for_function): read the DOM from here instead."""

    async def check() -> bool:
        return await page.text_content(selector) == want

    return check


async def test_status_page_in_chromium(
    server: FakeTelegram, tmp_path: Path, chromium: Path
) -> None:
    from playwright.async_api import async_playwright

    logged: list[str] = []
    sink = logger.add(lambda m: logged.append(str(m)), level="DEBUG")
    rt = runtime(server, tmp_path)
    await rt.start()
    said: list[str] = []
    ops = Ops(rt, said.append, env={"LIQGUARD_HTTP_TOKEN": WEB_TOKEN})
    await ops.start()
    url = ops.urls["http"]
    orch, clock, approver = rt.orchestrator, rt.clock, rt.approver
    assert isinstance(clock, SimClock)
    events = replay_events(merge(open_tape(TAPE), read_prices(PRICES)), clock, None)

    async def feed(liquidations: int, stop: Callable[[], bool] = lambda: False) -> None:
        n = 0
        async for event in events:
            await orch.handle(event)
            ops.on_event(event)
            n += isinstance(event, Liquidation)
            if n >= liquidations or stop():
                return

    problems: list[str] = []
    try:
        async with async_playwright() as pw:
            context = await pw.chromium.launch_persistent_context(
                str(tmp_path / "chromium-profile"),
                executable_path=str(chromium),
                headless=True,
                args=FLAGS,
                viewport={"width": 1280, "height": 900},
            )
            page = context.pages[0] if context.pages else await context.new_page()
            page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: problems.append(str(e)))
            page.on("dialog", lambda d: asyncio.ensure_future(d.accept()))
            requests: list[str] = []
            page.on("request", lambda r: requests.append(r.url))
            await page.goto(url)
            await until(text_is(page, "#conn", "live"), "the event stream opens")
            assert await page.text_content("#mode") == "replay"

            # the chart follows the rule's window as the replay goes on
            chart = page.locator("canvas.chart[data-rule='all']")
            seen: list[tuple[int, float]] = []
            for chunk in (150, 150):
                await feed(chunk)
                window = orch.status()["rules"][0]["window_usd"]

                async def drawn(w: float = window) -> bool:
                    last = await chart.get_attribute("data-last") if await chart.count() else ""
                    return bool(last) and abs(float(last or 0) - w) < 0.01

                await until(drawn, f"the chart shows the window {window}")
                seen.append((int(await chart.get_attribute("data-points") or 0), window))
            assert seen[1][0] > seen[0][0] and seen[1][1] != seen[0][1], seen

            # the crash escalates: the action waits for a person, shown with its deadline
            await feed(10**9, stop=lambda: bool(approver.pending()))  # type: ignore[attr-defined]
            (pending,) = approver.pending()  # type: ignore[attr-defined]
            await page.locator("#pending button.approve").wait_for()
            assert "s left" in (await page.text_content("#pending") or "")
            await page.fill("#token", WEB_TOKEN)
            await page.click("#pending button.approve")
            await until(text_is(page, "#answer", "Approved."), "the page says Approved.")

            def ended() -> dict[str, Any] | None:
                return rt.journal.find_key(f"end:{pending['action_id']}")

            await until(ended, "the approved action ends")

            # pause and resume, through the ladder
            await page.click("#pause")
            await until(text_is(page, "#ladder", "REDUCING"), "the ladder shows REDUCING")
            await page.click("#resume")  # a confirm() dialog, accepted
            await until(text_is(page, "#ladder", "ACTIVE"), "the ladder shows ACTIVE")

            # a runtime change: the diff first, applied once confirmed (the Telegram ballots)
            await page.fill("#change", "/threshold all 2500000")
            await page.click("#propose")

            async def diff_shown() -> bool:
                text = await page.text_content("#answer") or ""
                return "rules.all.threshold_usd: 1,000,000.00 -> 2,500,000.00" in text

            await until(diff_shown, "the page shows the diff")
            assert orch.detector.rules[0].threshold_usd == 1_000_000
            await page.click("#confirm")
            await until(text_is(page, "#answer", "Approved."), "the change is confirmed")
            await until(
                lambda: orch.detector.rules[0].threshold_usd == 2_500_000, "the change lands"
            )
            shot = tmp_path / "status-page.png"
            await page.screenshot(path=str(shot), full_page=True)
            if os.environ.get("LIQGUARD_SCREENSHOT"):  # docs/status-page.png is made this way
                await page.screenshot(path=os.environ["LIQGUARD_SCREENSHOT"], full_page=True)
            assert shot.read_bytes().startswith(b"\x89PNG")
            await context.close()

        # requests without the token (or with a wrong one) are refused, and change nothing
        async with aiohttp.ClientSession() as http:
            for headers in ({}, {"Authorization": "Bearer wrong"}):
                async with http.post(url + "api/pause", json={}, headers=headers) as resp:
                    assert resp.status == 401
                    assert "token" in (await resp.json())["message"]
        assert orch.status()["ladder"] == "ACTIVE"
    finally:
        await orch.stop()
        await ops.close()
        await rt.close()
        logger.remove(sink)

    assert problems == [], problems
    assert any("refused" in line for line in logged)  # the refusals were logged ...
    assert all(WEB_TOKEN not in line for line in logged)  # ... and the token never was
    assert all(u.startswith(url) for u in requests), [u for u in requests if not u.startswith(url)]
    assert all(WEB_TOKEN not in u for u in requests)
    assert any("status page on http://127.0.0.1:" in s and "loopback only" in s for s in said)
    from bot.journal import SqlJournal

    journal = SqlJournal(f"sqlite:///{tmp_path / 'journal.db'}")
    rows = journal.find()
    journal.close()
    end = next(r["payload"] for r in rows if r["key"] == f"end:{pending['action_id']}")
    assert end["status"] == "executed"
    decision = next(
        r["payload"]
        for r in rows
        if r["kind"] == JournalKind.DECISION and r["payload"]["action_id"] == pending["action_id"]
    )
    assert decision["approved"] and decision["by"] == "telegram:status page"
    # journaled as a Telegram vote is, plus the press itself
    assert any(
        r["kind"] == JournalKind.TELEGRAM_DECISION
        and r["payload"]["request_id"] == pending["request_id"]
        for r in rows
    )
    presses = [r["payload"] for r in rows if r["kind"] == "http.press"]
    assert [p["what"] for p in presses] == ["approve", "pause", "resume", "change", "confirm"]
    (change,) = [r["payload"] for r in rows if r["kind"] == JournalKind.CONFIG_OVERRIDE]
    assert (change["by"], change["approved_by"]) == ("http:status page", "telegram:status page")
    assert len([r for r in rows if r["kind"] == "http.refused"]) == 2
    assert all(WEB_TOKEN not in str(r["payload"]) for r in rows)
    ladder = [r["payload"] for r in rows if r["kind"] == JournalKind.LADDER]
    assert [(x["state"], x["by"]) for x in ladder][-2:] == [
        ("REDUCING", "http:status page"),
        ("ACTIVE", "http:status page"),
    ]
