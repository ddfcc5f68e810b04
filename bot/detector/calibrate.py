"""Threshold calibration over one rule's window sums: pure numbers, no I/O.

Contents: candidate_grid, Candidate, sweep (every candidate's alerts from ONE RuleWindow),
recommend_by_rate / recommend_by_level, HourStats / hour_stats (hourly sums and maxima over
the observed hours), gap_hours (hours a streamed source was silent), percentile_cents.

The window sums do not depend on the threshold (bot.detector.batch.rule_window computes them
once); each candidate then costs one escalation (bot.detector.batch.escalate), the detector's
own, so the counts here are exactly what `detect` would emit with that base threshold.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from bot.detector._rule import Thresholds
from bot.detector.batch import RuleWindow, escalate

HOUR_MS = 3_600_000
MONTH_HOURS = 720  # a 30-day month
# Nice mantissas per decade; no step above 10 % (the coarsest allowed grid).
MANTISSAS = (
    1.0, 1.1, 1.2, 1.3, 1.4, 1.5, 1.6, 1.7, 1.8, 1.9, 2.0, 2.2, 2.4, 2.6, 2.8, 3.0,
    3.25, 3.5, 3.75, 4.0, 4.4, 4.8, 5.0, 5.5, 6.0, 6.5, 7.0, 7.5, 8.0, 8.5, 9.0, 9.5,
)  # fmt: skip
MAX_DECADES = 4  # the grid spans at most this many decades below the peak


def _grid_values(lo_usd: float, hi_usd: float) -> list[float]:
    out: list[float] = []
    decade = int(np.floor(np.log10(max(lo_usd, 0.01))))
    while True:
        for m in MANTISSAS:
            v = round(m * 10.0**decade, 2)
            if v > hi_usd:
                return out
            if v >= lo_usd:
                out.append(v)
        decade += 1


def candidate_grid(low_cents: int, peak_cents: int) -> list[float]:
    """Base thresholds in USD from the nice value at or below `low_cents` to the first one
    above the peak (which fires nothing), in steps of at most 10 %."""
    peak_usd = max(peak_cents, 1) / 100
    low_usd = max(min(low_cents, peak_cents), 1) / 100
    low_usd = max(low_usd, peak_usd / 10**MAX_DECADES)
    below = [v for v in _grid_values(low_usd / 1.2, low_usd) if v <= low_usd]
    start = below[-1] if below else low_usd
    values = _grid_values(start, peak_usd * 1.2)
    above = [v for v in values if v * 100 > peak_cents]
    return [v for v in values if v * 100 <= peak_cents] + above[:1]


@dataclass(frozen=True)
class Candidate:
    """What one base threshold would have fired over the tape."""

    threshold_usd: float
    alerts: int  # anomalies of any level: each is a message the desk receives
    by_level: dict[int, int]
    calms: int
    max_level: int
    per_month: float  # alerts per 30-day month of observed time (NaN when nothing observed)


def calm_index(win: RuleWindow, escalation_ms: int) -> NDArray[np.intp]:
    """For each event h, the first event with clock >= clock[h] + E: where a calm lands if no
    anomaly follows h (independent of the threshold: computed once per rule)."""
    return np.searchsorted(win.clock, win.clock + escalation_ms, side="left")


def escalation_counts(
    win: RuleWindow, th: Thresholds, calm_at: NDArray[np.intp] | memoryview
) -> tuple[dict[int, int], int]:
    """(anomalies per level, calms) that `escalate` emits, without building its Steps.

    The same walk (detector.md steps 3-4) with the level of each event's window sum taken once
    (lvl[i] = the largest k with T0 f^(k-1) <= S_i, by exact cents, only where S_i >= T0); at
    level L the next anomaly is the first event after the last one with lvl > L, found by
    bisection in the sorted indexes of the events at each level, unless the calm index comes
    first.
    """
    window = win.window  # int64 cents (sweep takes the detector's walk for wider sums)
    n = len(window)
    peak = int(win.peak[0])
    bounds = [th.of_level(1)]
    while bounds[-1] <= peak:
        bounds.append(th.of_level(len(bounds) + 1))
    top = len(bounds) - 1  # no event reaches a level above this
    if top == 0:
        return {}, 0
    cross = np.flatnonzero(window >= bounds[0])  # the only pass over every event
    cross_lvl = np.searchsorted(np.array(bounds, dtype=np.int64), window[cross], side="right")
    # at_least[k], level_of[k]: the events with lvl >= k and their levels, as memoryviews:
    # bisect and item access on them give Python ints with no copy, several times cheaper per
    # step than a numpy call (the walk takes one step per anomaly or calm).
    at_least: list[memoryview] = [cross.data, cross.data]
    level_of: list[memoryview] = [cross_lvl.data, cross_lvl.data]
    for k in range(2, top + 1):
        keep = cross_lvl >= k
        at_least.append(np.ascontiguousarray(cross[keep]).data)
        level_of.append(np.ascontiguousarray(cross_lvl[keep]).data)
    sizes = [len(a) for a in at_least]
    calm_list = calm_at if isinstance(calm_at, memoryview) else calm_at.data
    counts = [0] * (top + 2)
    calms = 0
    pos = 0
    starts = at_least[1]
    while True:
        j = bisect_left(starts, pos)
        if j == sizes[1]:
            break
        h = starts[j]
        level = level_of[1][j]
        counts[level] += 1
        while True:
            c = calm_list[h]
            if level < top:
                higher = at_least[level + 1]
                q = bisect_right(higher, h)
                if q < sizes[level + 1] and higher[q] < c:
                    h, level = higher[q], level_of[level + 1][q]
                    counts[level] += 1
                    continue
            if c >= n:
                return _levels(counts), calms
            calms += 1
            pos = c
            break
    return _levels(counts), calms


def _levels(counts: list[int]) -> dict[int, int]:
    return {k: v for k, v in enumerate(counts) if v}


def sweep(
    win: RuleWindow,
    thresholds_usd: Sequence[float],
    factor: float,
    escalation_ms: int,
    observed_hours: float,
) -> list[Candidate]:
    """Each candidate base threshold escalated over the same window sums."""
    calm_at = np.ascontiguousarray(calm_index(win, escalation_ms)).data  # once for all
    out = []
    for t in thresholds_usd:
        th = Thresholds(t, factor)
        if win.window.dtype == object:
            steps = escalate(win, th, escalation_ms)
            levels: dict[int, int] = {}
            for s in steps:
                if s.level:
                    levels[s.level] = levels.get(s.level, 0) + 1
            calms = len(steps) - sum(levels.values())
        else:
            levels, calms = escalation_counts(win, th, calm_at)
        alerts = sum(levels.values())
        rate = alerts / observed_hours * MONTH_HOURS if observed_hours > 0 else float("nan")
        out.append(
            Candidate(
                threshold_usd=t,
                alerts=alerts,
                by_level=dict(sorted(levels.items())),
                calms=calms,
                max_level=max(levels, default=0),
                per_month=rate,
            )
        )
    return out


def recommend_by_rate(candidates: Sequence[Candidate], per_month: float) -> Candidate | None:
    """The lowest base threshold whose alerts per 30-day month stay at or below the target."""
    ok = [c for c in candidates if c.per_month <= per_month]
    return min(ok, key=lambda c: c.threshold_usd) if ok else None


def recommend_by_level(candidates: Sequence[Candidate], level_cents: int) -> Candidate | None:
    """The lowest base threshold at or above a window-sum level (a percentile)."""
    ok = [c for c in candidates if round(c.threshold_usd * 100) >= level_cents]
    return min(ok, key=lambda c: c.threshold_usd) if ok else None


def percentile_cents(values: NDArray, p: float) -> int:
    """The p-th percentile of cents values (linear interpolation), in whole cents."""
    if len(values) == 0:
        return 0
    return round(float(np.percentile(values.astype(np.float64), p)))


@dataclass(frozen=True)
class HourStats:
    """Per clock hour (UTC) of [start_hour, start_hour + hours): what the rule saw."""

    start_hour: int  # epoch hours
    sums: NDArray[np.float64]  # USD liquidated in the hour
    maxima: NDArray[np.float64]  # largest window sum at an event of the hour, USD (0: none)
    gap: NDArray[np.bool_]  # the hour is a gap: no events, the source silent

    @property
    def observed(self) -> NDArray[np.bool_]:
        return ~self.gap

    @property
    def observed_hours(self) -> int:
        return int(np.count_nonzero(~self.gap))


def hour_index(ts_ms: NDArray[np.int64], start_hour: int) -> NDArray[np.intp]:
    return (ts_ms // HOUR_MS - start_hour).astype(np.intp)


def hour_stats(win: RuleWindow, start_hour: int, hours: int, gap: NDArray[np.bool_]) -> HourStats:
    """Hourly sums and maxima of the window sum over the rule's events (each at its own ts)."""
    idx = hour_index(win.ts, start_hour)
    keep = (idx >= 0) & (idx < hours)
    idx, cents, window = idx[keep], win.cents[keep], win.window[keep]
    sums = np.bincount(idx, weights=cents.astype(np.float64), minlength=hours)[:hours] / 100
    maxima = np.zeros(hours, dtype=np.float64)
    np.maximum.at(maxima, idx, window.astype(np.float64) / 100)
    return HourStats(start_hour, sums, maxima, gap)


