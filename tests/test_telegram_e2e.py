"""Acceptance: `liqguard run` with a telegram section approves from a button, then trades paper.

The real CLI (typer app, in a worker thread with its own event loop) replays the bundled crash
with `approvals.channel: telegram`; the local Bot API server presses Approve as an
allow-listed user as soon as a question shows its buttons; the paper broker executes the
approved action, and the journal shows question, press, decision and fills.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bot.cli import app
from bot.journal import SqlJournal
from bot.notify.charts import PNG_SIGNATURE
from tests.telegram_server import ALICE, HMAC_KEY, TOKEN, FakeTelegram

CHAT = ALICE  # a private chat with the bot (a group is held to 20 messages a minute)

CONFIG = """
telegram:
  chat_id: {chat}
  allowed_user_ids: [{alice}]
  base_url: {base_url}
  poll_timeout_s: 0.5
  coalesce_s: 0.2
  chart: {{enabled: false}}
rules:
  - name: all              # $1M over every venue: the crash escalates from its first hours
policy:
  levels:
    1:
      - strategy: reduce_exposure
        params: {{fraction: 0.25}}
        approval: confirm
        timeout_s: 72000       # 20 h of tape: the button is pressed long before
        on_timeout: cancel     # so an execution can only come from the press
  calm: []
journal:
  url: {journal}
"""


@pytest.fixture
async def server() -> FakeTelegram:
    s = FakeTelegram(TOKEN)
    s.auto_press = (ALICE, "Approve")
    await s.start()
    yield s  # type: ignore[misc]
    await s.stop()


async def test_run_approves_from_telegram_and_paper_executes(
    server: FakeTelegram, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    journal_path = tmp_path / "journal.sqlite"
    cfg = tmp_path / "liqguard.yaml"
    cfg.write_text(
        CONFIG.format(chat=CHAT, alice=ALICE, base_url=server.base_url, journal=journal_path)
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LIQGUARD_TELEGRAM_BOT_TOKEN", TOKEN)
    monkeypatch.setenv("LIQGUARD_APPROVAL_HMAC_KEY", HMAC_KEY)
    runner = CliRunner()
    # paced (the 2-day tape in ~9 s), so /pause lands while the run is still going
    run = asyncio.create_task(
        asyncio.to_thread(runner.invoke, app, ["run", "--config", str(cfg), "--speed", "20000"])
    )
    # while the replay runs, an allow-listed user asks for /status (the runtime answers)
    await server.wait_for(lambda c: "Approval needed" in str(c.params.get("text")), timeout_s=60)
    await server.command(ALICE, CHAT, "/status")
    status = await server.wait_for(lambda c: "trading state" in str(c.params.get("text")))
    await server.command(ALICE, CHAT, "/chart")
    photo = (await server.wait_for(lambda c: c.method == "sendPhoto", timeout_s=30))[0]
    await server.command(ALICE, CHAT, "/pause")  # the ladder, through the orchestrator's surface
    await server.wait_for(lambda c: "ACTIVE → REDUCING" in str(c.params.get("text")))
    result = await run
    assert result.exit_code == 0, result.output + repr(result.exception)

    journal = SqlJournal(f"sqlite:///{journal_path}")
    decisions = [e["payload"] for e in journal.recent(500, kinds=["decision"])]
    by_telegram = [d for d in decisions if d["by"] == "telegram:@user11" and d["approved"]]
    assert by_telegram, decisions
    approved = {d["action_id"] for d in by_telegram}
    fills = [e["payload"] for e in journal.recent(500, kinds=["fill"])]
    executed = [f for f in fills if f.get("action_id") in approved]
    assert executed and all(f["side"] == "sell" and f["reduce_only"] for f in executed)
    sent = journal.recent(500, kinds=["telegram.approval_sent"])
    presses = journal.recent(500, kinds=["telegram.press"])
    assert len(sent) == len(presses) == len(by_telegram)
    questions = [
        c.params["text"] for c in server.sent("sendMessage") if "Approval" in c.params["text"]
    ]
    assert questions and all("reduce-only" in q for q in questions)
    # every question was edited to show who approved, buttons gone
    edited = [m for m in server.messages.values() if "APPROVED by @user11" in m.get("text", "")]
    assert len(edited) == len(by_telegram) and all("reply_markup" not in m for m in edited)
    assert (
        "Mode paper" in status[0].params["text"] and "Rule all: level" in status[0].params["text"]
    )
    commands = journal.recent(50, kinds=["telegram.command"])
    assert [c["payload"]["command"] for c in commands] == ["status", "chart", "pause"]
    (ladder,) = [e["payload"] for e in journal.recent(50, kinds=["ladder"])]
    assert (ladder["state"], ladder["by"]) == ("REDUCING", "telegram:@user11")
    assert photo.files["photo"].startswith(PNG_SIGNATURE)
