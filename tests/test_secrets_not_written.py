"""No secret in any file a run writes: secrets planted in the environment, in `.env` and in
the config's URLs (webhook token and basic-auth password, RPC key) of a real `liqguard
replay`; then every file under its folder (journal, WAL, lock, JSON log, captured output) is
searched for each of them. The journal keeps the settings' digest and their redacted form."""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

from tests.restart_tools import BUNDLED_PRICES, BUNDLED_TAPE, clean_env, replay_args, run_until

# Fakes, named as such; each distinct so a hit says where it came from.
ENV_SECRETS = {
    "LIQGUARD_TELEGRAM_BOT_TOKEN": "000000:FAKE-env-telegram-bot-token",
    "LIQGUARD_WEBHOOK_SECRET": "FAKE-env-webhook-signing-secret",
    "LIQGUARD_ETH_RPC_HTTP": "https://rpc.example.invalid/v2/FAKE-env-rpc-key",
}
DOTENV_SECRETS = {
    "LIQGUARD_BINANCE_API_KEY": "FAKE-dotenv-binance-key",
    "LIQGUARD_BINANCE_API_SECRET": "FAKE-dotenv-binance-secret",
}
URL_TOKEN = "FAKE-config-webhook-url-token"
BASIC_PASSWORD = "FAKE-config-basic-auth-password"
RPC_KEY = "FAKE-config-rpc-key"


class _Hook(BaseHTTPRequestHandler):
    hits: ClassVar[list[str]] = []

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.hits.append(self.path)
        self.send_response(200)
        self.end_headers()

    def log_message(self, *_args: object) -> None:
        return None


@pytest.fixture
def webhook() -> Iterator[str]:
    """A webhook receiver on 127.0.0.1 (so the configured webhook is really used)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _leaks(run_dir: Path) -> dict[str, list[str]]:
    """{file: planted secrets found in it} over every file under `run_dir` but the user's own
    (.env, liqguard.yaml), bytes searched (free pages of the database included); the names
    searched under "(files)"."""
    secrets = [*ENV_SECRETS.values(), *DOTENV_SECRETS.values(), URL_TOKEN, BASIC_PASSWORD, RPC_KEY]
    mine = {".env", "liqguard.yaml"}
    written = [p for p in run_dir.rglob("*") if p.is_file() and p.name not in mine]
    out: dict[str, list[str]] = {"(files)": sorted(p.name for p in written)}
    for p in written:
        found = [s for s in secrets if s.encode() in p.read_bytes()]
        if found:
            out[str(p.relative_to(run_dir))] = found
    return out


def test_planted_secrets_reach_no_file_the_run_writes(tmp_path: Path, webhook: str) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / ".env").write_text("".join(f"{k}={v}\n" for k, v in DOTENV_SECRETS.items()))
    log = run_dir / "logs" / "liqguard.jsonl"
    log.parent.mkdir()
    (run_dir / "liqguard.yaml").write_text(
        f"""
rules:
  - name: all              # $1M over every venue: the bundled crash fires from its first hours
webhooks:
  - url: http://hooks:{BASIC_PASSWORD}@{webhook}/services/{URL_TOKEN}
    retries: 0
chains:
  ethereum:
    rpc_http: https://mainnet.example.invalid/v3/{RPC_KEY}
logging:
  level: DEBUG
  json_file: {log}
"""
    )
    journal = run_dir / "journal" / "j.sqlite"
    args = replay_args(BUNDLED_TAPE, BUNDLED_PRICES, journal, config=None)  # ./liqguard.yaml
    env = clean_env(**ENV_SECRETS)
    # killed mid-run first: the WAL is still there (a clean exit folds it into the file)
    killed = run_until(args, run_dir, lambda s: s.rows >= 20, env)
    assert killed.code == -9
    wal = _leaks(run_dir)
    assert "j.sqlite-wal" in wal.pop("(files)")
    assert wal == {}
    ended = run_until(args, run_dir, None, env)
    assert ended.code == 0, ended.stderr[-3000:]
    assert _Hook.hits and all(URL_TOKEN in p for p in _Hook.hits)  # the webhook was used
    assert log.stat().st_size > 0
    after = _leaks(run_dir)
    assert {"j.sqlite", "j.sqlite.lock", "liqguard.jsonl", "stdout.txt"} <= set(
        after.pop("(files)")
    )
    assert after == {}

    conn = sqlite3.connect(journal)
    try:
        (book,) = conn.execute(
            "SELECT value FROM journal_state WHERE name LIKE 'sessions:%'"
        ).fetchone()
    finally:
        conn.close()
    record = json.loads(book)
    assert len(record["settings_sha256"]) == 64
    assert record["settings"]["webhooks"][0]["url"] == f"http://{webhook}/***"
    assert (
        record["settings"]["chains"]["ethereum"]["rpc_http"]
        == "https://mainnet.example.invalid/***"
    )
