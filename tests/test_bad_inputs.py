"""Bad input, as a new user gives it: every case gets one sentence naming the file or field and
the value, the documented exit code (1 unreadable/runtime, 2 usage/config), no traceback, no
hang, and nothing journaled. Each case runs the real `liqguard` in its own process."""

from __future__ import annotations

import gzip
import os
import random
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TAPE = ROOT / "bot/data/binance-btcusdt_2024-12-04_06.csv"
PRICES = ROOT / "bot/data/BTCUSDT-5m_2024-12-04_06.csv"
DEADLINE_S = 60  # a hang fails the case; a good refusal takes about a second

Make = Callable[[Path], list[str]]  # builds the files of a case, returns the arguments


@dataclass(frozen=True)
class Case:
    name: str
    make: Make
    exit_code: int
    says: str  # a phrase the sentence must hold (the field, the value or the fix)


def _write(path: Path, data: bytes | str) -> Path:
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


def _tape_rows() -> list[str]:
    return TAPE.read_text().splitlines()


def _replay(tape: Path, *extra: str) -> list[str]:
    return ["replay", str(tape), "--prices", str(PRICES), "--speed", "max", *extra]


def _with_config(text: str, *argv: str) -> Make:
    def make(d: Path) -> list[str]:
        cfg = _write(d / "liqguard.yaml", text)
        return [*(argv or _replay(TAPE)), "--config", str(cfg)]

    return make


