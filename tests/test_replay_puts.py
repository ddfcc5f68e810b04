"""`mode: puts` on the bundled 2024-12-05 crash (examples/puts.yaml): the journal shows the put
ordered, filled, marked to model while held, and sold back by unhedge at calm; the run summary
shows its premium and what it returned; a recorded vol index reprices the marks."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from bot.app.runner import run_replay
from bot.app.wiring import Runtime, build
from bot.cli import app
from bot.clock import SimClock
from bot.config import load_settings
from bot.config.settings import Settings
from bot.engine.summary import summarize
from bot.secrets import Secrets
from bot.sources.files import open_tape
from bot.sources.prices import read_prices
from bot.sources.replay import merge
from tests.recorders import Quiet

DATA = Path(str(files("bot").joinpath("data")))
TAPE = DATA / "binance-btcusdt_2024-12-04_06.csv"
PRICE_FILE = DATA / "BTCUSDT-5m_2024-12-04_06.csv"
EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "puts.yaml"


async def _replay(journal: Path, settings: Settings) -> Runtime:
    rt = build(
        settings,
        Secrets(_env_file=None),  # type: ignore[call-arg]
        mode="replay",
        identity="bundled-crash-puts",
        journal_url=str(journal),
        notifiers=[Quiet()],
    )
    assert isinstance(rt.clock, SimClock)
    events = list(merge(open_tape(TAPE), read_prices(PRICE_FILE)))
    await run_replay(rt.orchestrator, rt.clock, events, None, rt.resuming, lambda n, e: None)
    return rt


def _entries(rt: Runtime) -> list[dict[str, Any]]:
    everything = rt.journal.recent(limit=100_000)
    return [e for e in everything if e["payload"].get("session") == rt.session]


async def test_puts_policy_journals_order_fill_marks_and_unwind(tmp_path: Path) -> None:
    rt = await _replay(tmp_path / "puts.sqlite", load_settings(EXAMPLE))
    try:
        entries = _entries(rt)
        sent = [e["payload"] for e in entries if e["kind"] == "order_sent"]
        buy = next(p for p in sent if p["instrument"] == "option" and p["side"] == "buy")
        put = buy["symbol"]
        assert put.startswith("BTC/USD:BTC-") and put.endswith("-90000-P")
        assert (buy["kind"], buy["reduce_only"]) == ("limit", False)
        sell = next(p for p in sent if p["symbol"] == put and p["side"] == "sell")
        assert (sell["kind"], sell["reduce_only"]) == ("market", True)  # unhedge at calm
        fills = [e for e in entries if e["kind"] == "fill" and e["payload"]["symbol"] == put]
        bought, sold = (f["payload"] for f in fills)
        assert (bought["side"], sold["side"]) == ("buy", "sell")
        assert bought["amount"] == sold["amount"] == pytest.approx(buy["amount"])
        assert bought["price"] <= buy["price"]  # filled at the ask, at or below the limit
        marks = [e for e in entries if e["kind"] == "option_mark" and e["payload"]["symbol"] == put]
        # every mark lies between the buy and the sale, and the wick shows in them
        assert len(marks) > 20
        assert fills[0]["id"] < marks[0]["id"] and marks[-1]["id"] < fills[1]["id"]
        best = max(m["payload"]["mark_usd"] for m in marks)
        assert best > 2 * bought["price"] and sold["price"] > bought["price"]
        assert min(m["payload"]["underlying"] for m in marks) < 94_500
        # the summary: premium paid, what the put returned, and nothing left held
        s = summarize(rt.journal, rt.session)
        assert s.option_premium_usd == pytest.approx(bought["amount"] * bought["price"])
        assert s.option_sold_usd == pytest.approx(sold["amount"] * sold["price"])
        assert s.option_held_usd == 0.0 and s.option_marks == len(marks)
        fees = bought["fee_usd"] + sold["fee_usd"]
        assert s.option_pnl_usd == pytest.approx(s.option_sold_usd - s.option_premium_usd - fees)
        assert s.option_pnl_usd > 0
        paper = rt.orchestrator.paper
        assert paper is not None and paper.options == {}
    finally:
        await rt.close()


async def test_a_recorded_vol_index_reprices_the_marks(tmp_path: Path) -> None:
    data = yaml.safe_load(EXAMPLE.read_text())
    # Generated for this test, not recorded: a DVOL-style series at 50%, 90% from 22:30 UTC.
    vol = tmp_path / "dvol-generated.csv"
    vol.write_text("timestamp,open,high,low,close\n1733356800000,50,50,50,50\n"
                   "1733437800000,90,90,90,90\n")  # fmt: skip
    data["paper"]["options"]["vol_file"] = str(vol)
    rt = await _replay(tmp_path / "vol.sqlite", Settings.model_validate(data))
    try:
        marks = [e["payload"] for e in _entries(rt) if e["kind"] == "option_mark"]
        before = {round(m["iv"], 6) for m in marks if m["ts_ms"] < 1733437800000}
        after = {round(m["iv"], 6) for m in marks if m["ts_ms"] >= 1733437800000}
        assert before == {0.5} and after == {0.9}
    finally:
        await rt.close()


def test_liqguard_replay_with_the_puts_example(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("bot.app.runner.setup_logging", lambda *a, **k: None)
    args = ["replay", str(TAPE), "--prices", str(PRICE_FILE), "--config", str(EXAMPLE)]
    result = CliRunner().invoke(app, [*args, "--journal", str(tmp_path / "cli.sqlite")])
    assert result.exit_code == 0, result.output
    assert "Options (paper model, not a market)" in result.output
    assert "1.2 for $" in result.output  # the 1.2 puts bought were sold back
    listing = CliRunner().invoke(
        app, ["journal", "--journal", str(tmp_path / "cli.sqlite"), "--kind", "option_mark"]
    )
    assert listing.exit_code == 0 and "marked" in listing.output and "iv 60%" in listing.output
