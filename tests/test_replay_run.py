"""The bundled 2024-12-05 crash through the whole pipeline: the journal holds the detector's
anomalies, the policy's actions and their fills; a restart mid-replay repeats nothing; and
`liqguard run` works end to end."""

from __future__ import annotations

import asyncio
import re
from importlib.resources import files
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from bot.app.runner import run_replay
from bot.app.wiring import Runtime, build
from bot.cli import app
from bot.clock import SimClock
from bot.config import load_settings
from bot.config.journal import JournalConfig
from bot.config.settings import Settings
from bot.detector import Detector
from bot.engine import ids
from bot.events import Anomaly, Calm, Liquidation, PriceTick
from bot.secrets import Secrets
from bot.sources.files import open_tape
from bot.sources.prices import read_prices
from bot.sources.replay import merge
from tests.recorders import Quiet

TAPE = Path(str(files("bot").joinpath("data", "binance-btcusdt_2024-12-04_06.csv")))
PRICES_CSV = Path(str(files("bot").joinpath("data", "BTCUSDT-5m_2024-12-04_06.csv")))
PRICES = read_prices(PRICES_CSV)
DEMO = Path(str(files("bot").joinpath("data", "demo.yaml")))  # `liqguard run`'s book and policy


def _runtime(journal: Path | str, settings: Settings | None = None) -> Runtime:
    return build(
        settings or load_settings(DEMO),
        Secrets(_env_file=None),  # type: ignore[call-arg]
        mode="replay",
        identity="bundled-crash",
        journal_url=str(journal),
        notifiers=[Quiet()],
    )


def _events() -> list[Liquidation | PriceTick]:
    return list(merge(open_tape(TAPE), PRICES))


async def _run(rt: Runtime, stop_at: int | None = None, crash: bool = False) -> None:
    assert isinstance(rt.clock, SimClock)

    class Crash(Exception):
        pass

    def on_event(n: int, _e: object) -> None:
        if stop_at is not None and n == stop_at:
            if crash:
                raise Crash  # a hard crash: no checkpoint on the way out
            task = asyncio.current_task()
            assert task is not None
            task.cancel()  # Ctrl-C

    try:
        await run_replay(rt.orchestrator, rt.clock, _events(), None, rt.resuming, on_event)
    except (Crash, asyncio.CancelledError):
        for t in list(rt.orchestrator.tasks):
            t.cancel()
        await asyncio.gather(*rt.orchestrator.tasks, return_exceptions=True)
    finally:
        rt.journal.close()


def _payloads(rt: Runtime, kind: str) -> list[dict[str, Any]]:
    return [e["payload"] for e in rt.journal.find(kinds=[kind])]


def _expected(settings: Settings, session: str) -> tuple[list[Anomaly | Calm], set[str]]:
    """What the pure detector finds on the tape, and the action ids the policy implies."""
    detector = Detector(settings.rules)
    found: list[Anomaly | Calm] = []
    for event in _events():
        if isinstance(event, Liquidation):
            found += detector.on_liquidation(event)
        else:
            found += detector.on_tick(event.ts_ms)
    action_ids = set()
    for ev in found:
        block = settings.policy.for_rule(ev.rule)
        if isinstance(ev, Anomaly):
            n, tag = len(block.actions_for_level(ev.level)[1]), ev.level
        else:
            n, tag = len(block.calm), "calm"
        action_ids |= {ids.action_id(session, ev.rule, ev.ts_ms, tag, i) for i in range(n)}
    return found, action_ids


def _outcome(rt: Runtime) -> dict[str, Any]:
    rt.journal = type(rt.journal)(rt.journal.url)
    return {
        "ends": {p["action_id"]: p.get("status") for p in _payloads(rt, "action_end")}
        | {p["action_id"]: "plan failed" for p in _payloads(rt, "strategy_failed")},
        "sent": sorted(p["client_id"] for p in _payloads(rt, "order_sent")),
        "fills": sorted((p["client_id"], round(p["amount"], 9)) for p in _payloads(rt, "fill")),
        "paper": rt.journal.get_state(f"paper:{rt.session}"),
    }


_OUTCOMES: dict[str, dict[str, Any]] = {}


async def test_bundled_crash_journal_matches_detector_and_policy(journal_url: str) -> None:
    rt = _runtime(journal_url)
    await _run(rt)
    found, action_ids = _expected(rt.settings, rt.session)
    out = _outcome(rt)

    anomalies = [(p["rule"], p["ts_ms"], p["level"]) for p in _payloads(rt, "anomaly")]
    assert anomalies == [(a.rule, a.ts_ms, a.level) for a in found if isinstance(a, Anomaly)]
    assert len(_payloads(rt, "calm")) == sum(isinstance(c, Calm) for c in found)
    assert max(level for _, _, level in anomalies) >= 3  # the crash escalates
    assert set(out["ends"]) == action_ids  # every policy action ran to an end, once
    # every fill belongs to an order the bot sent, of an action that executed
    executed = {aid for aid, s in out["ends"].items() if s in ("executed", "partial")}
    assert out["fills"] and {cid.rsplit("-", 1)[0] for cid, _ in out["fills"]} <= executed
    assert {cid for cid, _ in out["fills"]} <= set(out["sent"])
    # the paper account is the starting one moved by exactly the journaled fills (net sizes)
    net: dict[tuple[str, str], float] = {}
    for p in rt.settings.paper.positions:
        net[(p.venue, p.symbol)] = p.size if p.side == "long" else -p.size
    for f in _payloads(rt, "fill"):
        key = (f["venue"], f["symbol"])
        net[key] = net.get(key, 0.0) + (f["amount"] if f["side"] == "buy" else -f["amount"])
    held = {
        (p["venue"], p["symbol"]): p["size"] if p["side"] == "long" else -p["size"]
        for p in out["paper"]["positions"]
    }
    assert held == pytest.approx({k: v for k, v in net.items() if abs(v) > 1e-12})
    # SQLite and PostgreSQL journal the same run the same way
    _OUTCOMES[journal_url.split(":", 1)[0]] = out
    if len(_OUTCOMES) == 2:
        assert _OUTCOMES["sqlite"] == _OUTCOMES["postgresql+psycopg"]


