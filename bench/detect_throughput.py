"""Benchmark: `liqguard detect` against the pandas script a quant would write, same tape.

Generates (seeded, cached) a realistic liquidation tape - 3 venues, 12 symbols in each venue's
spelling, a Poisson background plus cascades where one side dominates - then runs, each in its
own process so that time and peak memory are end to end (interpreter, imports, parsing):
- liqguard: `.venv/bin/liqguard detect TAPE --config rules.yaml --json` (stdout to a file);
- liqguard-fast: bot.app.detect.detect_file_fast, the columnar path, called directly
  (what the CLI uses for unified CSV once wired; shown so both figures are visible);
- pandas: read_csv, rolling("1h").sum() per rule, then the escalation loop over the crossings.
It checks the anomalies agree (type, rule, time, level, threshold exactly; window sum within
a cent per thousand events, the baseline summing floats), then prints events/s, the ratio and
peak RSS of each. Last, the streaming Detector alone (what live data goes through): events/s
on the tape's first `--stream-events` events already parsed, with the 4 rules and with one,
and the bytes each event takes in a window (tracemalloc).

    .venv/bin/python bench/detect_throughput.py               # 5,000,000 events
    .venv/bin/python bench/detect_throughput.py --events 200000
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
START_MS = 1_735_689_600_000  # 2025-01-01 00:00 UTC
SYMBOLS = {  # base asset: (price USD, weight)
    "BTC": (95_000.0, 30), "ETH": (3_300.0, 20), "SOL": (190.0, 10), "XRP": (2.3, 8),
    "DOGE": (0.32, 8), "BNB": (700.0, 5), "ADA": (0.9, 5), "LINK": (22.0, 4),
    "AVAX": (38.0, 3), "SUI": (4.1, 3), "PEPE": (0.000018, 2), "TRX": (0.25, 2),
}  # fmt: skip
VENUES = {"binance-usdm": 0.5, "bybit": 0.3, "okx": 0.2}
RULES_YAML = """\
rules:
  - name: all
    threshold_usd: 10000000
  - name: btc
    symbols: [BTC]
    threshold_usd: 5000000
  - name: longs
    sides: [long]
    threshold_usd: 8000000
    factor: 1.5
  - name: okx-shorts
    venues: [okx]
    sides: [short]
    threshold_usd: 2000000
    window_s: 1800
    escalation_window_s: 3600
