"""SIGHUP reloads the config file of a real `liqguard replay` process: a valid file is taken
(journaled), an invalid one is refused with its one-sentence error and the run goes on."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import time
from pathlib import Path
from typing import Any

from tests.restart_tools import LIQGUARD, clean_env, peek

# two events an hour apart: at speed 1 the replay lasts as long as the test needs
TAPE = """ts_ms,venue,symbol,side,price,quantity,notional_usd
1735689600000,binance-usdm,BTCUSDT,long,,,400000
1735693200000,bybit,ETHUSDT,short,,,700000
"""


def reloads(journal: Path) -> list[dict[str, Any]]:
    if not journal.exists():
        return []
    conn = sqlite3.connect(f"file:{journal}?mode=ro", uri=True, timeout=5)
    try:
        rows = conn.execute(
            "SELECT payload FROM journal_entries WHERE kind = 'config.reload' ORDER BY id"
        ).fetchall()
    except sqlite3.OperationalError:  # not created yet
        return []
    finally:
        conn.close()
    return [json.loads(p) for (p,) in rows]


def wait_until(proc: subprocess.Popen[bytes], done: Any, what: str) -> None:
    deadline = time.monotonic() + 60
    while not done():
        assert proc.poll() is None, f"liqguard ended (code {proc.returncode}) before {what}"
        assert time.monotonic() < deadline, f"no {what} within 60 s"
        time.sleep(0.02)  # polling the journal a reader sees, not timing anything


def test_sighup_takes_a_valid_file_and_refuses_an_invalid_one(tmp_path: Path) -> None:
    config = tmp_path / "liqguard.yaml"
    config.write_text("rules: [{name: all, threshold_usd: 1000000}]\n", encoding="utf-8")
    journal, tape = tmp_path / "j.sqlite", tmp_path / "tape.csv"
    tape.write_text(TAPE, encoding="utf-8")
    args = [*LIQGUARD, "replay", str(tape), "--journal", str(journal), "--speed", "1",
            "--config", str(config)]  # fmt: skip
    err = tmp_path / "stderr.txt"
    with err.open("w") as e:
        proc = subprocess.Popen(args, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=e,
                                env=clean_env())  # fmt: skip
        try:
            # the first checkpoint is written once the run (and its SIGHUP handler) is up
            wait_until(proc, lambda: peek(journal).cursor is not None, "the first checkpoint")
            config.write_text(
                "rules: [{name: all, threshold_usd: 3000000}, {name: btc, symbols: [BTC]}]\n",
                encoding="utf-8",
            )
            proc.send_signal(signal.SIGHUP)
            wait_until(proc, lambda: len(reloads(journal)) == 1, "the first reload")
            config.write_text("rules: [{name: all, threshold_usd: -5}]\n", encoding="utf-8")
            proc.send_signal(signal.SIGHUP)
            wait_until(proc, lambda: len(reloads(journal)) == 2, "the second reload")
            assert proc.poll() is None  # an invalid file does not stop the run
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    taken, refused = reloads(journal)
    assert taken["ok"] and taken["diff"] == ["rules.btc: added", "rules.all: changed"]
    assert not refused["ok"]
    assert "rules[0].threshold_usd: value -5" in refused["error"]
    text = err.read_text()
    assert f"reloaded {config}: rules.btc: added; rules.all: changed" in text
    assert "reload refused" in text and "(the running configuration stays)" in text
    assert "Traceback" not in text
