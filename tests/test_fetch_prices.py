"""`liqguard fetch prices` against a local server laid out like Binance's public kline archive
(zip files + .CHECKSUM), with rows from the bundled real 5-minute klines."""

from __future__ import annotations

import hashlib
import http.server
import io
import threading
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

import pytest
from typer.testing import CliRunner

from bot.cli import app
from bot.sources.prices import read_prices

DATA = Path(__file__).parent.parent / "bot" / "data"
JAN = DATA / "BTCUSDT-5m_2025-01-26_28.csv"
DEC = DATA / "BTCUSDT-5m_2024-12-04_06.csv"
KLINES = "data/spot/{period}/klines/BTCUSDT/5m"
runner = CliRunner()


def _archive_rows(path: Path, micro: bool) -> dict[str, list[str]]:
    """The bundled 6-column rows in the archive's 12 columns, grouped by UTC day."""
    days: dict[str, list[str]] = {}
    for line in path.read_text().splitlines():
        t, o, h, lo, c, v = line.split(",")
        open_ms = int(t)
        scale = 1000 if micro else 1  # the 2025 archive writes microseconds
        close = (open_ms + 299_999) * scale + (999 if micro else 0)
        row = f"{open_ms * scale},{o},{h},{lo},{c},{v},{close},0,0,0,0,0"
        day = datetime.fromtimestamp(open_ms / 1000, UTC).strftime("%Y-%m-%d")
        days.setdefault(day, []).append(row)
    return days


def _publish(root: Path, period: str, name: str, rows: list[str], damage: bool = False) -> None:
    folder = root / KLINES.format(period=period)
    folder.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr(name.replace(".zip", ".csv"), "\n".join(rows) + "\n")
    blob = buf.getvalue()
    (folder / name).write_bytes(blob + (b"x" if damage else b""))
    (folder / f"{name}.CHECKSUM").write_text(f"{hashlib.sha256(blob).hexdigest()}  {name}\n")


class _Quiet(http.server.SimpleHTTPRequestHandler):
    requested: ClassVar[list[str]] = []

    def log_message(self, *args: Any) -> None:
        _Quiet.requested.append(self.path)


@pytest.fixture
def archive(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    root = tmp_path / "vision"
    for day, rows in _archive_rows(JAN, micro=True).items():
        _publish(root, "daily", f"BTCUSDT-5m-{day}.zip", rows)
    dec = [r for rows in _archive_rows(DEC, micro=False).values() for r in rows]
    _publish(root, "monthly", "BTCUSDT-5m-2024-12.zip", dec)
    handler = lambda *a, **k: _Quiet(*a, directory=str(root), **k)  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Quiet.requested = []
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", root
    finally:
        server.shutdown()
        server.server_close()


def fetch_jan_26_28(out: Path, base: str) -> Any:
    """`liqguard fetch prices` of BTCUSDT 5m, 2025-01-26 to 01-28, from the local archive."""
    args = ["fetch", "prices", "--symbol", "BTCUSDT", "--from", "2025-01-26", "--to", "2025-01-28"]
    return runner.invoke(app, [*args, "-o", str(out), "--endpoint", base])


def test_daily_files_verified_and_read_by_read_prices(
    archive: tuple[str, Path], tmp_path: Path
) -> None:
    base, _ = archive
    out = tmp_path / "BTCUSDT-5m.csv"
    res = fetch_jan_26_28(out, base)
    assert res.exit_code == 0, res.output
    assert "wrote 864 5m klines of BTCUSDT" in res.output
    assert sum(p.endswith(".CHECKSUM") for p in _Quiet.requested) == 3
    got = [(t.ts_ms, t.price) for t in read_prices(out)]
    assert got == [(t.ts_ms, t.price) for t in read_prices(JAN)]
    assert out.read_text().splitlines()[0].split(",")[0] == "1737849600000"  # µs -> ms


def test_a_whole_month_comes_from_the_monthly_file(
    archive: tuple[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    base, _ = archive
    monkeypatch.setenv("LIQGUARD_BINANCE_VISION_URL", base)  # the endpoint from the environment
    out = tmp_path / "dec.csv"
    res = runner.invoke(app, ["fetch", "prices", "--symbol", "btcusdt", "--from", "2024-12-01",
                              "--to", "2024-12-31", "-o", str(out)])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert [p for p in _Quiet.requested if p.endswith(".zip")] == [
        "/" + KLINES.format(period="monthly") + "/BTCUSDT-5m-2024-12.zip"
    ]
    assert len(out.read_text().splitlines()) == len(DEC.read_text().splitlines())


def test_a_damaged_zip_is_refused_and_nothing_written(
    archive: tuple[str, Path], tmp_path: Path
) -> None:
    base, root = archive
    rows = _archive_rows(JAN, micro=True)["2025-01-27"]
    _publish(root, "daily", "BTCUSDT-5m-2025-01-27.zip", rows, damage=True)
    out = tmp_path / "p.csv"
    res = fetch_jan_26_28(out, base)
    assert res.exit_code == 1
    assert "BTCUSDT-5m-2025-01-27.zip: SHA-256" in res.output
    assert "does not match its .CHECKSUM" in res.output
    assert not out.exists()


def test_a_missing_day_names_the_file(archive: tuple[str, Path], tmp_path: Path) -> None:
    base, _ = archive
    res = runner.invoke(app, ["fetch", "prices", "--symbol", "BTCUSDT", "--from", "2025-01-28",
                              "--to", "2025-01-29", "-o", str(tmp_path / "p.csv"),
                              "--endpoint", base])  # fmt: skip
    assert res.exit_code == 1
    assert "BTCUSDT-5m-2025-01-29.zip: HTTP 404" in res.output
    assert "Traceback" not in res.output


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--interval", "7m"], "use one of 1m"),
        (["--market", "moon"], "use one of spot"),
        (["--from", "yesterday"], "is not a date"),
    ],
)
def test_usage_errors_exit_2(tmp_path: Path, args: list[str], words: str) -> None:
    base = ["fetch", "prices", "--symbol", "BTCUSDT", "--from", "2025-01-26", "--to",
            "2025-01-27", "-o", str(tmp_path / "p.csv")]  # fmt: skip
    res = runner.invoke(app, base + args)
    assert res.exit_code == 2
    assert words in res.output
