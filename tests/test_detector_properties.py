"""Property tests: the streaming detector equals a brute-force reading of detector.md, and its
integer-cent sums never drift."""

from __future__ import annotations

from fractions import Fraction
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.config.rules import RuleConfig
from bot.detector import Detector
from bot.events import Anomaly, Calm, Liquidation, SymbolUsd
from bot.money import usd_to_cents
from bot.symbols import symbol_matches, venue_matches

BASE_MS = 1_700_000_000_000
SYMBOLS = ["BTCUSDT", "ETHUSDT", "BTC-USDT-SWAP", "SOLUSDT"]
VENUES = ["binance-usdm", "bybit", "okx"]


def brute_force(rules: list[RuleConfig], stream: list[Any]) -> list[Anomaly | Calm]:
    """detector.md read literally: keep every counted event, recompute everything each time."""
    out: list[Anomaly | Calm] = []
    state: dict[str, dict[str, Any]] = {
        r.name: {"c": None, "L": 0, "t_last": None, "kept": []} for r in rules
    }

    def threshold(r: RuleConfig, k: int) -> int:
        return round(usd_to_cents(r.threshold_usd) * Fraction(repr(r.factor)) ** (k - 1))

    def calm(r: RuleConfig, s: dict[str, Any]) -> None:
        if s["L"] > 0 and s["c"] - s["t_last"] >= r.escalation_window_ms:
            out.append(Calm(r.name, s["t_last"] + r.escalation_window_ms, s["L"]))
            s["L"] = 0

    def top(kept: list[tuple[int, int, Liquidation]], key: str, n: int) -> tuple[SymbolUsd, ...]:
        sums: dict[str, int] = {}
        for _, cents, x in kept:
            sums[getattr(x, key)] = sums.get(getattr(x, key), 0) + cents
        ranked = sorted((-v, k) for k, v in sums.items() if v > 0)[:n]
        return tuple(SymbolUsd(k, -v) for v, k in ranked)

    for item in stream:
        for r in rules:
            s = state[r.name]
            if isinstance(item, int):  # a clock tick
                if s["c"] is None or item > s["c"]:
                    s["c"] = item
                    calm(r, s)
                continue
            x: Liquidation = item
            if not (
                x.side in r.sides
                and (not r.symbols or any(symbol_matches(t, x.symbol) for t in r.symbols))
                and (not r.venues or any(venue_matches(t, x.venue) for t in r.venues))
            ):
                continue
            s["c"] = x.ts_ms if s["c"] is None else max(s["c"], x.ts_ms)
            c, w = s["c"], r.window_ms
            if x.ts_ms > c - w:
                s["kept"].append((x.ts_ms, usd_to_cents(x.notional_usd), x))
            window = [e for e in s["kept"] if c - w < e[0] <= c]
            total = sum(e[1] for e in window)
            calm(r, s)
            if total >= threshold(r, s["L"] + 1):
                k = s["L"] + 1
                while threshold(r, k + 1) <= total:
                    k += 1
                long_cents = sum(e[1] for e in window if e[2].side == "long")
                out.append(Anomaly(
                    r.name, c, k, total, threshold(r, k), threshold(r, 1), long_cents,
                    total - long_cents, len(window), top(window, "symbol", r.top_n),
                    top(window, "venue", r.top_n), s["L"]))  # fmt: skip
                s["L"], s["t_last"] = k, c
    return out


notionals = st.one_of(
    st.integers(1, 200_000_00).map(lambda c: c / 100),  # ordinary, cents exact
    st.floats(0.0001, 0.02),  # tiny, half-cent ties included
    st.floats(1e6, 1e12),  # huge
    st.sampled_from([0.005, 0.015, 0.025, 1.005, 2.675, 1000.125]),
)


