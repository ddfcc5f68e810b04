"""The venues beyond Binance/Bybit/OKX, part 3: dYdX DELEVERAGED trades in the run summary and
the metrics; rejected rows carried on the feed status to the status view and the metrics;
a Hyperliquid refusal of the fund's accounts subscription (over ccxt) stops the feed blind."""

from __future__ import annotations

import asyncio
import io
import time
from pathlib import Path

from rich.console import Console

from bot.app.telegram_control import feed_text
from bot.cli.view import summary_view
from bot.config.rules import RuleConfig
from bot.engine.summary import summarize
from bot.events import FeedStatus
from bot.ops.journal_tail import JournalTail
from bot.ops.metrics import Metrics
from bot.sim.localexchange import serve
from bot.sim.localexchange.fakes import (
    LocalDydxIndexer,
    LocalGateFutures,
    dydx_trade,
    dydx_trades_message,
    gate_liquidates_message,
)
from bot.sim.localexchange.hyperliquid import LocalHyperliquid
from bot.sources.feeds import FeedBook
from bot.sources.refusals import refusal
from tests.live_tools import WAIT_S, now_ms, until
from tests.test_live_venues2 import (
    FUND,
    FUND2,
    hyperliquid_endpoints,
    local,
    running,
    venue_settings,
)


def scrape(run_orch: object, journal: object) -> str:
    metrics = Metrics(run_orch, JournalTail(journal, from_start=True))  # type: ignore[arg-type]
    return metrics.scrape().decode()


def utc(ms: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(ms / 1000))


# -- dYdX: DELEVERAGED trades in the summary and the metrics, apart from liquidations ----------
async def test_dydx_deleveraged_trades_reach_the_run_summary_and_the_metrics_apart(
    tmp_path: Path,
) -> None:
    server = LocalDydxIndexer()
    async with serve(server.app) as port:
        settings = venue_settings({"dydx": local(f"ws://127.0.0.1:{port}/v4/ws")})
        async with running(tmp_path, settings, ["dydx"]) as run:
            await asyncio.wait_for(server.subscribed.wait(), WAIT_S)
            now = now_ms()
            trades = [
                dydx_trade("d1", "BUY", "0.2", "95010", utc(now), "DELEVERAGED"),  # $19,002
                dydx_trade("d0", "SELL", "1", "90000", utc(now - 86_400_000), "DELEVERAGED"),
                dydx_trade("l1", "SELL", "0.01", "95000", utc(now), "LIQUIDATED"),  # $950
            ]
            await server.play([dydx_trades_message("BTC-USD", trades)])
            await until(lambda: len(run.rows("liquidation_deleveraged")) == 2)
            await until(lambda: run.orch.counters.liquidations == 1)
            summary = summarize(run.rt.journal, run.rt.session)
            text = scrape(run.orch, run.rt.journal)
    assert dict(summary.deleveraged) == {"dydx": 1}  # the day-old one is journaled, not counted
    assert summary.deleveraged_usd == {"dydx": 19_002.0}
    console = Console(width=200, record=True, file=io.StringIO())
    console.print(summary_view(summary, None, None, None, "journal.sqlite", "s"))
    assert "deleveraged (not liquidations)  dydx 1 ($19.0k)" in console.export_text()
    assert 'liqguard_deleveraged_total{venue="dydx"} 1.0' in text
    assert 'liqguard_deleveraged_usd_total{venue="dydx"} 19002.0' in text
    assert text.count("liqguard_deleveraged_total{") == 1


