"""Real `liqguard` processes for the restart tests: start one, watch its journal read-only,
SIGKILL it at a chosen moment, and read what it left."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).parent / "fixtures"
BUNDLED_TAPE = Path(str(files("bot").joinpath("data", "binance-btcusdt_2024-12-04_06.csv")))
BUNDLED_PRICES = Path(str(files("bot").joinpath("data", "BTCUSDT-5m_2024-12-04_06.csv")))
EPISODE_TAPE = FIXTURES / "liquidations" / "binance-allmarket_2025-01-26_02-06.csv.gz"
EPISODE_PRICES = FIXTURES / "prices" / "BTCUSDT-5m_2025-01-27_16-20.csv"

_SCRIPT = Path(sys.executable).with_name("liqguard")
LIQGUARD = (
    [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-c", "from bot.cli import app; app()"]
)


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without any LIQGUARD_* variable, plus `extra`; no colour, wide lines."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIQGUARD_")}
    env.update({"NO_COLOR": "1", "COLUMNS": "120", "TERM": "dumb"}, **extra)
    return env


# $1M over every venue: the bundled tapes climb and trade under it (the $4M default stays low)
RULE_1M = Path(__file__).parent / "fixtures" / "rule_1m_all_venues.yaml"


def replay_args(
    tape: Path, prices: Path, journal: Path, speed: str = "max", config: Path | None = RULE_1M
) -> list[str]:
    """`config` None: the run's ./liqguard.yaml."""
    return [*LIQGUARD, "replay", str(tape), "--prices", str(prices), "--journal", str(journal),
            "--speed", speed, *(["--config", str(config)] if config else [])]  # fmt: skip


@dataclass
class Snapshot:
    """What a reader sees in the journal right now."""

    rows: int
    cursor: dict[str, Any] | None


def peek(journal: Path) -> Snapshot:
    """Rows and the replay cursor, read-only (as `liqguard journal` would, beside the bot)."""
    if not journal.exists():
        return Snapshot(0, None)
    try:
        conn = sqlite3.connect(f"file:{journal}?mode=ro", uri=True, timeout=5)
        try:
            (n,) = conn.execute("SELECT count(*) FROM journal_entries").fetchone()
            got = conn.execute(
                "SELECT value FROM journal_state WHERE name LIKE 'cursor:%'"
            ).fetchone()
        finally:
            conn.close()
    except sqlite3.OperationalError:  # not created yet
        return Snapshot(0, None)
    return Snapshot(int(n), json.loads(got[0]) if got else None)


@dataclass
class Ended:
    code: int  # -9: killed by us
    rows_at_kill: int
    stdout: str
    stderr: str


def run_until(
    args: list[str],
    cwd: Path,
    when: Callable[[Snapshot], bool] | None,
    env: dict[str, str],
    start_when: Callable[[Snapshot], bool] | None = None,
) -> Ended:
    """Start `args` (once `start_when(snapshot)` holds, if given); SIGKILL it the first time
    `when(snapshot)` holds (None: let it finish)."""
    out, err = cwd / "stdout.txt", cwd / "stderr.txt"
    journal = Path(args[args.index("--journal") + 1])
    while start_when is not None and not start_when(peek(journal)):
        time.sleep(0.005)  # polling a state, not timing anything
    with out.open("w") as o, err.open("w") as e:
        proc = subprocess.Popen(args, cwd=cwd, stdout=o, stderr=e, env=env)
        rows = 0
        try:
            while proc.poll() is None:
                if when is not None:
                    snap = peek(journal)
                    if when(snap):
                        proc.send_signal(signal.SIGKILL)
                        rows = snap.rows
                        break
                    time.sleep(0.001)  # a poll, not a wait for anything in particular
                else:
                    proc.wait(timeout=120)
            proc.wait(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return Ended(proc.returncode, rows, out.read_text(), err.read_text())


def journal_rows(journal: Path) -> list[tuple[str, str | None, int, str]]:
    """Every row as (kind, key, ts_ms, payload JSON), in write order; wall times left out."""
    conn = sqlite3.connect(f"file:{journal}?mode=ro", uri=True)
    try:
        rows = conn.execute("SELECT kind, key, ts_ms, payload FROM journal_entries ORDER BY id")
        return [
            (k, key, int(ts), json.dumps(json.loads(p), sort_keys=True)) for k, key, ts, p in rows
        ]
    finally:
        conn.close()


def journal_states(journal: Path) -> dict[str, Any]:
    """The named states a restart reads (detector, ladder, accounts, cursor)."""
    conn = sqlite3.connect(f"file:{journal}?mode=ro", uri=True)
    try:
        rows = conn.execute("SELECT name, value FROM journal_state").fetchall()
    finally:
        conn.close()
    keep = ("detector:", "risk:", "paper:", "baseline:", "cursor:")
    return {n: json.loads(v) for n, v in rows if n.startswith(keep)}