@st.composite
def tapes(draw: st.DrawFn) -> tuple[list[RuleConfig], list[Any]]:
    rules = []
    for i in range(draw(st.integers(1, 3))):
        rules.append(RuleConfig(
            name=f"r{i}",
            window_s=draw(st.sampled_from([1, 10, 60])),
            escalation_window_s=draw(st.sampled_from([1, 30, 120])),
            threshold_usd=draw(st.sampled_from([0.05, 10.0, 1000.0, 1e6, 123456.78])),
            factor=draw(st.sampled_from([2.0, 1.5, 3.0, 10.0, 1.1])),
            sides=draw(st.sampled_from([("long", "short"), ("long",), ("short",)])),
            symbols=draw(st.sampled_from([(), ("BTC",), ("ETHUSDT", "sol")])),
            venues=draw(st.sampled_from([(), ("okx",), ("binance", "bybit")])),
            top_n=draw(st.integers(1, 3)),
        ))  # fmt: skip
    stream: list[Any] = []
    t = BASE_MS
    for _ in range(draw(st.integers(0, 60))):
        t += draw(st.sampled_from([0, 0, 1, 500, 5000, 30_000, 200_000]))
        jitter = draw(st.sampled_from([0, 0, 0, -1, -999, -5000, -70_000]))  # out of order
        if draw(st.integers(0, 9)) == 0:
            stream.append(t + jitter)
            continue
        stream.append(Liquidation(
            t + jitter, draw(st.sampled_from(VENUES)), draw(st.sampled_from(SYMBOLS)),
            draw(st.sampled_from(["long", "short"])), draw(notionals)))  # fmt: skip
    return rules, stream


def run(det: Detector, stream: list[Any]) -> list[Anomaly | Calm]:
    out: list[Anomaly | Calm] = []
    for item in stream:
        out.extend(det.on_tick(item) if isinstance(item, int) else det.on_liquidation(item))
    return out


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tapes())
def test_detector_equals_brute_force(case: tuple[list[RuleConfig], list[Any]]) -> None:
    rules, stream = case
    assert run(Detector(rules), stream) == brute_force(rules, stream)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3_599_999), notionals, st.booleans()), max_size=300))
def test_sums_return_to_exactly_zero(events: list[tuple[int, float, bool]]) -> None:
    det = Detector([RuleConfig(threshold_usd=1e18)])
    expected = 0
    for offset, usd, is_long in events:
        det.on_liquidation(
            Liquidation(BASE_MS + offset, "v", "S", "long" if is_long else "short", usd)
        )
        expected += usd_to_cents(usd)
    assert det.status()[0].window_cents == expected
    det.on_tick(BASE_MS + 10 * 3_600_000)
    (st_,) = det.status()
    assert (st_.window_cents, st_.events) == (0, 0)
    snap = det.snapshot()["rules"]["all"]
    assert snap["events"] == []


def test_billion_cent_adds_and_removes_do_not_drift() -> None:
    # 0.1 USD is not a binary fraction: a float sum would drift, integer cents cannot.
    det = Detector([RuleConfig(threshold_usd=1e18, window_s=1)])
    for i in range(200_000):
        det.on_liquidation(Liquidation(BASE_MS + i * 100, "v", "S", "long", 0.1))
        assert det.status()[0].window_cents in (0, 10, 100) if i % 50_000 == 0 else True
    (s,) = det.status()
    assert s.window_cents == 10 * s.events == 100


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tapes())
def test_peaks_are_the_largest_window_sum_after_any_counted_event(
    case: tuple[list[RuleConfig], list[Any]],
) -> None:
    rules, stream = case
    liquidations = [x for x in stream if isinstance(x, Liquidation)]
    det = Detector(rules)
    for liq in liquidations:
        det.on_liquidation(liq)
    for rule in rules:
        # Brute force: after each event the rule sees, the sum of its counted events in (c-W, c].
        best: tuple[int, int] | None = None
        clock: int | None = None
        counted: list[Liquidation] = []
        for liq in liquidations:
            if liq.side not in rule.sides:
                continue
            if rule.symbols and not any(symbol_matches(t, liq.symbol) for t in rule.symbols):
                continue
            if rule.venues and not any(venue_matches(t, liq.venue) for t in rule.venues):
                continue
            clock = liq.ts_ms if clock is None else max(clock, liq.ts_ms)
            if liq.ts_ms > clock - rule.window_ms:
                counted.append(liq)
            window = sum(
                usd_to_cents(x.notional_usd) for x in counted if x.ts_ms > clock - rule.window_ms
            )
            if best is None or window > best[0]:
                best = (window, clock)
        assert det.peaks.get(rule.name) == best
