"""Telegram approvals with real python-telegram-bot against the local Bot API server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bot.clock import WallClock
from bot.events import Action, ApprovalMode, ApprovalRequest, OrderIntent, TimeoutDefault
from bot.journal import SqlJournal
from bot.telegram.factory import TelegramParts, create_telegram
from tests.telegram_server import (
    ALICE,
    BOB,
    CHAT,
    MALLORY,
    FakeTelegram,
    telegram_secrets,
    telegram_settings,
)

CLOCK = WallClock()


@pytest.fixture
async def server() -> AsyncIterator[FakeTelegram]:
    from tests.telegram_server import TOKEN

    s = FakeTelegram(TOKEN)
    await s.start()
    yield s
    await s.stop()


def journal_at(path: Path) -> SqlJournal:
    return SqlJournal(f"sqlite:///{path / 'journal.db'}")


async def started(server: FakeTelegram, journal: SqlJournal, **cfg: Any) -> TelegramParts:
    parts = create_telegram(
        telegram_settings(server, **cfg),
        telegram_secrets(),
        journal,
        prices=lambda: {"BTCUSDT": 96_000.0},
    )
    assert await parts.start()
    return parts


@pytest.fixture
async def tg(server: FakeTelegram, tmp_path: Path) -> AsyncIterator[TelegramParts]:
    parts = await started(server, journal_at(tmp_path))
    yield parts
    await parts.close()


def request(
    rid: str = "req-1",
    timeout_s: float = 20.0,
    on_timeout: TimeoutDefault = TimeoutDefault.CANCEL,
    reduces: bool = True,
    amount: float = 0.5,
) -> ApprovalRequest:
    now = CLOCK.now_ms()
    intent = OrderIntent("binance", "BTCUSDT", "sell", "market", amount, reduce_only=reduces)
    action = Action(
        action_id=f"act-{rid}",
        rule="all",
        level=1,
        strategy="reduce_exposure",
        params={},
        intents=(intent,),
        approval=ApprovalMode.CONFIRM,
        created_ts_ms=now,
        trigger_ts_ms=now,
        timeout_s=timeout_s,
        on_timeout=on_timeout,
        reduces_exposure=reduces,
        summary="cut BTC long by half",
    )
    return ApprovalRequest(rid, action, now, now + round(timeout_s * 1000), on_timeout)


async def asked(server: FakeTelegram, count: int = 1) -> tuple[int, dict[str, str]]:
    """Wait for the `count`-th set of buttons; return its message id and {label: data}."""
    calls = await server.wait_for(
        lambda c: c.method.startswith("editMessage") and bool(c.params.get("reply_markup")),
        count,
    )
    rows = calls[count - 1].params["reply_markup"]["inline_keyboard"]
    data = {b["text"].split()[1]: b["callback_data"] for row in rows for b in row}
    return int(calls[count - 1].params["message_id"]), data


async def final_text(server: FakeTelegram, mid: int, needle: str) -> dict[str, Any]:
    """The question once edited to show the outcome (the edit follows the decision)."""
    await server.wait_for(
        lambda c: (
            c.method == "editMessageText"
            and c.params["message_id"] == mid
            and needle in c.params["text"]
        )
    )
    return server.messages[(CHAT, mid)]


async def test_approve_by_button_edits_message_and_journals(
    server: FakeTelegram, tg: TelegramParts
) -> None:
    task = asyncio.create_task(tg.approver.decide(request(), CLOCK))
    mid, data = await asked(server)
    question = server.messages[(CHAT, mid)]["text"]
    for needle in ("SELL 0.5 BTCUSDT", "reduce-only", "$48.0k", "Timeout 20 s", "CANCELED"):
        assert needle in question
    assert all(len(d.encode()) <= 64 for d in data.values())
    qid = await server.press(ALICE, CHAT, mid, data["Approve"])
    decision = await asyncio.wait_for(task, 10)
    assert decision.approved and decision.by == "telegram:@user11"
    assert (await server.answer_for(qid)).params["text"] == "Approved."
    final = await final_text(server, mid, "APPROVED by @user11")
    assert "reply_markup" not in final  # buttons removed
    kinds = [e["kind"] for e in tg.approver.journal.recent(20)]
    assert "telegram.decision" in kinds and "telegram.press" in kinds


async def test_reject_by_button(server: FakeTelegram, tg: TelegramParts) -> None:
    task = asyncio.create_task(tg.approver.decide(request(), CLOCK))
    mid, data = await asked(server)
    await server.press(BOB, CHAT, mid, data["Reject"])
    decision = await asyncio.wait_for(task, 10)
    assert not decision.approved and decision.by == "telegram:@user22"
    assert "reply_markup" not in await final_text(server, mid, "REJECTED by @user22")


@pytest.mark.parametrize(
    ("on_timeout", "reduces", "approved"),
    [
        (TimeoutDefault.EXECUTE, False, True),
        (TimeoutDefault.CANCEL, True, False),
        (TimeoutDefault.EXECUTE_IF_REDUCING, True, True),
        (TimeoutDefault.EXECUTE_IF_REDUCING, False, False),
    ],
)
async def test_timeout_applies_each_default(
    server: FakeTelegram,
    tg: TelegramParts,
    on_timeout: TimeoutDefault,
    reduces: bool,
    approved: bool,
) -> None:
    req = request(timeout_s=0.4, on_timeout=on_timeout, reduces=reduces)
    decision = await asyncio.wait_for(tg.approver.decide(req, CLOCK), 10)
    assert decision.by == "timeout" and decision.approved is approved
    mid, _ = await asked(server)
    final = await final_text(server, mid, "No answer in time")
    assert "reply_markup" not in final


async def test_outsider_is_refused_and_journaled(server: FakeTelegram, tg: TelegramParts) -> None:
    task = asyncio.create_task(tg.approver.decide(request(), CLOCK))
    mid, data = await asked(server)
    qid = await server.press(MALLORY, CHAT, mid, data["Approve"])
    answer = await server.answer_for(qid)
    assert "allow-list" in answer.params["text"] and answer.params["show_alert"] in (True, "true")
    qid = await server.press(ALICE, CHAT + 1, mid, data["Approve"])  # right user, wrong chat
    assert "not liqguard's chat" in (await server.answer_for(qid)).params["text"]
    assert not task.done()
    refused = tg.approver.journal.recent(20, kinds=["telegram.refused"])
    assert {e["payload"]["user_id"] for e in refused} == {MALLORY, ALICE}
    await server.press(ALICE, CHAT, mid, data["Approve"])  # the nonce was not spent
    assert (await asyncio.wait_for(task, 10)).approved


async def test_forged_and_replayed_button_data_is_refused(
    server: FakeTelegram, tg: TelegramParts
) -> None:
    task = asyncio.create_task(tg.approver.decide(request(), CLOCK))
    mid, data = await asked(server)
    choice, nonce, tag = data["Approve"].split(".")
    forged_tag = f"{choice}.{nonce}.{'A' * len(tag)}"
    flipped = f"n.{nonce}.{tag}"  # the approve nonce presented as a reject
    for bad in (forged_tag, flipped, "y.unknownnonce.tag", "garbage"):
        qid = await server.press(ALICE, CHAT, mid, bad)
        text = (await server.answer_for(qid)).params["text"]
        assert "orged" in text or "not one of mine" in text
    assert not task.done()
    await server.press(ALICE, CHAT, mid, data["Reject"])
    assert not (await asyncio.wait_for(task, 10)).approved
    qid = await server.press(ALICE, CHAT, mid, data["Approve"])  # replay after the decision
    assert "already used" in (await server.answer_for(qid)).params["text"]
    qid = await server.press(BOB, CHAT, mid, data["Reject"])  # the same button again
    assert "already used" in (await server.answer_for(qid)).params["text"]
    assert len(tg.approver.journal.recent(50, kinds=["telegram.decision"])) == 1


async def test_press_after_expiry_is_refused(server: FakeTelegram, tg: TelegramParts) -> None:
    decision = await asyncio.wait_for(tg.approver.decide(request(timeout_s=0.3), CLOCK), 10)
    assert decision.by == "timeout"
    mid, data = await asked(server)
    qid = await server.press(ALICE, CHAT, mid, data["Approve"])
    text = (await server.answer_for(qid)).params["text"]
    assert "already used" in text or "expired" in text
    # a nonce whose expiry passed (not revoked) reads "expired"
    store = tg.approver.nonces
    late = store.issue(
        purpose="approval",
        subject="x",
        choice="y",
        chat_id=CHAT,
        message_id=mid,
        expires_ms=CLOCK.now_ms() - 1,
        now_ms=CLOCK.now_ms(),
    )
    qid = await server.press(ALICE, CHAT, mid, late)
    assert "expired" in (await server.answer_for(qid)).params["text"]


async def test_two_person_approval_and_veto(server: FakeTelegram, tmp_path: Path) -> None:
    parts = await started(server, journal_at(tmp_path), two_person_above_usd=10_000)
    try:
        task = asyncio.create_task(parts.approver.decide(request("big"), CLOCK))
        mid, data = await asked(server)
        assert "Needs 2 different approvers" in server.messages[(CHAT, mid)]["text"]
        await server.press(ALICE, CHAT, mid, data["Approve"])
        mid2, data2 = await asked(server, count=2)  # fresh buttons after the first approval
        assert mid2 == mid and data2["Approve"] != data["Approve"]
        qid = await server.press(ALICE, CHAT, mid, data2["Approve"])  # same person twice
        assert "already approved" in (await server.answer_for(qid)).params["text"]
        assert not task.done()
        _, data3 = await asked(server, count=3)
        await server.press(BOB, CHAT, mid, data3["Approve"])
        decision = await asyncio.wait_for(task, 10)
        assert decision.approved and decision.by == "telegram:@user11+@user22"

        veto = asyncio.create_task(parts.approver.decide(request("big2"), CLOCK))
        _, vdata = await asked(server, count=4)
        vmid = int(server.sent("editMessageReplyMarkup")[-1].params["message_id"])
        await server.press(ALICE, CHAT, vmid, vdata["Approve"])
        _, vdata2 = await asked(server, count=5)
        await server.press(BOB, CHAT, vmid, vdata2["Reject"])
        assert not (await asyncio.wait_for(veto, 10)).approved
    finally:
        await parts.close()


async def test_pending_approval_survives_restart(server: FakeTelegram, tmp_path: Path) -> None:
    first = await started(server, journal_at(tmp_path))
    req = request("persist", timeout_s=30)
    task = asyncio.create_task(first.approver.decide(req, CLOCK))
    mid, data = await asked(server)
    task.cancel()  # the process dies while waiting
    with pytest.raises(asyncio.CancelledError):
        await task
    await first.close()

    second = await started(server, journal_at(tmp_path))  # same journal, new process
    try:
        assert [r["request_id"] for r in second.approver.pending()] == ["persist"]
        again = asyncio.create_task(second.approver.decide(req, CLOCK))
        await asyncio.sleep(0)
        qid = await server.press(ALICE, CHAT, mid, data["Approve"])  # the old button works
        decision = await asyncio.wait_for(again, 10)
        assert decision.approved and (await server.answer_for(qid)).params["text"] == "Approved."
        assert len(server.sent("sendMessage")) == 1  # re-attached, not asked twice
    finally:
        await second.close()


async def test_restart_after_deadline_expires_at_once(server: FakeTelegram, tmp_path: Path) -> None:
    first = await started(server, journal_at(tmp_path))
    req = request("late", timeout_s=0.5, on_timeout=TimeoutDefault.EXECUTE)
    task = asyncio.create_task(first.approver.decide(req, CLOCK))
    await asked(server)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await first.close()
    await asyncio.sleep(0.6)
    second = await started(server, journal_at(tmp_path))
    try:
        decision = await asyncio.wait_for(second.approver.decide(req, CLOCK), 5)
        assert decision.by == "timeout" and decision.approved
        assert second.approver.pending() == []
    finally:
        await second.close()


async def test_telegram_down_falls_back_at_once_and_reports(tmp_path: Path) -> None:
    from tests.telegram_server import TOKEN

    dead = FakeTelegram(TOKEN)
    await dead.start()
    await dead.stop()  # the port is now closed: connection refused
    reports: list[Any] = []

    async def report(event: object) -> None:
        reports.append(event)

    parts = create_telegram(
        telegram_settings(dead), telegram_secrets(), journal_at(tmp_path), report=report
    )
    try:
        assert not await parts.start()
        for default, approved in ((TimeoutDefault.EXECUTE, True), (TimeoutDefault.CANCEL, False)):
            req = request(f"down-{default}", timeout_s=600, on_timeout=default)
            decision = await asyncio.wait_for(parts.approver.decide(req, CLOCK), 5)
            assert decision.by == "timeout" and decision.approved is approved
            assert "telegram unreachable" in decision.reason
        assert len(reports) == 2 and "Telegram unreachable" in reports[0].title
        journaled = parts.approver.journal.recent(10, kinds=["telegram.unreachable"])
        assert len(journaled) == 2
    finally:
        await parts.close()


async def test_approve_and_reject_commands_by_id(server: FakeTelegram, tg: TelegramParts) -> None:
    task = asyncio.create_task(tg.approver.decide(request("cmd"), CLOCK))
    await asked(server)
    await server.command(MALLORY, CHAT, "/approve cmd")
    await server.wait_for(lambda c: c.method == "sendMessage" and "allow-list" in c.params["text"])
    assert not task.done()
    await server.command(BOB, CHAT, "/approve cmd")
    decision = await asyncio.wait_for(task, 10)
    assert decision.approved and decision.by == "telegram:@user22"
    await server.wait_for(lambda c: c.method == "sendMessage" and c.params["text"] == "Approved.")
    commands = tg.approver.journal.recent(10, kinds=["telegram.command"])
    assert [c["payload"]["outcome"] for c in commands] == ["refused", "ok"]  # oldest first


async def test_forum_topic_is_enforced(server: FakeTelegram, tmp_path: Path) -> None:
    parts = await started(server, journal_at(tmp_path), topic_id=7)
    try:
        task = asyncio.create_task(parts.approver.decide(request("topic"), CLOCK))
        mid, data = await asked(server)
        assert server.sent("sendMessage")[0].params["message_thread_id"] == 7
        qid = await server.press(ALICE, CHAT, mid, data["Approve"], thread_id=8)
        assert "topic" in (await server.answer_for(qid)).params["text"]
        assert not task.done()
        await server.press(ALICE, CHAT, mid, data["Approve"], thread_id=7)
        assert (await asyncio.wait_for(task, 10)).approved
    finally:
        await parts.close()
