"""--metrics / --http on the command line: a bad address or a busy port is one sentence, exit 2."""

from __future__ import annotations

import socket
from importlib.resources import files
from pathlib import Path

from typer.testing import CliRunner

from bot.cli import app

TAPE = Path(str(files("bot").joinpath("data", "binance-btcusdt_2024-12-04_06.csv")))


def test_a_bad_listen_address_is_refused() -> None:
    result = CliRunner().invoke(app, ["replay", str(TAPE), "--metrics", "nope"])
    assert result.exit_code == 2
    assert result.output.strip() == "metrics.listen 'nope': give HOST:PORT, e.g. 127.0.0.1:9464"


def test_a_busy_port_is_refused_in_one_sentence(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        args = ["replay", str(TAPE), "--journal", str(tmp_path / "j.db"), "--http"]
        result = CliRunner().invoke(app, [*args, f"127.0.0.1:{port}"])
    assert result.exit_code == 2, result.output
    assert f"http.listen 127.0.0.1:{port}: cannot listen there" in result.output
    assert "give another HOST:PORT" in result.output
    assert "Traceback" not in result.output
