"""One rule's state machine: filter, window, clock, level, calm and anomaly (detector.md).

Contents: Thresholds (exact cents per level), RuleStatus, RuleState (on_event, on_tick).
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from fractions import Fraction

from bot.config.rules import RuleConfig
from bot.detector._window import Window
from bot.events import Anomaly, Calm, SymbolUsd
from bot.money import usd_to_cents


class Thresholds:
    """Threshold of level k in cents: T0 * f^(k-1), exact.

    T0 is rounded half-to-even to the cent first; f is taken at its decimal text (1.5 is 3/2),
    and for a non-integer f each level's product is rounded half-to-even to the cent (never
    compounded from the previous rounded level).
    """

    __slots__ = ("_cache", "_factor", "base_cents")

    def __init__(self, threshold_usd: float, factor: float) -> None:
        self.base_cents = usd_to_cents(threshold_usd)
        self._factor = Fraction(repr(factor))
        self._cache: list[int] = [0, self.base_cents]  # index = level; level 0 is unused

    def of_level(self, level: int) -> int:
        """The threshold in cents that level `level` (>= 1) stands for."""
        cache = self._cache
        while len(cache) <= level:
            exact = self.base_cents * self._factor ** (len(cache) - 1)
            cache.append(round(exact))  # Fraction rounds half-to-even
        return cache[level]

    def level_for(self, sum_cents: int, at_least: int) -> int:
        """The largest k >= at_least with of_level(k) <= sum_cents (caller ensures k exists)."""
        k = at_least
        while self.of_level(k + 1) <= sum_cents:
            k += 1
        return k


@dataclass(frozen=True, slots=True)
class RuleStatus:
    """Where a rule stands: its level, window sum, active threshold and counters."""

    rule: str
    level: int
    window_cents: int
    threshold_cents: int  # active threshold A = T0 * f^level
    base_threshold_cents: int
    clock_ms: int | None
    last_anomaly_ms: int | None
    events: int  # events inside the window
    late: int

    @property
    def window_usd(self) -> float:
        return self.window_cents / 100

    @property
    def threshold_usd(self) -> float:
        return self.threshold_cents / 100


class RuleState:
    """The per-rule state of detector.md: clock c, window, level L and t_last."""

    __slots__ = (
        "clock_ms",
        "config",
        "escalation_ms",
        "last_anomaly_ms",
        "late",
        "level",
        "name",
        "peak",
        "sides",
        "thresholds",
        "window",
        "window_ms",
    )

    def __init__(self, config: RuleConfig) -> None:
        self.config = config
        self.name = config.name
        self.window_ms = config.window_ms
        self.escalation_ms = config.escalation_window_ms
        self.sides = frozenset(config.sides)
        self.thresholds = Thresholds(config.threshold_usd, config.factor)
        self.window = Window()
        self.clock_ms: int | None = None
        self.level = 0
        self.last_anomaly_ms: int | None = None
        self.late = 0
        self.peak: tuple[int, int] | None = None  # largest window sum (cents) and its clock

    def on_event(
        self,
        ts_ms: int,
        cents: int,
        sym: int,
        venue: int,
        is_long: bool,
        names: tuple[list[str], list[str]],
        out: list[Anomaly | Calm],
    ) -> None:
        """Steps 1-4 of detector.md for one event that passed this rule's filter.

        A late event is not counted but still runs steps 3-4: without ticks that changes
        nothing; after a tick that calmed the rule, a window still above T0 fires on it.
        """
        c = self.clock_ms
        if c is None or ts_ms > c:
            c = self.clock_ms = ts_ms
            self.window.expire(c - self.window_ms)
        if ts_ms <= c - self.window_ms:
            self.late += 1
        else:
            self.window.add(ts_ms, cents, sym, venue, is_long)
        w = self.window
        if self.peak is None or w.total_cents > self.peak[0]:
            self.peak = (w.total_cents, c)
        self._calm(c, out)
        self._escalate(c, names, out)

    def retune(
        self, config: RuleConfig, names: tuple[list[str], list[str]], out: list[Anomaly | Calm]
    ) -> None:
        """Take a new threshold, factor, escalation window or top_n, keeping the window, the
        clock, the level and t_last; then steps 3-4 run once at the rule's clock c."""
        self.config = config
        self.escalation_ms = config.escalation_window_ms
        self.thresholds = Thresholds(config.threshold_usd, config.factor)
        if self.clock_ms is not None:
            self._calm(self.clock_ms, out)
            self._escalate(self.clock_ms, names, out)

    def _escalate(
        self, c: int, names: tuple[list[str], list[str]], out: list[Anomaly | Calm]
    ) -> None:
        w = self.window
        if w.total_cents >= self.thresholds.of_level(self.level + 1):
            new = self.thresholds.level_for(w.total_cents, self.level + 1)
            out.append(self._anomaly(c, new, names))
            self.level = new
            self.last_anomaly_ms = c

    def on_tick(self, now_ms: int, out: list[Anomaly | Calm]) -> None:
        """Advance the clock to now (never back), drain the window, emit Calm on time."""
        if self.clock_ms is not None and now_ms <= self.clock_ms:
            return
        self.clock_ms = now_ms
        self.window.expire(now_ms - self.window_ms)
        self._calm(now_ms, out)

    def status(self) -> RuleStatus:
        return RuleStatus(
            rule=self.name,
            level=self.level,
            window_cents=self.window.total_cents,
            threshold_cents=self.thresholds.of_level(self.level + 1),
            base_threshold_cents=self.thresholds.base_cents,
            clock_ms=self.clock_ms,
            last_anomaly_ms=self.last_anomaly_ms,
            events=self.window.count,
            late=self.late,
        )

    def _calm(self, c: int, out: list[Anomaly | Calm]) -> None:
        t_last = self.last_anomaly_ms
        if self.level > 0 and t_last is not None and c - t_last >= self.escalation_ms:
            out.append(Calm(self.name, t_last + self.escalation_ms, previous_level=self.level))
            self.level = 0

    def _anomaly(self, c: int, level: int, names: tuple[list[str], list[str]]) -> Anomaly:
        w = self.window
        n = self.config.top_n
        return Anomaly(
            rule=self.name,
            ts_ms=c,
            level=level,
            window_cents=w.total_cents,
            threshold_cents=self.thresholds.of_level(level),
            base_threshold_cents=self.thresholds.base_cents,
            long_cents=w.long_cents,
            short_cents=w.total_cents - w.long_cents,
            events=w.count,
            top_symbols=top_names(w.sym_cents, names[0], n),
            top_venues=top_names(w.venue_cents, names[1], n),
            previous_level=self.level,
        )


def top_names(sums: dict[int, int], names: list[str], n: int) -> tuple[SymbolUsd, ...]:
    """The n largest sums, ties by name: the order every path must agree on."""
    ranked = heapq.nsmallest(n, ((-cents, names[i]) for i, cents in sums.items() if cents > 0))
    return tuple(SymbolUsd(name, -neg) for neg, name in ranked)