def _seconds_tape(d: Path) -> list[str]:
    rows = _tape_rows()
    out = [rows[0]] + [
        ",".join([str(int(r.split(",")[0]) // 1000), *r.split(",")[1:]]) for r in rows[1:]
    ]
    return _replay(_write(d / "seconds.csv", "\n".join(out) + "\n"))


def _prices_with(candle: str) -> Make:
    def make(d: Path) -> list[str]:
        lines = PRICES.read_text().splitlines()
        bad = _write(d / "BTCUSDT-5m-bad.csv", "\n".join([*lines[:10], candle, *lines[10:]]))
        return ["replay", str(TAPE), "--prices", str(bad), "--speed", "max"]

    return make


def _journal_at(make_path: Callable[[Path], str]) -> Make:
    return lambda d: _replay(TAPE, "--journal", make_path(d))


def _other_schema(d: Path) -> str:
    path = d / "other.sqlite"
    with sqlite3.connect(path) as conn:
        conn.execute("create table journal_entries (a int)")
    return str(path)


def _a_file_parent(d: Path) -> str:
    _write(d / "plain", "x")
    return str(d / "plain" / "j.sqlite")


def _journal_of_a_run(d: Path) -> Path:
    """A real journal: the bundled crash replayed into it once."""
    path = d / "run.sqlite"
    subprocess.run(
        [sys.executable, "-m", "bot.cli", *_replay(TAPE, "--journal", str(path))],
        cwd=d,
        capture_output=True,
        timeout=DEADLINE_S,
        check=True,
    )
    return path


def _edited_cursor(d: Path) -> list[str]:
    path = _journal_of_a_run(d)
    with sqlite3.connect(path) as conn:  # a person "fixing" the journal by hand
        conn.execute(
            "update journal_state set value = '{\"events\": \"many\"}' where name like 'cursor:%'"
        )
    return _replay(TAPE, "--journal", str(path))


def _truncated_journal(d: Path) -> list[str]:
    path = _journal_of_a_run(d)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])
    for extra in (path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        extra.unlink(missing_ok=True)
    return _replay(TAPE, "--journal", str(path))


LAUGHS = "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"{n}: &{n} [{', '.join(['*' + p] * 9)}]\n" for p, n in zip("abcdef", "bcdefg", strict=True)
)

BINARY = b"\x89PNG\r\n\x1a\n" + random.Random(7).randbytes(4088)

CASES = [
    Case("empty tape", lambda d: _replay(_write(d / "e.csv", b"")), 1, "is empty"),
    # an image named .csv (fixed bytes: random ones can open with a short line that decodes)
    Case("binary tape", lambda d: _replay(_write(d / "b.csv", BINARY)), 1, "not a text"),
    Case(
        "truncated gzip tape",
        lambda d: _replay(_write(d / "t.csv.gz", gzip.compress(TAPE.read_bytes())[:3000])),
        1,
        "damaged gzip",
    ),
    Case(
        "header and garbage rows",
        lambda d: _replay(_write(d / "g.csv", _tape_rows()[0] + "\n" + "x,y,z\n" * 50_000)),
        1,
        "rows were all rejected",
    ),
    Case("seconds instead of ms", _seconds_tape, 1, "ts_ms is in milliseconds"),
    Case(
        "a missing column",
        lambda d: _replay(_write(d / "m.csv", "ts_ms,venue,symbol,side,price\n1,a,b,long,2\n")),
        1,
        "not a liquidation tape",
    ),
    Case(
        "missing prices",
        lambda d: ["replay", str(TAPE), "--prices", str(d / "none.csv")],
        1,
        "cannot be read",
    ),
    Case("a NaN candle", _prices_with("1733273400000,nan,nan,nan,nan,1"), 1, "open is nan"),
    Case("a negative candle", _prices_with("1733273400000,-1,-1,-1,-1,1"), 1, "open is -1.0"),
    Case(
        "prices named without a symbol",
        lambda d: [
            "replay",
            str(TAPE),
            "--prices",
            str(_write(d / "prices.csv", PRICES.read_text())),
        ],
        2,
        "holds BTCUSDT",
    ),
    Case("infinite threshold", _with_config("rules: [{threshold_usd: .inf}]"), 2, "threshold_usd"),
    Case("a window of 1e308 s", _with_config("rules: [{window_s: 1e308}]"), 2, "window_s"),
    Case(
        "infinite escalation window",
        _with_config("rules: [{escalation_window_s: .inf}]"),
        2,
        "escalation_window_s",
    ),
    Case("infinite max order", _with_config("risk: {max_order_usd: .inf}"), 2, "max_order_usd"),
    Case("sub-cent threshold", _with_config("rules: [{threshold_usd: 0.001}]"), 2, "0.001"),
    Case(
        "detect with a sub-cent threshold",
        lambda d: ["detect", str(TAPE), "--threshold", "0.001"],
        2,
        "--threshold",
    ),
    Case(
        "unwritable log file",
        _with_config("logging: {json_file: /proc/nowhere/log.jsonl}"),
        2,
        "logging.json_file",
    ),
    Case("unknown journal scheme", _with_config("journal: {url: 'ftp://x/y'}"), 2, "'ftp'"),
    Case("approvals typo", lambda d: _replay(TAPE, "--approvals", "consol"), 2, "'consol'"),
    Case("mode: live without --live", _with_config("mode: live\n", "run"), 2, "--live"),
    Case("nested YAML aliases", _with_config(LAUGHS), 2, "aliases expand"),
    Case(
        "telegram without its token",
        _with_config("telegram: {chat_id: 1, allowed_user_ids: [1]}"),
        2,
        "LIQGUARD_TELEGRAM_BOT_TOKEN",
    ),
    Case("journal is a directory", _journal_at(lambda d: str(d)), 1, "is a directory"),
    Case("journal under a file", _journal_at(_a_file_parent), 1, "folder cannot be made"),
    Case(
        "journal of random bytes",
        _journal_at(lambda d: str(_write(d / "r.sqlite", os.urandom(4096)))),
        1,
        "not a database",
    ),
    Case("journal of another program", _journal_at(_other_schema), 1, "liqguard journal"),
    Case("an edited replay cursor", _edited_cursor, 1, "is damaged"),
    Case("a truncated journal", _truncated_journal, 1, "journal"),
    Case(
        "`journal` on random bytes",
        lambda d: ["journal", "--journal", str(_write(d / "r.sqlite", os.urandom(4096)))],
        1,
        "not a database",
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input_gets_one_sentence_and_its_exit_code(case: Case, tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    argv = case.make(work)
    env = {**os.environ, "COLUMNS": "80"}
    env.pop("LIQGUARD_TELEGRAM_BOT_TOKEN", None)
    done = subprocess.run(
        [sys.executable, "-m", "bot.cli", *argv],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=DEADLINE_S,
        stdin=subprocess.DEVNULL,
    )
    text = done.stdout + done.stderr
    assert "Traceback" not in text, text
    assert done.returncode == case.exit_code, text
    lines = [line for line in done.stderr.splitlines() if case.says in line]
    assert lines, f"no line says {case.says!r}:\n{text}"
    assert not (tmp_path / "var").exists()  # nothing journaled at the default place
