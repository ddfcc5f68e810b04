"""Tardis.dev's normalized `liquidations` CSV as a tape: detected from its header, USD per venue
as the live parsers compute it, bad rows rejected with a reason; detect, calibrate, replay and
backtest read it."""

from __future__ import annotations

import csv
import gzip
import io
import re
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from bot.cli import app
from bot.sources import open_tape
from bot.sources.validate import TapeError

ROOT = Path(__file__).parent.parent
FIXTURE = Path(__file__).parent / "fixtures" / "tardis_liquidations.csv"
CRASH_TAPE = ROOT / "bot" / "data" / "binance-btcusdt_2024-12-04_06.csv"
CRASH_PRICES = ROOT / "bot" / "data" / "BTCUSDT-5m_2024-12-04_06.csv"
HEADER = "exchange,symbol,timestamp,local_timestamp,id,side,price,amount"
runner = CliRunner()


def invoke(*args: str | Path) -> Any:
    return runner.invoke(app, [*map(str, args)])


def tardis_copy(unified: Path, out: Path) -> Path:
    """The bundled real Binance capture written as Tardis writes binance-futures liquidations:
    µs times, the order side (sell = a long liquidated), amount in BTC; gzip, like a download."""
    rows = list(csv.DictReader(io.StringIO(unified.read_text())))
    with gzip.open(out, "wt") as f:
        f.write(HEADER + "\n")
        for r in rows:
            us = int(r["ts_ms"]) * 1000 + 417  # sub-millisecond digits Tardis keeps
            side = "sell" if r["side"] == "long" else "buy"
            f.write(f"binance-futures,BTCUSDT,{us},{us + 31_000},,{side},{r['price']},"
                    f"{r['quantity']}\n")  # fmt: skip
    return out


def test_each_venue_converted_to_usd_as_the_live_parsers_do() -> None:
    tape = open_tape(FIXTURE)
    assert tape.format == "tardis"
    events = list(tape)
    got = [(e.venue, e.symbol, e.side, round(e.notional_usd, 6)) for e in events]
    assert got == [
        ("binance-usdm", "BTCUSDT", "long", 19400.1),  # 0.2 BTC x 97,000.5
        ("binance-coinm", "BTCUSD_PERP", "short", 300.0),  # 3 contracts of 100 USD
        ("binance-coinm", "ETHUSD_PERP", "long", 70.0),  # 7 contracts of 10 USD
        ("bybit", "BTCUSDT", "long", 48495.0),  # linear: 0.5 BTC x 96,990
        ("bybit", "BTCUSD", "short", 25000.0),  # inverse: contracts of 1 USD
        ("okx", "BTC-USD-SWAP", "long", 4000.0),  # 40 contracts x ctVal 100 USD
        ("okx", "BTC-USDT-SWAP", "short", 29095.5),  # 30 x 0.01 BTC x 96,985
        ("okx", "ETH-USD-241227", "long", 120.0),  # 12 x ctVal 10 USD
        ("deribit", "BTC-PERPETUAL", "long", 120000.0),  # inverse: amount in USD
        ("deribit", "BTC_USDC-PERPETUAL", "short", 38790.0),  # linear: 0.4 BTC x 96,975
        ("bitmex", "XBTUSD", "long", 80000.0),  # contracts of 1 USD
        ("dydx", "BTC-USD", "long", 72712.5),  # 0.75 BTC x 96,950
        ("binance-usdm", "BTCUSDT", "short", 4846.0),  # empty timestamp: local_timestamp
    ]
    assert events[0].ts_ms == 1733416200123  # µs -> ms
    assert events[-1].ts_ms == 1733416218020
    reasons = {r.line: r.reason for r in tape.stats.first_rejections}
    assert tape.stats.rejected == 8 and sorted(reasons) == list(range(14, 22))
    assert "PEPE-USDT-SWAP: OKX contract value unknown" in reasons[14]
    assert "ETHUSD: BitMEX contract value unknown" in reasons[15]
    assert "an option" in reasons[16]
    assert "'huobi-dm-swap': liqguard does not know its amount units" in reasons[17]
    assert "µs, not ms" in reasons[18]
    assert "side 'unknown'" in reasons[19]
    assert "must be positive" in reasons[20]
    assert "expected 8 fields, found 7" in reasons[21]


def test_detect_on_a_tardis_copy_of_a_real_capture_equals_detect_on_the_capture(
    tmp_path: Path,
) -> None:
    copy = tardis_copy(CRASH_TAPE, tmp_path / "binance-futures_liquidations_BTCUSDT.csv.gz")
    rule = ["--threshold", "1000000", "--window", "1h"]
    original = invoke("detect", CRASH_TAPE, *rule, "--json")
    tardis = invoke("detect", copy, *rule, "--json")
    assert original.exit_code == 0 and tardis.exit_code == 0, tardis.output
    assert tardis.stdout.count('"level"') >= 3
    assert tardis.stdout == original.stdout  # every anomaly, sum and split the same


def test_calibrate_replay_and_backtest_read_a_tardis_tape(tmp_path: Path) -> None:
    copy = tardis_copy(CRASH_TAPE, tmp_path / "crash.csv.gz")
    cal = invoke("calibrate", copy)
    assert cal.exit_code == 0, cal.output
    assert "events read: 1,844 from 1 file(s); rejected: 0" in cal.stderr
    assert "1,844 events, $26.85M from binance-usdm" in cal.stdout  # the capture's total
    assert "recommended base threshold: $8,500,000" in cal.stdout
    results = tmp_path / "bt.csv"
    bt = invoke("backtest", f"{copy}:{CRASH_PRICES}", f"{CRASH_TAPE}:{CRASH_PRICES}",
                "--jobs", "1", "--report", tmp_path / "r.html", "--results", results)  # fmt: skip
    assert bt.exit_code == 0, bt.output
    tardis_row, unified_row = csv.DictReader(io.StringIO(results.read_text()))
    for key in ("pnl_usd", "worst_drawdown_usd", "anomalies_by_level", "actions", "fills"):
        assert tardis_row[key] == unified_row[key], key
    assert int(tardis_row["anomalies"]) > 0
    rep = invoke("replay", copy, "--prices", CRASH_PRICES, "--journal", tmp_path / "j.sqlite")
    assert rep.exit_code == 0, rep.output
    assert re.search(r"anomal", rep.output)


def test_a_tardis_trades_file_is_refused_by_its_name(tmp_path: Path) -> None:
    # Tardis's trades CSV has the same header as its liquidations: the file name tells.
    trades = tmp_path / "binance-futures_trades_2024-12-05_BTCUSDT.csv"
    trades.write_text(HEADER + "\nbinance-futures,BTCUSDT,1733416200123456,1733416200150000,"
                      "5501,buy,97000.5,0.002\n")  # fmt: skip
    with pytest.raises(TapeError, match=r"a Tardis\.dev trades file"):
        open_tape(trades)
    out = invoke("detect", trades)
    assert out.exit_code == 1 and "a Tardis.dev trades file" in out.output  # as any non-tape
    assert "Traceback" not in out.output


def test_day_files_joined_with_their_headers_read_as_one_tape(tmp_path: Path) -> None:
    day = FIXTURE.read_text().splitlines()[:3]
    joined = tmp_path / "joined.csv"
    joined.write_text("\n".join(day + day) + "\n")
    tape = open_tape(joined)
    assert len(list(tape)) == 4 and tape.stats.rejected == 0 and tape.stats.skipped == 1
