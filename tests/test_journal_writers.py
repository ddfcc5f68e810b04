"""One writer per journal, with real processes: a second `liqguard replay` on a journal in use
is refused with one sentence naming the first (pid, command) and exit 1, `liqguard journal`
reads it meanwhile, and a SIGKILL frees it (the OS drops the lock with the process). The same
on a real PostgreSQL, where the lock is the database's (an advisory lock of the writer's
session), and the processes of an HA group share the journal without it."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from bot.journal import JournalBusy, SqlJournal, default_journal_url
from tests.restart_tools import (
    BUNDLED_PRICES,
    BUNDLED_TAPE,
    LIQGUARD,
    clean_env,
    journal_rows,
    replay_args,
    run_until,
)


def test_a_second_writer_is_refused_and_a_reader_still_reads(tmp_path: Path) -> None:
    env = clean_env()
    journal = tmp_path / "j.sqlite"
    # paced, so it is still running when the others start; killed below, not waited for
    first_args = replay_args(BUNDLED_TAPE, BUNDLED_PRICES, journal, speed="2000")
    out = (tmp_path / "first.out").open("w")
    first = subprocess.Popen(first_args, cwd=tmp_path, stdout=out, stderr=out, env=env)
    try:
        second_dir = tmp_path / "second"
        second_dir.mkdir()
        # the second starts once the first holds the journal (its first checkpoint is there)
        second = run_until(
            replay_args(BUNDLED_TAPE, BUNDLED_PRICES, journal),
            second_dir,
            None,
            env,
            start_when=lambda s: s.cursor is not None,
        )
        assert first.poll() is None, "the first writer ended before the second started"
        message = " ".join(second.stderr.split())
        assert second.code == 1, second.stderr
        assert f"is in use by pid {first.pid} (liqguard replay " in message
        assert "Traceback" not in second.stderr
        assert message.endswith(".") and ". " not in message  # one sentence
        assert second.stdout == ""  # no summary: it did nothing

        reader = subprocess.run(
            [*LIQGUARD, "journal", "--journal", str(journal), "-n", "5"],
            cwd=second_dir, env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert reader.returncode == 0, reader.stderr
        assert "journal" in reader.stdout.lower()
        assert first.poll() is None  # the reader took no lock and did not disturb the writer
    finally:
        first.kill()  # SIGKILL: no clean exit, the lock must go with the process
        first.wait()
        out.close()
    assert first.returncode == -9
    rows_before = len(journal_rows(journal))
    again = run_until(replay_args(BUNDLED_TAPE, BUNDLED_PRICES, journal), tmp_path, None, env)
    assert again.code == 0, again.stderr[-2000:]
    assert "resuming session" in again.stderr
    assert len(journal_rows(journal)) >= rows_before


def test_the_lock_names_the_writer_without_the_passwords_of_its_command_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a command line can carry a password (a Postgres --journal URL, a webhook URL in a flag)
    argv = ["/venv/bin/liqguard", "run", "--notify", "https://hooks:FAKE-cli-password@h.invalid/x"]
    monkeypatch.setattr(sys, "argv", argv)
    journal = SqlJournal(default_journal_url(tmp_path / "j.sqlite"))
    try:
        held = (tmp_path / "j.sqlite.lock").read_text()
        assert held.startswith(f"pid {os.getpid()} (liqguard run --notify https://hooks:***@")
        assert "FAKE-cli-password" not in held
        other = subprocess.run(
            [sys.executable, "-c", _OPEN_AGAIN, str(tmp_path / "j.sqlite")],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert other.returncode == 1  # another process is refused while this one holds it
        assert f"is in use by pid {os.getpid()} (liqguard run" in other.stderr
        assert "FAKE-cli-password" not in other.stderr
    finally:
        journal.close()
    assert (tmp_path / "j.sqlite.lock").read_text() == ""  # released: nobody holds it


_OPEN_AGAIN = """
import sys
from bot.journal import JournalBusy, SqlJournal, default_journal_url
try:
    SqlJournal(default_journal_url(sys.argv[1]))
except JournalBusy as exc:
    print(exc, file=sys.stderr)
    sys.exit(1)
"""


_OPEN_PG = """
import sys
from bot.journal import JournalBusy, SqlJournal
mode = sys.argv[2]
try:
    j = SqlJournal(sys.argv[1], readonly=mode == "read", single_writer=mode != "ha")
except JournalBusy as exc:
    print(exc, file=sys.stderr)
    sys.exit(1)
if mode == "hold":
    print("held", flush=True)
    sys.stdin.read()  # holds the journal until killed
j.close()
"""


def _open_pg(url: str, mode: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", _OPEN_PG, url, mode], capture_output=True, text=True, timeout=120
    )


def test_a_second_writer_of_a_postgres_journal_is_refused(
    pg: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the password is ignored by the test server (trust) but must not show anywhere
    url = pg.url().replace("postgres@", "postgres:FAKE-pg-password@")
    argv = ["/venv/bin/liqguard", "run", "--journal", url]
    monkeypatch.setattr(sys, "argv", argv)
    neighbour = SqlJournal(pg.url())  # another database on the server: a lock of its own
    journal = SqlJournal(url)
    try:
        again = SqlJournal(url)  # the same process may open it twice (a reader beside it)
        again.close()
        other = _open_pg(url, "write")
        message = " ".join(other.stderr.split())
        assert other.returncode == 1, other.stderr
        assert f"is in use by pid {os.getpid()} (liqguard run --journal postgresql" in message
        assert "one process writes a journal at a time" in message
        assert "FAKE-pg-password" not in other.stderr and "Traceback" not in other.stderr
        assert _open_pg(url, "read").returncode == 0  # `liqguard journal` reads meanwhile
        assert _open_pg(url, "ha").returncode == 0  # an HA group's processes share it
        journal.append("test", 1, {"n": 1})  # and the holder still writes
    finally:
        journal.close()
        neighbour.close()
    assert _open_pg(url, "write").returncode == 0  # released with the close


def test_a_killed_postgres_writer_frees_its_journal(pg: Any) -> None:
    url = pg.url()
    holder = subprocess.Popen(
        [sys.executable, "-c", _OPEN_PG, url, "hold"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        refused = _open_pg(url, "write")
        assert refused.returncode == 1
        assert f"is in use by pid {holder.pid} (" in " ".join(refused.stderr.split())
    finally:
        holder.kill()  # SIGKILL: Postgres ends the session, and its lock, with the socket
        holder.wait()
    deadline = time.monotonic() + 30
    while True:  # the server notices the closed socket a moment later
        try:
            SqlJournal(url).close()
            break
        except JournalBusy:
            assert time.monotonic() < deadline, "the killed writer's lock was never dropped"
            time.sleep(0.05)
