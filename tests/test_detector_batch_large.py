"""The batch detector on a tape long enough for its chunked search and its rules side by side.

Reference: the window sums straight from their definition (one searchsorted over the whole
tape), and each rule detected alone (no rule runs beside another). One rule alone computes
its window sums by halves on two threads: that path is checked against the definition too.
"""

from __future__ import annotations

import numpy as np
import pytest

from bot.config.rules import RuleConfig
from bot.detector.batch import detect_columns, rule_window
from bot.detector.columns import TapeColumns

N = 400_000  # several search chunks, and above the size where rules run side by side


def tape() -> TapeColumns:
    rng = np.random.default_rng(11)
    ts = 1_735_689_600_000 + np.cumsum(rng.integers(0, 60, N))  # equal timestamps too
    cents = (rng.pareto(1.3, N) * 50_000 + 100).astype(np.int64)
    return TapeColumns(
        ts_ms=ts,
        cents=cents,
        is_long=rng.random(N) < 0.6,
        symbol_codes=rng.integers(0, 5, N).astype(np.int32),
        symbols=("BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT", "DOGEUSDT"),
        venue_codes=rng.integers(0, 2, N).astype(np.int32),
        venues=("binance-usdm", "bybit"),
    )


@pytest.mark.parametrize("threads", [1, 2], ids=["one thread", "halves side by side"])
def test_window_sums_of_a_long_tape_follow_the_definition(threads: int) -> None:
    cols = tape()
    win = rule_window(cols, RuleConfig(threshold_usd=1e6), threads)
    assert win is not None
    prefix = np.concatenate([[0], np.cumsum(cols.cents)])
    first_inside = np.searchsorted(cols.ts_ms, cols.ts_ms - 3_600_000, side="right")
    assert np.array_equal(win.window, prefix[1:] - prefix[first_inside])


def test_rules_side_by_side_give_what_each_gives_alone() -> None:
    cols = tape()
    rules = [
        RuleConfig(name="all", threshold_usd=2e6),
        RuleConfig(name="btc", symbols=("BTC",), threshold_usd=5e5, factor=1.5),
        RuleConfig(name="short", sides=("short",), threshold_usd=8e5, window_s=900),
    ]
    together, late, peaks = detect_columns(cols, rules)
    alone = [detect_columns(cols, [rule]) for rule in rules]
    for rule, (events, rule_late, rule_peaks) in zip(rules, alone, strict=True):
        assert [e for e in together if e.rule == rule.name] == events
        assert late[rule.name] == rule_late[rule.name]
        assert peaks[rule.name] == rule_peaks[rule.name]
    assert len({e.rule for e in together}) == 3 and len(together) >= 30
