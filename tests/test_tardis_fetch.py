"""`liqguard fetch tardis` through the official `tardis-dev` client against a local server laid
out like Tardis.dev's datasets API (`/v1/{exchange}/liquidations/{YYYY}/{MM}/{DD}/{SYMBOL}.csv.gz`,
the first day of a month free, other days behind a Bearer key), rows from the bundled capture."""

from __future__ import annotations

import csv
import gzip
import http.server
import io
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

import pytest
from typer.testing import CliRunner

from bot.cli import app
from bot.money import usd_to_cents
from bot.sources import open_tape

ROOT = Path(__file__).parent.parent
CRASH_TAPE = ROOT / "bot" / "data" / "binance-btcusdt_2024-12-04_06.csv"
HEADER = "exchange,symbol,timestamp,local_timestamp,id,side,price,amount"
KEY = "FAKE-tardis-api-key"
runner = CliRunner()


class _Datasets(http.server.BaseHTTPRequestHandler):
    files: ClassVar[dict[str, bytes]] = {}  # URL path -> gzip body
    seen: ClassVar[list[tuple[str, str | None]]] = []  # (path, Authorization)

    def log_message(self, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        path = self.path.split("?")[0]
        auth = self.headers.get("Authorization")
        _Datasets.seen.append((path, auth))
        body = _Datasets.files.get(path)
        free = path.split("/")[-2] == "01"  # .../{YYYY}/{MM}/{DD}/{SYMBOL}.csv.gz
        if body is not None and not free and auth != f"Bearer {KEY}":
            self._send(401, b'{"code":100,"message":"Invalid API key"}')
        elif body is None:
            self._send(404, b'{"code":100,"message":"not found"}')
        else:
            self._send(200, body)

    def _send(self, code: int, body: bytes) -> None:
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def _publish(exchange: str, symbol: str, rows: list[str]) -> None:
    """Group Tardis rows into day files by their local_timestamp, as Tardis does."""
    days: dict[str, list[str]] = {}
    for row in rows:
        local_us = int(row.split(",")[3])
        day = datetime.fromtimestamp(local_us / 1e6, UTC).strftime("%Y/%m/%d")
        days.setdefault(day, []).append(row)
    for day, day_rows in days.items():
        text = HEADER + "\n" + "".join(r + "\n" for r in day_rows)
        _Datasets.files[f"/v1/{exchange}/liquidations/{day}/{symbol}.csv.gz"] = gzip.compress(
            text.encode()
        )


def _crash_rows() -> list[str]:
    """The bundled real BTCUSDT capture as Tardis's binance-futures rows."""
    out = []
    for r in csv.DictReader(io.StringIO(CRASH_TAPE.read_text())):
        us = int(r["ts_ms"]) * 1000 + 250
        side = "sell" if r["side"] == "long" else "buy"
        out.append(f"binance-futures,BTCUSDT,{us},{us + 40_000},,{side},{r['price']},"
                   f"{r['quantity']}")  # fmt: skip
    return out


@pytest.fixture
def datasets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.chdir(tmp_path)  # no .env of the developer's
    monkeypatch.delenv("LIQGUARD_TARDIS_API_KEY", raising=False)
    _Datasets.files, _Datasets.seen = {}, []
    _publish("binance-futures", "BTCUSDT", _crash_rows())
    # 2024-12-01 (free): two symbols interleaved in time
    t0 = 1733011200_000_000 + 3_600_000_000
    _publish("binance-futures", "BTCUSDT", [
        f"binance-futures,BTCUSDT,{t0 + i * 2_000_000},{t0 + i * 2_000_000 + 9},,sell,96000,0.5"
        for i in range(3)
    ])  # fmt: skip
    _publish("binance-futures", "ETHUSDT", [
        f"binance-futures,ETHUSDT,{t0 + i * 2_000_000 + 1_000_000},{t0 + i * 2_000_000 + 9},,"
        "buy,3700,2" for i in range(3)
    ])  # fmt: skip
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Datasets)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        server.server_close()


def fetch(*args: str | Path) -> Any:
    return runner.invoke(app, ["fetch", "tardis", *map(str, args)])


