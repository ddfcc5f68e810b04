"""Reaction latency: websocket frame that crosses the threshold -> order request at the venue.

The local Binance (tests/localexchange) runs in its own process and plays a cascade cut from
the bundled 2024-12-05 tape into bursts; each burst's last frame crosses the detector's
threshold. This process runs the real pipeline as `liqguard run --live` builds it (bot.app.wiring):
ccxt.pro stream -> Detector -> Orchestrator (policy, risk, auto approval, SQLite journal) ->
CcxtBroker -> ccxt REST. Both sides stamp time.perf_counter_ns (CLOCK_MONOTONIC, one clock
for every process on the machine): the server when the crossing frame leaves and when the
order request arrives.

Floor, measured alone in the same run: ccxt's own cost of an order, from the call of
`create_order` in this process to the request's arrival at the server.

    .venv/bin/python bench/reaction_latency.py [--reactions 200] [--gap-s 0.7]
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bot.app.live import create_live_sources  # noqa: E402
from bot.app.wiring import build  # noqa: E402
from bot.config.loader import load_settings  # noqa: E402
from bot.config.rules import RuleConfig  # noqa: E402
from bot.detector import Detector  # noqa: E402
from bot.events import Anomaly  # noqa: E402
from bot.logs import setup_logging  # noqa: E402
from bot.sim.localexchange import local_secrets  # noqa: E402
from bot.sim.localexchange.tapes import tape_messages  # noqa: E402
from bot.sources.venues import parse_raw_message  # noqa: E402

TAPE = ROOT / "bot/data/binance-btcusdt_2024-12-04_06.csv"
THRESHOLD_USD = 50_000.0
BURST_SPACING_MS = 10_000  # event time between bursts: longer than window + escalation
RULE = RuleConfig(name="bench", window_s=1.0, threshold_usd=THRESHOLD_USD, escalation_window_s=2.0)


def make_bursts(n: int) -> list[list[dict[str, Any]]]:
    """Consecutive tape messages grouped so each group's sum crosses the threshold at its end."""
    tape = tape_messages(TAPE)
    bursts: list[list[dict[str, Any]]] = []
    i = 0
    while len(bursts) < n:
        burst, usd = [], 0.0
        while usd < THRESHOLD_USD:
            msg = tape[i % len(tape)]
            i += 1
            usd += sum(liq.notional_usd for liq in parse_raw_message(msg))
            burst.append(msg)
        start_ms = 1_733_400_000_000 + len(bursts) * BURST_SPACING_MS
        bursts.append([_retimed(m, start_ms + k) for k, m in enumerate(burst)])
    return bursts


def _retimed(msg: dict[str, Any], ts_ms: int) -> dict[str, Any]:
    return {**msg, "E": ts_ms + 1, "o": {**msg["o"], "T": ts_ms}}


def check_crossings(bursts: list[list[dict[str, Any]]]) -> int:
    """The detector, offline, must fire exactly on each burst's last frame."""
    det = Detector([RULE])
    fired = []
    for burst in bursts:
        for msg in burst:
            for liq in parse_raw_message(msg):
                fired += [e.ts_ms for e in det.on_liquidation(liq) if isinstance(e, Anomaly)]
    want = [b[-1]["o"]["T"] for b in bursts]
    if fired != want:
        raise SystemExit(f"bench setup: anomalies {len(fired)} != bursts {len(want)}")
    return len(fired)


def stats_us(values_ns: list[int]) -> tuple[float, float, float]:
    arr = np.array(values_ns, dtype=float) / 1000
    return float(np.percentile(arr, 50)), float(np.percentile(arr, 99)), float(arr.max())


async def measure_floor(
    broker: Any, base: str, session: aiohttp.ClientSession, n: int
) -> list[int]:
    """ccxt alone: create_order called -> request arrived at the server."""
    ex = broker.exchange
    starts: dict[str, int] = {}
    for k in range(n):
        cid = f"floor-{k}"
        starts[cid] = time.perf_counter_ns()
        await ex.create_order(
            "ETH/USDT:USDT",
            "market",
            "sell",
            0.01,
            None,
            {"clientOrderId": cid, "reduceOnly": True},
        )
        await asyncio.sleep(0.25)  # let ccxt's limiter refill (an order weighs 4 x 50 ms)
    async with session.get(f"{base}/_ctl/orders") as resp:
        arrived = {o["client_id"]: o["arrived_ns"] for o in await resp.json()}
    return [arrived[cid] - t0 for cid, t0 in starts.items()]


