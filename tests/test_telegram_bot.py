"""Telegram alerts, charts, commands, 429 storms and token hygiene: real PTB, local Bot API."""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from loguru import logger

from bot.clock import WallClock
from bot.events import (
    Anomaly,
    Calm,
    FeedStatus,
    Fill,
    OrderResult,
    Portfolio,
    Position,
    SymbolUsd,
    TradingState,
    TradingStateChanged,
)
from bot.journal import SqlJournal
from bot.logs import setup_logging
from bot.notify.charts import PNG_SIGNATURE, ChartInput
from bot.telegram.commands import HistoryItem, RuleView, StatusView
from bot.telegram.factory import TelegramParts, create_telegram
from tests.telegram_server import (
    ALICE,
    CHAT,
    MALLORY,
    TOKEN,
    FakeTelegram,
    telegram_secrets,
    telegram_settings,
)

T0 = 1_733_380_000_000
# PTB's own RetryAfter.__init__ reads its deprecated int attribute; not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")


def anomaly(level: int, ts_ms: int = T0) -> Anomaly:
    return Anomaly(
        rule="all",
        ts_ms=ts_ms,
        level=level,
        window_cents=150_000_000 * level,
        threshold_cents=100_000_000 * 2 ** (level - 1),
        base_threshold_cents=100_000_000,
        long_cents=120_000_000 * level,
        short_cents=30_000_000 * level,
        events=10 * level,
        top_symbols=(SymbolUsd("BTCUSDT", 100_000_000),),
        top_venues=(SymbolUsd("binance", 150_000_000),),
        previous_level=level - 1,
    )


class FakeControl:
    """The runtime side of the chat, in memory (an interface fake at the edge)."""

    def __init__(self) -> None:
        self.state = TradingState.ACTIVE
        self.changes: list[TradingStateChanged] = []
        self.portfolio_value = Portfolio(
            ts_ms=T0,
            balance_usd=100_000.0,
            positions=(
                Position("binance", "BTCUSDT", "long", 1.5, 97_000.0, 96_000.0, 80_000.0, 5.0),
            ),
        )

    async def status(self) -> StatusView:
        rule = RuleView("all", 2, 2_500_000.0, 2_000_000.0, T0)
        return StatusView(
            "paper", self.state, (rule,), {"binance": "live", "bybit": "blind"},
            self.portfolio_value, 1_234.0,
        )  # fmt: skip

    async def portfolio(self) -> Portfolio:
        return self.portfolio_value

    async def set_state(self, state: TradingState, reason: str, by: str) -> TradingStateChanged:
        change = TradingStateChanged(T0, self.state, state, reason, by)
        self.state = state
        self.changes.append(change)
        return change

    async def history(self, limit: int) -> list[HistoryItem]:
        return [HistoryItem(T0, "decision", "act-1 approved by @user11")][:limit]

    async def chart_input(self) -> ChartInput:
        points = [(T0 - 3_600_000 + i * 60_000, 40_000.0 * i) for i in range(61)]
        return ChartInput(
            now_ms=T0, window_s=3600, base_threshold_usd=1e6, points=points,
            anomalies=[anomaly(2)], prices=[(T0 - 1_800_000, 96_500.0), (T0, 95_800.0)],
        )  # fmt: skip


@pytest.fixture
async def server() -> AsyncIterator[FakeTelegram]:
    s = FakeTelegram(TOKEN)
    await s.start()
    yield s
    await s.stop()


@pytest.fixture
def control() -> FakeControl:
    return FakeControl()


@pytest.fixture
async def tg(
    server: FakeTelegram, tmp_path: Path, control: FakeControl
) -> AsyncIterator[TelegramParts]:
    journal = SqlJournal(f"sqlite:///{tmp_path / 'journal.db'}")
    parts = create_telegram(
        telegram_settings(server, coalesce_s=0.3),
        telegram_secrets(),
        journal,
        clock=WallClock(),
        control=control,
    )
    assert await parts.start()
    yield parts
    await parts.close()


