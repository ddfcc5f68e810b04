"""The columnar path equals the streaming path: batch detector, vectorised CSV reader, files."""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import bot.sources.columnar as columnar
from bot.app.detect import detect_file_fast
from bot.config.rules import RuleConfig
from bot.detector import Detector, anomaly_to_json
from bot.detector.batch import detect_batch
from bot.events import Anomaly, Calm, Liquidation
from bot.money import usd_to_cents
from bot.sources.columnar import TapeColumns, UnsupportedFastPath, read_unified_columns
from bot.sources.columnar_scan import cents_of
from bot.sources.files import TapeError, open_tape
from tests.test_detector_properties import tapes

ROOT = Path(__file__).resolve().parent.parent
BUNDLED = ROOT / "bot" / "data" / "binance-btcusdt_2024-12-04_06.csv"
FIXTURES = ROOT / "tests" / "fixtures"
REAL = [
    BUNDLED,
    FIXTURES / "liquidations" / "compound-v3_2025-09_2026-06.csv",
    FIXTURES / "liquidations" / "binance-allmarket_2025-01-26_02-06.csv.gz",
]
RULESETS = [
    [RuleConfig()],
    [
        RuleConfig(name="fast", threshold_usd=100_000, window_s=600, escalation_window_s=1800),
        RuleConfig(
            name="btc-long", symbols=("BTC",), sides=("long",), threshold_usd=250_000, factor=1.5
        ),
        RuleConfig(name="short", sides=("short",), threshold_usd=50_000, factor=3, top_n=2),
        RuleConfig(name="base", venues=("compound-v3-base",), threshold_usd=10_000),
    ],
]
HEADER = "ts_ms,venue,symbol,side,price,quantity,notional_usd\n"


def streaming(paths: list[Path], rules: list[RuleConfig]) -> tuple[list[Anomaly | Calm], Any]:
    det = Detector(rules)
    out: list[Anomaly | Calm] = []
    for p in paths:
        for liq in open_tape(p):
            out += det.on_liquidation(liq)
    return out, det.late


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tapes())
def test_batch_equals_streaming_on_random_tapes(case: tuple[list[RuleConfig], list[Any]]) -> None:
    rules, stream = case
    liqs = [x for x in stream if isinstance(x, Liquidation)]
    det = Detector(rules)
    expected = [e for x in liqs for e in det.on_liquidation(x)]
    assert detect_batch(TapeColumns.from_liquidations(liqs), rules) == expected


def test_batch_handles_sums_beyond_int64_cents() -> None:
    liqs = [Liquidation(1_700_000_000_000 + i, "v", "S", "long", 1e17) for i in range(3)]
    rules = [RuleConfig(threshold_usd=1e17)]
    det = Detector(rules)
    expected = [e for x in liqs for e in det.on_liquidation(x)]
    assert detect_batch(TapeColumns.from_liquidations(liqs), rules) == expected
    assert [e.level for e in expected if isinstance(e, Anomaly)] == [1, 2]


@pytest.mark.parametrize("rules", RULESETS, ids=["default", "four-rules"])
@pytest.mark.parametrize("path", REAL, ids=lambda p: p.name[:20])
def test_batch_equals_streaming_on_real_tapes(path: Path, rules: list[RuleConfig]) -> None:
    expected, late = streaming([path], rules)
    result = detect_file_fast([path], rules)
    assert result.events == expected
    assert result.late == late
    assert result.read == sum(1 for _ in open_tape(path))


def test_several_files_in_order_and_stats_match_the_streaming_source() -> None:
    paths = [REAL[1], REAL[0], FIXTURES / "bad_rows.csv"]
    rules = RULESETS[1]
    expected, late = streaming(paths, rules)
    seen: list[tuple[int, int]] = []
    result = detect_file_fast(paths, rules, progress=lambda done, total: seen.append((done, total)))
    assert result.events == expected and result.late == late
    tapes_ = [open_tape(p) for p in paths]
    for tape in tapes_:
        for _ in tape:
            pass
    assert result.stats == [t.stats for t in tapes_]
    assert result.rejected == 9 and seen and seen[-1][1] == sum(p.stat().st_size for p in paths)