"""


# -- the tape ----------------------------------------------------------------------------------


def generate(path: Path, n: int, seed: int) -> None:
    """Write a unified CSV of n events, 70% background, 30% in cascades; the density is that
    of 5M events in 60 days whatever n (so a quick run sees the same kind of anomalies)."""
    rng = np.random.default_rng(seed)
    span_ms = max(86_400_000, int(60 * 86_400_000 * n / 5_000_000))
    n_burst = int(n * 0.3)
    ts_bg = START_MS + rng.integers(0, span_ms, n - n_burst)
    centers = START_MS + rng.integers(0, span_ms, max(4, 240 * n // 5_000_000))
    which = rng.integers(0, len(centers), n_burst)
    spread = rng.exponential(15 * 60_000, len(centers))[which]
    ts_burst = centers[which] + (rng.exponential(1.0, n_burst) * spread).astype(np.int64)
    ts = np.concatenate([ts_bg, ts_burst])
    in_burst = np.concatenate([np.zeros(n - n_burst, bool), np.ones(n_burst, bool)])
    burst_side = rng.random(len(centers)) < 0.5
    long_side = np.where(in_burst, rng.random(n) < 0.85, rng.random(n) < 0.5)
    long_side[n - n_burst :] = np.where(
        burst_side[which], long_side[n - n_burst :], ~long_side[n - n_burst :]
    )
    order = np.argsort(ts, kind="stable")
    ts, long_side, in_burst = ts[order], long_side[order], in_burst[order]
    bases = list(SYMBOLS)
    weights = np.array([w for _, w in SYMBOLS.values()], float)
    sym = rng.choice(len(bases), n, p=weights / weights.sum())
    venue_names = list(VENUES)
    ven = rng.choice(len(venue_names), n, p=list(VENUES.values()))
    usd = rng.lognormal(np.log(300.0), 1.4, n) * np.where(in_burst, 3.0, 1.0)
    usd = np.clip(usd, 5.0, 5_000_000.0)
    price = np.array([p for p, _ in SYMBOLS.values()])[sym] * rng.normal(1.0, 0.02, n)
    qty = usd / price
    # decimals as venues quote them: about 6 significant digits of price, qty to the lot
    digits = np.floor(np.log10(np.array([p for p, _ in SYMBOLS.values()]))).astype(int)
    price_dp = np.clip(5 - digits, 1, 10)
    qty_dp = np.clip(digits, 0, 3)
    spellings = [
        [f"{b}USDT" for b in bases],  # binance
        [f"{b}USDT" for b in bases],  # bybit
        [f"{b}-USDT-SWAP" for b in bases],  # okx
    ]
    with path.open("w") as f:
        f.write("ts_ms,venue,symbol,side,price,quantity,notional_usd\n")
        step = 200_000
        for lo in range(0, n, step):
            hi = min(n, lo + step)
            rows = zip(
                ts[lo:hi].tolist(), ven[lo:hi].tolist(), sym[lo:hi].tolist(),
                long_side[lo:hi].tolist(), price[lo:hi].tolist(), qty[lo:hi].tolist(),
                usd[lo:hi].tolist(), price_dp[sym[lo:hi]].tolist(), qty_dp[sym[lo:hi]].tolist(),
                strict=True,
            )  # fmt: skip
            f.write("".join(
                f"{t},{venue_names[v]},{spellings[v][s]},{'long' if lg else 'short'},"
                f"{p:.{dp}f},{q:.{dq}f},{round(u, 4)!r}\n"
                for t, v, s, lg, p, q, u, dp, dq in rows
            ))  # fmt: skip


# -- the pandas baseline (child process) -------------------------------------------------------


def pandas_baseline(tape: Path, rules: list[Any]) -> list[dict[str, Any]]:
    """What a quant writes: read_csv, rolling('1h').sum() per rule, escalation loop."""
    import pandas as pd

    df = pd.read_csv(tape)
    df.index = pd.to_datetime(df["ts_ms"], unit="ms")
    base = df["symbol"].str.upper().str.replace("-", "", regex=False)
    out: list[dict[str, Any]] = []
    for rule in rules:
        mask = df["side"].isin(rule.sides)
        if rule.venues:
            mask &= df["venue"].str.lower().str.split("-").str[0].isin(
                [v.lower() for v in rule.venues]
            ) | df["venue"].str.lower().isin([v.lower() for v in rule.venues])
        if rule.symbols:
            mask &= base.str.startswith(tuple(s.upper() for s in rule.symbols))
        sub = df[mask]
        sums = sub["notional_usd"].rolling(f"{int(rule.window_s)}s").sum().to_numpy()
        t = sub["ts_ms"].to_numpy()
        t0, f, e_ms = rule.threshold_usd, rule.factor, rule.escalation_window_ms
        level, t_last = 0, 0
        for i in np.flatnonzero(sums >= t0):
            if level > 0 and t[i] - t_last >= e_ms:
                out.append({"type": "calm", "rule": rule.name, "ts_ms": int(t_last + e_ms)})
                level = 0
            if sums[i] >= t0 * f**level:
                new = level + 1
                while sums[i] >= t0 * f**new:
                    new += 1
                out.append({
                    "type": "anomaly", "rule": rule.name, "ts_ms": int(t[i]), "level": new,
                    "window_usd": float(sums[i]), "threshold_usd": t0 * f ** (new - 1),
                })  # fmt: skip
                level, t_last = new, int(t[i])
        if level > 0 and len(t) and t[-1] - t_last >= e_ms:
            out.append({"type": "calm", "rule": rule.name, "ts_ms": int(t_last + e_ms)})
    return out


def load_rules(config: Path) -> list[Any]:
    sys.path.insert(0, str(ROOT))
    from bot.config.loader import load_settings

    return list(load_settings(config).rules)


def child(role: str, tape: Path, config: Path) -> None:
    rules = load_rules(config)
    if role == "pandas":
        lines = [json.dumps(x) for x in pandas_baseline(tape, rules)]
    else:
        from bot.app.detect import detect_file_fast
        from bot.detector import anomaly_to_json

        lines = [json.dumps(anomaly_to_json(e)) for e in detect_file_fast([tape], rules).events]
    sys.stdout.write("".join(line + "\n" for line in lines))


# -- the harness -------------------------------------------------------------------------------


def run(cmd: list[str], out: Path) -> tuple[float, float]:
    """(seconds, peak RSS in MB) of one child process, stdout to `out`."""
    with out.open("w") as stdout:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=stdout, stderr=subprocess.PIPE, cwd=ROOT)
        assert proc.stderr is not None
        err = proc.stderr.read()
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{err.decode()[-2000:]}")
    return seconds, usage.ru_maxrss / 1024


def compare(ours: list[dict[str, Any]], theirs: list[dict[str, Any]]) -> str:
    def key(x: dict[str, Any]) -> tuple[Any, ...]:
        return x["rule"], x["ts_ms"], x["type"], x.get("level", 0)

    a, b = sorted(ours, key=key), sorted(theirs, key=key)
    if [key(x) for x in a] != [key(x) for x in b]:
        diff = next((x, y) for x, y in zip([*a, {}], [*b, {}], strict=False) if x != y)
        return f"DIFFERENT ({len(a)} vs {len(b)}; first: {diff})"
    worst = 0.0
    for x, y in zip(a, b, strict=True):
        if x["type"] == "anomaly":
            if abs(x["threshold_usd"] - y["threshold_usd"]) > 0.005:
                return f"DIFFERENT threshold: {x} vs {y}"
            worst = max(worst, abs(x["window_usd"] - y["window_usd"]))
    return f"equal ({len(a)} events; window sums within ${worst:.2f})"


def streaming(tape: Path, config: Path, count: int) -> None:
    """Print the streaming Detector's own speed and window memory (no parsing, no output)."""
    import itertools
    import tracemalloc

    from bot.config.rules import RuleConfig
    from bot.detector import Detector
    from bot.sources.files import open_tape

    events = list(itertools.islice(iter(open_tape(tape)), count))
    rules = load_rules(config)
    for label, rule_set in (("4 rules", rules), ("1 rule", rules[:1])):
        det = Detector(rule_set)
        start = time.perf_counter()
        for liq in events:
            det.on_liquidation(liq)
        rate = len(events) / (time.perf_counter() - start)
        print(f"streaming Detector, {label}: {rate:12,.0f} events/s ({len(events):,} events)")
    # One rule whose window holds every event: memory per event kept.
    tracemalloc.start()
    det = Detector([RuleConfig(name="all", window_s=10**9, threshold_usd=1e15)])
    base = tracemalloc.get_traced_memory()[0]
    for liq in events:
        det.on_liquidation(liq)
    held = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    print(f"streaming Detector window: {held / len(events):.0f} bytes per event held")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--events", type=int, default=5_000_000)
    ap.add_argument("--seed", type=int, default=20241205)
    ap.add_argument("--stream-events", type=int, default=500_000)
    ap.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "liqguard-bench")
    ap.add_argument("--role", choices=["pandas", "fast"], help=argparse.SUPPRESS)
    ap.add_argument("--tape", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--config", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.role:
        child(args.role, args.tape, args.config)
        return
    args.cache.mkdir(parents=True, exist_ok=True)
    tape = args.cache / f"tape-{args.events}-{args.seed}.csv"
    if not tape.exists():
        t = time.perf_counter()
        generate(tape.with_suffix(".tmp"), args.events, args.seed)
        tape.with_suffix(".tmp").rename(tape)
        print(f"generated {tape} in {time.perf_counter() - t:.1f}s", file=sys.stderr)
    config = args.cache / "rules.yaml"
    config.write_text(RULES_YAML)
    me, py = str(Path(__file__).resolve()), sys.executable
    runs = {
        "liqguard detect (CLI)": [str(ROOT / ".venv/bin/liqguard"), "detect", str(tape),
                                  "--config", str(config), "--json"],
        "detect_file_fast": [py, me, "--role", "fast", "--tape", str(tape),
                             "--config", str(config)],
        "pandas baseline": [py, me, "--role", "pandas", "--tape", str(tape),
                            "--config", str(config)],
    }  # fmt: skip
    results = {}
    for name, cmd in runs.items():
        out = args.cache / f"out-{name.split()[0]}-{name.split()[-1].strip('()')}.jsonl"
        seconds, rss = run(cmd, out)
        events = [json.loads(line) for line in out.read_text().splitlines()]
        results[name] = (seconds, rss, events)
    n = args.events
    print(f"tape: {n:,} events, {tape.stat().st_size / 2**20:.0f} MB, 4 rules ({tape})")
    print(f"{'':24} {'seconds':>8} {'events/s':>12} {'peak RSS':>9}  anomalies vs pandas")
    base_s = results["pandas baseline"][0]
    for name, (seconds, rss, events) in results.items():
        same = "-" if name == "pandas baseline" else compare(events, results["pandas baseline"][2])
        print(f"{name:24} {seconds:8.2f} {n / seconds:12,.0f} {rss:7.0f}MB  {same}")
    for name in ("liqguard detect (CLI)", "detect_file_fast"):
        print(f"ratio {name} / pandas: {base_s / results[name][0]:.2f}x faster")
    cli, fast = results["liqguard detect (CLI)"][2], results["detect_file_fast"][2]
    print("CLI output == detect_file_fast output:", cli == fast)
    streaming(tape, config, min(n, args.stream_events))


if __name__ == "__main__":
    main()
