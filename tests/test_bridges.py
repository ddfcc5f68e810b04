"""Bridges through local servers that implement the documented endpoints and auth: Freqtrade's
REST API (JWT and Basic, a current one and one from before `/pause`), hummingbot-api's
stop-bot (Basic) and a signed webhook, on a replay whose ladder goes ACTIVE -> REDUCING ->
HALTED, then back to ACTIVE by a person."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any

import pytest

from bot.app.errors import SetupError
from bot.app.wiring import Runtime
from bot.bridges.bridges import Bridges
from bot.clock import SimClock
from bot.config.settings import Settings
from bot.events import JournalKind, Notice, TradingState, TradingStateChanged
from bot.journal import SqlJournal
from bot.logs import setup_logging
from bot.sim.bridges import FakeFreqtrade, FakeHummingbot, SignedReceiver
from bot.sim.paging import FakePagerDuty
from bot.sources.files import open_tape
from bot.sources.replay import replay_events
from tests.recorders import Told
from tests.runtimes import FAST, HALT_POLICY, replay_runtime

TAPE = Path(str(files("bot").joinpath("data"))) / "binance-btcusdt_2024-12-04_06.csv"
FT_USER, FT_PASS = "freqtrader", "ft-pa55-0123456789"
HB_USER, HB_PASS = "admin", "hb-pa55-9876543210"
HOOK_SECRET = "FAKE-bridge-hmac-secret"
PD_KEY = "FAKE-pagerduty-routing-key-bridges"
ENV = {
    "FT_USER": FT_USER,
    "FT_PASS": FT_PASS,
    "HB_USER": HB_USER,
    "HB_PASS": HB_PASS,
    "HOOK_SECRET": HOOK_SECRET,
    "PD_KEY": PD_KEY,
}


@dataclass
class Fakes:
    ft: FakeFreqtrade  # current Freqtrade, JWT
    old: FakeFreqtrade  # before /pause existed, Basic
    hb: FakeHummingbot
    hook: SignedReceiver
    pd: FakePagerDuty

    def bridges(self) -> list[dict[str, Any]]:
        ft = {"username_env": "FT_USER", "password_env": "FT_PASS", **FAST}
        return [
            {
                "kind": "freqtrade",
                "name": "ft",
                "url": self.ft.url,
                "forceexit_on_halt": True,
                **ft,
            },
            {"kind": "freqtrade", "name": "ft-old", "url": self.old.url, "auth": "basic", **ft},
            {
                "kind": "hummingbot",
                "name": "mm",
                "url": self.hb.url,
                "bots": ["mm-btc", "mm-eth"],
                "stop_on": "HALTED",
                "username_env": "HB_USER",
                "password_env": "HB_PASS",
                **FAST,
            },
            {
                "kind": "webhook",
                "name": "desk",
                "url": self.hook.url + "/ladder",
                "secret_env": "HOOK_SECRET",
                **FAST,
            },
        ]


@pytest.fixture
async def fakes() -> AsyncIterator[Fakes]:
    f = Fakes(
        FakeFreqtrade(FT_USER, FT_PASS),
        FakeFreqtrade(FT_USER, FT_PASS, legacy=True),
        FakeHummingbot(HB_USER, HB_PASS, ["mm-btc", "mm-eth"]),
        SignedReceiver(HOOK_SECRET),
        FakePagerDuty(PD_KEY),
    )
    for fake in (f.ft, f.old, f.hb, f.hook, f.pd):
        await fake.start()
    yield f
    for fake in (f.ft, f.old, f.hb, f.hook, f.pd):
        await fake.close()


def runtime(tmp_path: Path, told: Told, env: dict[str, str] = ENV, **sections: Any) -> Runtime:
    return replay_runtime(tmp_path, told, "bridges-test", env, **sections)


async def settle(rt: Runtime) -> Bridges:
    bridges: Bridges = rt.extras["bridges"]
    await rt.orchestrator.notifier.flush(5)  # type: ignore[attr-defined]
    await bridges.drain(5)
    if (pagers := rt.extras.get("paging")) is not None:
        await pagers.drain(5)
    return bridges


async def replay_until(rt: Runtime, state: TradingState) -> None:
    orch, clock = rt.orchestrator, rt.clock
    assert isinstance(clock, SimClock)
    async for event in replay_events(open_tape(TAPE), clock, None, orch.counters.events):
        await orch.handle(event)
        if orch.status()["ladder"] == state:
            return
    raise AssertionError(f"the replay never reached {state}")


def bridge_rows(rt: Runtime) -> list[dict[str, Any]]:
    return [r["payload"] for r in rt.journal.find([JournalKind.BRIDGE])]


async def test_the_ladder_pauses_the_other_bots_and_a_resume_starts_freqtrade(
    tmp_path: Path, fakes: Fakes
) -> None:
    log = io.StringIO()
    setup_logging("DEBUG", stream=log)
    rt = runtime(tmp_path, Told(), bridges=fakes.bridges(), policy=HALT_POLICY)
    try:
        await replay_until(rt, TradingState.REDUCING)
        await settle(rt)
        # REDUCING: Freqtrade pauses (no new entries; its trades stay open, exits still work)
        assert fakes.ft.state == "paused" and not fakes.ft.entries_allowed
        assert len(fakes.ft.open_trades) == 2
        assert fakes.ft.calls[:2] == ["POST /api/v1/token/login", "POST /api/v1/pause"]
        # the older Freqtrade has no /pause: /stopentry instead, same effect, Basic auth
        assert fakes.old.calls == ["POST /api/v1/pause", "POST /api/v1/stopentry"]
        assert not fakes.old.entries_allowed
        # Hummingbot stops only at HALTED (stop_on); the webhook hears every change
        assert {b["status"] for b in fakes.hb.bots.values()} == {"running"}
        assert [(m["previous"], m["state"]) for m in fakes.hook.received] == [
            ("ACTIVE", "REDUCING")
        ]

        await replay_until(rt, TradingState.HALTED)
        await settle(rt)
        # HALTED: every Freqtrade trade exited (forceexit_on_halt), the bot itself not stopped
        assert fakes.ft.open_trades == [] and fakes.ft.state == "paused"
        assert fakes.ft.calls.count("POST /api/v1/pause") == 1  # paused once per episode
        assert len(fakes.old.open_trades) == 2  # no forceexit configured there
        assert fakes.hb.bots == {
            "mm-btc": {"status": "stopped", "orders_cancelled": True},
            "mm-eth": {"status": "stopped", "orders_cancelled": True},
        }
        assert fakes.hb.bodies[0] == {
            "bot_name": "mm-btc",
            "skip_order_cancellation": False,
            "async_backend": False,
        }
        assert fakes.hook.received[-1]["state"] == "HALTED"
        assert "reason" in fakes.hook.received[-1] and "time" in fakes.hook.received[-1]

        # a person resumes: Freqtrade starts again; Hummingbot stays stopped (a person's call)
        fakes.ft.expire_tokens()  # the JWT expired meanwhile: logged in again on the 401
        await rt.orchestrator.resume_trading("desk:alice")
        await settle(rt)
        assert fakes.ft.state == "running" and fakes.ft.entries_allowed
        assert fakes.ft.calls[-2:] == ["POST /api/v1/token/login", "POST /api/v1/start"]
        # the older one: /reload_config undoes /stopentry (its /start only restarts a stopped bot)
        assert fakes.old.calls[-1] == "POST /api/v1/reload_config" and fakes.old.entries_allowed
        assert {b["status"] for b in fakes.hb.bots.values()} == {"stopped"}
        assert fakes.hook.received[-1]["state"] == "ACTIVE"
        # never /stop, on either Freqtrade
        assert "POST /api/v1/stop" not in fakes.ft.calls + fakes.old.calls
        rows = bridge_rows(rt)
        assert {r["outcome"] for r in rows} == {"delivered"}
        ops = [(r["channel"], r["op"]) for r in rows]
        assert ops.count(("freqtrade:ft", "pause")) == 1
        assert ("freqtrade:ft", "forceexit") in ops and ("freqtrade:ft", "start") in ops
        assert ops.count(("hummingbot:mm", "stop")) == 2
    finally:
        await rt.close()
        setup_logging("INFO")
    reread = SqlJournal(f"sqlite:///{tmp_path / 'journal.db'}")
    try:
        journal = str(reread.find())
    finally:
        reread.close()
    tokens = list(fakes.ft.tokens)
    for secret in (FT_PASS, HB_PASS, HOOK_SECRET, *tokens):
        assert secret not in log.getvalue() and secret not in journal


async def test_a_bridge_that_fails_is_alerted_everywhere_and_never_holds_the_response(
    tmp_path: Path, fakes: Fakes
) -> None:
    told = Told()
    bridges = fakes.bridges()[:1]
    paging = {"pagerduty": {"routing_key_env": "PD_KEY", "url": fakes.pd.enqueue_url, **FAST}}
    rt = runtime(tmp_path, told, bridges=bridges, policy=HALT_POLICY, paging=paging)
    fakes.ft.hold = asyncio.Event()  # Freqtrade hangs: liqguard's own halt must not wait
    fakes.ft.fail_with.extend([502] * 10)  # then it answers 502, every time
    try:
        await replay_until(rt, TradingState.HALTED)
        await rt.orchestrator.notifier.flush(5)  # type: ignore[attr-defined]
        (_, delivery) = rt.extras["bridges"].bridges[0]
        assert delivery.pending >= 1 and bridge_rows(rt) == []  # the halt did not wait on it
        fakes.ft.hold.set()
        await settle(rt)
        rows = bridge_rows(rt)
        first = [r["outcome"] for r in rows if r["op"] == "pause"]
        assert first == ["retrying", "retrying", "retrying", "failed"]
        # told on the console/Telegram stand-in and paged
        alerts = [e for e in told.events if isinstance(e, Notice) and "freqtrade:ft" in e.title]
        assert alerts and alerts[0].severity == "critical" and "HTTP 502" in alerts[0].text
        paged = [
            r["json"]["payload"]["summary"] for r in fakes.pd.requests if "payload" in r["json"]
        ]
        assert any("Bridge freqtrade:ft failed" in s for s in paged), paged
    finally:
        await rt.close()


def test_a_missing_credential_is_named(tmp_path: Path) -> None:
    bridges = [{"kind": "freqtrade", "name": "ft", "url": "http://127.0.0.1:9"}]
    with pytest.raises(SetupError, match=r"bridges\[0\].username_env: .*FREQTRADE_USERNAME"):
        runtime(tmp_path, Told(), env={}, bridges=bridges)


async def test_straight_to_halted_exits_the_trades_before_pausing(
    tmp_path: Path, fakes: Fakes
) -> None:
    rt = runtime(tmp_path, Told(), bridges=fakes.bridges()[:1])
    try:
        await rt.orchestrator.set_trading_state(TradingState.HALTED, "desk halts", "telegram:bob")
        await settle(rt)
        assert fakes.ft.calls == [
            "POST /api/v1/token/login",
            "POST /api/v1/forceexit",
            "POST /api/v1/pause",
        ]
        assert fakes.ft.open_trades == [] and not fakes.ft.entries_allowed
    finally:
        await rt.close()


def test_the_documented_examples_load() -> None:
    """The `bridges:` and `paging:` examples of the docs and of `liqguard init`'s template."""
    import re

    import yaml

    from bot.config.template import TEMPLATE

    docs = Path(__file__).resolve().parents[1] / "docs"
    blocks = {
        name: re.findall(r"```yaml\n(.*?)```", (docs / name).read_text(), re.S)
        for name in ("bridges.md", "monitoring.md")
    }
    (bridges,) = [b for b in blocks["bridges.md"] if b.startswith("bridges:")]
    (paging,) = [b for b in blocks["monitoring.md"] if b.startswith("paging:")]
    commented = TEMPLATE.split("# Paging (off)")[1].splitlines()
    template = "\n".join(
        line[2:]
        for line in commented
        if line.startswith("#   ") or line in ("# paging:", "# bridges:")
    )
    for text in (bridges, paging, template):
        settings = Settings.model_validate(yaml.safe_load(text))
        assert settings.bridges or settings.paging.enabled
    assert len(Settings.model_validate(yaml.safe_load(bridges)).bridges) == 3


async def test_a_resume_after_a_restart_reenables_an_older_freqtrade(
    tmp_path: Path, fakes: Fakes
) -> None:
    """The process that paused it is gone: the new one learns the bot's version from /start."""
    rt = runtime(tmp_path, Told(), bridges=fakes.bridges()[1:2])
    fakes.old.entries_allowed = False  # /stopentry'd by the liqguard before the restart
    try:
        resumed = TradingStateChanged(
            1_733_335_300_000, TradingState.HALTED, TradingState.ACTIVE, "resumed", "telegram:bob"
        )
        await rt.orchestrator.notifier.notify(resumed)
        await settle(rt)
        assert fakes.old.calls == ["POST /api/v1/start", "POST /api/v1/reload_config"]
        assert fakes.old.entries_allowed
    finally:
        await rt.close()
