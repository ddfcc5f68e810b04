"""The streaming detector against detector.md: the worked example, calm, filters, late events,
exact cents, non-integer factors, top lists, status, snapshot/restore and memory."""

from __future__ import annotations

import json
import tracemalloc
from datetime import UTC, datetime
from typing import Any

import pytest

from bot.config.rules import RuleConfig
from bot.detector import Detector, Thresholds, anomaly_to_json
from bot.events import Anomaly, Calm, Liquidation, SymbolUsd
from bot.symbols import parse_symbol, symbol_matches, venue_matches

T0 = int(datetime(2024, 1, 1, tzinfo=UTC).timestamp() * 1000)
MIN = 60_000


def liq(minute: float, usd: float, side: str = "long", symbol: str = "BTCUSDT",
        venue: str = "binance-usdm") -> Liquidation:  # fmt: skip
    return Liquidation(T0 + int(minute * MIN), venue, symbol, side, usd)  # type: ignore[arg-type]


def test_worked_example_row_by_row() -> None:
    det = Detector([RuleConfig()])  # defaults: T0 1M, f 2, W 1h, E 2h
    # minute, usd, window sum after, level after, what is emitted
    rows: list[tuple[int, int, int, int, list[tuple[Any, ...]]]] = [
        (0, 600_000, 600_000, 0, []),
        (10, 500_000, 1_100_000, 1, [("anomaly", 1, 1_000_000)]),
        (20, 300_000, 1_400_000, 1, []),
        (30, 5_000_000, 6_400_000, 3, [("anomaly", 3, 4_000_000)]),
        (65, 100_000, 5_900_000, 3, []),
        (95, 3_000_000, 3_100_000, 3, []),
        (240, 1_200_000, 1_200_000, 1, [("calm", 150), ("anomaly", 1, 1_000_000)]),
        (245, 900_000, 2_100_000, 2, [("anomaly", 2, 2_000_000)]),
    ]
    previous = 0
    for minute, usd, window_usd, level, expected in rows:
        out = det.on_liquidation(liq(minute, usd))
        (st,) = det.status()
        assert st.window_cents == window_usd * 100, minute
        assert st.level == level, minute
        assert len(out) == len(expected), minute
        for ev, exp in zip(out, expected, strict=True):
            if exp[0] == "calm":
                assert ev == Calm("all", T0 + exp[1] * MIN, previous_level=3)
                previous = 0
            else:
                assert isinstance(ev, Anomaly)
                assert (ev.ts_ms, ev.level, ev.threshold_cents) == (
                    T0 + minute * MIN,
                    exp[1],
                    exp[2] * 100,
                )
                assert ev.window_cents == window_usd * 100
                assert ev.previous_level == previous
                assert ev.base_threshold_cents == 100_000_000
                previous = ev.level


def test_anomaly_json_is_the_documented_object() -> None:
    det = Detector([RuleConfig(name="btc")])
    det.on_liquidation(liq(0, 600_000.25, "long", "BTCUSDT"))
    (ev,) = det.on_liquidation(liq(10.5, 400_000.10, "short", "ETHUSDT", "bybit"))
    assert anomaly_to_json(ev) == {
        "type": "anomaly", "rule": "btc", "ts_ms": T0 + 630_000,
        "time": "2024-01-01T00:10:30.000Z", "level": 1,
        "window_usd": 1_000_000.35, "threshold_usd": 1_000_000.0,
        "long_usd": 600_000.25, "short_usd": 400_000.10, "events": 2,
        "top_symbols": [{"symbol": "BTCUSDT", "usd": 600_000.25},
                        {"symbol": "ETHUSDT", "usd": 400_000.10}],
    }  # fmt: skip
    assert isinstance(ev, Anomaly)
    assert ev.top_venues == (SymbolUsd("binance-usdm", 60_000_025), SymbolUsd("bybit", 40_000_010))
    calm = Calm("btc", T0 + 1)
    assert anomaly_to_json(calm) == {
        "type": "calm",
        "rule": "btc",
        "ts_ms": T0 + 1,
        "time": "2024-01-01T00:00:00.001Z",
    }
    assert json.loads(json.dumps(anomaly_to_json(ev)))["window_usd"] == 1_000_000.35


def test_calm_via_tick_on_time_and_never_an_anomaly() -> None:
    det = Detector([RuleConfig()])
    (a,) = det.on_liquidation(liq(0, 1_500_000))
    assert isinstance(a, Anomaly) and a.level == 1
    assert det.on_tick(T0 + 120 * MIN - 1) == []
    assert det.on_tick(T0) == []  # backwards: ignored
    assert det.on_tick(T0 + 120 * MIN) == [Calm("all", T0 + 120 * MIN, previous_level=1)]
    assert det.status()[0].level == 0
    assert det.status()[0].window_cents == 0  # the tick drained the window too
    assert det.on_tick(T0 + 500 * MIN) == []