async def run(reactions: int, gap_s: float) -> None:
    setup_logging("WARNING", None)
    bursts = make_bursts(reactions)
    check_crossings(bursts)
    proc = subprocess.Popen(  # noqa: ASYNC220 - once, before anything is timed
        [sys.executable, "-m", "bot.sim.localexchange"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline().split()[1])
        base = f"http://127.0.0.1:{port}"
        await _bench(base, port, bursts, gap_s)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


async def _bench(base: str, port: int, bursts: list[list[dict[str, Any]]], gap_s: float) -> None:
    endpoints = {"rest": base, "ws": f"ws://127.0.0.1:{port}/ws", "allow_insecure": True}
    settings = load_settings(
        overrides={
            "mode": "live",
            "rules": [RULE.model_dump()],
            "policy": {
                "levels": {
                    1: [
                        {
                            "strategy": "reduce_exposure",
                            "params": {"fraction": 0.01, "symbols": ["BTCUSDT"], "sides": "both"},
                        }
                    ]
                },
                "calm": [],
            },
            "risk": {"max_actions_per_hour": 1_000_000, "max_order_usd": 1_000_000},
            "exchanges": {"venues": {"binance": {"endpoints": endpoints}}},
        }
    )
    secrets = local_secrets()
    async with aiohttp.ClientSession() as http:
        for symbol, amount in (("BTCUSDT", 200.0), ("ETHUSDT", 1000.0)):
            await http.post(f"{base}/_ctl/position", json={"symbol": symbol, "amount": amount})
        with tempfile.TemporaryDirectory() as tmp:
            runtime = build(
                settings,
                secrets,
                mode="live",
                identity="bench",
                journal_url=str(Path(tmp) / "bench.sqlite"),
                approvals="auto",
            )
            source = create_live_sources(settings, secrets, ["binance"])[0]
            marks = stamp_stages(source, runtime.broker)
            runner = asyncio.create_task(runtime.orchestrator.run(source.events()))
            try:
                await runtime.broker.portfolio()  # markets + account read once, before timing
                floor_ns = await measure_floor(runtime.broker, base, http, len(bursts))
                await http.get(f"{base}/_ctl/subscribed")
                await asyncio.sleep(gap_s)
                body = {"bursts": bursts, "gap_s": gap_s, "wait_order_s": 3.0}
                async with http.post(f"{base}/_ctl/bursts", json=body) as resp:
                    results = await resp.json()
            finally:
                runner.cancel()
                await asyncio.gather(runner, return_exceptions=True)
                await source.close()
                await runtime.close()
    report(results, floor_ns, marks)


def stamp_stages(source: Any, broker: Any) -> list[tuple[int, str]]:
    """Time marks inside this process: a raw frame reaches our tap; the broker is asked."""
    marks: list[tuple[int, str]] = []
    exchange = source.streams[0].exchange
    tap = exchange.raw_sink

    def timed_tap(message: Any) -> None:
        marks.append((time.perf_counter_ns(), "tap"))
        tap(message)

    exchange.raw_sink = timed_tap
    submit = broker.submit

    async def timed_submit(intent: Any, client_id: str) -> Any:
        marks.append((time.perf_counter_ns(), "submit"))
        return await submit(intent, client_id)

    broker.submit = timed_submit
    return marks


def stages(results: list[dict[str, Any]], marks: list[tuple[int, str]]) -> list[list[int]]:
    """Per reaction: frame -> tap, tap -> submit, submit -> arrival (ns)."""
    out: list[list[int]] = [[], [], []]
    for r in results:
        sent, arrived = r["sent_ns"], r["arrived_ns"]
        if arrived is None:
            continue
        inside = [(t, tag) for t, tag in marks if sent <= t <= arrived]
        submits = [t for t, tag in inside if tag == "submit"]
        taps = [t for t, tag in inside if tag == "tap" and submits and t <= submits[0]]
        if not submits or not taps:
            continue
        for k, value in enumerate((taps[0] - sent, submits[0] - taps[0], arrived - submits[0])):
            out[k].append(value)
    return out


def report(
    results: list[dict[str, Any]], floor_ns: list[int], marks: list[tuple[int, str]]
) -> None:
    reacted = [r["arrived_ns"] - r["sent_ns"] for r in results if r["arrived_ns"] is not None]
    missed = sum(r["arrived_ns"] is None for r in results)
    extra = sum(max(0, r["orders"] - 1) for r in results)
    rp50, rp99, rmax = stats_us(reacted)
    fp50, fp99, fmax = stats_us(floor_ns)
    print(f"reactions: {len(reacted)} of {len(results)} anomalies (missed {missed}, extra {extra})")
    print(f"{'':34}{'p50':>10}{'p99':>10}{'max':>10}   (microseconds)")
    print(f"{'frame -> order at venue':34}{rp50:>10.0f}{rp99:>10.0f}{rmax:>10.0f}")
    print(f"{'floor: ccxt create_order alone':34}{fp50:>10.0f}{fp99:>10.0f}{fmax:>10.0f}")
    print(f"{'above the floor':34}{rp50 - fp50:>10.0f}{rp99 - fp99:>10.0f}")
    names = (
        "  frame -> our raw tap (ccxt.pro)",
        "  tap -> broker.submit (pipeline)",
        "  submit -> arrival (broker+ccxt)",
    )
    for name, values in zip(names, stages(results, marks), strict=True):
        if values:
            p50, p99, top = stats_us(values)
            print(f"{name:34}{p50:>10.0f}{p99:>10.0f}{top:>10.0f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reactions", type=int, default=200)
    parser.add_argument("--gap-s", type=float, default=1.2, help="quiet time between bursts")
    args = parser.parse_args()
    asyncio.run(run(args.reactions, args.gap_s))
