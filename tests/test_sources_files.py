"""Recorded tapes: formats detected from content, gzip by magic, bad rows counted, prices."""

from __future__ import annotations

import csv
import gzip
import itertools
import json
from pathlib import Path

import pytest

from bot.sources import TapeError, open_tape, parse_raw_message, read_prices
from bot.sources.formats import sniff_format

ROOT = Path(__file__).parent.parent
TAPE = ROOT / "bot" / "data" / "binance-btcusdt_2024-12-04_06.csv"
KLINES = ROOT / "bot" / "data" / "BTCUSDT-5m_2024-12-04_06.csv"
FIXTURES = Path(__file__).parent / "fixtures"


def test_unified_tape_streams_every_row_as_written() -> None:
    with TAPE.open() as f:
        rows = list(csv.DictReader(f))
    tape = open_tape(TAPE)
    events = list(tape)
    assert tape.format == "unified"
    assert (tape.stats.read, tape.stats.rejected) == (len(rows), 0)
    for row, liq in zip(rows[:50], events[:50], strict=True):
        assert (liq.ts_ms, liq.venue, liq.symbol, liq.side) == (
            int(row["ts_ms"]),
            row["venue"],
            row["symbol"],
            row["side"],
        )
        assert (liq.notional_usd, liq.price, liq.quantity) == (
            float(row["notional_usd"]),
            float(row["price"]),
            float(row["quantity"]),
        )


def test_reading_is_lazy_line_by_line() -> None:
    tape = open_tape(TAPE)
    first_two = list(itertools.islice(tape, 2))
    assert len(first_two) == 2
    assert tape.stats.lines == 3  # header and two rows read, nothing more


def test_gzip_is_detected_by_magic_bytes_not_name(tmp_path: Path) -> None:
    packed = tmp_path / "tape.csv"  # no .gz suffix on purpose
    packed.write_bytes(gzip.compress(TAPE.read_bytes()))
    assert list(open_tape(packed)) == list(open_tape(TAPE))


def test_bad_rows_are_rejected_with_reason_and_line_and_the_run_goes_on() -> None:
    tape = open_tape(FIXTURES / "bad_rows.csv")
    events = list(tape)
    assert [e.notional_usd for e in events] == [1232.5248, 47400.25]
    reasons = {r.line: r.reason for r in tape.stats.first_rejections}
    assert tape.stats.rejected == len(reasons) == 9
    assert reasons[3] == "expected 7 fields, found 6"
    assert "positive finite amount, not -3128.07" in reasons[4]
    assert "not 0.0" in reasons[5]
    assert reasons[6] == "notional_usd is NaN"
    assert "not inf" in reasons[7]
    assert "946684800000 is outside 2009-01-01..2100-01-01" in reasons[8]
    assert "7258118400000 is outside" in reasons[9]
    assert reasons[10] == "unknown side 'buy' (expected long or short)"
    assert reasons[11] == "ts_ms is not a number: 'yesterday'"


def test_binance_csv_with_and_without_header(tmp_path: Path) -> None:
    with_header = FIXTURES / "binance_liquidations.csv"
    lines = with_header.read_text().splitlines(keepends=True)
    bare = tmp_path / "bare.csv"
    bare.write_text("".join(lines[1:]))
    events = list(open_tape(with_header))
    assert list(open_tape(bare)) == events
    assert open_tape(bare).format == open_tape(with_header).format == "binance-csv"
    # the same rows as the raw forceOrder messages they were written from
    payload = json.loads((FIXTURES / "payloads" / "binance_usdm_forceOrder.json").read_text())
    from_messages = [x for msg in payload["examples"] for x in parse_raw_message(msg)]
    assert sorted(events, key=lambda e: e.ts_ms) == sorted(from_messages, key=lambda e: e.ts_ms)


def test_jsonl_raw_messages_of_all_venues() -> None:
    path = FIXTURES / "raw_messages.jsonl"
    tape = open_tape(path)
    events = list(tape)
    assert tape.format == "jsonl"
    expected = []
    for line in path.read_text().splitlines():
        try:
            msg = json.loads(line)
        except json.JSONDecodeError:
            continue
        expected += parse_raw_message(msg, errors=[])
    assert events == expected
    assert {e.venue for e in events} == {"binance-usdm", "binance-coinm", "bybit", "okx"}
    assert tape.stats.skipped == 2  # the two subscribe frames
    reasons = {r.line: r.reason for r in tape.stats.first_rejections}
    assert set(reasons) == {6, 10}
    assert reasons[6].startswith("not valid JSON")
    assert "IOST-USDT-SWAP: contract size unknown" in reasons[10]


