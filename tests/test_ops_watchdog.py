"""The watchdog: systemd notify datagrams and dead-man's-switch pings stop when the event loop
hangs and when the process is killed; `liqguard health` says so."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib.resources import files
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bot.cli import app
from bot.config.ops import HealthcheckConfig
from bot.ops.watchdog import Watchdog

DATA = Path(str(files("bot").joinpath("data")))
TAPE = DATA / "binance-btcusdt_2024-12-04_06.csv"
PRICES = DATA / "BTCUSDT-5m_2024-12-04_06.csv"
LIQGUARD = str(Path(sys.executable).with_name("liqguard"))


class Datagrams:
    """A NOTIFY_SOCKET like systemd's: every datagram kept with its arrival time."""

    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.path = path
        self.got: list[tuple[float, str]] = []
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while True:
            try:
                data = self.sock.recv(4096)
            except OSError:
                return
            self.got.append((time.monotonic(), data.decode()))

    def wait_for(self, text: str, count: int = 1, within_s: float = 120.0) -> None:
        end = time.monotonic() + within_s
        while sum(text in m for _, m in self.got) < count:
            assert time.monotonic() < end, f"{count}x {text!r} never came; got {self.got[-5:]}"
            time.sleep(0.02)

    def since(self, t: float, text: str) -> list[str]:
        return [m for at, m in self.got if at > t and text in m]

    def close(self) -> None:
        self.sock.close()


class Pings:
    """A dead-man's-switch endpoint (healthchecks.io style): counts GETs, in its own thread."""

    def __init__(self) -> None:
        hits = self.hits = []

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                hits.append(time.monotonic())
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"OK")

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/ping/abc-uuid"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()


@pytest.fixture
def notify(tmp_path: Path) -> Iterator[Datagrams]:
    d = Datagrams(tmp_path / "notify.sock")
    yield d
    d.close()


@pytest.fixture
def pings() -> Iterator[Pings]:
    p = Pings()
    yield p
    p.close()


async def test_a_hung_loop_sends_no_watchdog_ping(notify: Datagrams, pings: Pings) -> None:
    cfg = HealthcheckConfig(beat_s=0.05, max_loop_lag_s=0.3, ping_url=pings.url, interval_s=0.05)
    dog = Watchdog(cfg, lambda: time.time(), lambda: {}, env={"NOTIFY_SOCKET": str(notify.path)})
    dog.start()
    try:
        await asyncio.to_thread(notify.wait_for, "WATCHDOG=1", 3)
        await asyncio.to_thread(lambda: _until(lambda: len(pings.hits) >= 2))
        hung_at = time.monotonic()
        time.sleep(1.0)  # noqa: ASYNC251 (the point: the loop hangs, nothing in it runs)
        resumed_at = time.monotonic()
        await asyncio.sleep(0.01)  # one turn: the beat that wakes 1 s late
        await asyncio.sleep(0.01)
        # (a datagram sent just before the hang may be read a moment into it: 0.1 s of grace;
        # a pinger outside the loop would have sent about 18 in the rest)
        during = [m for at, m in notify.got if hung_at + 0.1 < at < resumed_at]
        assert during == []
        assert [h for h in pings.hits if hung_at + 0.1 < h < resumed_at] == []
        # the late beat reports the lag instead of pinging
        await asyncio.to_thread(notify.wait_for, "STATUS=unhealthy: the event loop lagged", 1)
        ok, why = dog.health()
        assert not ok and "lagged" in why
        # and once the loop turns on time again, the pings come back
        back = time.monotonic()
        await asyncio.to_thread(lambda: _until(lambda: notify.since(back, "WATCHDOG=1")))
        assert dog.health()[0]
    finally:
        await dog.close()
    await asyncio.to_thread(notify.wait_for, "STOPPING=1")
    assert notify.got[0][1].startswith("READY=1")
    assert "STOPPING=1" in notify.got[-1][1]


def _until(cond: object, within_s: float = 60.0) -> None:
    end = time.monotonic() + within_s
    while not cond():  # type: ignore[operator]
        assert time.monotonic() < end, "condition never met"
        time.sleep(0.02)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_killed_process_stops_the_pings(tmp_path: Path, notify: Datagrams, pings: Pings) -> None:
    port = _free_port()
    cfg = tmp_path / "liqguard.yaml"
    cfg.write_text(
        f"metrics: {{listen: '127.0.0.1:{port}'}}\n"
        f"healthcheck: {{beat_s: 0.1, interval_s: 0.1, ping_url: '{pings.url}'}}\n"
        f"journal: {{url: '{tmp_path / 'journal.db'}'}}\n"
    )
    env = {**os.environ, "NOTIFY_SOCKET": str(notify.path)}
    # a slow replay: the bot is still running when it is killed
    cmd = [LIQGUARD, "replay", str(TAPE), "--prices", str(PRICES), "--config", str(cfg)]
    proc = subprocess.Popen(
        [*cmd, "--speed", "10"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        notify.wait_for("READY=1")
        notify.wait_for("WATCHDOG=1", 3)
        _until(lambda: len(pings.hits) >= 2)
        health = ["health", "--config", str(cfg)]
        ok = CliRunner().invoke(app, health)  # the command in this process: no second start-up
        assert ok.exit_code == 0, ok.stdout
        assert ok.stdout.startswith("ok: loop lag"), ok.stdout
        assert len(ok.stdout.strip().splitlines()) == 1
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        killed = time.monotonic()
        time.sleep(1.0)  # ten beats: a live process would have pinged ten times
        # 0.1 s of grace for a datagram or a ping already on its way when the process died
        assert notify.since(killed + 0.1, "WATCHDOG=1") == []
        assert [h for h in pings.hits if h > killed + 0.1] == []
        down = CliRunner().invoke(app, health)
        assert down.exit_code == 1
        assert down.stdout.startswith("unhealthy: no answer from"), down.stdout
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stderr is not None:
            err = proc.stderr.read().decode()
            assert pings.url not in err  # the ping URL is a secret: never in the output
            proc.stderr.close()
