"""Paging through local servers that speak the documented APIs: PagerDuty Events API v2,
Opsgenie's Alert API and SMTP with STARTTLS (aiosmtpd, a certificate made by the test)."""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any

import pytest

from bot.app.errors import SetupError
from bot.app.wiring import Runtime
from bot.clock import SimClock
from bot.events import (
    Decision,
    DeliveryOutcome,
    FeedStatus,
    JournalKind,
    Notice,
    TradingState,
)
from bot.journal import SqlJournal
from bot.logs import setup_logging
from bot.notify.charts import PNG_SIGNATURE
from bot.ops.service import Ops
from bot.paging.pagers import Pagers
from bot.sim.paging import FakeOpsgenie, FakePagerDuty, FakeSmtp
from bot.sources.files import open_tape
from bot.sources.replay import replay_events
from tests.recorders import Told
from tests.runtimes import FAST, HALT_POLICY, replay_runtime

TAPE = Path(str(files("bot").joinpath("data"))) / "binance-btcusdt_2024-12-04_06.csv"
PD_KEY = "FAKE-pagerduty-routing-key"
OG_KEY = "FAKE-opsgenie-api-key"
SMTP_USER, SMTP_PASSWORD = "desk-alerts", "smtp-pass-5up3r-s3cr3t"
ENV = {"PD_KEY": PD_KEY, "OG_KEY": OG_KEY, "SMTP_USER": SMTP_USER, "SMTP_PASS": SMTP_PASSWORD}


@dataclass
class Fakes:
    pd: FakePagerDuty
    og: FakeOpsgenie
    smtp: FakeSmtp

    def paging(self, **over: Any) -> dict[str, Any]:
        return {
            "pagerduty": {"routing_key_env": "PD_KEY", "url": self.pd.enqueue_url, **FAST},
            "opsgenie": {"api_key_env": "OG_KEY", "url": self.og.url, **FAST},
            "email": {
                "host": "127.0.0.1",
                "port": self.smtp.port,
                "username_env": "SMTP_USER",
                "password_env": "SMTP_PASS",
                "from_addr": "liqguard@desk.test",
                "to": ["oncall@desk.test"],
                "ca_file": self.smtp.ca_file,
                **FAST,
            },
            **over,
        }


@pytest.fixture
async def fakes(tmp_path: Path) -> AsyncIterator[Fakes]:
    pd, og, smtp = FakePagerDuty(PD_KEY), FakeOpsgenie(OG_KEY), FakeSmtp(SMTP_USER, SMTP_PASSWORD)
    await pd.start()
    await og.start()
    await smtp.start(tmp_path)
    yield Fakes(pd, og, smtp)
    await pd.close()
    await og.close()
    await smtp.close()


def runtime(tmp_path: Path, told: Told, env: dict[str, str] = ENV, **sections: Any) -> Runtime:
    return replay_runtime(tmp_path, told, "paging-test", env, **sections)


def pages(rt: Runtime) -> list[dict[str, Any]]:
    return [r["payload"] for r in rt.journal.find([JournalKind.PAGE])]


async def settle(rt: Runtime) -> Pagers:
    pagers: Pagers = rt.extras["paging"]
    await rt.orchestrator.notifier.flush(5)  # type: ignore[attr-defined]
    await pagers.drain(5)
    return pagers


