"""Reaction latency: websocket frame that crosses the threshold -> order request at the venue.

The local Binance (bot/sim/localexchange) runs in its own process and plays a cascade cut from
the bundled 2024-12-04 tape into bursts; each burst's last frame crosses the detector's
threshold. This process runs the real pipeline as `liqguard run --live` builds it
(bot.app.wiring, with the live scheduler's jobs running): ccxt.pro stream -> the merge of
sources -> Detector -> Orchestrator (policy, risk, auto approval, SQLite journal) -> CcxtBroker
-> ccxt (REST `POST /fapi/v1/order`, or `order.place` on the WebSocket API). Both sides stamp
time.perf_counter_ns (CLOCK_MONOTONIC, one clock for every process on the machine): the server
when the crossing frame leaves and when the order request arrives; this process at every stage
in between (wrappers, no change to the code measured).

Floor, measured alone in the same run: ccxt's own cost of an order, from the call of
`create_order` (or `create_order_ws`) in this process to the request's arrival at the server.
With `--transport both` the two transports alternate burst by burst (and floor call by floor
call), so both see the same machine load.

    .venv/bin/python bench/reaction_latency.py [--reactions 200] [--transport rest|websocket|both]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
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
from bot.app.scheduling import build_scheduler  # noqa: E402
from bot.app.wiring import build  # noqa: E402
from bot.brokers.client_ids import venue_client_id  # noqa: E402
from bot.config.loader import load_settings  # noqa: E402
from bot.config.rules import RuleConfig  # noqa: E402
from bot.detector import Detector  # noqa: E402
from bot.events import Anomaly, JournalKind  # noqa: E402
from bot.logs import setup_logging  # noqa: E402
from bot.sim.localexchange import local_secrets  # noqa: E402
from bot.sim.localexchange.tapes import crossing_bursts  # noqa: E402
from bot.sources.feeds import merged_sources  # noqa: E402
from bot.sources.venues import parse_raw_message  # noqa: E402

TAPE = ROOT / "bot/data/binance-btcusdt_2024-12-04_06.csv"
THRESHOLD_USD = 50_000.0
# The server stamps each frame with its wall time as it sends it (as Binance does), so the
# bursts are apart by the gap: longer than the window (drained) and the escalation window (each
# burst is a fresh level 1)
RULE = RuleConfig(name="bench", window_s=0.5, threshold_usd=THRESHOLD_USD, escalation_window_s=0.5)
TRANSPORTS = ("rest", "websocket")

# (tag, label) in the order a reaction passes them; each row is the time from the previous tag
STAGES = (
    ("tap", "frame -> our raw tap (ccxt.pro)"),
    ("parsed", "tap -> parsed, queued (streams)"),
    ("detector_in", "queued -> detector (earlier frames)"),
    ("detected", "detector.on_liquidation"),
    ("account", "detected -> account (broker.portfolio)"),
    ("planned", "account -> plan (strategy)"),
    ("committed", "plan -> journal commit (risk, ids)"),
    ("submit", "commit -> broker.submit"),
    ("create", "submit -> ccxt create_order call"),
    ("arrived", "create_order -> arrival (ccxt+wire)"),
)


def make_bursts(n: int, start_ms: int, spacing_ms: int) -> list[list[dict[str, Any]]]:
    """Consecutive tape messages grouped so each group's sum crosses the threshold at its end."""
    bursts = crossing_bursts(TAPE, THRESHOLD_USD, n)
    return [
        [_retimed(m, start_ms + b * spacing_ms + k) for k, m in enumerate(burst)]
        for b, burst in enumerate(bursts)
    ]


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