def test_pinned_anomalies_of_the_bundled_real_excerpt() -> None:
    # Computed by this detector with the default rule (1h, $1M, x2, 2h) on the bundled
    # Binance BTCUSDT capture; checked against detector.md by hand (awk sums over the window
    # (t - 1h, t] of the first anomaly: 59 events, $1,069,757.04, the event before it at
    # $656,595; of the level-4 one: 331 events, $8,092,476.80 in cents, $4,477,807.84 long)
    # and against the data README (largest 1h sum $8.1M at 12-05 20:44).
    result = detect_file_fast([BUNDLED], [RuleConfig()])
    got = [
        (j["time"], j.get("level", "calm"), j.get("window_usd"), j.get("events"))
        for j in map(anomaly_to_json, result.events)
    ]
    assert got == [
        ("2024-12-04T18:00:22.305Z", 1, 1069757.04, 59),
        ("2024-12-04T18:07:22.288Z", 2, 2017358.31, 64),
        ("2024-12-04T20:07:22.288Z", "calm", None, None),
        ("2024-12-04T20:07:24.309Z", 2, 2318334.75, 199),
        ("2024-12-04T20:16:39.212Z", 3, 4125393.93, 274),
        ("2024-12-04T22:16:39.212Z", "calm", None, None),
        ("2024-12-04T23:30:34.632Z", 1, 1880761.63, 91),
        ("2024-12-05T01:30:34.632Z", "calm", None, None),
        ("2024-12-05T01:33:27.343Z", 1, 1014717.77, 170),
        ("2024-12-05T03:33:27.343Z", "calm", None, None),
        ("2024-12-05T08:14:11.346Z", 1, 1006135.99, 117),
        ("2024-12-05T10:14:11.346Z", "calm", None, None),
        ("2024-12-05T18:08:10.604Z", 1, 1307286.06, 64),
        ("2024-12-05T19:46:33.250Z", 2, 2012218.12, 180),
        ("2024-12-05T20:04:38.102Z", 3, 4011601.37, 203),
        ("2024-12-05T20:43:30.452Z", 4, 8092476.8, 331),
        ("2024-12-05T22:43:30.452Z", "calm", None, None),
    ]
    level4 = result.events[-2]
    assert isinstance(level4, Anomaly) and level4.long_cents == 447780784
    assert result.peaks == {"all": (810917771, 1733431440464)}  # $8,109,177.71 at 20:44:00


TRICKY_ROWS = [
    "1733330785584,binance-usdm,BTCUSDT,long,94809.6,0.013,1232.5248",
    "1733330785585,binance-usdm,BTCUSDT,long,,,1.005",  # decimal tie: 100 cents (even)
    "1733330785586,binance-usdm,BTCUSDT,short,,,2.675",  # tie -> 268
    "1733330785587,okx,BTC-USDT-SWAP,short,,,0.125",  # tie -> 12
    "1733330785588,okx,BTC-USDT-SWAP,LONG,,,10",  # upper case: the row parser takes it
    "1733330785589, okx ,BTC-USDT-SWAP,short,,,10",  # spaces: stripped by the row parser
    '1733330785590,"okx","ETH,USDT",short,,,10',  # quotes
    "1733330785591,bybit,ETHUSDT,short,,,1e3",  # exponent
    "1733330785592,bybit,ETHUSDT,short,,,12345678.915",  # >= $10M fast limit: row parser
    "1733330785593,bybit,ETHUSDT,short,,,1000000000000000000.5",  # beyond int64 cents
    "1733330785594,bybit,ETHUSDT,short,,,0.1000000000000000055511151231257827",  # > 15 digits
    "1733330785595,bybit,ETHUSDT,short,,,0.000",  # zero: rejected
    "1733330785596,bybit,ETHUSDT,short,-1,,5",  # negative price: rejected
    "",  # blank
    "   ",  # blank with spaces
    "1733330785597,bybit,ETHUSDT,short,,,0.004",  # positive but 0 cents: counted
    "1733330785598,bybit,ÉTHUSDT,short,,,7",  # non-ASCII symbol
    "1733330785599,bybit,ETHUSDT,buy,,,7",  # unknown side
    "17333307855990,bybit,ETHUSDT,short,,,7",  # year 2519
    "1733330785600,bybit,ETHUSDT,short,,,00012.50",  # leading zeros
    "1733330785601,,ETHUSDT,short,,,7",  # empty venue
    "1733330785602,bybit,ETHUSDT,short,1.2.3,,7",  # price not a number
    "1733330785603,bybit,ETHUSDT,short,,7",  # six fields
]


def write(path: Path, text: str, gz: bool = False) -> Path:
    data = text.encode("utf-8")
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def assert_same_as_streaming(path: Path) -> None:
    cols, stats = read_unified_columns(path)
    tape = open_tape(path)
    ref = TapeColumns.from_liquidations(tape)
    assert stats == tape.stats
    assert cols.ts_ms.tolist() == ref.ts_ms.tolist()
    assert cols.cents.tolist() == ref.cents.tolist()
    assert cols.is_long.tolist() == ref.is_long.tolist()
    assert [cols.symbols[c] for c in cols.symbol_codes] == [
        ref.symbols[c] for c in ref.symbol_codes
    ]
    assert [cols.venues[c] for c in cols.venue_codes] == [ref.venues[c] for c in ref.venue_codes]


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gzip"])
@pytest.mark.parametrize("crlf", [False, True], ids=["lf", "crlf"])
def test_reader_equals_streaming_rows_on_tricky_input(tmp_path: Path, gz: bool, crlf: bool) -> None:
    nl = "\r\n" if crlf else "\n"
    text = "\ufeff" + HEADER.strip() + nl + nl.join(TRICKY_ROWS)  # BOM, no final newline
    path = write(tmp_path / "t.csv", text, gz)
    assert_same_as_streaming(path)
    cols, stats = read_unified_columns(path)
    assert cols.cents.tolist()[1:4] == [100, 268, 12]
    assert stats.rejected == 7 and stats.skipped == 2


