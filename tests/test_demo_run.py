"""`liqguard run` with no arguments (what `make run` does): one replay of the bundled crash that
shows each kind of step on the way up the ladder, with the default policy and book."""

from __future__ import annotations

import re
from pathlib import Path

from typer.testing import CliRunner

from bot.app.backtest import Options, bundled_episodes, run_one
from bot.cli import app
from bot.config.settings import Settings
from bot.engine.summary import summarize
from bot.journal import SqlJournal, default_journal_url


def test_the_demo_shows_every_kind_of_step(tmp_path: Path) -> None:
    journal = tmp_path / "demo.sqlite"
    out = CliRunner().invoke(app, ["run", "--speed", "max", "--journal", str(journal)])
    assert out.exit_code == 0, out.output
    session = re.search(r"\(session ([\w.]+)\)", out.output)
    assert session is not None
    j = SqlJournal(default_journal_url(str(journal)))
    try:
        s = summarize(j, session.group(1))
    finally:
        j.close()
    done = {k for k, n in s.actions_by_status.items() if n}
    for step in ("stop_loss", "reduce_exposure", "hedge", "halt", "unhedge"):
        assert (step, "executed") in done, step
    assert s.ladder == ["ACTIVE -> REDUCING"]
    # A stop placed, then tightened (cancel + a closer stop) as BTC climbs.
    stops = re.findall(r"SELL 2\.5 BTCUSDT stop stop ([\d.]+)", out.output)
    assert len(stops) >= 3 and [float(x) for x in stops] == sorted(float(x) for x in stops)
    assert "SELL 2.5 BTCUSDT cancel reduce-only" in out.output
    # The level-3 cut goes out in slices; the hedge and the cut ask first.
    assert "slice 3/3" in out.output
    assert "Approve L2 hedge?" in out.output and "Approve L0 unhedge?" in out.output
    assert s.paper_liquidations == 0


def test_nobody_answering_applies_each_default() -> None:
    """What --approvals console does when nobody answers: the hedge cancels, the cut executes
    (execute_if_reducing), so there is no hedge to unwind on calm."""
    figures = run_one(bundled_episodes()[0], Settings(), Options())
    assert figures.actions.get("hedge expired") == 1
    assert "hedge executed" not in figures.actions
    assert figures.actions.get("reduce_exposure executed") == 2
    assert "unhedge executed" not in figures.actions
    assert figures.decisions_by.get("timeout") == 2