async def test_alerts_cover_anomaly_calm_feed_and_results_with_chart(
    server: FakeTelegram, tg: TelegramParts
) -> None:
    await tg.notifier.notify(anomaly(1))
    await tg.notifier.flush()
    await tg.notifier.notify(Calm("all", T0 + 10, previous_level=1))
    await tg.notifier.notify(FeedStatus(T0, "bybit", "blind", silent_s=120))
    fill = Fill("act-1-0", "paper", "BTCUSDT", "sell", 0.75, 96_000.0, 2.9, T0)
    await tg.notifier.notify(OrderResult("act-1-0", "filled", T0, "p1", (fill,)))
    await tg.notifier.notify(OrderResult("act-1-1", "rejected", T0, error="reduce-only refused"))
    await tg.notifier.flush()
    texts = [c.params["text"] for c in server.sent("sendMessage")]
    first = texts[0]
    for needle in ("anomaly L1", "$1.50M", "threshold $1.00M", "Longs liquidated $1.20M",
                   "BTCUSDT", "at most one liquidation per symbol per second"):  # fmt: skip
        assert needle in first
    rest = "\n".join(texts[1:])
    for needle in ("Calm", "bybit is blind", "act-1-0 filled", "act-1-1 rejected", "reduce-only"):
        assert needle in rest
    assert len(texts) == 2  # the four later alerts were coalesced into one message
    photo = (await server.wait_for(lambda c: c.method == "sendPhoto"))[0]
    png = photo.files["photo"]
    assert png.startswith(PNG_SIGNATURE) and len(png) > 10_000
    assert int(photo.params["chat_id"]) == CHAT
    menu = server.sent("setMyCommands")[0].params["commands"]
    assert {c["command"] for c in menu} >= {"status", "pause", "halt", "resume", "approve"}


async def test_429_storm_is_waited_out_and_nothing_dropped(
    server: FakeTelegram, tg: TelegramParts
) -> None:
    server.fail("sendMessage", 429, "Too Many Requests: retry after 0.1", times=6, retry_after=0.1)
    for level in range(1, 31):
        await tg.notifier.notify(Calm(f"rule{level}", T0 + level, previous_level=level))
        if level % 10 == 0:
            await asyncio.sleep(0.05)
    await tg.notifier.flush()
    refused = [c for c in server.calls if c.method == "sendMessage" and c.status == 429]
    assert len(refused) == 6
    delivered = "\n".join(c.params["text"] for c in server.sent("sendMessage"))
    for level in range(1, 31):
        assert f"(rule rule{level})" in delivered
    assert len(server.sent("sendMessage")) < 30  # coalesced, not one message per alert


async def test_commands_for_allow_listed_users(
    server: FakeTelegram, tg: TelegramParts, control: FakeControl
) -> None:
    async def reply_to(user: int, text: str) -> str:
        before = len(server.sent("sendMessage"))
        await server.command(user, CHAT, text)
        calls = await server.wait_for(lambda c: c.method == "sendMessage", count=before + 1)
        return str(calls[before].params["text"])

    status = await reply_to(ALICE, "/status")
    for needle in ("Mode paper", "ACTIVE", "level 2", "$2.50M", "bybit blind", "realized $1,234"):
        assert needle in status
    assert "BTCUSDT long 1.5" in await reply_to(ALICE, "/positions")
    assert "/resume" in await reply_to(ALICE, "/help")
    assert "approved by @user11" in await reply_to(ALICE, "/history")
    assert "ACTIVE → REDUCING" in await reply_to(ALICE, "/pause")
    assert "REDUCING → HALTED" in await reply_to(ALICE, "/halt@liqguard_test_bot")
    assert "allow-list" in await reply_to(MALLORY, "/resume")
    assert control.state is TradingState.HALTED

    confirm = await reply_to(ALICE, "/resume")
    assert "confirm within" in confirm
    markup = (await server.wait_for(lambda c: c.method == "editMessageReplyMarkup"))[0]
    data = markup.params["reply_markup"]["inline_keyboard"][0][0]["callback_data"]
    qid = await server.press(MALLORY, CHAT, int(markup.params["message_id"]), data)
    assert "allow-list" in (await server.answer_for(qid)).params["text"]
    assert control.state is TradingState.HALTED
    qid = await server.press(ALICE, CHAT, int(markup.params["message_id"]), data)
    assert "HALTED → ACTIVE" in (await server.answer_for(qid)).params["text"]
    assert control.state is TradingState.ACTIVE
    assert [c.by for c in control.changes] == ["telegram:@user11"] * 3

    before = len(server.sent("sendPhoto"))
    await server.command(ALICE, CHAT, "/chart")
    photo = (await server.wait_for(lambda c: c.method == "sendPhoto", count=before + 1))[-1]
    assert photo.files["photo"].startswith(PNG_SIGNATURE)

    for _ in range(100):  # /chart is journaled once its photo went out
        journaled = tg.approver.journal.recent(50, kinds=["telegram.command"])
        if len(journaled) == 10:
            break
        await asyncio.sleep(0.02)
    names = [(e["payload"]["command"], e["payload"]["outcome"]) for e in journaled]
    assert ("resume", "refused") in names and ("resume", "confirmed") in names
    assert len(names) == 10  # 9 commands + the confirmed resume