def test_tick_drains_so_next_event_is_late_and_calm_stamp_is_t_last_plus_e() -> None:
    det = Detector([RuleConfig(window_s=60, escalation_window_s=600)])
    det.on_liquidation(liq(0, 2_000_000))
    det.on_tick(T0 + 5 * MIN)
    assert det.on_liquidation(liq(4, 5_000_000)) == []  # 00:04 <= 00:05 - 1m: late
    assert det.late == {"all": 1}
    (calm,) = det.on_liquidation(liq(30, 10))
    assert calm == Calm("all", T0 + 10 * MIN, previous_level=2)


def test_tick_after_calm_leaves_anomaly_to_the_next_event() -> None:
    det = Detector([RuleConfig(window_s=3 * 3600, escalation_window_s=3600)])
    det.on_liquidation(liq(0, 2_100_000))  # level 2
    det.on_liquidation(liq(30, 10))
    assert det.on_tick(T0 + 60 * MIN) == [Calm("all", T0 + 60 * MIN, previous_level=2)]
    out = det.on_liquidation(liq(61, 10))  # window still 2.1M >= T0: a new level-2 anomaly
    assert [(type(e).__name__, getattr(e, "level", None)) for e in out] == [("Anomaly", 2)]


def test_late_boundary_is_c_minus_w_inclusive() -> None:
    det = Detector([RuleConfig()])
    det.on_liquidation(liq(60, 1))
    det.on_liquidation(liq(0, 999_999))  # ts == c - W: late
    det.on_liquidation(Liquidation(T0 + 1, "v", "BTCUSDT", "long", 2))  # inside (c - W, c]
    (st,) = det.status()
    assert (st.late, st.events, st.window_cents) == (1, 2, 300)
    assert det.late == {"all": 1}


def test_out_of_order_event_inside_window_counts_and_expires_on_time() -> None:
    det = Detector([RuleConfig()])
    det.on_liquidation(liq(50, 1))
    det.on_liquidation(liq(10, 2))  # older than the clock but not late
    assert det.status()[0].window_cents == 300
    det.on_liquidation(liq(70, 4))  # 00:10 leaves, 00:50 stays
    assert det.status()[0].window_cents == 500
    (a,) = det.on_liquidation(liq(71, 1_000_000))
    assert isinstance(a, Anomaly) and a.ts_ms == T0 + 71 * MIN and a.events == 3


def test_equality_at_threshold_counts_to_the_cent() -> None:
    det = Detector([RuleConfig()])
    assert det.on_liquidation(liq(0, 999_999.98)) == []
    assert det.on_liquidation(liq(1, 0.01)) == []  # 999,999.99
    (a,) = det.on_liquidation(liq(2, 0.01))  # exactly 1,000,000.00
    assert isinstance(a, Anomaly) and a.window_cents == a.threshold_cents == 100_000_000
    det2 = Detector([RuleConfig(threshold_usd=0.3)])
    det2.on_liquidation(liq(0, 0.1))
    assert len(det2.on_liquidation(liq(0, 0.2))) == 1  # 0.1 + 0.2 is 30 cents exactly


def test_half_cent_rounds_half_to_even_per_event() -> None:
    det = Detector([RuleConfig(threshold_usd=0.04)])
    det.on_liquidation(liq(0, 0.015))  # 2 cents (tie -> even)
    assert det.status()[0].window_cents == 2
    det.on_liquidation(liq(0, 0.025))  # 2 cents (tie -> even)
    assert det.status()[0].window_cents == 4


def test_non_integer_factor_thresholds_are_rounded_half_to_even_per_level() -> None:
    th = Thresholds(0.01, 1.5)  # 1 cent * 1.5^(k-1): 1, 1.5, 2.25, 3.375, 5.0625
    assert [th.of_level(k) for k in range(1, 6)] == [1, 2, 2, 3, 5]
    th = Thresholds(1_000_000, 1.5)
    assert [th.of_level(k) for k in (1, 2, 3, 4)] == [10**8, 15 * 10**7, 225 * 10**6, 3375 * 10**5]
    th = Thresholds(1_000_000, 1.1)  # taken at its decimal text, not the binary float
    assert th.of_level(3) == 121_000_000
    assert th.level_for(10**9, 1) == 25  # 1.1^24 = 9.85 <= 10 < 1.1^25