class Marks:
    """perf_counter_ns stamps, in order, taken by thin wrappers around the measured code."""

    def __init__(self) -> None:
        self.marks: list[tuple[int, str]] = []
        self.transport_of: dict[str, str] = {}  # venue client id -> transport used
        self.gc_pauses: list[tuple[int, int, int]] = []  # (start ns, end ns, generation)
        self._gc_start = 0

    def add(self, tag: str) -> None:
        self.marks.append((time.perf_counter_ns(), tag))

    def on_gc(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._gc_start = time.perf_counter_ns()
        else:
            self.gc_pauses.append((self._gc_start, time.perf_counter_ns(), info["generation"]))


def instrument(
    source: Any, runtime: Any, marks: Marks, transports: tuple[str, ...]
) -> dict[str, int]:
    """Wrap the stages' entry points (instance attributes only: the code itself is unchanged)."""
    stream = source.streams[0] if hasattr(source, "streams") else source
    exchange, broker, journal = stream.exchange, runtime.broker, runtime.journal
    detector = runtime.orchestrator.detector
    tap = exchange.raw_sink

    def timed_tap(message: Any) -> None:
        marks.add("tap")
        tap(message)
        marks.add("parsed")

    exchange.raw_sink = timed_tap
    on_liquidation = detector.on_liquidation

    def timed_detector(liq: Any) -> Any:
        t_in = time.perf_counter_ns()
        out = on_liquidation(liq)
        if any(isinstance(e, Anomaly) for e in out):  # the crossing event's own entry
            marks.marks.append((t_in, "detector_in"))
            marks.add("detected")
        return out

    detector.on_liquidation = timed_detector
    stage = journal.stage

    def timed_stage(kind: Any, *args: Any, **kwargs: Any) -> Any:
        out = stage(kind, *args, **kwargs)
        if kind == JournalKind.ACTION_PLANNED:
            marks.add("planned")
        return out

    journal.stage = timed_stage
    flush = journal.flush

    def timed_flush() -> None:
        flush()
        marks.add("committed")

    journal.flush = timed_flush
    submit = broker.submit
    count = {"submits": 0}

    async def timed_submit(intent: Any, client_id: str) -> Any:
        marks.add("submit")
        transport = transports[count["submits"] % len(transports)]
        count["submits"] += 1
        marks.transport_of[venue_client_id(client_id, "binance")] = transport
        if hasattr(broker, "order_transport"):
            broker.order_transport = transport
        return await submit(intent, client_id)

    broker.submit = timed_submit
    portfolio = broker.portfolio

    async def timed_portfolio() -> Any:
        out = await portfolio()
        marks.add("account")
        return out

    broker.portfolio = timed_portfolio
    for name in ("create_order", "create_order_ws"):
        original = getattr(broker.exchange, name)

        async def timed_create(*args: Any, _original: Any = original, **kwargs: Any) -> Any:
            marks.add("create")
            return await _original(*args, **kwargs)

        setattr(broker.exchange, name, timed_create)
    return count


async def measure_floor(
    broker: Any, base: str, session: aiohttp.ClientSession, n: int, transports: tuple[str, ...]
) -> dict[str, list[int]]:
    """ccxt alone: create_order (or create_order_ws) called -> request arrived at the server."""
    ex = broker.exchange
    starts: dict[str, tuple[str, int]] = {}
    for k in range(n * len(transports)):
        transport = transports[k % len(transports)]
        cid = f"floor-{k}"
        create = ex.create_order_ws if transport == "websocket" else ex.create_order
        starts[cid] = (transport, time.perf_counter_ns())
        params = {"clientOrderId": cid, "reduceOnly": True}
        await create("ETH/USDT:USDT", "market", "sell", 0.01, None, params)
        await asyncio.sleep(0.25)  # let ccxt's limiter refill (an order weighs 4 x 50 ms)
    async with session.get(f"{base}/_ctl/orders") as resp:
        arrived = {o["client_id"]: o["arrived_ns"] for o in await resp.json()}
    out: dict[str, list[int]] = {t: [] for t in transports}
    for cid, (transport, t0) in starts.items():
        out[transport].append(arrived[cid] - t0)
    return out


async def run(reactions: int, gap_s: float, transports: tuple[str, ...]) -> None:
    setup_logging("WARNING", None)
    n = reactions * len(transports)
    bursts = make_bursts(n, time.time_ns() // 1_000_000, round(gap_s * 1000))
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
        await _bench(base, port, bursts, gap_s, transports, reactions)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


async def _bench(
    base: str,
    port: int,
    bursts: list[list[dict[str, Any]]],
    gap_s: float,
    transports: tuple[str, ...],
    reactions: int,
) -> None:
    endpoints = {
        "rest": base,
        "ws": f"ws://127.0.0.1:{port}/ws",
        "ws_api": f"ws://127.0.0.1:{port}/ws-fapi/v1",
        "allow_insecure": True,
    }
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
            "exchanges": {
                "venues": {"binance": {"endpoints": endpoints, "order_transport": transports[-1]}},
            },
        }
    )
    secrets = local_secrets()
    marks = Marks()
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None)) as http:
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
            await runtime.start()
            scheduler = build_scheduler(runtime.orchestrator, live=True)
            scheduler.start()  # as `liqguard run --live`: tick, portfolio, heartbeat jobs
            merged = merged_sources([source], runtime.clock.now_ms)  # as `liqguard run --live`
            runner = asyncio.create_task(runtime.orchestrator.run(merged))
            try:
                await runtime.broker.portfolio()  # markets + account read once, before timing
                floor_ns = await measure_floor(runtime.broker, base, http, reactions, transports)
                instrument(source, runtime, marks, transports)
                await http.get(f"{base}/_ctl/subscribed")
                await asyncio.sleep(gap_s)
                body = {"bursts": bursts, "gap_s": gap_s, "wait_order_s": 3.0, "restamp": True}
                gc.callbacks.append(marks.on_gc)
                async with http.post(f"{base}/_ctl/bursts", json=body) as resp:
                    results = await resp.json()
                gc.callbacks.remove(marks.on_gc)
                kinds = runtime.journal.count_by_kind()
            finally:
                scheduler.shutdown(wait=False)
                runner.cancel()
                await asyncio.gather(runner, return_exceptions=True)
                await source.close()
                await runtime.close()
    if any(r["arrived_ns"] is None for r in results):
        seen = {tag: sum(1 for _t, x in marks.marks if x == tag) for tag, _l in STAGES[:-1]}
        print(f"journal rows by kind (some bursts got no order): {kinds}; stamps: {seen}")
    report(results, floor_ns, marks, transports)