def test_reader_rejects_names_that_are_not_utf8_as_the_streaming_path(tmp_path: Path) -> None:
    # Arrow's own UTF-8 check is off: the names are decoded once each, and a row with a name
    # that does not decode goes to the row parser, among good rows of the same Arrow batch
    good = [f"{1733330785584 + i},bybit,ETHUSDT,short,,,{10 + i}".encode() for i in range(300)]
    bad = [b"1733330786000,bybit\xff,ETHUSDT,short,,,7", b"1733330786001,okx,ETH\xe9USDT,long,,,8"]
    rows = good[:150] + bad + good[150:]
    path = tmp_path / "t.csv"
    path.write_bytes(HEADER.encode() + b"\n".join(rows) + b"\n")
    assert_same_as_streaming(path)
    cols, stats = read_unified_columns(path)
    assert len(cols) == 300 and stats.rejected == 2
    assert [(r.line, r.reason) for r in stats.first_rejections] == [
        (152, "not UTF-8 text"),
        (153, "not UTF-8 text"),
    ]
    assert {cols.venues[c] for c in cols.venue_codes} == {"bybit"}


def test_reader_without_header_and_across_small_blocks(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.setattr(columnar, "BLOCK_BYTES", 37)  # lines cut across blocks everywhere
    path = write(tmp_path / "t.csv", "\n".join(TRICKY_ROWS) + "\n")
    assert_same_as_streaming(path)
    path = write(tmp_path / "u.csv", "\n\n" + HEADER + "\n".join(TRICKY_ROWS[:3]) + "\n")
    assert_same_as_streaming(path)


def test_reader_refuses_what_it_does_not_handle(tmp_path: Path) -> None:
    other_order = (
        "venue,ts_ms,symbol,side,price,quantity,notional_usd\nokx,1733330785584,B,long,,,1\n"
    )
    with pytest.raises(UnsupportedFastPath):
        read_unified_columns(write(tmp_path / "o.csv", other_order))
    with pytest.raises(UnsupportedFastPath):
        read_unified_columns(FIXTURES / "binance_liquidations.csv")
    with pytest.raises(TapeError, match="not a liquidation tape"):
        read_unified_columns(write(tmp_path / "x.csv", "hello,world\n"))
    garbage = HEADER + "1733330785584,okx,B,long,,,0\n" * 120
    with pytest.raises(TapeError) as fast_err:
        read_unified_columns(write(tmp_path / "g.csv", garbage))
    with pytest.raises(TapeError) as slow_err:
        list(open_tape(tmp_path / "g.csv"))
    assert str(fast_err.value) == str(slow_err.value)


decimal_texts = st.one_of(
    st.builds(
        lambda whole, frac: f"{whole}.{frac}" if frac else str(whole),
        st.integers(0, 10**9),
        st.one_of(st.just(""), st.text("0123456789", min_size=1, max_size=17)),
    ),
    st.builds(lambda c: f"{c // 1000}.{c % 1000:03d}", st.integers(0, 10**13)),
    st.sampled_from(["1.005", "2.675", "0.125", "1000.125", "12345678.915", "0.015", "1e3"]),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(decimal_texts, min_size=1, max_size=40))
def test_reader_cents_equal_the_streaming_cents(texts: list[str]) -> None:
    rows = [f"{1733330785584 + i},v,S,long,,,{t}" for i, t in enumerate(texts)]
    data = (HEADER + "\n".join(rows) + "\n").encode()
    reader = columnar._BlockReader(open_tape(BUNDLED).stats)
    reader.parse(data)
    cols = reader.columns()
    expected = [usd_to_cents(float(t)) for t in texts if float(t) > 0]
    assert cols.cents.tolist() == expected


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(
    st.floats(1e-4, 1e11 - 1),
    st.integers(1, 10**13 - 1).map(lambda c: (2 * c + 1) / 200),  # half-cent ties as floats
    st.integers(1, 10**13 - 1).map(lambda c: (2 * c + 1) / 200 * (1 + 2**-52)),  # just above
), min_size=1))  # fmt: skip
@example([536870912.795, 123456789.125, 99999999999.995])  # big ties: float error > 1e-6
def test_vectorised_cents_equal_money_usd_to_cents(values: list[float]) -> None:
    got = cents_of(np.array(values, dtype=np.float64)).tolist()
    assert got == [usd_to_cents(v) for v in values]