# -- rejected rows: on the feed status, in the status view and the metrics ----------------------
async def test_gate_rejected_rows_reach_the_status_view_and_the_metrics_per_feed(
    tmp_path: Path,
) -> None:
    server = LocalGateFutures()  # lists BTC_USDT and ETH_USDT: NOPE_USDT has no known size
    async with serve(server.app) as port:
        gate = local(f"ws://127.0.0.1:{port}/v4/ws/usdt")
        gate["endpoints"]["rest"] = f"http://127.0.0.1:{port}"
        settings = venue_settings({"gate": gate})
        async with running(tmp_path, settings, ["gate"]) as run:
            await asyncio.wait_for(server.subscribed.wait(), WAIT_S)
            now = now_ms()
            await server.play([gate_liquidates_message([("BTC_USDT", 10, "95000", now)])])
            await until(lambda: run.feed("gate").get("state") == "live")
            await server.play([gate_liquidates_message([("NOPE_USDT", -5, "1.5", now + 1)])])
            await until(lambda: run.feed("gate").get("rejected") == 1)  # while it stays live
            await run.orch.notifier.flush()
            feed = run.feed("gate")
            rows = [r for r in run.rows("feed") if r["venue"] == "gate"]
            told = [s for s in run.told.feeds() if s.venue == "gate"]
            text = scrape(run.orch, run.rt.journal)
    assert "NOPE_USDT: contract size unknown" in feed["last_rejected"]
    assert "1 rows rejected (last: " in feed_text(feed)  # the status view and Telegram /status
    assert rows[-1]["rejected"] == 1  # journaled on the feed status
    assert [s.state for s in told] == ["live"]  # a new count is no state change: nobody told
    assert 'liqguard_rejected_rows_total{source="gate"} 1.0' in text


def test_a_rejected_count_refresh_neither_alerts_nor_restarts_the_hold_and_is_never_lost() -> None:
    book = FeedBook([RuleConfig(name="all")], flap_hold_s=30)
    book.on_status(FeedStatus(0, "gate", "live"))
    assert book.on_status(FeedStatus(1_000, "gate", "blind", rejected=2, last_rejected="x")) != []
    assert book.on_status(FeedStatus(2_000, "gate", "live", rejected=2)) == []  # held first
    assert book.on_status(FeedStatus(20_000, "gate", "live", rejected=3, last_rejected="y")) == []
    assert [s.ts_ms for s in book.due(32_000)] == [32_000]  # 30 s from 2,000, not from 20,000
    book.on_status(FeedStatus(40_000, "gate", "blind", detail="source stopped"))  # no count
    assert (book.view(40_000)["gate"]["rejected"], book.view(40_000)["gate"]["last_rejected"]) == (
        3,
        "y",
    )


# -- Hyperliquid: a refused accounts subscription is blind, not reconnecting --------------------
async def test_hyperliquid_refused_accounts_subscription_is_blind_with_its_reason(
    tmp_path: Path,
) -> None:
    server = LocalHyperliquid(max_users=1)  # the venue's limit is 10 users; 1 here
    async with serve(server.app) as port:
        endpoints = hyperliquid_endpoints(port)
        settings = venue_settings(
            {"hyperliquid": {"accounts": [FUND, FUND2], "endpoints": endpoints}}
        )
        async with running(tmp_path, settings, ["hyperliquid"]) as run:
            feed, rows, told = await run.until_blind("hyperliquid-accounts")
            refusals = server.refusals
    reason = "Hyperliquid refused the subscription: Cannot track more than 1 total users."
    assert reason in feed["detail"] and reason in rows[-1]["detail"]
    assert "reconnecting" not in [r["state"] for r in rows]  # a refusal is not retried
    assert len(told) == 1 and reason in told[0].detail  # one alert, the venue's words
    assert refusals == 1  # refused once: not re-sent in a loop


def test_hyperliquid_refusals_are_its_error_channel_but_not_a_duplicate_or_a_rate_limit() -> None:
    def error(text: str) -> dict[str, str]:
        return {"channel": "error", "data": text}

    said = refusal("hyperliquid", error("Cannot track more than 10 total users."))
    assert said == "Hyperliquid refused the subscription: Cannot track more than 10 total users."
    assert refusal("hyperliquid", error('Already subscribed: {"type":"userFills"}')) is None
    assert refusal("hyperliquid", error("Cannot send more than 2000 messages per minute.")) is None
    assert refusal("hyperliquid", {"channel": "subscriptionResponse", "data": {}}) is None
