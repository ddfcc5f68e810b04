"""`liqguard backtest`: the replay pipeline's own figures, the sweep grid, confirm steps resolved
in simulated time, the report and CSV, manifests, exit codes."""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from bot.app.backtest import Episode, Options, bundled_episodes, run_one
from bot.brokers.paper import PaperBroker
from bot.cli import app
from bot.clock import SimClock
from bot.config.settings import Settings
from bot.engine.summary import summarize
from bot.journal import SqlJournal, default_journal_url
from bot.notify.format import usd

DATA = Path(__file__).parent.parent / "bot" / "data"
CRASH_TAPE = DATA / "binance-btcusdt_2024-12-04_06.csv"
CRASH_PRICES = DATA / "BTCUSDT-5m_2024-12-04_06.csv"
SELLOFF_TAPE = DATA / "binance-allmarket_2025-01-26_27.csv.gz"
SELLOFF_PRICES = DATA / "BTCUSDT-5m_2025-01-26_28.csv"
runner = CliRunner()


def invoke(*args: str | Path) -> Any:
    return runner.invoke(app, [*map(str, args)])


def csv_rows(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(path.read_text())))


def _paper(journal: SqlJournal, name: str) -> PaperBroker:
    broker = PaperBroker(Settings().paper, SimClock())
    state = journal.get_state(name)
    assert state is not None
    broker.restore(state)
    return broker


@pytest.mark.parametrize(
    ("tape", "prices"), [(CRASH_TAPE, CRASH_PRICES), (SELLOFF_TAPE, SELLOFF_PRICES)]
)
def test_default_setting_equals_liqguard_replay(tmp_path: Path, tape: Path, prices: Path) -> None:
    journal = tmp_path / "replay.sqlite"
    rep = invoke("replay", tape, "--prices", prices, "--journal", journal)
    assert rep.exit_code == 0, rep.output
    session = re.search(r"\(session ([\w.]+)\)", rep.output)
    assert session is not None
    results = tmp_path / "bt.csv"
    # replay's approvals channel is `auto` (approve): the same answers for the backtest.
    bt = invoke("backtest", f"{tape}:{prices}", "--assume", "approve", "--jobs", "1",
                "--report", tmp_path / "r.html", "--results", results)  # fmt: skip
    assert bt.exit_code == 0, bt.output
    [row] = csv_rows(results)
    j = SqlJournal(default_journal_url(str(journal)))
    try:
        summary = summarize(j, session.group(1))
        paper = _paper(j, f"paper:{session.group(1)}")
        baseline = _paper(j, f"baseline:{session.group(1)}")
    finally:
        j.close()
    assert float(row["pnl_usd"]) == pytest.approx(round(paper.pnl_usd(), 2), abs=0.006)
    assert float(row["untouched_pnl_usd"]) == pytest.approx(round(baseline.pnl_usd(), 2), abs=0.006)
    assert float(row["worst_drawdown_usd"]) == pytest.approx(paper.max_drawdown_usd, abs=0.006)
    assert float(row["untouched_worst_drawdown_usd"]) == pytest.approx(
        baseline.max_drawdown_usd, abs=0.006
    )
    assert float(row["fees_usd"]) == pytest.approx(summary.fees_usd, abs=0.006)
    assert int(row["anomalies"]) == sum(summary.anomalies_by_level.values())
    assert row["anomalies_by_level"] == " ".join(
        f"L{k}:{v}" for k, v in sorted(summary.anomalies_by_level.items())
    )
    assert int(row["calms"]) == summary.calms
    assert int(row["fills"]) == summary.fills and int(row["orders_sent"]) == summary.orders_sent
    assert row["actions"] == "; ".join(
        f"{s} {st}: {n}" for (s, st), n in sorted(summary.actions_by_status.items())
    )
    assert int(row["paper_liquidations"]) == summary.paper_liquidations
    # And what replay printed: the same PnL and drawdowns.
    assert usd(paper.pnl_usd()) in rep.output and usd(float(row["pnl_usd"])) in rep.output
    assert usd(float(row["untouched_pnl_usd"])) in rep.output


def test_confirm_steps_take_their_timeout_default_in_simulated_time() -> None:
    [_, selloff] = bundled_episodes()
    # the default policy at $1M: the sell-off reaches level 2 (the default $4M stays at 1)
    at_1m = Settings.model_validate({"rules": [{"name": "all"}]})
    nobody = run_one(selloff, at_1m, Options())
    yes = run_one(selloff, at_1m, Options(assume="approve"))
    no = run_one(selloff, at_1m, Options(assume="reject"))
    # The level-2 hedge asks (on_timeout: cancel): nobody answers, so it expires unexecuted.
    assert nobody.actions.get("hedge expired") == 1 and "hedge executed" not in nobody.actions
    assert nobody.decisions_by.get("timeout") == 2
    assert yes.actions.get("hedge executed") == 1 and yes.decisions_by.get("auto") == 2
    assert no.decisions_by.get("auto") == 2 and "hedge executed" not in no.actions
    assert yes.fills > nobody.fills


