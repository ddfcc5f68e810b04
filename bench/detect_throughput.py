"""Benchmark: `liqguard detect` against the pandas and polars scripts a quant would write.

Generates (seeded, cached) a realistic liquidation tape - 4 venues in their own symbol
spellings, 150 symbols (12 majors, a Zipf tail of alts), a Poisson background plus
self-exciting cascades where one side and a few symbols dominate - then, for 1 rule (the
default rule at $1M: the hardest case for liqguard, the scripts then do the least work) and for
4 rules, runs each contestant in its own process, so time and peak RSS are end to end
(interpreter, imports, parsing, output):
- liqguard: `.venv/bin/liqguard detect TAPE --json` (--threshold / --config);
- pandas: read_csv of the needed columns, rolling("1h").sum() per rule, the escalation loop;
- polars: read_csv, rolling_sum_by per rule, the same loop. rolling_sum_by counts every row
  at the same timestamp into one window, so it is compared at distinct timestamps;
- arrow floor: pyarrow.csv.read_csv of the tape's 7 columns with liqguard's types, nothing
  else: the parse that liqguard cannot go below;
- start-up: liqguard detect on a 2-event tape, and Python importing numpy and pyarrow.csv.
Each is run --runs times, interleaved; the medians are printed with events/s, peak RSS, the
ratios, and whether the anomalies agree. Last, the streaming Detector alone (what live data
goes through) on the tape's first `--stream-events` events already parsed.

    .venv/bin/python bench/detect_throughput.py                    # 3,500,000 events, 3 runs
    .venv/bin/python bench/detect_throughput.py --events 500000 --runs 1
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
START_MS = 1_735_689_600_000  # 2025-01-01 00:00 UTC
MAJORS = {  # base asset: (price USD, weight)
    "BTC": (95_000.0, 30), "ETH": (3_300.0, 20), "SOL": (190.0, 10), "XRP": (2.3, 8),
    "DOGE": (0.32, 8), "BNB": (700.0, 5), "ADA": (0.9, 5), "LINK": (22.0, 4),
    "AVAX": (38.0, 3), "SUI": (4.1, 3), "PEPE": (0.000018, 2), "TRX": (0.25, 2),
}  # fmt: skip
N_ALTS = 138
VENUES = {"binance-usdm": 0.42, "bybit": 0.28, "okx": 0.18, "hyperliquid": 0.12}
ONE_RULE = ["--threshold", "1000000"]
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
    threshold_usd: 1000000
    window_s: 1800
    escalation_window_s: 3600
"""


# -- the tape ----------------------------------------------------------------------------------