def test_a_named_format_is_trusted_and_gives_up_on_a_file_of_another() -> None:
    assert open_tape(TAPE, "jsonl").format == "jsonl"
    with pytest.raises(TapeError, match="not a jsonl liquidation tape: its first 100 rows"):
        list(open_tape(TAPE, "jsonl"))  # gives up instead of rejecting a million rows
    assert len(list(open_tape(TAPE, "unified"))) == len(list(open_tape(TAPE)))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"hello,world\nthis is, not a tape\n", "is not a liquidation tape: its first line"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "is not a text file"),
        (b"", "is empty"),
        (gzip.compress(b"col_a,col_b\n1,2\n", mtime=0), "is not a liquidation tape"),
        (gzip.compress(TAPE.read_bytes())[:5000], "damaged gzip"),
    ],
)
def test_not_a_tape_fails_with_one_sentence(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "input.csv"
    path.write_bytes(content)
    with pytest.raises(TapeError, match=message) as info:
        list(open_tape(path))
    text = str(info.value)
    assert text.endswith(".") and "\n" not in text


def test_missing_file_and_directory_fail_clearly(tmp_path: Path) -> None:
    with pytest.raises(TapeError, match="cannot be read: No such file"):
        open_tape(tmp_path / "missing.csv")
    with pytest.raises(TapeError, match="is a directory"):
        open_tape(tmp_path)


def test_sniffing() -> None:
    assert sniff_format("ts_ms,venue,symbol,side,price,quantity,notional_usd") == "unified"
    assert sniff_format("1733330785584,binance-usdm,BTCUSDT,long,,,1.5") == "unified"
    assert sniff_format('{"e":"forceOrder"}') == "jsonl"
    assert sniff_format("BTCUSDT,SELL,LIMIT,IOC,1,2,2,FILLED,1,1,1568014460893") == "binance-csv"
    assert sniff_format("a,b,c") is None


def test_prices_from_the_bundled_six_column_klines() -> None:
    rows = [line.split(",") for line in KLINES.read_text().split()]
    ticks = read_prices(KLINES, walk="close")
    assert len(ticks) == len(rows)
    five_min_ms = int(rows[1][0]) - int(rows[0][0])
    for row, tick in zip(rows, ticks, strict=True):
        assert tick.ts_ms == int(row[0]) + five_min_ms - 1  # the close, at the close time
        assert tick.price == float(row[4])
        assert tick.symbol == "BTCUSDT"


def test_prices_binance_vision_microseconds_and_header(tmp_path: Path) -> None:
    # Two rows of Binance Vision BTCUSDT-5m-2025-01.csv (times in microseconds), header added
    rows = [
        "1735689600000000,93576.00000000,93702.15000000,93537.50000000,93661.20000000,"
        "45.94160000,1735689899999999,4301907.48382050,7448,16.87967000,1580504.06031420,0",
        "1735689900000000,93661.20000000,93678.02000000,93600.00000000,93607.10000000,"
        "71.94585000,1735690199999999,6736120.65415710,4165,16.66761000,1560680.29120270,0",
    ]
    path = tmp_path / "BTCUSDT-5m-2025-01.csv.gz"
    header = "open_time,open,high,low,close,volume,close_time,quote_volume,count,tbb,tbq,ignore"
    path.write_bytes(gzip.compress("\n".join([header, *rows]).encode()))
    ticks = read_prices(path, walk="close")
    assert [(t.ts_ms, t.price) for t in ticks] == [
        (int(r.split(",")[6]) // 1000, float(r.split(",")[4])) for r in rows
    ]


def test_the_ohlc_walk_visits_each_candles_extremes_in_time_order() -> None:
    rows = [[float(x) for x in line.split(",")] for line in KLINES.read_text().split()]
    ticks = read_prices(KLINES)
    assert len(ticks) == 4 * len(rows)
    assert all(a.ts_ms < b.ts_ms for a, b in itertools.pairwise(ticks))
    for row, walk in zip(rows, (ticks[i : i + 4] for i in range(0, len(ticks), 4)), strict=True):
        open_, high, low, close = row[1:5]
        prices = [t.price for t in walk]
        assert prices[0] == open_ and prices[3] == close
        assert sorted(prices[1:3]) == [low, high]
        # A falling candle reaches its high before its low; a rising one the other way round.
        assert prices[1] == (high if close < open_ else low)
    # The flash-crash wick is on the path: the lowest price of the bundled file.
    assert min(t.price for t in ticks) == min(row[3] for row in rows)
