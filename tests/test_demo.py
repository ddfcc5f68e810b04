"""The `make run` demo (bot/data/demo.yaml on the bundled 2024-12-05 crash): one run climbs the
whole ladder and shows each kind of step, with a console approver nobody answers."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from importlib.resources import files
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from bot.app.runner import run_replay
from bot.app.wiring import build
from bot.approvals import ConsoleApprover
from bot.brokers.paper import PaperBroker
from bot.clock import SimClock
from bot.config import load_settings
from bot.secrets import Secrets
from bot.sources.files import open_tape
from bot.sources.prices import read_prices
from bot.sources.replay import merge
from tests.recorders import Quiet

DATA = Path(str(files("bot").joinpath("data")))
DEMO = DATA / "demo.yaml"


async def nobody() -> AsyncIterator[str]:
    """The console of a person who never types (stdin at its end)."""
    for line in ():
        yield line


async def test_one_demo_run_shows_every_kind_of_step(tmp_path: Path) -> None:
    settings = load_settings(DEMO)
    screen = io.StringIO()
    approver = ConsoleApprover(lines=nobody(), console=Console(file=screen, width=200))
    rt = build(
        settings,
        Secrets(_env_file=None),  # type: ignore[call-arg]
        mode="replay",
        identity="demo",
        journal_url=str(tmp_path / "demo.sqlite"),
        approver=approver,
        notifiers=[Quiet()],
    )
    assert isinstance(rt.clock, SimClock)
    tape = open_tape(DATA / "binance-btcusdt_2024-12-04_06.csv")
    prices = read_prices(DATA / "BTCUSDT-5m_2024-12-04_06.csv")
    try:
        await run_replay(rt.orchestrator, rt.clock, merge(tape, prices), None, False)
        rows = rt.journal.find()
        paper, baseline = (rt.journal.get_state(f"{k}:{rt.session}") for k in ("paper", "baseline"))
    finally:
        await approver.close()
        rt.journal.close()

    def of(kind: str) -> list[dict[str, Any]]:
        return [r["payload"] for r in rows if r["kind"] == kind]

    strategy = {p["action_id"]: p["strategy"] for p in of("action_planned")}
    executed = {p["action_id"] for p in of("action_end") if p["status"] == "executed"}
    sent = of("order_sent")
    fills = {p["client_id"]: p for p in of("fill")}

    # a stop placed, then tightened: a later stop_loss cancels it for a higher one
    stops = [o for o in sent if o["kind"] == "stop"]
    assert len(stops) >= 2 and {strategy[o["action_id"]] for o in stops} == {"stop_loss"}
    assert [o["stop_price"] for o in stops] == sorted(o["stop_price"] for o in stops)
    assert stops[-1]["stop_price"] > stops[0]["stop_price"]
    assert any(o["kind"] == "cancel" and strategy[o["action_id"]] == "stop_loss" for o in sent)

    # a cut in slices, each filled at its own time
    sliced = [o for o in sent if o["slice_count"] > 1 and o["client_id"] in fills]
    assert len(sliced) >= 2 and {strategy[o["action_id"]] for o in sliced} == {"reduce_exposure"}
    assert len({fills[o["client_id"]]["ts_ms"] for o in sliced}) == len(sliced)

    # a hedge that asked the console, where nobody answered: its on_timeout (execute) applied
    [hedge_id] = [a for a in executed if strategy[a] == "hedge"]
    [request] = [p for p in of("approval_request") if p["action_id"] == hedge_id]
    assert request["approver"] == "console" and request["on_timeout"] == "execute"
    [decision] = [p for p in of("decision") if p["action_id"] == hedge_id]
    assert decision["by"] == "timeout" and decision["approved"]
    assert "Approve L2 hedge?" in screen.getvalue()
    assert any(f["action_id"] == hedge_id and f["side"] == "sell" for f in fills.values())

    # the halt: the ladder moved by the strategy
    assert [(p["state"], p["by"]) for p in of("ladder")] == [("REDUCING", "strategy:halt")]

    # the unhedge on calm: the hedge bought back after the cascade
    [unhedge_id] = [a for a in executed if strategy[a] == "unhedge"]
    [buy] = [f for f in fills.values() if f["action_id"] == unhedge_id]
    assert buy["side"] == "buy" and buy["venue"] == "bybit"
    assert buy["ts_ms"] >= max(p["ts_ms"] for p in of("calm"))  # the last calm: the crash's

    # what the docs claim of the demo: the response cuts the worst drawdown
    assert paper is not None and baseline is not None
    response, untouched = (
        PaperBroker(settings.paper, SimClock()),
        PaperBroker(settings.paper, SimClock()),
    )
    response.restore(paper)
    untouched.restore(baseline)
    assert response.max_drawdown_usd < untouched.max_drawdown_usd


PROBE = """
import asyncio
from bot.approvals.console import stdin_lines

async def main() -> None:
    print("lines:", len([line async for line in stdin_lines()]))

asyncio.run(asyncio.wait_for(main(), 30))
"""


@pytest.mark.parametrize("stdin", ["at its end", "closed"])
def test_console_answers_end_quietly_without_a_terminal(stdin: str) -> None:
    """`make run` piped or under a service manager: no answer can come, and nothing breaks."""
    kw: dict[str, Any] = (
        {"stdin": subprocess.DEVNULL}
        if stdin == "at its end"
        else {"preexec_fn": lambda: os.close(0)}  # no fd 0 at all: sys.stdin is None
    )
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, **kw)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "lines: 0" and "Traceback" not in done.stderr
