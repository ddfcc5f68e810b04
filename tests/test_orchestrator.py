"""The orchestrator on small hand-made tapes: policy errors with paths, a strategy that raises,
confirm approvals timing out in simulated time, the halt ladder, notify-only actions."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, ClassVar

import pytest
from pydantic import BaseModel, ConfigDict

from bot.approvals import ConsoleApprover
from bot.brokers.paper import PaperBroker
from bot.clock import SimClock
from bot.config import ConfigError, load_settings
from bot.config.settings import Settings
from bot.engine import ids
from bot.engine.orchestrator import Orchestrator
from bot.engine.policy import check_policy
from bot.engine.summary import summarize
from bot.events import (
    Anomaly,
    JournalKind,
    Liquidation,
    Notice,
    PriceTick,
    TradingStateChanged,
)
from bot.interfaces import Approver, Journal
from bot.journal import MemoryJournal, SqlJournal, default_journal_url
from bot.notify.format import render
from bot.sources.replay import replay_events
from strategies.base import Plan, StrategyContext
from strategies.registry import register
from tests.engines import paper_orchestrator

V, S = "binance-usdm", "BTCUSDT"
RULE = {"name": "t", "window_s": 60, "threshold_usd": 1000, "factor": 2, "escalation_window_s": 120}
PAPER = {
    "balance_usd": 50_000,
    "positions": [{"venue": V, "symbol": S, "size": 1.0, "leverage": 2}],
}


class _NoParams(BaseModel):
    model_config = ConfigDict(extra="forbid")


@register
class Explodes:
    """A plugin that fails: the orchestrator must journal it and go on."""

    name: ClassVar[str] = "test_explodes"
    Params: ClassVar[type[BaseModel]] = _NoParams
    reduces_exposure: ClassVar[bool] = True

    def plan(self, ctx: StrategyContext, params: BaseModel) -> Plan:
        raise RuntimeError("boom")


class Recorder:
    name = "recorder"

    def __init__(self) -> None:
        self.events: list[object] = []

    async def notify(self, event: object) -> None:
        render(event)  # every event must render
        self.events.append(event)

    async def close(self) -> None:
        return None


def _make(
    tmp_path: Path,
    policy: dict[str, Any],
    approver: Approver | None = None,
    journal: Journal | None = None,
    **extra: Any,
) -> tuple[Orchestrator, Recorder, SimClock]:
    settings = Settings.model_validate({"rules": [RULE], "policy": policy, "paper": PAPER, **extra})
    clock = SimClock(0)
    recorder = Recorder()
    paper = PaperBroker(settings.paper, clock)
    journal = journal or SqlJournal(default_journal_url(tmp_path / "j.sqlite"))
    orch = paper_orchestrator(settings, paper, journal, recorder, clock, approver)
    return orch, recorder, clock


def _liq(ts_ms: int, usd: float) -> Liquidation:
    return Liquidation(ts_ms, V, S, "long", usd, price=100_000.0, quantity=usd / 100_000)


def _price(ts_ms: int, price: float = 100_000.0) -> PriceTick:
    return PriceTick(ts_ms, S, price)


def _kinds(orch: Orchestrator, kind: str) -> list[dict[str, Any]]:
    return [e["payload"] for e in orch.journal.find(kinds=[kind])]


async def _play(orch: Orchestrator, clock: SimClock, events: list[Any]) -> None:
    await orch.run(replay_events(events, clock, None))


# -- policy validation ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("policy", "message"),
    [
        (
            {"levels": {2: [{"strategy": "reduce_exposure", "params": {"fraction": 1.5}}]}},
            "policy.levels.2[0].params.fraction: value 1.5: Input should be less than or equal",
        ),
        (
            {"levels": {1: [{"strategy": "nope"}]}},
            "policy.levels.1[0].strategy: value 'nope': unknown strategy",
        ),
        (
            {"calm": [{"strategy": "unhedge", "params": {"fractoin": 1}}]},
            "policy.calm[0].params.fractoin: unknown parameter 'fractoin'",
        ),
        (
            {"rules": {"t": {"levels": {1: [{"strategy": "hedge", "params": {"beta": 0}}]}}}},
            "policy.rules.t.levels.1[0].params.beta: value 0",
        ),
    ],
)
def test_policy_errors_name_the_path(policy: dict[str, Any], message: str) -> None:
    settings = Settings.model_validate({"policy": policy})
    with pytest.raises(ConfigError) as err:
        check_policy(settings.policy, "liqguard.yaml")
    assert message in str(err.value)
    assert str(err.value).startswith("liqguard.yaml: invalid policy")


def test_policy_structure_errors_come_from_the_loader(tmp_path: Path) -> None:
    path = tmp_path / "liqguard.yaml"
    path.write_text("policy:\n  levels:\n    1:\n      - {strategy: stop_loss, approval: maybe}\n")
    with pytest.raises(ConfigError, match=r"policy\.levels.*approval: value 'maybe'"):
        load_settings(path)


def test_default_policy_uses_the_highest_configured_level() -> None:
    policy = Settings().policy
    assert policy.actions_for_level(7)[0] == max(policy.levels)
    assert policy.actions_for_level(1)[0] == 1
    assert len(check_policy(policy)) == sum(len(a) for a in policy.levels.values()) + len(
        policy.calm
    )


# -- the pipeline -----------------------------------------------------------------------------
async def test_a_failing_strategy_is_journaled_and_the_rest_still_run(tmp_path: Path) -> None:
    register(Explodes)  # again: a registry reload in another test module forgets plugins
    policy = {"levels": {1: [{"strategy": "test_explodes"}, {"strategy": "stop_loss"}]}, "calm": []}
    orch, rec, clock = _make(tmp_path, policy)
    await _play(orch, clock, [_price(0), _liq(1_000, 1_500)])
    (failed,) = _kinds(orch, "strategy_failed")
    assert "boom" in failed["error"] and failed["path"] == "policy.levels.1[0]"
    assert any(isinstance(e, Notice) and "test_explodes" in e.title for e in rec.events)
    ends = {p["strategy"]: p["status"] for p in _kinds(orch, "action_end")}
    assert ends == {"stop_loss": "executed"}
    (sent,) = _kinds(orch, "order_sent")
    assert sent["kind"] == "stop" and sent["reduce_only"]
    anomaly = next(e for e in rec.events if isinstance(e, Anomaly))
    assert sent["client_id"] == f"{ids.action_id('s1', 't', anomaly.ts_ms, 1, 1)}-0"


async def test_confirm_times_out_in_simulated_time(tmp_path: Path) -> None:
    policy = {
        "levels": {
            1: [
                {
                    "strategy": "reduce_exposure",
                    "params": {"fraction": 0.5},
                    "approval": "confirm",
                    "timeout_s": 60,
                    "on_timeout": "execute_if_reducing",
                }
            ],
            2: [
                {
                    "strategy": "hedge",
                    "approval": "confirm",
                    "timeout_s": 30,
                    "on_timeout": "cancel",
                }
            ],
        },
        "calm": [],
    }
    never = ConsoleApprover(lines=_silent(), console=None)
    orch, _rec, clock = _make(tmp_path, policy, approver=never)
    tape = [
        _price(0),
        _liq(1_000, 1_500),
        _price(50_000, 99_000.0),
        _liq(55_000, 1_000),
        _price(70_000, 98_000.0),
        _price(100_000, 97_000.0),
    ]
    await _play(orch, clock, tape)
    decisions = {p["action_id"]: p for p in _kinds(orch, "decision")}
    requests = {p["action_id"]: p for p in _kinds(orch, "approval_request")}
    assert set(decisions) == set(requests) and len(decisions) == 2
    for aid, d in decisions.items():
        assert d["by"] == "timeout" and d["ts_ms"] == requests[aid]["deadline_ts_ms"]
        assert d["state"] == "expired"
    ends = {p["strategy"]: p["status"] for p in _kinds(orch, "action_end")}
    assert ends == {"reduce_exposure": "executed", "hedge": "expired"}
    (fill,) = _kinds(orch, "fill")
    # the reduction ran at its deadline (61 s): the last price before it was 99,000
    assert fill["ts_ms"] == 61_000 and fill["price"] < 99_000.0
    assert fill["amount"] == pytest.approx(0.5)


async def test_console_answer_and_notify_only(tmp_path: Path) -> None:
    lines: asyncio.Queue[str] = asyncio.Queue()
    policy = {
        "levels": {
            1: [
                {"strategy": "stop_loss", "approval": "notify"},
                {
                    "strategy": "reduce_exposure",
                    "params": {"fraction": 0.25},
                    "approval": "confirm",
                    "timeout_s": 600,
                },
            ]
        },
        "calm": [],
    }
    approver = ConsoleApprover(lines=_from_queue(lines), console=None)
    orch, _rec, clock = _make(tmp_path, policy, approver=approver)
    lines.put_nowait("y")
    await _play(orch, clock, [_price(0), _liq(1_000, 1_500), _price(2_000)])
    ends = {p["strategy"]: p["status"] for p in _kinds(orch, "action_end")}
    assert ends == {"stop_loss": "notified", "reduce_exposure": "executed"}
    (decision,) = _kinds(orch, "decision")
    assert decision["by"].startswith("console:") and decision["ts_ms"] == 1_000
    assert [p["kind"] for p in _kinds(orch, "order_sent")] == ["market"]
    await approver.close()


async def test_halt_switches_the_ladder_and_later_actions_are_refused(tmp_path: Path) -> None:
    policy = {
        "levels": {
            1: [{"strategy": "halt"}],
            2: [{"strategy": "reduce_exposure", "params": {"fraction": 0.5}}],
        },
        "calm": [],
    }
    orch, rec, clock = _make(tmp_path, policy)
    await _play(orch, clock, [_price(0), _liq(1_000, 1_500), _liq(2_000, 1_000)])
    (ladder,) = _kinds(orch, "ladder")
    assert (ladder["previous"], ladder["state"]) == ("ACTIVE", "HALTED")
    assert any(isinstance(e, TradingStateChanged) and render(e).page for e in rec.events)
    (verdict,) = [v for v in _kinds(orch, "risk_verdict") if v["denied"]]
    assert "HALTED" in verdict["denied"][0][1]
    ends = {p["strategy"]: p["status"] for p in _kinds(orch, "action_end")}
    assert ends == {"halt": "executed", "reduce_exposure": "refused"}
    assert _kinds(orch, "order_sent") == []
    await orch.resume_trading("ops:alice")
    assert orch.risk.state.value == "ACTIVE"


async def test_ctrl_c_leaves_the_journal_consistent_and_resume_finishes(tmp_path: Path) -> None:
    policy = {
        "levels": {
            1: [
                {
                    "strategy": "reduce_exposure",
                    "params": {"fraction": 0.6, "slices": 3, "slice_interval_s": 60},
                }
            ]
        },
        "calm": [],
    }
    orch, _rec, clock = _make(tmp_path, policy)
    tape = [_price(0), _liq(1_000, 1_500)] + [_price(t * 30_000) for t in range(1, 8)]
    first_fill = asyncio.Event()

    def on_event(_n: int, _e: object) -> None:
        if _kinds(orch, "fill"):
            first_fill.set()

    task = asyncio.create_task(orch.run(replay_events(tape, clock, None, on_event=on_event)))
    await first_fill.wait()
    task.cancel()  # what Ctrl-C does to the main task
    with pytest.raises(asyncio.CancelledError):
        await task
    sent = {p["client_id"] for p in _kinds(orch, "order_sent")}
    results = {p["client_id"] for p in _kinds(orch, "order_result")}
    assert sent == results and len(sent) == 1  # nothing half-sent
    cursor = orch.journal.get_state("cursor:s1")
    assert cursor is not None and cursor["events"] == orch.counters.events
    (planned,) = _kinds(orch, "action_planned")
    assert not orch.journal.has(ids.end_key(planned["action_id"]))  # unfinished, resumable
    orch.journal.close()

    again, _rec2, clock2 = _make(tmp_path, policy)
    cursor = again.restore()
    assert cursor is not None
    await clock2.advance_to(int(cursor["ts_ms"]))
    assert await again.resume() == 1
    await again.run(replay_events(tape, clock2, None, skip=int(cursor["events"])))
    fills = _kinds(again, "fill")
    assert len(fills) == 3 and len({f["client_id"] for f in fills}) == 3
    assert sum(f["amount"] for f in fills) == pytest.approx(0.6)
    long_left = again.paper.positions[(V, S, "long")].size if again.paper else None
    assert long_left == pytest.approx(0.4)


async def _cut_short_then_resumed(
    tmp_path: Path, policy: dict[str, Any], journal: Journal, tape: list[Any]
) -> None:
    """Ctrl-C after the first fill, then a restart on the same journal that finishes."""
    orch, _rec, clock = _make(tmp_path, policy, journal=journal)
    first_fill = asyncio.Event()

    def on_event(_n: int, _e: object) -> None:
        if journal.find(kinds=[JournalKind.FILL]):
            first_fill.set()

    task = asyncio.create_task(orch.run(replay_events(tape, clock, None, on_event=on_event)))
    await first_fill.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    again, _rec2, clock2 = _make(tmp_path, policy, journal=journal)
    cursor = again.restore()
    assert cursor is not None
    await clock2.advance_to(int(cursor["ts_ms"]))
    assert await again.resume() == 1
    await again.run(replay_events(tape, clock2, None, skip=int(cursor["events"])))


async def test_the_engine_needs_only_the_journal_protocol(tmp_path: Path) -> None:
    """A TWAP cut interrupted and resumed on the in-memory journal journals what SqlJournal
    journals: the engine uses nothing beyond bot.interfaces.Journal."""
    policy = {
        "levels": {
            1: [
                {
                    "strategy": "reduce_exposure",
                    "params": {"fraction": 0.6, "slices": 3, "slice_interval_s": 60},
                }
            ]
        },
        "calm": [],
    }
    tape = [_price(0), _liq(1_000, 1_500)] + [_price(t * 30_000) for t in range(1, 8)]
    sql = SqlJournal(default_journal_url(tmp_path / "sql.sqlite"))
    memory = MemoryJournal()
    for journal in (sql, memory):
        await _cut_short_then_resumed(tmp_path, policy, journal, tape)
        summary = summarize(journal, "s1")
        assert (summary.orders_sent, summary.fills) == (3, 3)
    rows = [[(e["kind"], e["key"], e["payload"]) for e in j.find()] for j in (sql, memory)]
    assert rows[1] == rows[0]
    sql.close()


async def _silent() -> Any:
    await asyncio.Event().wait()
    yield ""  # pragma: no cover


async def _from_queue(queue: asyncio.Queue[str]) -> Any:
    while True:
        yield await queue.get()


def test_anomaly_message_says_what_a_person_needs() -> None:
    from bot.events import SymbolUsd
    from bot.notify.format import FLOOR_NOTE

    def anomaly(*venues: str) -> Anomaly:
        return Anomaly(
            rule="all",
            ts_ms=1_733_430_000_000,
            level=3,
            window_cents=640_000_000,
            threshold_cents=400_000_000,
            base_threshold_cents=100_000_000,
            long_cents=590_000_000,
            short_cents=50_000_000,
            events=1234,
            top_symbols=(SymbolUsd("BTCUSDT", 600_000_000), SymbolUsd("ETHUSDT", 40_000_000)),
            top_venues=tuple(SymbolUsd(v, 640_000_000 // len(venues)) for v in venues),
            previous_level=1,
        )

    text = render(anomaly("binance-usdm", "bybit")).text
    for part in ("L3", "$6.40M", "$4.00M", "$5.90M", "$500.0k", "1234", FLOOR_NOTE):
        assert part in text
    assert "Top symbols: BTCUSDT $6.00M, ETHUSDT $400.0k" in text
    assert "Top venues: binance-usdm $3.20M, bybit $3.20M" in text
    assert "Binance pushes" in text and "OKX" not in text
    okx = render(anomaly("okx")).text
    assert FLOOR_NOTE in okx and "OKX" in okx and "Binance" not in okx
    for complete in (("bybit",), ("aave-v3", "compound-v3"), ()):  # complete feeds: no caveat
        assert FLOOR_NOTE not in render(anomaly(*complete)).text