def test_first_day_of_a_month_is_fetched_without_a_key_in_time_order(
    datasets: str, tmp_path: Path
) -> None:
    out = tmp_path / "tape.csv"
    res = fetch("--exchange", "binance-futures", "--symbols", "BTCUSDT,ethusdt",
                "--from", "2024-12-01", "--to", "2024-12-01", "-o", out,
                "--endpoint", datasets)  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "wrote 6 liquidations (binance-usdm) from 2 day file(s)" in res.output
    assert {p for p, _ in _Datasets.seen} == {
        "/v1/binance-futures/liquidations/2024/12/01/BTCUSDT.csv.gz",
        "/v1/binance-futures/liquidations/2024/12/01/ETHUSDT.csv.gz",
    }
    assert all(auth is None for _, auth in _Datasets.seen)  # no key, no header
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert [r["symbol"] for r in rows] == ["BTCUSDT", "ETHUSDT"] * 3  # merged by time
    assert [r["side"] for r in rows[:2]] == ["long", "short"]  # sell = a long liquidated
    assert [float(r["notional_usd"]) for r in rows[:2]] == [48000.0, 7400.0]


def test_other_days_with_the_key_from_the_environment_equal_the_capture(
    datasets: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LIQGUARD_TARDIS_API_KEY", KEY)
    monkeypatch.setenv("LIQGUARD_TARDIS_DATASETS_URL", datasets)  # the endpoint from the env
    out = tmp_path / "crash.csv"
    res = fetch("--exchange", "binance-futures", "--symbols", "BTCUSDT",
                "--from", "2024-12-04", "--to", "2024-12-06", "-o", out)  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "wrote 1,844 liquidations (binance-usdm) from 3 day file(s)" in res.output
    assert {auth for _, auth in _Datasets.seen} == {f"Bearer {KEY}"}
    assert KEY not in res.output and KEY not in out.read_text()
    # The fetched tape is the capture, cent for cent: what every detector run then sees.
    fetched = [(e.ts_ms, e.side, usd_to_cents(e.notional_usd)) for e in open_tape(out)]
    capture = [(e.ts_ms, e.side, usd_to_cents(e.notional_usd)) for e in open_tape(CRASH_TAPE)]
    assert fetched == capture


def test_a_paid_day_without_a_key_is_one_sentence_and_exit_2(datasets: str, tmp_path: Path) -> None:
    out = tmp_path / "t.csv"
    res = fetch("--exchange", "binance-futures", "--symbols", "BTCUSDT",
                "--from", "2024-12-05", "--to", "2024-12-05", "-o", out,
                "--endpoint", datasets)  # fmt: skip
    assert res.exit_code == 2
    assert "HTTP 401: without an API key Tardis.dev serves only the first day" in res.output
    assert "LIQGUARD_TARDIS_API_KEY" in res.output and "Traceback" not in res.output
    assert not out.exists()


def test_a_refused_key_is_never_printed(
    datasets: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wrong = "td.WRONG-k3y-n0t-t0-b3-pr1nt3d"
    monkeypatch.setenv("LIQGUARD_TARDIS_API_KEY", wrong)
    res = fetch("--exchange", "binance-futures", "--symbols", "BTCUSDT",
                "--from", "2024-12-05", "--to", "2024-12-05", "-o", tmp_path / "t.csv",
                "--endpoint", datasets)  # fmt: skip
    assert res.exit_code == 2 and "refused the API key in LIQGUARD_TARDIS_API_KEY" in res.output
    assert {auth for _, auth in _Datasets.seen} == {f"Bearer {wrong}"}  # it was sent
    assert wrong not in res.output  # and never shown


@pytest.mark.parametrize(
    ("args", "code", "says"),
    [
        (["--exchange", "ftx"], 2, "--exchange 'ftx': liqguard converts Tardis.dev"),
        (["--from", "2024-13-01"], 2, "is not a date"),
        (["--from", "2024-12-03", "--to", "2024-12-02"], 2, "must be on or after --from"),
        (["--symbols", "NOPEUSDT"], 1, "HTTP 404: no such file"),
    ],
)
def test_bad_input_is_one_sentence(
    datasets: str, tmp_path: Path, args: list[str], code: int, says: str
) -> None:
    base = {"--exchange": "binance-futures", "--symbols": "BTCUSDT", "--from": "2024-12-01",
            "--to": "2024-12-01"}  # fmt: skip
    base.update(dict(zip(args[::2], args[1::2], strict=True)))
    flat = [x for kv in base.items() for x in kv]
    res = fetch(*flat, "-o", tmp_path / "t.csv", "--endpoint", datasets)
    assert res.exit_code == code, res.output
    assert says in " ".join(res.output.split()) and "Traceback" not in res.output
    if args[0] == "--exchange":
        assert _Datasets.seen == []  # refused before any request