def _symbols(rng: np.random.Generator) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(bases, prices, weights): the majors, then alts with Zipf weights and spread prices."""
    alts = [f"A{chr(65 + i // 26)}{chr(65 + i % 26)}X" for i in range(N_ALTS)]
    bases = [*MAJORS, *alts]
    prices = np.array([p for p, _ in MAJORS.values()] + list(10 ** rng.uniform(-4, 2, N_ALTS)))
    weights = np.array([w for _, w in MAJORS.values()] + list(6.0 / np.arange(1, N_ALTS + 1)))
    return bases, prices, weights / weights.sum()


def generate(path: Path, n: int, seed: int) -> None:
    """Write a unified CSV of n events, 65% background, 35% in cascades; the density is that
    of 5M events in 60 days whatever n (so a quick run sees the same kind of anomalies).
    A cascade is self-exciting: its events come in generations, each a short exponential
    delay after its parent, on one dominant side and mostly on one or two symbols."""
    rng = np.random.default_rng(seed)
    span_ms = max(86_400_000, int(60 * 86_400_000 * n / 5_000_000))
    bases, prices, weights = _symbols(rng)
    n_burst = int(n * 0.35)
    ts_bg = START_MS + rng.integers(0, span_ms, n - n_burst)
    n_casc = max(4, 300 * n // 5_000_000)
    centers = START_MS + rng.integers(0, span_ms, n_casc)
    size = rng.pareto(1.5, n_casc) + 1.0
    which = rng.choice(n_casc, n_burst, p=size / size.sum())
    generation = rng.geometric(0.25, n_burst)  # depth in the cascade's branching
    delay = rng.gamma(generation, 90_000.0)  # each generation ~90 s after its parent
    ts_burst = centers[which] + delay.astype(np.int64)
    ts = np.concatenate([ts_bg, ts_burst])
    in_burst = np.concatenate([np.zeros(n - n_burst, bool), np.ones(n_burst, bool)])
    casc_long = rng.random(n_casc) < 0.55
    lead = rng.choice(len(bases), n_casc, p=weights)  # the symbol each cascade starts on
    long_side = rng.random(n) < 0.5
    burst_long = np.where(rng.random(n_burst) < 0.85, casc_long[which], ~casc_long[which])
    long_side[n - n_burst :] = burst_long
    sym = rng.choice(len(bases), n, p=weights)
    on_lead = rng.random(n_burst) < 0.45
    sym[n - n_burst :] = np.where(on_lead, lead[which], sym[n - n_burst :])
    order = np.argsort(ts, kind="stable")
    ts, long_side, in_burst, sym = ts[order], long_side[order], in_burst[order], sym[order]
    venue_names = list(VENUES)
    ven = rng.choice(len(venue_names), n, p=list(VENUES.values()))
    usd = rng.lognormal(np.log(300.0), 1.4, n) * np.where(in_burst, 3.0, 1.0)
    usd = np.clip(usd, 5.0, 5_000_000.0)
    price = prices[sym] * rng.normal(1.0, 0.02, n)
    qty = usd / price
    # decimals as venues quote them: about 6 significant digits of price, qty to the lot
    digits = np.floor(np.log10(prices)).astype(int)
    price_dp = np.clip(5 - digits, 1, 10)
    qty_dp = np.clip(digits, 0, 3)
    spellings = [
        [f"{b}USDT" for b in bases],  # binance-usdm
        [f"{b}USDT" for b in bases],  # bybit
        [f"{b}-USDT-SWAP" for b in bases],  # okx
        list(bases),  # hyperliquid: the coin name
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


# -- the baselines: stand-alone scripts, as a quant would write them ---------------------------

ESCALATION = '''
def first_at_least(values, lo, hi, bound):
    """First i in [lo, hi) with values[i] >= bound, or hi: chunks that double."""
    step = 256
    while lo < hi:
        end = min(hi, lo + step)
        hits = np.flatnonzero(values[lo:end] >= bound)
        if len(hits):
            return lo + int(hits[0])
        lo, step = end, step * 2
    return hi


def escalate(rule, t, sums, out):
    """The level loop of detector.md, visiting only the rows above the threshold: from each
    anomaly, the next row above the next level or, first, the calm."""
    # e_ms an int: searchsorted of a float in int64 times would convert the times each call
    t0, f, e_ms = rule["threshold_usd"], rule["factor"], int(rule["escalation_window_s"] * 1000)
    cross = np.flatnonzero(sums >= t0)
    tc, sc = t[cross], sums[cross]
    level, t_last, k = 0, 0, 0
    while k < len(cross):
        if level > 0:
            calm_k = k + int(np.searchsorted(tc[k:], t_last + e_ms, side="left"))
            hit = first_at_least(sc, k, calm_k, t0 * f**level)
            if hit == calm_k:
                if calm_k == len(cross):
                    break
                out.append({"type": "calm", "rule": rule["name"], "ts_ms": int(t_last + e_ms)})
                level, k = 0, calm_k
                continue
            k = hit
        new = level + 1
        while sc[k] >= t0 * f**new:
            new += 1
        out.append({"type": "anomaly", "rule": rule["name"], "ts_ms": int(tc[k]),
                    "level": new, "window_usd": float(sc[k]),
                    "threshold_usd": t0 * f ** (new - 1)})
        level, t_last, k = new, int(tc[k]), k + 1
    if level > 0 and len(t) and t[-1] - t_last >= e_ms:
        out.append({"type": "calm", "rule": rule["name"], "ts_ms": int(t_last + e_ms)})


def columns(rules):
    need = ["ts_ms", "notional_usd"]
    if any(r["symbols"] for r in rules): need.append("symbol")
    if any(r["venues"] for r in rules): need.append("venue")
    if any(len(r["sides"]) < 2 for r in rules): need.append("side")
    return need
'''

PANDAS = f"""
import json, sys
import numpy as np
import pandas as pd
{ESCALATION}
rules = json.loads(sys.argv[2])
df = pd.read_csv(sys.argv[1], usecols=columns(rules), engine="c")
df.index = pd.to_datetime(df["ts_ms"], unit="ms")
out = []
for rule in rules:
    mask = np.ones(len(df), dtype=bool)
    if len(rule["sides"]) < 2:
        mask &= (df["side"] == rule["sides"][0]).to_numpy()
    if rule["venues"]:
        mask &= df["venue"].isin(rule["venues"]).to_numpy()
    if rule["symbols"]:
        base = df["symbol"].str.replace("-USDT-SWAP", "").str.removesuffix("USDT")
        mask &= base.isin(rule["symbols"]).to_numpy()
    sub = df["notional_usd"][mask] if not mask.all() else df["notional_usd"]
    sums = sub.rolling(f"{{int(rule['window_s'])}}s").sum().to_numpy()
    escalate(rule, df["ts_ms"].to_numpy()[mask], sums, out)
