"""Runtime overrides: the diff, the confirmation, the journal as their source across restarts,
the status page's endpoints and `liqguard config diff`."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from typer.testing import CliRunner

from bot.app.overrides import OverrideDesk
from bot.app.wiring import Runtime, build
from bot.cli import app as cli
from bot.config import load_settings
from bot.config.approvals import ApprovalsConfig
from bot.config.overrides import Overlay, OverrideError, parse_command, replay
from bot.events import ApprovalMode, JournalKind, Liquidation
from bot.journal import SqlJournal
from bot.ops.http import bound_port
from bot.ops.service import Ops
from bot.secrets import Secrets
from tests.telegram_server import (
    ALICE,
    BOB,
    CHAT,
    MALLORY,
    FakeTelegram,
    telegram_secrets,
    telegram_settings,
)
from tests.telegram_server import TOKEN as BOT_TOKEN

TOKEN = "FAKE-status-page-token"
T0 = 1_733_380_000_000

# the detector contract's one $1M rule named `all` (the defaults name theirs exchanges, defi)
ONE_RULE = Path(__file__).parent / "fixtures" / "rule_1m_all_venues.yaml"


def write_config(path: Path, rules: list[dict[str, Any]], **more: Any) -> Path:
    path.write_text(yaml.safe_dump({"rules": rules, **more}), encoding="utf-8")
    return path


def start(config: Path, journal: Path) -> Runtime:
    return build(
        load_settings(config),
        Secrets(_env_file=None),  # type: ignore[call-arg]
        mode="replay",
        identity="overrides-test",
        journal_url=str(journal),
        approvals="auto",
        source=str(config),
    )


def desk(rt: Runtime) -> OverrideDesk:
    d = rt.extras["overrides"]
    assert isinstance(d, OverrideDesk)
    return d


def kinds(journal: Path, kind: JournalKind) -> list[dict[str, Any]]:
    j = SqlJournal(f"sqlite:///{journal}", readonly=True)
    try:
        return [r["payload"] for r in j.find(kinds=[kind])]
    finally:
        j.close()


# ------------------------------------------------------------------------------ pure
def test_commands_parse_apply_and_say_what_is_wrong() -> None:
    file = load_settings(ONE_RULE)
    o = Overlay.of(file)
    o = o.apply(parse_command("threshold", ["all", "2.5m"]))
    o = o.apply(parse_command("policy", ["2", "hedge", "auto"]))
    o = o.apply(parse_command("policy", ["calm", "0", "notify"]))
    run = o.running()
    assert run.rules[0].threshold_usd == 2_500_000
    assert run.policy.levels[2][1].approval is ApprovalMode.AUTO
    assert run.policy.calm[0].approval is ApprovalMode.NOTIFY
    assert file.rules[0].threshold_usd == 1_000_000  # the file's settings are untouched
    cleared = o.apply(parse_command("overrides", ["clear"]))
    assert cleared.running() == file and len(cleared.applied) == 4
    bad = {
        ("threshold", ("nope", "1")): "rule 'nope' is not in the configuration (rules: all)",
        ("threshold", ("all", "lots")): "'lots' is not an amount of USD",
        ("threshold", ("all", "0")): "give at least 0.01 USD",
        ("rule", ("all", "off")): "is the last one on",
        ("policy", ("9", "hedge", "auto")): "no level 9 (configured: 1, 2, 3, 4, 5, or calm)",
        ("policy", ("2", "halt", "auto")): "no 'halt' step (steps: 0 reduce_exposure, 1 hedge)",
        ("policy", ("2", "hedge", "maybe")): "/policy [RULE:]LEVEL STEP auto|confirm|notify",
        ("policy", ("btc:2", "hedge", "auto")): "policy.rules has no block 'btc'",
    }
    for (name, args), expected in bad.items():
        with pytest.raises(OverrideError, match=None) as info:
            o.apply(parse_command(name, list(args)))
        assert expected in str(info.value), (name, args, str(info.value))


def test_an_override_whose_rule_left_the_file_is_skipped_with_a_line_not_a_crash() -> None:
    two = load_settings(ONE_RULE).model_validate({"rules": [{"name": "all"}, {"name": "btc"}]})
    one = load_settings(ONE_RULE)
    journaled = [
        (parse_command("threshold", ["btc", "500000"]), {"by": "telegram:@alice"}),
        (parse_command("threshold", ["all", "3000000"]), {"by": "telegram:@bob"}),
    ]
    overlay, skipped = replay(two, journaled)
    assert [r.threshold_usd for r in overlay.running().rules] == [3e6, 5e5]
    overlay, skipped = replay(one, journaled)
    assert overlay.running().rules[0].threshold_usd == 3e6
    assert skipped == [
        "override /threshold btc 500000.00 (by telegram:@alice) no longer applies: rule 'btc' is "
        "not in the configuration (rules: all); give one of those names"
    ]


# ------------------------------------------------------------------------------ runtime
async def test_the_page_asks_confirms_and_the_journal_keeps_it_across_restarts(
    tmp_path: Path,
) -> None:
    config = write_config(
        tmp_path / "liqguard.yaml",
        [{"name": "all"}, {"name": "btc", "symbols": ["BTC"], "threshold_usd": 400000}],
        http={"listen": "127.0.0.1:0"},
    )
    journal = tmp_path / "j.sqlite"
    rt = start(config, journal)
    await rt.orchestrator.handle(Liquidation(T0, "binance", "BTCUSDT", "long", 300_000.0))
    ops = Ops(rt, lambda _t: None, env={"LIQGUARD_HTTP_TOKEN": TOKEN})
    await ops.start()
    base = f"http://127.0.0.1:{bound_port(ops.servers[0])}"
    auth = {"Authorization": f"Bearer {TOKEN}"}
    try:
        async with aiohttp.ClientSession() as http:
            no = await http.post(f"{base}/api/change", json={"command": "/threshold btc 250000"})
            assert no.status == 401
            r = await http.post(
                f"{base}/api/change", json={"command": "/threshold btc 250000"}, headers=auth
            )
            body = await r.json()
            assert body["ok"] and body["request_id"]
            assert "rules.btc.threshold_usd: 400,000.00 -> 250,000.00" in body["message"]
            # nothing changes before the confirmation
            assert rt.orchestrator.detector.status()[1].base_threshold_cents == 40_000_000
            r = await http.post(
                f"{base}/api/confirm", json={"request_id": body["request_id"]}, headers=auth
            )
            assert (await r.json())["message"].startswith("Applied: rules.btc.threshold_usd")
            # the window was kept: $300k against the new $250k fired level 1 at once
            status = rt.orchestrator.detector.status()[1]
            assert (status.window_cents, status.level) == (30_000_000, 1)
            assert status.base_threshold_cents == 25_000_000
            bad = await http.post(
                f"{base}/api/change", json={"command": "/rule nope off"}, headers=auth
            )
            assert (await bad.json())["message"] == (
                "Not changed: rule 'nope' is not in the configuration (rules: all, btc); give "
                "one of those names"
            )
            snapshot = await (await http.get(f"{base}/api/status")).json()
            assert snapshot["rules"][1]["thresholds_usd"][0] == 250_000
    finally:
        await ops.close()
        await rt.close()
    [row] = kinds(journal, JournalKind.CONFIG_OVERRIDE)
    assert row["by"] == "http:status page" and row["approved_by"] == "status page"
    assert [a["rule"] for a in kinds(journal, JournalKind.ANOMALY)] == ["btc"]
    assert TOKEN not in journal.read_bytes().decode("utf-8", "replace")

    # a restart: the file's 400k, the journal's 250k on top
    rt = start(config, journal)
    try:
        assert rt.settings.rules[1].threshold_usd == 250_000
        assert rt.orchestrator.detector.rules[1].threshold_usd == 250_000
        assert "rules.btc.threshold_usd: 400,000.00 -> 250,000.00" in desk(rt).listing()
    finally:
        await rt.close()

    # the rule left the file: the override is skipped, said once at start, and the bot runs
    write_config(config, [{"name": "all"}])
    rt = start(config, journal)
    try:
        await rt.start()
        assert [r.name for r in rt.settings.rules] == ["all"]
    finally:
        await rt.close()
    [skipped] = kinds(journal, JournalKind.CONFIG_SKIPPED)
    assert (
        "override /threshold btc 250000.00 (by http:status page) no longer applies"
        in (skipped["text"])
    )

    result = CliRunner().invoke(
        cli, ["config", "diff", "--config", str(config), "--journal", str(journal)]
    )
    assert result.exit_code == 0, result.output
    assert "1 override(s) in the journal" in result.output
    assert "skipped: override /threshold btc 250000.00" in result.output
    assert "No difference." in result.output
    write_config(config, [{"name": "all"}, {"name": "btc", "threshold_usd": 400000}])
    result = CliRunner().invoke(
        cli, ["config", "diff", "--config", str(config), "--journal", str(journal)]
    )
    assert "rules.btc.threshold_usd: 400,000.00 -> 250,000.00" in result.output
    config.write_text("rules: [{name: all, threshold_usd: -1}]\n", encoding="utf-8")
    result = CliRunner().invoke(
        cli, ["config", "diff", "--config", str(config), "--journal", str(journal)]
    )
    assert result.exit_code == 2 and "rules[0].threshold_usd" in result.output


async def test_rule_off_and_a_policy_step_switch_reach_the_running_bot(tmp_path: Path) -> None:
    config = write_config(tmp_path / "liqguard.yaml", [{"name": "all"}, {"name": "btc"}])
    rt = start(config, tmp_path / "j.sqlite")
    d = desk(rt)
    try:
        text, rid = await d.ask("rule", ["btc", "off"], "telegram:@alice")
        assert rid is not None and "rules.btc: on -> off" in text
        assert (await d.vote(rid, "@bob", 22, True)) == "Applied: rules.btc: on -> off"
        assert [r.name for r in rt.orchestrator.detector.rules] == ["all"]
        assert [r.name for r in rt.orchestrator.feeds.rules] == ["all"]
        text, rid = await d.ask("policy", ["2", "hedge", "auto"], "telegram:@alice")
        assert rid is not None
        assert "policy.levels.2[1] (hedge).approval: confirm -> auto" in text
        assert (await d.vote(rid, "@bob", 22, False)) == "Rejected: nothing changed."
        assert rt.orchestrator.resolved["policy.levels.2[1]"].config.approval == "confirm"
        text, rid = await d.ask("policy", ["2", "1", "auto"], "telegram:@alice")
        assert rid is not None
        await d.vote(rid, "@bob", 22, True)
        assert rt.orchestrator.resolved["policy.levels.2[1]"].config.approval == "auto"
        text, rid = await d.ask("policy", ["2", "1", "auto"], "telegram:@alice")
        assert rid is None and "changes nothing" in text
    finally:
        await rt.close()


# ------------------------------------------------------------------------------ Telegram
@pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")
async def test_telegram_two_people_confirm_a_threshold_on_the_approval_buttons(
    tmp_path: Path,
) -> None:
    server = FakeTelegram(BOT_TOKEN)
    await server.start()
    settings = telegram_settings(server).model_copy(
        update={
            "approvals": ApprovalsConfig(override_approvers=2, override_timeout_s=30),
            "rules": load_settings(ONE_RULE).rules,
        }
    )
    journal = tmp_path / "j.sqlite"
    rt = build(
        settings, telegram_secrets(), mode="paper", identity="tg-overrides",
        journal_url=str(journal),
    )  # fmt: skip
    try:
        await rt.start()
        await server.command(MALLORY, CHAT, "/threshold all 2500000")
        refused = await server.wait_for(
            lambda c: c.method == "sendMessage" and "allow-list" in c.params.get("text", "")
        )
        assert "user id is 99" in refused[0].params["text"]
        await server.command(ALICE, CHAT, "/threshold all 2500000")
        calls = await server.wait_for(
            lambda c: c.method.startswith("editMessage") and bool(c.params.get("reply_markup"))
        )
        mid = int(calls[0].params["message_id"])
        question = server.messages[(CHAT, mid)]["text"]
        for needle in (
            "Confirm a configuration change",
            "Proposed by telegram:@user11: /threshold all 2500000.00",
            "rules.all.threshold_usd: 1,000,000.00 -> 2,500,000.00",
            "Needs 2 different approvers",
        ):
            assert needle in question
        assert "Orders" not in question
        reply = await server.wait_for(
            lambda c: c.method == "sendMessage" and "Confirm on the approval message" in
            c.params.get("text", "")
        )  # fmt: skip
        assert "2 different people, 30 s" in reply[0].params["text"]
        rows = calls[0].params["reply_markup"]["inline_keyboard"]
        approve = rows[0][0]["callback_data"]
        await server.press(ALICE, CHAT, mid, approve)
        calls = await server.wait_for(
            lambda c: c.method.startswith("editMessage") and bool(c.params.get("reply_markup")), 2
        )
        assert rt.orchestrator.detector.rules[0].threshold_usd == 1_000_000  # one is not two
        approve = calls[1].params["reply_markup"]["inline_keyboard"][0][0]["callback_data"]
        await server.press(BOB, CHAT, mid, approve)
        await server.wait_for(
            lambda c: c.method == "editMessageText" and "APPROVED" in c.params.get("text", "")
        )
        await asyncio.wait_for(desk(rt).settled(), 10)  # the change lands after the decision
        assert rt.orchestrator.detector.rules[0].threshold_usd == 2_500_000
        assert rt.settings.rules[0].threshold_usd == 2_500_000
        await server.command(BOB, CHAT, "/overrides")
        await server.wait_for(
            lambda c: (
                c.method == "sendMessage"
                and "rules.all.threshold_usd: 1,000,000.00 -> 2,500,000.00"
                in c.params.get("text", "")
                and "Overrides against the file" in c.params.get("text", "")
            )
        )
        await server.command(ALICE, CHAT, "/policy 2 hedge auto")  # asked, never confirmed
        await server.wait_for(
            lambda c: c.method.startswith("editMessage") and bool(c.params.get("reply_markup")), 3
        )
        await rt.close()
        # a restart: the confirmed change is back from the journal, the unconfirmed one dropped
        rt = build(
            settings, telegram_secrets(), mode="paper", identity="tg-overrides",
            journal_url=str(journal),
        )  # fmt: skip
        assert rt.orchestrator.detector.rules[0].threshold_usd == 2_500_000
        await rt.start()
        await server.wait_for(
            lambda c: c.method == "editMessageText" and "REJECTED by restart" in c.params["text"]
        )
        assert rt.orchestrator.resolved["policy.levels.2[1]"].config.approval == "confirm"
    finally:
        await rt.close()
        await server.stop()
    [row] = kinds(journal, JournalKind.CONFIG_OVERRIDE)
    assert (row["by"], row["approved_by"]) == ("telegram:@user11", "telegram:@user11+@user22")
    declined = kinds(journal, JournalKind.CONFIG_DECLINED)
    assert [d["why"] for d in declined] == ["liqguard restarted; ask again"]
