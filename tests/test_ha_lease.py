"""Leadership on a real PostgreSQL: one holder per group, a term that grows, and a fence in the
database that refuses a stale leader's journal commit (so its order is never sent)."""

from __future__ import annotations

import time
from typing import Any

import pytest
from sqlalchemy import create_engine, inspect

from bot.config.settings import Settings
from bot.ha.lease import Fenced, Lease
from bot.ha.schema import ensure_schema
from bot.journal import SqlJournal


def _engine(url: str) -> Any:
    engine = create_engine(url)
    ensure_schema(engine)
    return engine


def test_the_schema_is_created_once_and_again_changes_nothing(journal_url: str) -> None:
    engine = create_engine(journal_url)
    ensure_schema(engine)
    j = SqlJournal(journal_url)
    j.append("note", 1, {"n": 1}, key="k")
    j.close()
    ensure_schema(engine)  # a second start: nothing dropped, nothing duplicated
    names = set(inspect(engine).get_table_names())
    assert {"journal_entries", "journal_state", "ha_leases"} <= names
    assert SqlJournal(journal_url).find_key("k") is not None
    engine.dispose()


def test_one_holder_per_group_and_the_term_grows_at_each_takeover(pg: Any) -> None:
    engine = _engine(pg.url())
    a, b = Lease(engine, "acct", lease_s=1.0), Lease(engine, "acct", lease_s=1.0)
    other = Lease(engine, "other-account", lease_s=1.0)
    assert a.acquire() == 1
    assert b.acquire() is None  # held
    assert other.acquire() == 1  # groups are independent
    assert a.renew() and b.renew() is False
    deadline = time.monotonic() + 5
    while (term := b.acquire()) is None and time.monotonic() < deadline:
        time.sleep(0.1)  # a is silent: its lease runs out
    assert term == 2 and a.renew() is False  # the old leader learns it lost
    current = pg_current(b)
    assert current[0] == 2 and current[1] == b.holder and current[2]
    b.release()  # a clean shutdown hands over at once
    assert a.acquire() == 3
    engine.dispose()


def pg_current(lease: Lease) -> tuple[int, str, bool]:
    got = lease.current()
    assert got is not None
    return got


def test_a_stale_leader_journal_commit_is_refused_by_the_database(pg: Any) -> None:
    url = pg.url()
    engine = _engine(url)
    old, new = Lease(engine, "acct", lease_s=1.0), Lease(engine, "acct", lease_s=1.0)
    j_old, j_new = SqlJournal(url), SqlJournal(url)
    j_old.fence, j_new.fence = old.fence, new.fence
    assert old.acquire() == 1
    j_old.stage("order_sent", 1, {"client_id": "lgaaa-0"}, key="order:lgaaa-0")
    j_old.flush()  # term 1 leads: committed
    while new.acquire() is None:  # old is "paused" past its lease; new takes term 2
        time.sleep(0.1)
    # old wakes up with its term number still in hand: the database refuses the commit
    old.term = 1
    j_old.stage("order_sent", 2, {"client_id": "lgbbb-0"}, key="order:lgbbb-0")
    with pytest.raises(Fenced, match="term 1 no longer leads"):
        j_old.flush()
    j_new.stage("order_sent", 3, {"client_id": "lgccc-0"}, key="order:lgccc-0")
    j_new.flush()
    reader = SqlJournal(url)
    assert [e["payload"]["client_id"] for e in reader.find()] == ["lgaaa-0", "lgccc-0"]
    for j in (j_old, j_new, reader):
        j._staged.clear()
        j.close()
    engine.dispose()


def test_a_lease_too_close_to_expiry_cannot_be_proven_so_nothing_commits(pg: Any) -> None:
    url = pg.url()
    engine = _engine(url)
    lease = Lease(engine, "acct", lease_s=1.0)
    j = SqlJournal(url)
    j.fence = lease.fence
    assert lease.acquire() == 1
    time.sleep(0.8)  # less than a quarter of the lease left, and nobody else has it yet
    j.stage("order_sent", 1, {"client_id": "lgaaa-0"}, key="order:lgaaa-0")
    with pytest.raises(Fenced):
        j.flush()
    j._staged.clear()
    j.close()
    assert SqlJournal(url).find() == []
    engine.dispose()


def test_ha_settings_are_checked() -> None:
    ha = Settings.model_validate({"ha": {"group": "acct"}}).ha
    assert ha is not None and ha.lease_s == 10 and ha.renew_every_s == pytest.approx(10 / 3)
    with pytest.raises(ValueError, match=r"renew_s 8\.0 is more than half of lease_s 10\.0"):
        Settings.model_validate({"ha": {"group": "acct", "renew_s": 8}})


def test_sqlite_refuses_ha_naming_postgres(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from bot.cli import app

    monkeypatch.chdir(tmp_path)
    config = tmp_path / "ha.yaml"
    config.write_text("ha: {group: acct}\n")
    result = CliRunner().invoke(
        app, ["run", "--config", str(config), "--journal", str(tmp_path / "j.sqlite")]
    )
    assert result.exit_code == 2
    assert "high availability needs a PostgreSQL journal" in result.output
    assert "postgresql+psycopg://" in result.output and "Traceback" not in result.output
    bare = CliRunner().invoke(app, ["run", "--standby", "--journal", str(tmp_path / "j.sqlite")])
    assert bare.exit_code == 2 and "--standby needs an ha: section" in bare.output
    assert not (tmp_path / "j.sqlite").exists()  # refused before anything was journaled


class _Said:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def say(self, text: str, tone: str = "info") -> None:
        self.lines.append(text)


async def test_telegram_status_says_who_leads(pg: Any) -> None:
    """The leader's /status names its role, group, term and holder; the row is journaled."""
    from bot.app.ha import HaRun
    from bot.app.telegram_control import RuntimeControl
    from bot.app.wiring import build
    from bot.secrets import load_secrets
    from bot.telegram.commands import status_text

    url = pg.url()
    settings = Settings.model_validate(
        {"journal": {"url": url}, "ha": {"group": "acct", "lease_s": 1.0}}
    )
    secrets = load_secrets(None)
    run = HaRun(settings, secrets, "test", [], False, _Said(), url, "auto", None)
    assert run.lease.acquire() == 1
    run._role("leader", term=1)
    rt = build(
        settings, secrets, mode="paper", identity="paper|test", journal_url=url,
        approvals="auto", session="ha-acct",
    )  # fmt: skip
    control = RuntimeControl(rt.orchestrator, rt.broker, rt.journal, settings)
    control.role = run.role_text  # as bot.app.ha does for the leader's Telegram
    text = status_text(await control.status(), 0)
    assert f"HA leader of acct, term 1 ({run.lease.holder})" in text.splitlines()[0]
    run._role("stepped down", term=1)
    assert "HA stepped down of acct" in status_text(await control.status(), 0)
    roles = [r["payload"]["role"] for r in rt.journal.recent(10, kinds=["ha_role"])]
    assert roles == ["leader", "stepped down"]
    await rt.close()
    run.lease.engine.dispose()