def gap_hours(
    ts_ms: NDArray[np.int64], start_hour: int, hours: int, gap_ms: int
) -> NDArray[np.bool_]:
    """Hours with no event inside a silence of at least `gap_ms` (the span's ends count as
    events only where the source has them: before its first and after its last, silent)."""
    ts = np.sort(ts_ms)
    n = len(ts)
    if n == 0:
        return np.ones(hours, dtype=np.bool_)  # never heard from: silent throughout
    far = np.iinfo(np.int64).max // 4  # stands for "no event on that side"
    starts = (np.arange(hours, dtype=np.int64) + start_hour) * HOUR_MS
    nxt = np.searchsorted(ts, starts, side="left")  # first event at or after the hour start
    after = np.where(nxt < n, ts[np.minimum(nxt, n - 1)], far)
    before = np.where(nxt > 0, ts[np.maximum(nxt - 1, 0)], -far)
    empty = after >= starts + HOUR_MS
    return empty & (after - before >= gap_ms)


def gap_spans(gap: NDArray[np.bool_], start_hour: int) -> list[tuple[int, int]]:
    """Runs of gap hours as (first hour start ms, end ms), in order."""
    if not gap.any():
        return []
    edges = np.diff(np.concatenate(([0], gap.astype(np.int8), [0])))
    starts, ends = np.flatnonzero(edges == 1).tolist(), np.flatnonzero(edges == -1).tolist()
    return [
        ((start_hour + a) * HOUR_MS, (start_hour + b) * HOUR_MS)
        for a, b in zip(starts, ends, strict=True)
    ]