_STRAIGHT: dict[str, Any] = {}


@pytest.mark.parametrize("crash", [False, True], ids=["ctrl-c", "hard-crash"])
async def test_restart_mid_replay_repeats_no_action(
    tmp_path: Path, crash: bool, journal_url: str
) -> None:
    demo = load_settings(DEMO)
    settings = demo.model_copy(update={"journal": JournalConfig(checkpoint_every_events=97)})
    if not _STRAIGHT:  # one uninterrupted run, shared by both cases
        straight = _runtime(tmp_path / "straight.sqlite", settings)
        await _run(straight)
        _STRAIGHT.update(_outcome(straight))
        _STRAIGHT["anomaly_ts"] = {p["ts_ms"] for p in _payloads(straight, "anomaly")}
    want = _STRAIGHT

    path = journal_url  # the restarted run, on each back end
    anomaly_events = [
        n
        for n, e in enumerate(_events(), start=1)
        if isinstance(e, Liquidation) and e.ts_ms in want["anomaly_ts"]
    ]
    stop_at = anomaly_events[len(anomaly_events) // 2] + 1  # mid-cascade
    first = _runtime(path, settings)
    await _run(first, stop_at=stop_at, crash=crash)
    part = _outcome(first)
    assert 0 < len(part["ends"]) < len(want["ends"])

    second = _runtime(path, settings)
    assert second.resuming and second.session == first.session
    await _run(second)
    got = _outcome(second)
    assert got["ends"].keys() == want["ends"].keys()
    assert got["sent"] == want["sent"]  # same client ids, none sent twice
    assert [cid for cid, _ in got["fills"]] == [cid for cid, _ in want["fills"]]
    if not crash:  # a clean stop resumes exactly where it was
        assert got["fills"] == want["fills"]
        assert _shape(got["paper"]) == pytest.approx(_shape(want["paper"]))


def _shape(paper: dict[str, Any]) -> dict[str, float]:
    return {f"{p['side']} {p['symbol']}": p["size"] for p in paper["positions"]} | {
        "balance_usd": paper["balance_usd"]
    }


def test_liqguard_run_end_to_end(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    # logging to CliRunner's stream would outlive it (closed file): keep pytest's sinks
    monkeypatch.setattr("bot.app.runner.setup_logging", lambda *a, **k: None)
    journal = tmp_path / "run.sqlite"
    result = CliRunner().invoke(app, ["run", "--speed", "max", "--journal", str(journal)])
    assert result.exit_code == 0, result.output
    assert "Run summary" in result.output and "untouched" in result.output
    assert "bot/data/demo.yaml" in result.output  # the demo's own book and policy, said so
    for strategy in ("stop_loss", "reduce_exposure", "hedge", "halt", "unhedge"):
        assert re.search(rf"{strategy} +│ executed", result.output), strategy
    listing = CliRunner().invoke(app, ["journal", "--journal", str(journal), "-n", "5"])
    assert listing.exit_code == 0 and "journal" in listing.output
    bad = tmp_path / "bad.yaml"
    bad.write_text("policy:\n  levels:\n    2:\n      - {strategy: hedge, params: {beta: 9}}\n")
    failed = CliRunner().invoke(app, ["run", "--config", str(bad), "--journal", str(journal)])
    assert failed.exit_code == 2 and "policy.levels.2[0].params.beta" in failed.output


def test_init_writes_a_loadable_config(tmp_path: Path) -> None:
    path = tmp_path / "liqguard.yaml"
    assert CliRunner().invoke(app, ["init", str(path)]).exit_code == 0
    written = load_settings(path)
    assert (written.rules, written.policy) == (Settings().rules, Settings().policy)
    assert CliRunner().invoke(app, ["init", str(path)]).exit_code == 2  # no overwrite


def test_liqguard_replay_on_postgres_prints_the_summary_sqlite_prints(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pg: Any
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("bot.app.runner.setup_logging", lambda *a, **k: None)
    args = ["replay", str(TAPE), "--prices", str(PRICES_CSV), "--journal"]
    outputs = []
    for url in (f"sqlite:///{tmp_path / 'j.sqlite'}", pg.url()):
        result = CliRunner().invoke(app, [*args, url], env={"COLUMNS": "200"})
        assert result.exit_code == 0, result.output
        summary = result.output.split("Run summary", 1)[1]
        outputs.append(summary.split("journal: ", 1)[0])  # the last line names the journal
        listing = CliRunner().invoke(app, ["journal", "--journal", url, "-n", "3"])
        assert listing.exit_code == 0 and "order_sent" in _journal_kinds(url)
    assert "orders sent" in outputs[0] and outputs[0] == outputs[1]


def _journal_kinds(url: str) -> set[str]:
    from bot.journal import SqlJournal

    j = SqlJournal(url)
    try:
        return set(j.count_by_kind())
    finally:
        j.close()
