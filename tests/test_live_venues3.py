"""The venues beyond Binance/Bybit/OKX, part 3: dYdX DELEVERAGED trades in the run summary and
the metrics; a Hyperliquid refusal of the fund's accounts subscription (over ccxt) stops the
feed blind."""

from __future__ import annotations

import asyncio
import io
import time
from pathlib import Path

from rich.console import Console

from bot.cli.view import summary_view
from bot.engine.summary import summarize
from bot.ops.journal_tail import JournalTail
from bot.ops.metrics import Metrics
from bot.sim.localexchange import serve
from bot.sim.localexchange.fakes import (
    LocalDydxIndexer,
    dydx_trade,
    dydx_trades_message,
)
from bot.sim.localexchange.hyperliquid import LocalHyperliquid
from bot.sources.refusals import refusal
from tests.test_live_venues2 import (
    FUND,
    FUND2,
    WAIT_S,
    local,
    now_ms,
    running,
    until,
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


# -- Hyperliquid: a refused accounts subscription is blind, not reconnecting --------------------
async def test_hyperliquid_refused_accounts_subscription_is_blind_with_its_reason(
    tmp_path: Path,
) -> None:
    server = LocalHyperliquid(max_users=1)  # the venue's limit is 10 users; 1 here
    async with serve(server.app) as port:
        endpoints = {
            "rest": f"http://127.0.0.1:{port}",
            "ws": f"ws://127.0.0.1:{port}/ws",
            "allow_insecure": True,
        }
        settings = venue_settings(
            {"hyperliquid": {"accounts": [FUND, FUND2], "endpoints": endpoints}}
        )
        async with running(tmp_path, settings, ["hyperliquid"]) as run:
            await until(lambda: run.feed("hyperliquid-accounts").get("state") == "blind")
            await run.orch.notifier.flush()
            feed = run.feed("hyperliquid-accounts")
            rows = [r for r in run.rows("feed") if r["venue"] == "hyperliquid-accounts"]
            told = [s for s in run.told.feeds() if s.state != "live"]
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