def test_filters_and_rules_side_by_side() -> None:
    rules = [
        RuleConfig(name="all", threshold_usd=100),
        RuleConfig(name="btc", symbols=("btc",), threshold_usd=100),
        RuleConfig(name="okx-short", venues=("OKX",), sides=("short",), threshold_usd=100),
        RuleConfig(name="eth-pair", symbols=("ETH/USDT:USDT",), threshold_usd=100),
    ]
    det = Detector(rules)
    out = det.on_liquidation(liq(0, 100, "short", "BTC-USDT-SWAP", "okx"))
    assert [e.rule for e in out] == ["all", "btc", "okx-short"]
    out = det.on_liquidation(liq(1, 1000, "long", "ETHUSDT", "okx"))
    assert [e.rule for e in out] == ["all", "eth-pair"]
    out = det.on_liquidation(liq(2, 1000, "long", "ETHBTC", "okx"))
    assert [e.rule for e in out] == ["all"]
    assert [s.events for s in det.status()] == [3, 1, 1, 1]


def test_symbol_and_venue_matching() -> None:
    assert parse_symbol("BTCUSDT") == ("BTC", "USDT")
    assert parse_symbol("btc-usdt-swap") == ("BTC", "USDT")
    assert parse_symbol("BTC/USDT:USDT") == ("BTC", "USDT")
    assert parse_symbol("BTCUSD_PERP") == ("BTC", "USD")
    assert parse_symbol("ETHFDUSD") == ("ETH", "FDUSD")
    assert parse_symbol("BTC") == ("BTC", None)
    assert symbol_matches("BTC", "BTCUSDT") and symbol_matches("btc", "BTC-USD-241227")
    assert symbol_matches("BTC", "wBTC") and symbol_matches("BTC", "cbBTC")
    assert symbol_matches("PEPE", "1000PEPEUSDT") and symbol_matches("1000pepeusdt", "1000PEPEUSDT")
    assert symbol_matches("BTCUSDT", "BTC/USDT:USDT") and symbol_matches("BTC-USDT-SWAP", "BTCUSDT")
    assert not symbol_matches("BTCUSDT", "BTCUSDC") and not symbol_matches("BTC", "ETHBTC")
    assert not symbol_matches("ETH", "ETHFIUSDT")
    assert venue_matches("binance", "binance-usdm") and venue_matches("OKX", "okx")
    assert venue_matches("compound-v3", "compound-v3-base") and not venue_matches("bin", "binance")


def test_top_symbols_ties_by_name_and_top_n() -> None:
    det = Detector([RuleConfig(threshold_usd=600, top_n=2)])
    for sym in ("CUSDT", "AUSDT", "BUSDT"):
        det.on_liquidation(liq(0, 100, symbol=sym))
    (a,) = det.on_liquidation(liq(0, 300, symbol="DUSDT"))
    assert isinstance(a, Anomaly)
    assert a.top_symbols == (SymbolUsd("DUSDT", 30000), SymbolUsd("AUSDT", 10000))
    assert (a.long_cents, a.short_cents, a.events) == (60000, 0, 4)


def test_snapshot_restore_resumes_identically() -> None:
    rules = [RuleConfig(), RuleConfig(name="short", sides=("short",), threshold_usd=50_000)]
    tape = [liq(m * 7 % 300, 40_000 + m * 1234.56, "long" if m % 3 else "short",
                f"S{m % 4}USDT", f"v{m % 2}") for m in range(300)]  # fmt: skip
    whole = Detector(rules)
    expected = [e for x in tape for e in whole.on_liquidation(x)]
    first = Detector(rules)
    got = [e for x in tape[:150] for e in first.on_liquidation(x)]
    state = json.loads(json.dumps(first.snapshot()))
    second = Detector(rules)
    second.restore(state)
    assert second.status() == first.status()
    got += [e for x in tape[150:] for e in second.on_liquidation(x)]
    assert got == expected and len(expected) > 5
    with pytest.raises(ValueError, match="version"):
        second.restore({"version": 99})


def test_duplicate_rule_names_refused() -> None:
    with pytest.raises(ValueError, match="repeated: a"):
        Detector([RuleConfig(name="a"), RuleConfig(name="a")])


def test_window_memory_is_compact() -> None:
    # 100k events inside one 1h window; the requirement is 1M in well under 200 MB.
    n = 100_000
    tape = [Liquidation(T0 + i * 3, f"v{i % 3}", f"S{i % 50}USDT", "long" if i % 2 else "short",
                        1234.56 + i % 1000) for i in range(n)]  # fmt: skip
    det = Detector([RuleConfig(threshold_usd=1e15)])
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    for x in tape:
        det.on_liquidation(x)
    used = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    assert det.status()[0].events == n
    per_event = used / n
    assert per_event * 1_000_000 < 100 * 2**20, f"{per_event:.1f} bytes per event"
