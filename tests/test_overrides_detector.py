"""Property tests: a threshold change keeps the detector's window, clock and level, and every
level after it follows the new base (docs/detector.md, "Changing a rule while it runs")."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from bot.config.rules import RuleConfig
from bot.detector import Detector, Thresholds
from bot.events import Anomaly, Calm, Liquidation

BASE_MS = 1_700_000_000_000
MIN = 60_000

events = st.lists(
    st.tuples(
        st.integers(-20, 200),  # minutes after BASE (some out of order, some late)
        st.integers(1, 900),  # $k
        st.sampled_from(["long", "short"]),
        st.sampled_from(["BTCUSDT", "ETHUSDT"]),
    ),
    min_size=1,
    max_size=40,
)


def liqs(raw: list[tuple[int, int, str, str]]) -> list[Liquidation]:
    return [
        Liquidation(BASE_MS + m * MIN, "binance", sym, side, k * 1000.0) for m, k, side, sym in raw
    ]


def rule(threshold_usd: float, **kw: object) -> RuleConfig:
    return RuleConfig.model_validate(
        {"threshold_usd": threshold_usd, "window_s": 1800, "escalation_window_s": 3600, **kw}
    )


def feed(d: Detector, xs: list[Liquidation]) -> list[Anomaly | Calm]:
    return [e for x in xs for e in d.on_liquidation(x)]


@settings(max_examples=60, deadline=None)
@given(events, events, st.sampled_from([250e3, 500e3, 1e6, 2e6, 3.3e6]), st.integers(200, 3000))
def test_a_threshold_change_keeps_the_window_and_levels_follow_the_new_base(
    before: list, after: list, t0: float, t1_k: int
) -> None:
    old, new = rule(t0), rule(t1_k * 1000.0)
    d = Detector([old])
    feed(d, liqs(before))
    was = d.status()[0]
    caused = d.reconfigure([new])
    now = d.status()[0]
    # the window, its clock and t_last are untouched; the level only goes up, by an anomaly
    assert (now.window_cents, now.events, now.clock_ms) == (
        was.window_cents,
        was.events,
        was.clock_ms,
    )
    assert now.base_threshold_cents == round(t1_k * 1000 * 100)
    fired = [e for e in caused if isinstance(e, Anomaly)]
    rising = Thresholds(new.threshold_usd, new.factor)
    if was.level > 0 or not fired:
        assert now.level >= was.level or any(isinstance(e, Calm) for e in caused)
    # at the change: an anomaly exactly when the window reaches the new active threshold
    level_then = 0 if any(isinstance(e, Calm) for e in caused) else was.level
    crossed = was.clock_ms is not None and was.window_cents >= rising.of_level(level_then + 1)
    assert bool(fired) == crossed
    for a in fired:
        assert a.ts_ms == was.clock_ms  # stamped with the rule's clock, not a wall time
        assert a.previous_level == level_then and a.level > level_then
    # after it: every level is the new base times f^(k-1), and the window reaches it
    for e in feed(d, liqs(after)):
        if isinstance(e, Anomaly):
            assert e.threshold_cents == rising.of_level(e.level) <= e.window_cents
            assert e.base_threshold_cents == rising.base_cents


@settings(max_examples=40, deadline=None)
@given(events, events, st.sampled_from([250e3, 700e3, 1.5e6]), st.integers(200, 3000))
def test_after_a_quiet_change_the_detector_runs_as_if_restored_with_the_new_threshold(
    before: list, after: list, t0: float, t1_k: int
) -> None:
    """When the change itself fires nothing, what follows equals a detector built with the new
    threshold and given the old state (the snapshot carries window, clock, level, t_last)."""
    old, new = rule(t0), rule(t1_k * 1000.0)
    changed = Detector([old])
    feed(changed, liqs(before))
    state = changed.snapshot()
    if changed.reconfigure([new]):
        return  # the change fired or calmed at once: covered by the test above
    reference = Detector([new])
    reference.restore(state)
    assert feed(changed, liqs(after)) == feed(reference, liqs(after))


@settings(max_examples=40, deadline=None)
@given(events, events, st.sampled_from([250e3, 1e6]))
def test_the_same_settings_again_change_nothing(before: list, after: list, t0: float) -> None:
    a, b = Detector([rule(t0)]), Detector([rule(t0)])
    assert feed(a, liqs(before)) == feed(b, liqs(before))
    assert b.reconfigure([rule(t0)]) == []
    assert feed(a, liqs(after)) == feed(b, liqs(after))


def test_a_rule_whose_counting_changes_starts_empty_and_a_new_rule_joins() -> None:
    d = Detector([rule(1e6, name="btc", symbols=("BTC",))])
    feed(d, liqs([(0, 800, "long", "BTCUSDT"), (1, 100, "long", "ETHUSDT")]))
    assert d.status()[0].window_cents == 80_000_000
    d.reconfigure([rule(1e6, name="btc", symbols=("BTC", "ETH")), rule(1e5, name="all")])
    assert [(s.rule, s.window_cents, s.clock_ms) for s in d.status()] == [
        ("btc", 0, None),
        ("all", 0, None),
    ]
    out = feed(d, liqs([(2, 200, "long", "ETHUSDT")]))
    assert [(e.rule, e.level) for e in out if isinstance(e, Anomaly)] == [("all", 2)]
    assert d.status()[0].window_cents == 20_000_000  # ETH counts for btc now


def test_a_shorter_escalation_window_calms_at_once_stamped_when_it_ran_out() -> None:
    d = Detector([rule(1e6)])
    out = feed(d, liqs([(0, 1200, "long", "BTCUSDT"), (50, 1, "long", "BTCUSDT")]))
    assert [e.level for e in out if isinstance(e, Anomaly)] == [1]
    caused = d.reconfigure([rule(1e6, escalation_window_s=1200)])
    assert caused == [Calm("all", BASE_MS + 20 * MIN, previous_level=1)]