sys.stdout.write("".join(json.dumps(x) + "\\n" for x in out))
"""

POLARS = f"""
import json, sys
import numpy as np
import polars as pl
{ESCALATION}
rules = json.loads(sys.argv[2])
df = pl.read_csv(sys.argv[1], columns=columns(rules))
df = df.with_columns(pl.from_epoch("ts_ms", time_unit="ms").alias("at"))
out = []
for rule in rules:
    sub = df
    if len(rule["sides"]) < 2:
        sub = sub.filter(pl.col("side") == rule["sides"][0])
    if rule["venues"]:
        sub = sub.filter(pl.col("venue").is_in(rule["venues"]))
    if rule["symbols"]:
        base = pl.col("symbol").str.replace("-USDT-SWAP", "", literal=True).str.strip_suffix("USDT")
        sub = sub.filter(base.is_in(rule["symbols"]))
    w = f"{{int(rule['window_s'])}}s"
    sums = sub.select(pl.col("notional_usd").rolling_sum_by("at", window_size=w))
    escalate(rule, sub["ts_ms"].to_numpy(), sums.to_series().to_numpy(), out)
sys.stdout.write("".join(json.dumps(x) + "\\n" for x in out))
"""

ARROW_FLOOR = """
import sys
import pyarrow as pa, pyarrow.csv as csv
names = ["ts_ms", "venue", "symbol", "side", "price", "quantity", "notional_usd"]
d = pa.dictionary(pa.int32(), pa.string())
types = dict(zip(names, [pa.int64(), d, d, pa.bool_(), pa.float64(), pa.float64(), pa.float64()]))
table = csv.read_csv(sys.argv[1], csv.ReadOptions(use_threads=True),
                     csv.ParseOptions(quote_char=False),
                     csv.ConvertOptions(column_types=types, null_values=[""],
                                        true_values=["long"], false_values=["short"]))
