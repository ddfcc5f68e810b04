"""`liqguard detect` parses big tapes while the command loads: same output, same errors, no hang.

The run goes through `python -m bot.cli` (the `liqguard` entry point's code path) in a real
process; the reference is the same command through typer's CliRunner, which never parses ahead.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from bot.app import tape_prefetch
from bot.cli import app
from bot.sources.columnar import read_unified_columns

ROOT = Path(__file__).resolve().parent.parent
HEADER = "ts_ms,venue,symbol,side,price,quantity,notional_usd\n"


def liqguard(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,  # a hang guard, not a timing check
    )


@pytest.fixture(scope="module")
def big_tape(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A unified tape above the parse-ahead size: cascades every few hours, two venues."""
    rng = np.random.default_rng(7)
    n = 95_000
    ts = 1_735_689_600_000 + np.cumsum(rng.integers(1, 400, n))
    usd = np.round(rng.pareto(1.5, n) * 900 + 5, 2)
    burst = (ts // 3_600_000) % 5 == 0
    usd[burst] *= 40
    venues = np.where(rng.random(n) < 0.6, "binance-usdm", "bybit")
    symbols = np.array(["BTCUSDT", "ETHUSDT", "SOLUSDT", "DOGEUSDT"])[rng.integers(0, 4, n)]
    sides = np.where(rng.random(n) < 0.7, "long", "short")
    rows = [
        f"{t},{v},{s},{side},,,{u}"
        for t, v, s, side, u in zip(ts, venues, symbols, sides, usd, strict=True)
    ]
    path = tmp_path_factory.mktemp("prefetch") / "big.csv"
    path.write_text(HEADER + "\n".join(rows) + "\n")
    assert path.stat().st_size >= tape_prefetch.MIN_BYTES
    return path


def test_detect_output_is_the_same_when_parsed_ahead(big_tape: Path) -> None:
    done = liqguard("detect", big_tape, "--json", "--threshold", "2000000")
    reference = CliRunner().invoke(app, ["detect", str(big_tape), "--json", "--threshold", "2e6"])
    assert done.returncode == 0, done.stderr
    assert reference.exit_code == 0, reference.stderr
    assert done.stdout == reference.stdout
    assert done.stdout.count('"type": "anomaly"') > 5
    assert "events read: 95,000 from 1 file(s); rejected: 0" in done.stderr


def test_the_parse_ahead_is_what_the_reader_returns(big_tape: Path) -> None:
    tape_prefetch.start([str(big_tape), "--json"])
    ahead = tape_prefetch.take(big_tape)
    assert ahead is not None  # it was parsed ahead, not read again
    cols, stats = read_unified_columns(big_tape)
    assert ahead[1] == stats
    assert ahead[0].ts_ms.tolist() == cols.ts_ms.tolist()
    assert ahead[0].cents.tolist() == cols.cents.tolist()
    assert tape_prefetch.take(big_tape) is None  # taken once


def test_a_tape_changed_since_is_read_again(big_tape: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy.csv"
    copy.write_bytes(big_tape.read_bytes())
    tape_prefetch.start([str(copy)])
    with copy.open("a") as f:
        f.write("1799999999000,bybit,BTCUSDT,long,,,12.5\n")
    assert tape_prefetch.take(copy) is None


def test_nothing_is_parsed_ahead_for_another_format_or_a_small_file(
    big_tape: Path, tmp_path: Path
) -> None:
    tape_prefetch.start(["--format", "jsonl", str(big_tape)])
    assert tape_prefetch.take(big_tape) is None
    small = tmp_path / "small.csv"
    small.write_text(HEADER + "1735689600000,bybit,BTCUSDT,long,,,12.5\n")
    tape_prefetch.start([str(small)])
    assert tape_prefetch.take(small) is None
    tape_prefetch.start(["--format=unified", str(big_tape)])
    assert tape_prefetch.take(big_tape) is not None


def test_a_big_file_that_is_no_tape_gets_the_usual_sentence(tmp_path: Path) -> None:
    junk = tmp_path / "junk.csv"
    junk.write_text("hello,world\n" * 400_000)
    done = liqguard("detect", junk, "--json")
    assert done.returncode == 1
    assert "is not a liquidation tape" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_usage_error_exits_at_once_while_the_tape_is_parsing(big_tape: Path) -> None:
    done = liqguard("detect", big_tape, "--side", "sideways")
    assert done.returncode == 2
    assert "use long or short" in done.stderr
    assert "Traceback" not in done.stderr