def stage_times(r: dict[str, Any], marks: list[tuple[int, str]]) -> dict[str, int] | None:
    """Each stage's time (ns) for one reaction: the first mark of each tag, in stage order."""
    sent, arrived = r["sent_ns"], r["arrived_ns"]
    inside = sorted((t, tag) for t, tag in marks if sent <= t <= arrived)
    out: dict[str, int] = {}
    prev, k = sent, 0
    for tag, _label in STAGES[:-1]:
        while k < len(inside) and inside[k][1] != tag:
            k += 1
        if k == len(inside):
            return None
        out[tag] = inside[k][0] - prev
        prev = inside[k][0]
    out["arrived"] = arrived - prev
    return out


def report(
    results: list[dict[str, Any]],
    floor_ns: dict[str, list[int]],
    marks: Marks,
    transports: tuple[str, ...],
) -> None:
    cores = os.cpu_count()
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"machine: {cores} cores, load average {load} (1, 5, 15 min) at the end")
    for transport in transports:
        mine = [r for r in results if marks.transport_of.get(r["client_id"] or "") == transport]
        missed = [r for r in results if r["arrived_ns"] is None]
        if len(transports) == 1:
            mine = [r for r in results if r["arrived_ns"] is not None]
        reacted = [r["arrived_ns"] - r["sent_ns"] for r in mine]
        extra = sum(max(0, r["orders"] - 1) for r in mine)
        print(
            f"\n== order transport: {transport} ==\n"
            f"reactions: {len(reacted)} (missed in the run: {len(missed)}, extra orders {extra})"
        )
        if not reacted:
            continue
        rp50, rp99, rmax = stats_us(reacted)
        fp50, fp99, fmax = stats_us(floor_ns[transport])
        print(f"{'':38}{'p50':>9}{'p99':>9}{'max':>9}   (microseconds)")
        print(f"{'frame -> order at venue':38}{rp50:>9.0f}{rp99:>9.0f}{rmax:>9.0f}")
        print(f"{'floor: ccxt create_order alone':38}{fp50:>9.0f}{fp99:>9.0f}{fmax:>9.0f}")
        print(f"{'above the floor':38}{rp50 - fp50:>9.0f}{rp99 - fp99:>9.0f}")
        rows = [t for t in (stage_times(r, marks.marks) for r in mine) if t is not None]
        for tag, label in STAGES:
            values = [row[tag] for row in rows]
            if values:
                p50, p99, top = stats_us(values)
                print(f"  {label:36}{p50:>9.0f}{p99:>9.0f}{top:>9.0f}")
        print(f"  (stages of {len(rows)} reactions whose every stamp was found)")
    pauses = [(b - a, gen) for a, b, gen in marks.gc_pauses]
    hit = 0
    for r in results:
        if r["arrived_ns"] is None:
            continue
        hit += any(r["sent_ns"] <= a <= r["arrived_ns"] for a, _b, _g in marks.gc_pauses)
    if pauses:
        top = max(p for p, _ in pauses) / 1000
        by_gen = {g: sum(1 for _, gen in pauses if gen == g) for g in (0, 1, 2)}
        print(
            f"\ngarbage collections during the bursts: {len(pauses)} (by generation {by_gen}), "
            f"longest {top:.0f} us; inside a frame -> order window: {hit}"
        )
    else:
        print("\ngarbage collections during the bursts: none")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reactions", type=int, default=200, help="per transport")
    parser.add_argument("--gap-s", type=float, default=1.2, help="quiet time between bursts")
    parser.add_argument("--transport", choices=("rest", "websocket", "both"), default="both")
    args = parser.parse_args()
    chosen = TRANSPORTS if args.transport == "both" else (args.transport,)
    asyncio.run(run(args.reactions, args.gap_s, chosen))
