"""/metrics scraped with a real HTTP client while the bundled crash replays; every value is
checked against the journal and the orchestrator at the moment of the scrape."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from importlib.resources import files
from pathlib import Path
from typing import Any

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from bot.app.live import create_live_sources
from bot.app.wiring import Runtime, build
from bot.clock import SimClock
from bot.config.ops import MetricsConfig
from bot.config.settings import Settings
from bot.events import FeedStatus, JournalKind, Liquidation
from bot.ops.service import Ops
from bot.secrets import Secrets
from bot.sim.localexchange import local_secrets, serve
from bot.sim.localexchange.binance import LocalBinance
from bot.sim.localexchange.tapes import tape_messages
from bot.sources.files import open_tape
from bot.sources.prices import read_prices
from bot.sources.replay import merge, replay_events
from bot.sources.venues import parse_raw_message
from tests.test_live_e2e import THRESHOLD_USD, _at, settings_for

DATA = Path(str(files("bot").joinpath("data")))
TAPE = DATA / "binance-btcusdt_2024-12-04_06.csv"
PRICES = DATA / "BTCUSDT-5m_2024-12-04_06.csv"


def runtime(tmp_path: Path, **sections: Any) -> Runtime:
    settings = Settings(metrics={"listen": "127.0.0.1:0"}, **sections)
    return build(
        settings,
        Secrets(_env_file=None),  # type: ignore[call-arg]
        mode="replay",
        identity="ops-metrics-test",
        journal_url=f"sqlite:///{tmp_path / 'journal.db'}",
        approvals="auto",
        notifiers=[],
    )


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def by(series: dict[Any, float], name: str, *labels: str) -> dict[tuple[str, ...], float]:
    """{label values: value} of one metric, zero values left out."""
    out = {}
    for (n, lbls), v in series.items():
        if n == name and v:
            d = dict(lbls)
            out[tuple(d[label] for label in labels)] = v
    return out


async def test_metrics_agree_with_the_journal_during_a_replay(tmp_path: Path) -> None:
    rt = runtime(tmp_path)
    said: list[str] = []
    ops = Ops(rt, said.append, env={})
    await ops.start()
    url = ops.urls["metrics"] + "metrics"
    assert any("(loopback only)" in s for s in said), said
    orch, clock = rt.orchestrator, rt.clock
    assert isinstance(clock, SimClock)
    fed: list[Liquidation] = []
    last_ts = 0
    scrapes = 0
    try:
        async with aiohttp.ClientSession() as http:

            async def check() -> dict[Any, float]:
                rt.journal.flush()  # the journal as of now; the scrape reads committed rows
                async with http.get(url) as resp:
                    assert resp.status == 200
                    assert resp.headers["Content-Type"].startswith("text/plain")
                    got = samples(await resp.text())
                rows = rt.journal.find()
                kinds = Counter(str(r["kind"]) for r in rows)
                anomalies = Counter(
                    (str(r["payload"]["rule"]), str(r["payload"]["level"]))
                    for r in rows
                    if r["kind"] == JournalKind.ANOMALY
                )
                ends = Counter(
                    (r["payload"]["strategy"], r["payload"]["status"].replace(" ", "_"))
                    for r in rows
                    if r["kind"] == JournalKind.ACTION_END
                )
                assert by(got, "liqguard_anomalies_total", "rule", "level") == anomalies
                assert by(got, "liqguard_actions_total", "strategy", "outcome") == ends
                assert (
                    sum(by(got, "liqguard_orders_total", "venue", "side").values())
                    == kinds[JournalKind.ORDER_SENT]
                )
                assert (
                    sum(by(got, "liqguard_fills_total", "venue", "side").values())
                    == kinds[JournalKind.FILL]
                )
                liq = Counter((e.venue, e.side) for e in fed)
                assert by(got, "liqguard_liquidations_total", "venue", "side") == liq
                usd = sum(by(got, "liqguard_liquidations_usd_total", "venue", "side").values())
                assert abs(usd - sum(e.notional_usd for e in fed)) < 0.01
                status = orch.status()
                for r in status["rules"]:
                    key = (("rule", r["rule"]),)
                    assert got[("liqguard_rule_window_usd", key)] == r["window_usd"]
                    assert got[("liqguard_rule_level", key)] == r["level"]
                    assert got[("liqguard_rule_threshold_usd", key)] == r["threshold_usd"]
                ladder = by(got, "liqguard_ladder_state", "liqguard_ladder_state")
                assert ladder == {(status["ladder"],): 1.0}
                assert got[("liqguard_up", ())] == 1.0
                if fed:
                    feed = (("feed", fed[-1].venue),)
                    assert got[("liqguard_last_event_timestamp_seconds", feed)] == last_ts / 1000
                return got

            events = merge(open_tape(TAPE), read_prices(PRICES))
            async for event in replay_events(events, clock, None):
                await orch.handle(event)
                ops.on_event(event)
                if isinstance(event, Liquidation):
                    fed.append(event)
                    last_ts = event.ts_ms
                    if len(fed) % 400 == 0:
                        await check()
                        scrapes += 1
            await orch.finish()
            final = await check()
    finally:
        await ops.close()
        await rt.close()
    assert scrapes >= 3
    # the crash escalates: anomalies, actions, orders, fills and commits were all counted
    assert sum(by(final, "liqguard_anomalies_total", "rule", "level").values()) > 0
    assert sum(by(final, "liqguard_orders_total", "venue", "side").values()) > 0
    assert final[("liqguard_journal_commit_seconds_count", ())] > 0
    assert final[("liqguard_journal_last_commit_timestamp_seconds", ())] > 0


async def test_a_blind_feed_shows_in_its_state_and_silence(tmp_path: Path) -> None:
    rt = runtime(tmp_path)
    ops = Ops(rt, lambda _text: None, env={})
    await ops.start()
    try:
        clock = rt.clock
        assert isinstance(clock, SimClock)
        await clock.advance_to(1_733_300_000_000)
        status = FeedStatus(clock.now_ms(), "binance", "blind", silent_s=90.0, reconnects=3)
        await rt.orchestrator.handle(status)
        ops.on_event(status)
        rt.journal.flush()  # /metrics counts committed rows
        async with aiohttp.ClientSession() as http, http.get(ops.urls["metrics"] + "metrics") as r:
            got = samples(await r.text())
    finally:
        await ops.close()
        await rt.close()
    states = by(got, "liqguard_feed_state", "venue", "liqguard_feed_state")
    assert states == {("binance", "blind"): 1.0}
    assert got[("liqguard_feed_silent_seconds", (("venue", "binance"),))] >= 90.0
    assert got[("liqguard_feed_reconnects", (("venue", "binance"),))] == 3
    journaled = by(got, "liqguard_journal_rows_total", "kind")
    assert journaled.get(("feed",)) == 1


def three_levels() -> list[dict[str, Any]]:
    """Tape messages up to the one whose running sum crosses 4 x the threshold: levels 1-3."""
    messages, total_usd = [], 0.0
    for msg in tape_messages(TAPE, 400):
        messages.append(msg)
        total_usd += sum(liq.notional_usd for liq in parse_raw_message(msg))
        if total_usd >= 4 * THRESHOLD_USD:
            return messages
    raise AssertionError("the tape never crosses 4 x the threshold")


async def test_reaction_stages_count_every_order_of_a_live_run(tmp_path: Path) -> None:
    """Live against the local Binance, metrics on: each order sent for an anomaly of the stream
    is one observation of every stage (values are times: only their presence is checked)."""
    server = LocalBinance()
    server.set_position("BTCUSDT", 0.8, 96_000.0)
    server.set_position("ETHUSDT", -8.0, 3_600.0)  # the cascade's later levels cut shorts
    secrets = local_secrets()
    async with serve(server.app) as port:
        live = settings_for(port)
        settings = live.model_copy(update={"metrics": MetricsConfig(listen="127.0.0.1:0")})
        rt = build(
            settings,
            secrets,
            mode="live",
            identity="ops-reaction-test",
            journal_url=str(tmp_path / "journal.sqlite"),
            approvals="auto",
            notifiers=[],
        )
        ops = Ops(rt, lambda _text: None, env={})
        await ops.start()
        source = create_live_sources(settings, secrets, ["binance"])[0]
        runner = asyncio.create_task(rt.orchestrator.run(source.events()))
        try:
            await asyncio.wait_for(server.subscribed.wait(), 10)
            now_ms = time.time_ns() // 1_000_000  # fresh frames: stale ones never trade
            await server.play([_at(m, now_ms + k) for k, m in enumerate(three_levels())])
            results: list[Any] = []
            for _ in range(1000):  # a live run has no end to await: its three answers
                results = rt.journal.find(kinds=[JournalKind.ORDER_RESULT])
                if len(results) == 3:
                    break
                await asyncio.sleep(0.01)
            rt.journal.flush()
            sent = rt.journal.find(kinds=[JournalKind.ORDER_SENT])
            url = ops.urls["metrics"] + "metrics"
            async with aiohttp.ClientSession() as http, http.get(url) as resp:
                got = samples(await resp.text())
        finally:
            runner.cancel()
            await asyncio.gather(runner, return_exceptions=True)
            await source.close()
            await ops.close()
            await rt.close()
    assert len(results) == len(sent) == len(server.orders) == 3  # one per level
    for stage in ("detect", "commit", "submit", "venue", "total"):
        key = (("stage", stage),)
        assert got[("liqguard_reaction_seconds_count", key)] == len(sent), stage
        assert got[("liqguard_reaction_seconds_sum", key)] > 0, stage