async def test_a_replay_that_halts_pages_all_three_and_a_resume_resolves(
    tmp_path: Path, fakes: Fakes
) -> None:
    told = Told()
    rt = runtime(tmp_path, told, paging=fakes.paging(), policy=HALT_POLICY)
    orch = rt.orchestrator
    try:
        clock = rt.clock
        assert isinstance(clock, SimClock)
        async for event in replay_events(open_tape(TAPE), clock, None):
            await orch.handle(event)
            if orch.status()["ladder"] == TradingState.HALTED:
                break
        assert orch.status()["ladder"] == TradingState.HALTED
        await settle(rt)
        episode = rt.journal.get_state("paging:episode")
        assert episode is not None and episode["key"].startswith("liqguard-")
        key = episode["key"]

        # PagerDuty: one alert for the episode, triggered by the REDUCING page and the HALT
        assert fakes.pd.alerts == {key: "triggered"}
        triggers = [r["json"] for r in fakes.pd.requests]
        assert {t["event_action"] for t in triggers} == {"trigger"}
        assert all(t["dedup_key"] == key for t in triggers)
        assert any("HALTED" in t["payload"]["summary"] for t in triggers)
        assert {t["payload"]["severity"] for t in triggers} == {"critical"}
        # Opsgenie: one open alert under the episode's alias, de-duplicated
        (alias,) = fakes.og.alerts
        assert alias == key and fakes.og.alerts[key]["status"] == "open"
        assert fakes.og.alerts[key]["count"] == len(triggers)
        # email: over STARTTLS with the login, the chart attached
        assert fakes.smtp.messages, "no email arrived"
        mail = fakes.smtp.messages[-1]
        assert mail["Subject"].startswith("[liqguard CRITICAL]")
        assert mail["To"] == "oncall@desk.test" and mail["X-Liqguard-Key"] == key
        (png,) = [p for p in mail.walk() if p.get_content_type() == "image/png"]
        assert bytes(png.get_payload(decode=True)).startswith(PNG_SIGNATURE)
        # every attempt journaled, all delivered
        rows = pages(rt)
        assert {r["channel"] for r in rows} == {"pagerduty", "opsgenie", "email"}
        assert {r["outcome"] for r in rows} == {DeliveryOutcome.DELIVERED}

        # a person resumes: the incident is resolved everywhere, the episode closed
        await orch.resume_trading("desk:alice")
        await settle(rt)
        assert fakes.pd.alerts == {key: "resolved"}
        assert fakes.pd.requests[-1]["json"] == {
            "routing_key": PD_KEY,
            "event_action": "resolve",
            "dedup_key": key,
        }
        assert fakes.og.alerts[key]["status"] == "closed"
        assert fakes.og.requests[-1]["path"].endswith("/close?identifierType=alias")
        assert fakes.smtp.messages[-1]["Subject"].startswith("[liqguard RESOLVED]")
        assert (rt.journal.get_state("paging:episode") or {}).get("key") is None
    finally:
        await rt.close()


async def test_a_pager_answering_500_and_429_is_retried_and_one_that_keeps_failing_is_alerted(
    tmp_path: Path, fakes: Fakes
) -> None:
    told = Told()
    rt = runtime(tmp_path, told, paging=fakes.paging())
    fakes.pd.fail_with.extend([500, 429])  # then it answers
    fakes.og.fail_with.extend([503] * 10)  # down for good: 1 + 3 retries, then given up
    try:
        blind = FeedStatus(1_733_300_000_000, "bybit", "blind", silent_s=130.0)
        await rt.orchestrator.notifier.notify(blind)
        await settle(rt)
        rows = pages(rt)
        pd = [r["outcome"] for r in rows if r["channel"] == "pagerduty" and "feed" in r["key"]]
        assert pd == ["retrying", "retrying", "delivered"]
        og = [r["outcome"] for r in rows if r["channel"] == "opsgenie"]
        assert og == ["retrying", "retrying", "retrying", "failed"]
        assert len(fakes.og.requests) == 4
        # the failure is told on every other channel: the notifiers, PagerDuty and email
        alerts = [e for e in told.events if isinstance(e, Notice) and "opsgenie" in e.title]
        assert len(alerts) == 1 and alerts[0].severity == "critical"
        assert "HTTP 503" in alerts[0].text
        failure_keys = [k for k in fakes.pd.alerts if k.endswith("failure-opsgenie")]
        assert failure_keys and fakes.pd.alerts[failure_keys[0]] == "triggered"
        subjects = [m["Subject"] for m in fakes.smtp.messages]
        assert any("opsgenie failed" in s for s in subjects), subjects
        # the feed is back: its own incident resolves (Opsgenie still down: alerted again)
        await rt.orchestrator.notifier.notify(FeedStatus(1_733_300_060_000, "bybit", "live"))
        await settle(rt)
        feed_key = next(k for k in fakes.pd.alerts if "feed-bybit" in k)
        assert fakes.pd.alerts[feed_key] == "resolved"
    finally:
        await rt.close()


