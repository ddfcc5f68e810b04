"""The --live gate, the exchanges config section and the factories (no network)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bot.app.gate import LiveRefused, check_live_request, live_gate
from bot.app.live import (
    LiveSetupError,
    create_ccxt_broker,
    create_live_sources,
    start_live,
    unsettled_orders,
    venue_names,
)
from bot.ccxt.throttle import IdleCreditThrottler
from bot.config.errors import ConfigError
from bot.config.loader import load_settings
from bot.config.settings import Settings
from bot.events import OrderIntent
from bot.journal import SqlJournal, default_journal_url, to_payload
from bot.secrets import Secrets
from bot.sim.localexchange import local_secrets, serve
from bot.sim.localexchange.binance import LocalBinance
from bot.sources.streams import VenueStream


def keys(key: str = "test-key", secret: str = "test-secret") -> Secrets:
    return local_secrets(key, secret)


# the default policy hedges on bybit; live trades one account: hedge where it trades
LIVE_POLICY = {
    "levels": {
        1: [{"strategy": "stop_loss"}],
        2: [{"strategy": "hedge", "params": {"hedge_ratio": 0.5, "venue": "binance-usdm"}}],
    },
    "calm": [{"strategy": "unhedge"}],
}


def live_settings(port: int, **exchanges: Any) -> Settings:
    endpoint = {"rest": f"http://127.0.0.1:{port}", "allow_insecure": True}
    return load_settings(
        overrides={
            "mode": "live",
            "policy": LIVE_POLICY,
            "exchanges": {"venues": {"binance": {"endpoints": endpoint}}, **exchanges},
        }
    )


def test_live_needs_flag_config_and_keys() -> None:
    live = load_settings(overrides={"mode": "live", "policy": LIVE_POLICY})
    with pytest.raises(LiveRefused, match="--live flag"):
        check_live_request(live, keys(), live_flag=False)
    with pytest.raises(LiveRefused, match="mode: live"):
        check_live_request(load_settings(), keys(), live_flag=True)
    with pytest.raises(LiveRefused, match="LIQGUARD_BINANCE_API_KEY"):
        check_live_request(live, Secrets(_env_file=None), live_flag=True)  # type: ignore[call-arg]
    check_live_request(live, keys(), live_flag=True)


def test_live_refuses_a_policy_that_trades_elsewhere() -> None:
    default = load_settings(overrides={"mode": "live"})  # hedge: venue bybit
    with pytest.raises(LiveRefused) as refused:
        check_live_request(default, keys(), live_flag=True)
    text = str(refused.value)
    assert "policy.levels.2 hedge: venue 'bybit' is not traded live" in text
    assert "set params.venue: binance-usdm" in text
    puts = {"levels": {2: [{"strategy": "hedge", "params": {"mode": "puts"}}]}, "calm": []}
    no_options = load_settings(overrides={"mode": "live", "policy": puts})
    with pytest.raises(LiveRefused, match=r"set exchanges\.options_venue: deribit"):
        check_live_request(no_options, keys(), live_flag=True)


async def test_gate_refuses_keys_that_can_withdraw() -> None:
    server = LocalBinance()
    server.withdrawals_enabled = True
    async with serve(server.app) as port:
        broker = create_ccxt_broker(live_settings(port), keys())
        try:
            with pytest.raises(LiveRefused, match="WITHDRAW"):
                await live_gate(live_settings(port), broker, echo=print)
        finally:
            await broker.close()
    assert any(r[2] == "/sapi/v1/account/apiRestrictions" for r in server.log.requests)


async def test_gate_prints_what_it_trades_with() -> None:
    server = LocalBinance()
    server.set_position("BTCUSDT", 0.25, 90_000.0)
    printed: list[str] = []
    async with serve(server.app) as port:
        settings = live_settings(port)
        broker = create_ccxt_broker(settings, keys())
        broker.exchange.enableRateLimit = False  # client-side weights are not under test
        try:
            await live_gate(settings, broker, echo=printed.append)
        finally:
            await broker.close()
    banner = "\n".join(printed)
    assert "LIVE TRADING - REAL MONEY" in banner
    margin_usd = server.balance_usdt + 0.25 * (server.marks["BTCUSDT"] - 90_000.0)
    assert f"{margin_usd:,.2f} USD" in banner  # wallet + unrealised PnL
    assert "BTCUSDT long 0.25 @ 90000" in banner
    assert "test-key" not in banner and "test-secret" not in banner


async def test_gate_allows_withdrawal_keys_only_when_told() -> None:
    server = LocalBinance()
    server.withdrawals_enabled = True
    printed: list[str] = []
    async with serve(server.app) as port:
        settings = live_settings(port, allow_withdrawal_keys=True)
        broker = create_ccxt_broker(settings, keys())
        broker.exchange.enableRateLimit = False  # client-side weights are not under test
        try:
            await live_gate(settings, broker, echo=printed.append)
        finally:
            await broker.close()
    checks = [r for r in server.log.requests if r[2] == "/sapi/v1/account/apiRestrictions"]
    assert len(checks) == 1  # the venue was asked, and said yes
    assert printed[0] == (
        "WARNING: binance: these API keys can WITHDRAW funds; allowed by "
        "exchanges.allow_withdrawal_keys: true"
    )
    assert "LIVE TRADING - REAL MONEY" in printed[-1]  # and the gate went through


async def test_gate_refuses_keys_the_venue_rejects() -> None:
    server = LocalBinance()
    async with serve(server.app) as port:
        broker = create_ccxt_broker(live_settings(port), keys(secret="bad"))
        try:
            with pytest.raises(LiveRefused, match="could not read the key's permissions"):
                await live_gate(live_settings(port), broker, echo=print)
        finally:
            await broker.close()


def test_exchanges_config_refuses_unknown_keys_and_plain_urls() -> None:
    with pytest.raises(ConfigError, match="unknown key 'simbols'"):
        load_settings(overrides={"exchanges": {"venues": {"binance": {"simbols": ["X"]}}}})
    with pytest.raises(ConfigError, match="allow_insecure"):
        load_settings(
            overrides={"exchanges": {"venues": {"okx": {"endpoints": {"ws": "ws://proxy/ws"}}}}}
        )
    with pytest.raises(ConfigError, match="options_venue"):
        load_settings(overrides={"exchanges": {"options_venue": "binance"}})


async def test_factories_name_sources_and_keys() -> None:
    settings = load_settings()
    assert venue_names("binance-usdm,okx", settings) == ["binance", "okx"]
    assert venue_names(None, settings) == ["binance", "bybit", "okx"]
    with pytest.raises(LiveSetupError, match="known: binance, bybit, okx"):
        venue_names(["kraken"], settings)
    with pytest.raises(LiveSetupError, match="LIQGUARD_BINANCE_API_KEY"):
        create_ccxt_broker(settings, Secrets(_env_file=None))  # type: ignore[call-arg]
    sources = create_live_sources(settings, None, ["binance", "okx"])
    assert [type(s) for s in sources] == [VenueStream, VenueStream]
    assert [s.name for s in sources] == ["binance", "okx"]
    for source in sources:
        await source.close()  # never started: nothing was dialled


async def test_start_live_reconciles_the_journal(tmp_path: Path) -> None:
    server = LocalBinance()
    server.set_position("BTCUSDT", 0.5)
    journal = SqlJournal(default_journal_url(str(tmp_path / "j.sqlite")))
    sell = OrderIntent("binance-usdm", "BTCUSDT", "sell", "market", 0.1, reduce_only=True)
    for cid in ("lgj-0", "lgj-1", "lgj-2", "lgj-3"):  # as the executor journals a send
        journal.append("order_sent", 1, to_payload(sell, client_id=cid), key=f"order:{cid}")
    journal.append("order_result", 2, {"client_id": "lgj-2"}, key="result:lgj-2")
    unknown = {"client_id": "lgj-3", "status": "failed", "error": "outcome unknown: timeout"}
    journal.append("order_result", 2, unknown, key="result:lgj-3")  # looked up again
    printed: list[str] = []
    async with serve(server.app) as port:
        settings = live_settings(port)
        broker = create_ccxt_broker(settings, keys())
        broker.exchange.enableRateLimit = False  # client-side weights are not under test
        try:
            await broker.submit(sell, "lgj-0")  # it landed; the crash lost the result
            rec = await start_live(settings, broker, journal, echo=printed.append)
        finally:
            await broker.close()
            journal.close()
    assert unsettled_orders(SqlJournal(default_journal_url(str(tmp_path / "j.sqlite")))) == [
        ("lgj-0", sell),
        ("lgj-1", sell),
        ("lgj-3", sell),
    ]
    assert set(rec.found) == {"lgj-0"} and rec.missing == ["lgj-1", "lgj-3"]
    assert "3 order(s) without outcome" in printed[-1] and "1 found" in printed[-1]
    assert len(server.orders) == 1  # reconciling never sends


def test_an_order_result_flagged_outcome_unknown_is_looked_up_again(tmp_path: Path) -> None:
    journal = SqlJournal(default_journal_url(str(tmp_path / "j.sqlite")))
    sell = OrderIntent("binance-usdm", "BTCUSDT", "sell", "market", 0.1, reduce_only=True)
    for cid in ("lgf-0", "lgf-1"):
        journal.append("order_sent", 1, to_payload(sell, client_id=cid), key=f"order:{cid}")
    # the status, not the text, says it: a message worded otherwise is still looked up
    flagged = {"client_id": "lgf-0", "status": "failed", "error": "busy", "outcome_unknown": True}
    journal.append("order_result", 2, flagged, key="result:lgf-0")
    failed = {"client_id": "lgf-1", "status": "failed", "error": "busy"}
    journal.append("order_result", 2, failed, key="result:lgf-1")
    assert unsettled_orders(journal) == [("lgf-0", sell)]
    journal.close()


async def test_rate_limiter_credits_idle_time() -> None:
    limiter = IdleCreditThrottler({"refillRate": 1 / 50, "capacity": 1.0, "tokens": 0})
    await limiter(4)  # tokens available: through at once, now in debt
    assert limiter.config["tokens"] == pytest.approx(-4, abs=0.1)
    in_debt = limiter(1)
    assert not in_debt.done()  # queued behind the debt, as in ccxt
    await in_debt
    limiter._last_ms = (limiter._last_ms or 0) - 1_000  # as if a second went by idle
    assert limiter(1).done()  # credited: let through at once (ccxt's would queue for 200 ms)


class _CountedRefills(IdleCreditThrottler):
    def __init__(self, config: dict[str, float]) -> None:
        super().__init__(config)
        self.refills = 0

    def _refill(self) -> None:
        self.refills += 1
        super()._refill()


async def test_a_request_waiting_for_the_rate_limiter_sleeps_through_its_wait() -> None:
    # 4 tokens of debt at 1 token per 50 ms: a 200 ms wait that ccxt's loop spends awake
    # every millisecond, on the event loop that reacts to liquidations
    limiter = _CountedRefills({"refillRate": 1 / 50, "capacity": 1.0, "tokens": 0})
    await limiter(4)
    before = limiter.refills
    await limiter(1)
    assert limiter.config["tokens"] >= -1.0  # let through once its debt was paid back
    assert limiter.refills - before <= 3