print(table.num_rows)
"""


def rules_json(config: Path | None) -> str:
    """The rules as the scripts take them (from liqguard's own config loader)."""
    sys.path.insert(0, str(ROOT))
    from bot.config.loader import load_settings
    from bot.config.rules import RuleConfig

    rules = load_settings(config).rules if config else (RuleConfig(threshold_usd=1e6),)
    keys = ("name", "threshold_usd", "factor", "window_s", "escalation_window_s", "sides")
    return json.dumps([
        {**{k: getattr(r, k) for k in keys}, "symbols": list(r.symbols), "venues": list(r.venues)}
        for r in rules
    ])  # fmt: skip


# -- the harness -------------------------------------------------------------------------------


def run(cmd: list[str], out: Path) -> tuple[float, float, float]:
    """(seconds, CPU seconds, peak RSS in MB) of one child process, stdout to `out`."""
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
    return seconds, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def compare(ours: list[dict[str, Any]], theirs: list[dict[str, Any]], by_ts: bool) -> str:
    """Same anomalies and calms? by_ts: per (rule, type, timestamp), the highest level."""

    def keys(events: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
        if not by_ts:
            return sorted((x["rule"], x["ts_ms"], x["type"], x.get("level", 0)) for x in events)
        top: dict[tuple[Any, ...], int] = {}
        for x in events:
            k = (x["rule"], x["ts_ms"], x["type"])
            top[k] = max(top.get(k, 0), x.get("level", 0))
        return sorted((*k, v) for k, v in top.items())

    a, b = keys(ours), keys(theirs)
    if a != b:
        diff = next((x, y) for x, y in zip([*a, ()], [*b, ()], strict=False) if x != y)
        return f"DIFFERENT ({len(a)} vs {len(b)}; first: {diff})"
    return f"same {len(a)}" + (" (distinct ts)" if by_ts else "")


def streaming(tape: Path, config: Path, count: int) -> None:
    """Print the streaming Detector's own speed and window memory (no parsing, no output)."""
    import itertools
    import tracemalloc

    sys.path.insert(0, str(ROOT))
    from bot.config.loader import load_settings
    from bot.config.rules import RuleConfig
    from bot.detector import Detector
    from bot.sources.files import open_tape

    events = list(itertools.islice(iter(open_tape(tape)), count))
    rules = list(load_settings(config).rules)
    for label, rule_set in (("4 rules", rules), ("1 rule", rules[:1])):
        det = Detector(rule_set)
        start = time.perf_counter()
        for liq in events:
            det.on_liquidation(liq)
        rate = len(events) / (time.perf_counter() - start)
        print(f"streaming Detector, {label}: {rate:12,.0f} events/s ({len(events):,} events)")
    # One rule whose window holds every event: memory per event kept.
    tracemalloc.start()
    det = Detector([RuleConfig(name="all", window_s=31_622_400, threshold_usd=1e15)])  # a year
    base = tracemalloc.get_traced_memory()[0]
    for liq in events:
        det.on_liquidation(liq)
    held = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    print(f"streaming Detector window: {held / len(events):.0f} bytes per event held")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--events", type=int, default=3_500_000, help="tape size (default 3.5M)")
    ap.add_argument("--runs", type=int, default=3, help="runs of each, medians printed")
    ap.add_argument("--seed", type=int, default=20241205)
    ap.add_argument("--stream-events", type=int, default=300_000)
    ap.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "liqguard-bench")
    args = ap.parse_args()
    args.cache.mkdir(parents=True, exist_ok=True)
    tape = args.cache / f"tape2-{args.events}-{args.seed}.csv"
    if not tape.exists():
        t = time.perf_counter()
        generate(tape.with_suffix(".tmp"), args.events, args.seed)
        tape.with_suffix(".tmp").rename(tape)
        print(f"generated {tape} in {time.perf_counter() - t:.1f}s", file=sys.stderr)
    config = args.cache / "rules.yaml"
    config.write_text(RULES_YAML)
    scripts = {}
    for name, text in (("pandas", PANDAS), ("polars", POLARS), ("arrow", ARROW_FLOOR)):
        scripts[name] = args.cache / f"{name}_detect.py"
        scripts[name].write_text(text)
    py, cli = sys.executable, str(ROOT / ".venv/bin/liqguard")
    cases = {"1 rule": (ONE_RULE, rules_json(None)), "4 rules": (["--config", str(config)],
                                                                 rules_json(config))}  # fmt: skip
    jobs: dict[tuple[str, str], list[str]] = {}
    for case, (flags, rules) in cases.items():
        jobs[case, "liqguard"] = [cli, "detect", str(tape), *flags, "--json"]
        jobs[case, "pandas"] = [py, str(scripts["pandas"]), str(tape), rules]
        jobs[case, "polars"] = [py, str(scripts["polars"]), str(tape), rules]
    jobs["-", "arrow parse"] = [py, str(scripts["arrow"]), str(tape)]
    tiny = args.cache / "tiny.csv"  # start-up alone: the command on a 2-event tape
    tiny.write_text("ts_ms,venue,symbol,side,price,quantity,notional_usd\n" + "".join(
        f"{START_MS + k},bybit,BTCUSDT,long,95000,0.01,950\n" for k in range(2)))  # fmt: skip
    jobs["-", "start-up"] = [cli, "detect", str(tiny), "--json"]
    jobs["-", "imports"] = [py, "-c", "import numpy, pyarrow.csv"]
    load_before = os.getloadavg()[0]
    times: dict[tuple[str, str], list[tuple[float, float, float]]] = {k: [] for k in jobs}
    outputs: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for _ in range(args.runs):  # interleaved, so a busy moment hits every contestant alike
        for key, cmd in jobs.items():
            out = args.cache / f"out-{key[0].replace(' ', '')}-{key[1].split()[0]}.jsonl"
            times[key].append(run(cmd, out))
            if key[0] != "-":
                outputs[key] = [json.loads(line) for line in out.read_text().splitlines()]
    med = {k: tuple(statistics.median(x[i] for x in v) for i in range(3))
           for k, v in times.items()}  # fmt: skip
    n = args.events
    size_mb = tape.stat().st_size / 2**20
    print(f"load average before: {load_before:.1f}")
    print(f"tape: {n:,} events, {size_mb:.0f} MB, {len(VENUES)} venues, "
          f"{len(MAJORS) + N_ALTS} symbols; medians of {args.runs} run(s), each in its own "
          f"process ({os.cpu_count()} cores)")  # fmt: skip
    floor_s, floor_cpu, floor_mb = med["-", "arrow parse"]
    print(f"{'':8} {'':12} {'seconds':>8} {'CPU s':>6} {'events/s':>11} {'peak RSS':>9}  anomalies")
    for case in cases:
        for who in ("liqguard", "pandas", "polars"):
            s, cpu, mb = med[case, who]
            if who == "liqguard":
                same = f"{sum(x['type'] == 'anomaly' for x in outputs[case, who])} anomalies"
            else:
                same = compare(outputs[case, "liqguard"], outputs[case, who], who == "polars")
                same += " vs liqguard"
            print(f"{case:8} {who:12} {s:8.2f} {cpu:6.2f} {n / s:11,.0f} {mb:7.0f}MB  {same}")
    print(
        f"{'':8} {'arrow parse':12} {floor_s:8.2f} {floor_cpu:6.2f} {n / floor_s:11,.0f} "
        f"{floor_mb:7.0f}MB  (pyarrow read_csv of the 7 typed columns: the floor)"
    )
    for key, what in (("start-up", "liqguard detect on a 2-event tape"),
                      ("imports", "python -c 'import numpy, pyarrow.csv'")):  # fmt: skip
        s, cpu, mb = med["-", key]
        print(f"{'':8} {key:12} {s:8.2f} {cpu:6.2f} {'':11} {mb:7.0f}MB  ({what})")
    print("ratios of wall seconds (of CPU seconds in brackets):")
    for case in cases:
        ours = med[case, "liqguard"]
        pd_, pl_ = med[case, "pandas"], med[case, "polars"]
        print(
            f"{case}: liqguard/pandas {ours[0] / pd_[0]:.2f} ({ours[1] / pd_[1]:.2f}), "
            f"liqguard/polars {ours[0] / pl_[0]:.2f} ({ours[1] / pl_[1]:.2f}), "
            f"liqguard/arrow parse {ours[0] / floor_s:.2f} ({ours[1] / floor_cpu:.2f}); "
            f"peak RSS liqguard/pandas {ours[2] / pd_[2]:.2f}, /polars {ours[2] / pl_[2]:.2f}"
        )
    # The goals compare liqguard with the scripts; so does the floor it cannot go below
    print("the floor itself: " + "; ".join(
        f"{case}: arrow parse/pandas {floor_s / med[case, 'pandas'][0]:.2f}, "
        f"/polars {floor_s / med[case, 'polars'][0]:.2f}" for case in cases))  # fmt: skip
    print(f"load average after: {os.getloadavg()[0]:.1f}")
    streaming(tape, config, min(n, args.stream_events))


if __name__ == "__main__":
    main()