async def test_an_expired_approval_and_an_unhealthy_bot_page(tmp_path: Path, fakes: Fakes) -> None:
    told = Told()
    paging = fakes.paging(email=None, opsgenie=None)
    rt = runtime(tmp_path, told, paging=paging)
    try:
        expired = Decision("a1-approval", "a1", False, "timeout", 1_733_300_000_000, "cancel")
        await rt.orchestrator.notifier.notify(expired)
        pagers = await settle(rt)
        (asked,) = [r["json"] for r in fakes.pd.requests]
        assert asked["payload"]["summary"] == "Approval expired unanswered: a1"
        # the watchdog's beat: a loop that lagged 7 s (max 5 s) pages; healthy again resolves
        ops = Ops(rt, lambda _text: None, env={})
        await ops.start()
        assert ops.watchdog is not None
        ops.watchdog.beat(7.0)
        await settle(rt)
        (sick,) = [r["json"] for r in fakes.pd.requests if "unhealthy" in r["json"]["dedup_key"]]
        assert sick["payload"]["custom_details"]["text"].startswith("the event loop lagged 7.0 s")
        ops.watchdog.beat(0.0)
        await ops.close()
        await settle(rt)
        assert [v for k, v in fakes.pd.alerts.items() if "unhealthy" in k] == ["resolved"]
        assert pagers.deliveries[0].failed == 0
    finally:
        await rt.close()


async def test_keys_never_reach_the_logs_or_the_journal(tmp_path: Path, fakes: Fakes) -> None:
    log = io.StringIO()
    setup_logging("DEBUG", stream=log)
    told = Told()
    paging = fakes.paging()
    paging["email"]["attach_chart"] = False
    rt = runtime(tmp_path, told, paging=paging)
    fakes.pd.fail_with.extend([500] * 10)  # the fake echoes the request (and its key) back
    fakes.og.fail_with.extend([422])  # refused: not retried
    try:
        await rt.orchestrator.notifier.notify(Notice(1_733_300_000_000, "HALT", "test", page=True))
        await settle(rt)
        rows = pages(rt)
        assert any(r["outcome"] == "failed" for r in rows)
        assert any(r["outcome"] == "refused" for r in rows)
        assert any("***" in r["detail"] for r in rows if r["channel"] == "pagerduty")
    finally:
        await rt.close()
        setup_logging("INFO")
    reread = SqlJournal(f"sqlite:///{tmp_path / 'journal.db'}")
    try:
        journal = json.dumps([reread.find(), reread.get_state("paging:episode")], default=str)
    finally:
        reread.close()
    told_text = " ".join(f"{getattr(e, 'title', '')} {getattr(e, 'text', '')}" for e in told.events)
    for secret in (PD_KEY, OG_KEY, SMTP_PASSWORD):
        assert secret not in log.getvalue()
        assert secret not in journal
        assert secret not in told_text
    assert "pagerduty gave up" in log.getvalue()


def test_a_key_missing_from_the_environment_is_named(tmp_path: Path) -> None:
    paging = {"pagerduty": {"routing_key_env": "NOT_SET_ANYWHERE"}}
    with pytest.raises(SetupError, match="NOT_SET_ANYWHERE is not set"):
        runtime(tmp_path, Told(), env={}, paging=paging)


async def test_a_persons_pause_and_resume_page_nobody(tmp_path: Path, fakes: Fakes) -> None:
    rt = runtime(tmp_path, Told(), paging=fakes.paging(email=None))
    try:
        await rt.orchestrator.set_trading_state(TradingState.REDUCING, "desk", "telegram:bob")
        await rt.orchestrator.resume_trading("telegram:bob")
        await settle(rt)
        assert fakes.pd.requests == [] and fakes.og.requests == []
    finally:
        await rt.close()