async def test_bot_token_never_reaches_the_logs(server: FakeTelegram, tmp_path: Path) -> None:
    sink = io.StringIO()
    setup_logging("TRACE", json_file=str(tmp_path / "log.jsonl"), stream=sink)
    try:
        journal = SqlJournal(f"sqlite:///{tmp_path / 'journal.db'}")
        parts = create_telegram(telegram_settings(server), telegram_secrets(), journal)
        # as loud as a careless setup could be: httpx logs every URL (with the token in it)
        logging.getLogger("httpx").setLevel(logging.DEBUG)
        assert await parts.start()
        await parts.notifier.notify(anomaly(1))
        await parts.notifier.flush()
        logger.info("url is {}", f"https://api.telegram.org/bot{TOKEN}/sendMessage")
        await parts.close()
        dead = create_telegram(
            telegram_settings(server, base_url="http://127.0.0.1:9/bot"),
            telegram_secrets(),
            journal,
        )
        assert not await dead.start()  # the failure path logs too
        await dead.close()
    finally:
        logger.remove()
        setup_logging("INFO")
    text = sink.getvalue() + (tmp_path / "log.jsonl").read_text()
    assert "telegram bot @liqguard_test_bot polling" in text  # logging did happen
    assert "/getMe" in text and "***" in text
    assert TOKEN not in text and TOKEN.split(":")[1] not in text


def test_config_refuses_unknown_keys_and_bad_ids(server: Any = None) -> None:
    from bot.config.errors import ConfigError
    from bot.config.loader import load_settings

    with pytest.raises(ConfigError, match="chatid"):
        load_settings(overrides={"telegram": {"chatid": 1, "allowed_user_ids": [1]}})
    with pytest.raises(ConfigError, match="allowed_user_ids"):
        load_settings(overrides={"telegram": {"chat_id": 1, "allowed_user_ids": [-5]}})
    with pytest.raises(ConfigError, match="approvers_needed"):
        load_settings(
            overrides={
                "telegram": {
                    "chat_id": 1,
                    "allowed_user_ids": [1],
                    "two_person_above_usd": 1000,
                    "approvers_needed": 2,
                }
            }
        )


async def test_message_not_modified_counts_as_done(server: FakeTelegram, tg: TelegramParts) -> None:
    msg = await tg.app.send_text("Approval needed: same text")
    await tg.app.edit(msg.message_id, "Approval needed: same text", None)  # must not raise
    answered = [c for c in server.calls if c.method == "editMessageText"]
    assert [c.status for c in answered] == [400]
    await tg.app.edit(msg.message_id, "Approval needed: decided", None)
    assert server.messages[(CHAT, msg.message_id)]["text"] == "Approval needed: decided"
