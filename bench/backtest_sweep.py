"""Benchmark: a backtest sweep in the process pool against the same runs one after another.

16 settings (rules[0].threshold_usd x policy.levels.2[0].params.fraction x paper.slippage_bps)
over the bundled episodes: first every run in this one process (jobs=1), then the pool with
one worker per core. Prints both, the speed-up, and the pool's time against the ideal
(sequential / cores); the goal is within 1.5x of the ideal. Beside the wall times it prints
the CPU seconds both ways (this process, then the pool's workers) and the load average: on a
machine other programs keep busy the wall ratio measures them, while the CPU ratio (pool CPU /
sequential CPU, ideally 1.0) is what the pool itself costs.

    .venv/bin/python bench/backtest_sweep.py
    .venv/bin/python bench/backtest_sweep.py --jobs 4
"""

from __future__ import annotations

import argparse
import os
import resource
import time

from bot.app.backtest import Options, bundled_episodes, parse_sweep, run_backtest, settings_grid
from bot.config.settings import Settings

SWEEPS = (
    "rules[0].threshold_usd=1e6,1.5e6,2e6,4e6",
    "policy.levels.2[0].params.fraction=0.25,0.5",
    "paper.slippage_bps=2,10",
)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    args = ap.parse_args()
    episodes = bundled_episodes()
    grid = settings_grid(Settings(), [parse_sweep(s) for s in SWEEPS])
    runs = len(grid) * len(episodes)
    print(f"{len(grid)} settings x {len(episodes)} episodes = {runs} runs; {args.jobs} core(s)")
    print(f"load average at start: {os.getloadavg()[0]:.1f} on {os.cpu_count()} core(s)")
    t0, c0 = time.perf_counter(), time.process_time()
    seq = run_backtest(episodes, grid, Options(), jobs=1)
    seq_s, seq_cpu = time.perf_counter() - t0, time.process_time() - c0
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    pool = run_backtest(episodes, grid, Options(), jobs=args.jobs)
    pool_s = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    pool_cpu = (after.ru_utime + after.ru_stime) - (kids.ru_utime + kids.ru_stime)
    same = [(a.pnl_usd, a.fills, a.anomalies) == (b.pnl_usd, b.fills, b.anomalies)
            for a, b in zip(seq, pool, strict=True)]  # fmt: skip
    ideal = seq_s / args.jobs
    print(f"sequential, one process: {seq_s:.2f} s ({seq_s / runs * 1000:.0f} ms per run)")
    print(f"pool of {args.jobs}:            {pool_s:.2f} s")
    ratio = pool_s / ideal
    print(f"speed-up x{seq_s / pool_s:.2f}; pool / ideal (sequential / cores) = {ratio:.2f}")
    print("goal: pool / ideal <= 1.5")
    print(
        f"CPU: sequential {seq_cpu:.2f} s, pool workers {pool_cpu:.2f} s "
        f"(pool / sequential = {pool_cpu / seq_cpu:.2f}; 1.0 = no parallel overhead)"
    )
    print(f"load average at end: {os.getloadavg()[0]:.1f}")
    print(f"same figures both ways: {all(same)}")


if __name__ == "__main__":
    main()
