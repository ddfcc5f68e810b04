"""Benchmark: `calibrate` over 50 candidate thresholds against one `detect` of the same tape.

The tape: the bundled Aave v2 excerpt (real, 3,326 events around the 2021-05-19 crash) tiled
`--copies` times, each copy shifted by the excerpt's span so the tape stays in time order (or
`--tape FILE`). Timed in this process, best of 3: bot.app.detect.run_detect (what `liqguard
detect` runs: columnar read, batch detector, one threshold) against
bot.app.calibrate.run_calibrate (what `liqguard calibrate` runs: the same read, the window sums
once, every candidate of its grid escalated over them, hourly statistics, the preview), and the
escalation of exactly `--candidates` thresholds alone. Prints the times and the ratio (goal
<= 1.5 for 50 candidates).

    .venv/bin/python bench/calibrate_vs_detect.py
    .venv/bin/python bench/calibrate_vs_detect.py --tape my-tape.csv.gz
"""

from __future__ import annotations

import argparse
import gzip
import tempfile
import time
from pathlib import Path

import numpy as np

from bot.app.calibrate import CalibrateRequest, run_calibrate
from bot.app.detect import run_detect
from bot.config.rules import RuleConfig
from bot.detector.batch import rule_window
from bot.detector.calibrate import sweep
from bot.sources.columnar import read_unified_columns
from bot.sources.files import open_tape

ROOT = Path(__file__).resolve().parent.parent
EXCERPT = ROOT / "bot" / "data" / "aave-v2_2021-05-12_26.csv.gz"


def tiled(copies: int, out: Path) -> Path:
    lines = gzip.decompress(EXCERPT.read_bytes()).decode().splitlines()
    header, rows = lines[0], [ln.split(",", 1) for ln in lines[1:]]
    span = int(rows[-1][0]) - int(rows[0][0]) + 1
    with out.open("w") as f:
        f.write(header + "\n")
        for k in range(copies):
            f.writelines(f"{int(ts) + k * span},{rest}\n" for ts, rest in rows)
    return out


def best_of(n: int, fn) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tape", type=Path)
    ap.add_argument("--copies", type=int, default=100)
    ap.add_argument("--candidates", type=int, default=50)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tape = args.tape or tiled(args.copies, Path(tmp) / "tape.csv")
        rule = RuleConfig()

        def detect() -> None:
            run_detect([open_tape(tape)], [rule], lambda _e: None)

        found: list[int] = []

        def calibrate() -> None:
            result = run_calibrate([open_tape(tape)], [rule], CalibrateRequest())
            found[:] = [len(result.groups[0].candidates)]

        cols, _ = read_unified_columns(tape)
        win = rule_window(cols, rule)
        assert win is not None
        grid = np.geomspace(float(np.median(win.window)) / 100, win.peak[0] / 100, args.candidates)

        def escalations() -> None:
            sweep(win, grid.tolist(), rule.factor, rule.escalation_window_ms, 720.0)

        print(f"tape: {len(cols):,} events ({tape.name})")
        d = best_of(3, detect)
        c = best_of(3, calibrate)
        e = best_of(3, escalations)
        print(f"detect, one threshold:                      {d:.3f} s")
        print(f"calibrate, its grid of {found[0]} candidates:        {c:.3f} s")
        print(f"escalation alone, {args.candidates} candidates (median..peak): {e:.3f} s")
        print(f"ratio calibrate / detect: {c / d:.2f} (goal <= 1.5 at 50 candidates)")


if __name__ == "__main__":
    main()