def test_sweep_grid_is_the_product_and_thresholds_change_the_anomalies(tmp_path: Path) -> None:
    results = tmp_path / "grid.csv"
    report = tmp_path / "grid.html"
    out = invoke("backtest", f"{CRASH_TAPE}:{CRASH_PRICES}",
                 "--sweep", "rules[0].threshold_usd=1e6,4e6",
                 "--sweep", "policy.levels.2[0].params.fraction=0.25,0.5",
                 "--jobs", "2", "--report", report, "--results", results)  # fmt: skip
    assert out.exit_code == 0, out.output
    rows = csv_rows(results)
    assert len(rows) == 4
    settings = {r["setting"] for r in rows}
    assert settings == {
        f"rules[0].threshold_usd={t}, policy.levels.2[0].params.fraction={f}"
        for t in ("1e6", "4e6")
        for f in (0.25, 0.5)
    }
    by_threshold = {r["setting"].split(",")[0]: int(r["anomalies"]) for r in rows}
    detect = invoke("detect", CRASH_TAPE, "--threshold", "4000000", "--json")
    fired = detect.stdout.count('"type": "anomaly"')
    assert by_threshold["rules[0].threshold_usd=4e6"] == fired
    assert by_threshold["rules[0].threshold_usd=1e6"] > fired
    page = report.read_text()
    assert page.count("data:image/png;base64,") == 1  # one episode, drawn for the best setting
    assert "class='best'" in page
    assert not re.search(r"(src|href)=['\"]https?:", page)  # opens from disk, no network


def test_puts_and_the_perp_short_side_by_side_in_one_sweep(tmp_path: Path) -> None:
    results = tmp_path / "hedges.csv"
    puts_policy = Path(__file__).resolve().parents[1] / "examples/puts.yaml"
    out = invoke("backtest", f"{CRASH_TAPE}:{CRASH_PRICES}", "--config", puts_policy,
                 "--sweep", "policy.levels.2[0].params.mode=perp,puts",
                 "--results", results, "--report", tmp_path / "r.html")  # fmt: skip
    assert out.exit_code == 0, out.output
    rows = {r["setting"].rsplit("=", 1)[-1]: r for r in csv_rows(results)}
    puts, perp = rows["puts"], rows["perp"]
    # the puts cost a premium and gave something back; the perp short paid none
    assert float(puts["option_premium_usd"]) > 0 and float(puts["option_returned_usd"]) > 0
    assert float(perp["option_premium_usd"]) == 0 == float(perp["option_returned_usd"])
    # an option's fill is in the coin, not the underlying: no slippage is made up for it
    assert abs(float(puts["slippage_usd"])) < abs(float(perp["slippage_usd"])) + 1
    assert puts["pnl_usd"] != perp["pnl_usd"]


def test_no_argument_runs_the_bundled_episodes(tmp_path: Path) -> None:
    report = tmp_path / "report.html"
    out = invoke("backtest", "--report", report, "--jobs", "2")
    assert out.exit_code == 0, out.output
    page = report.read_text()
    for ep in bundled_episodes():
        assert f"<h3>{ep.name}</h3>" in page
    assert "2 episode(s) x 1 setting(s) = 2 runs" in out.output


def test_episode_manifest_with_a_portfolio(tmp_path: Path) -> None:
    portfolio = tmp_path / "book.yaml"
    portfolio.write_text(
        "balance_usd: 50000\npositions:\n  - symbol: BTCUSDT\n    side: short\n    size: 1\n"
    )
    manifest = tmp_path / "crash.yaml"
    manifest.write_text(
        f"name: short book\ntape: {CRASH_TAPE}\nprices: {CRASH_PRICES}\nportfolio: book.yaml\n"
    )
    figures = run_one(
        Episode("x", CRASH_TAPE, CRASH_PRICES, portfolio), Settings(), Options(assume="approve")
    )
    results = tmp_path / "m.csv"
    out = invoke("backtest", manifest, "--jobs", "1", "--report", tmp_path / "m.html",
                 "--results", results)  # fmt: skip
    assert out.exit_code == 0, out.output
    [row] = csv_rows(results)
    assert row["episode"] == "short book"
    long_book = run_one(bundled_episodes()[0], Settings(), Options())
    assert float(row["untouched_pnl_usd"]) == pytest.approx(figures.untouched_pnl_usd, abs=0.01)
    assert figures.untouched_pnl_usd != pytest.approx(long_book.untouched_pnl_usd)


@pytest.mark.parametrize(
    ("args", "code", "words"),
    [
        (["--sweep", "rules[0].threshold_usd"], 2, "write PATH=V1,V2"),
        (["--sweep", "rules[3].threshold_usd=1e6"], 2, "no item 3"),
        (["--sweep", "rules[0].threshold_usd=-1"], 2, "threshold_usd"),
        (["--objective", "luck"], 2, "use one of pnl"),
        (["--assume", "maybe"], 2, "use approve or reject"),
        (["nope.csv:prices.csv"], 1, "cannot be read"),
        (["just-a-tape.csv"], 2, "give TAPE:PRICES"),
    ],
)
def test_bad_input_exits_with_a_sentence(
    tmp_path: Path, args: list[str], code: int, words: str
) -> None:
    out = invoke("backtest", *args, "--report", tmp_path / "r.html")
    assert out.exit_code == code, out.output
    assert words in out.output
    assert "Traceback" not in out.output
    assert not (tmp_path / "r.html").exists()
