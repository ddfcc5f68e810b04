"""The columnar batch detector: the streaming detector's output, computed with numpy over columns.

Contents: detect_batch, detect_columns (over parsed columns; bot.app.detect reads the files).

Per rule (detector.md, W window, E escalation window), over the events that pass its filter:
- the clock c_i is the running maximum of ts_ms; with x_i = c_i - W, event j leaves the window
  at the first i >= j with x_i >= ts_j (a late event leaves at its own index), so the window
  sum S_i = cumsum(cents)_i - cumsum(cents leaving at or before i) - exact, in int64 cents;
- the level loop then visits only threshold crossings and calm times: for level L the next
  anomaly is the first i with S_i >= T0 f^L before the first i with c_i >= t_last + E.
Events are merged in the streaming order: event index, then rule order, Calm before Anomaly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from bot.config.rules import RuleConfig
from bot.detector import Thresholds, top_names
from bot.detector.columns import TapeColumns
from bot.events import Anomaly, Calm
from bot.symbols import symbol_matches, venue_matches

_FLOAT_EXACT = 2**53  # bincount sums in float64: exact while every sum stays below this
_INT64_SAFE = 2**62  # int64 cumulative sums cannot overflow below this total


@dataclass
class RuleRun:
    """What one rule saw: its events (keyed for the merge), late count, peak window sum."""

    # (row index in the tape, 0 calm / 1 anomaly, event): the keys of the streaming order
    events: list[tuple[int, int, Anomaly | Calm]] = field(default_factory=list)
    late: int = 0
    peak: tuple[int, int] | None = None  # (cents, ts_ms): the first largest window sum


def detect_batch(columns: TapeColumns, rules: Sequence[RuleConfig]) -> list[Anomaly | Calm]:
    """Exactly what Detector(rules) emits for these events in this order, computed columnar."""
    return detect_columns(columns, rules)[0]


def detect_columns(
    columns: TapeColumns, rules: Sequence[RuleConfig]
) -> tuple[list[Anomaly | Calm], dict[str, int], dict[str, tuple[int, int]]]:
    """(events, late per rule, peak per rule) of the batch detector."""
    names = [r.name for r in rules]
    if len(set(names)) != len(names):
        raise ValueError("rule names must be unique")
    merged: list[tuple[int, int, int, Anomaly | Calm]] = []
    late: dict[str, int] = {}
    peaks: dict[str, tuple[int, int]] = {}
    for k, rule in enumerate(rules):
        run = _run_rule(columns, rule)
        merged += [(i, k, order, ev) for i, order, ev in run.events]
        late[rule.name] = run.late
        if run.peak is not None:
            peaks[rule.name] = run.peak
    merged.sort(key=lambda m: m[:3])
    return [m[3] for m in merged], late, peaks


# -- one rule ----------------------------------------------------------------------------------


def _mask(columns: TapeColumns, rule: RuleConfig) -> NDArray[np.bool_]:
    sym_ok = np.array(
        [not rule.symbols or any(symbol_matches(t, s) for t in rule.symbols)
         for s in columns.symbols] or [False], dtype=np.bool_)  # fmt: skip
    ven_ok = np.array(
        [not rule.venues or any(venue_matches(t, v) for t in rule.venues)
         for v in columns.venues] or [False], dtype=np.bool_)  # fmt: skip
    side_ok = np.array(["short" in rule.sides, "long" in rule.sides], dtype=np.bool_)
    return (
        sym_ok[columns.symbol_codes]
        & ven_ok[columns.venue_codes]
        & side_ok[columns.is_long.astype(np.intp)]
    )


def _leaving_sum(
    leave: NDArray[np.intp],
    values: NDArray,
    n: int,
    exact_float: bool,
) -> NDArray:
    """Cumulative sum, at each index, of the values that have left the window by then."""
    if exact_float:
        per = np.bincount(leave, weights=values, minlength=n + 1)[:n].astype(values.dtype)
    else:
        per = np.zeros(n + 1, dtype=values.dtype)
        np.add.at(per, leave, values)
        per = per[:n]
    return np.cumsum(per)


def _run_rule(columns: TapeColumns, rule: RuleConfig) -> RuleRun:
    run = RuleRun()
    rows = np.flatnonzero(_mask(columns, rule))
    n = len(rows)
    if n == 0:
        return run
    ts = columns.ts_ms[rows]
    cents = columns.cents[rows]
    w_ms, e_ms = rule.window_ms, rule.escalation_window_ms
    clock = np.maximum.accumulate(ts)
    cut = clock - w_ms
    run.late = int(np.count_nonzero(ts <= cut))
    leave = np.maximum(np.searchsorted(cut, ts, side="left"), np.arange(n))
    if cents.dtype != object and int(np.abs(cents).max()) * n >= _INT64_SAFE:
        cents = cents.astype(object)  # sums could pass int64: exact Python ints instead
    exact_float = cents.dtype != object and int(np.abs(cents).max()) * n < _FLOAT_EXACT
    window = np.cumsum(cents) - _leaving_sum(leave, cents, n, exact_float)
    best = int(np.argmax(window))
    run.peak = (int(window[best]), int(clock[best]))
    th = Thresholds(rule.threshold_usd, rule.factor)
    crossings = np.flatnonzero(window >= th.base_cents)
    ctx = _Context(columns, rows, ts, cents, clock, cut, rule)
    level, t_last, pos = 0, 0, 0
    while pos < n:
        if level > 0:
            calm_at = pos + int(np.searchsorted(clock[pos:], t_last + e_ms, side="left"))
            hit = _first_at_least(window, pos, calm_at, th.of_level(level + 1))
            if hit is None:
                if calm_at >= n:
                    break
                run.events.append((int(rows[calm_at]), 0, Calm(rule.name, t_last + e_ms, level)))
                level, pos = 0, calm_at
                continue
        else:
            j = int(np.searchsorted(crossings, pos))
            if j == len(crossings):
                break
            hit = int(crossings[j])
        new = th.level_for(int(window[hit]), level + 1)
        run.events.append((int(rows[hit]), 1, ctx.anomaly(hit, int(window[hit]), new, level, th)))
        level, t_last, pos = new, int(clock[hit]), hit + 1
    return run


def _first_at_least(values: NDArray, start: int, stop: int, bound: int) -> int | None:
    """First i in [start, stop) with values[i] >= bound; cost grows with the distance."""
    step = 1024
    while start < stop:
        end = min(stop, start + step)
        hits = values[start:end] >= bound
        i = int(np.argmax(hits))
        if hits[i]:
            return start + i
        start, step = end, step * 2
    return None


@dataclass
class _Context:
    """The filtered columns of one rule, to describe the window at an anomaly."""

    columns: TapeColumns
    rows: NDArray[np.intp]
    ts: NDArray[np.int64]
    cents: NDArray
    clock: NDArray[np.int64]
    cut: NDArray[np.int64]
    rule: RuleConfig

    def anomaly(
        self, i: int, window_cents: int, level: int, previous: int, th: Thresholds
    ) -> Anomaly:
        # The window's events: j <= i with ts_j > cut_i; none before the first clock past cut_i.
        lo = int(np.searchsorted(self.clock, self.cut[i], side="right"))
        inside = np.flatnonzero(self.ts[lo : i + 1] > self.cut[i]) + lo
        cents = self.cents[inside]
        rows = self.rows[inside]
        long_cents = int(cents[self.columns.is_long[rows]].sum())
        n = self.rule.top_n
        return Anomaly(
            rule=self.rule.name,
            ts_ms=int(self.clock[i]),
            level=level,
            window_cents=window_cents,
            threshold_cents=th.of_level(level),
            base_threshold_cents=th.base_cents,
            long_cents=long_cents,
            short_cents=window_cents - long_cents,
            events=len(inside),
            top_symbols=top_names(_sums(self.columns.symbol_codes[rows], cents),
                                  list(self.columns.symbols), n),
            top_venues=top_names(_sums(self.columns.venue_codes[rows], cents),
                                 list(self.columns.venues), n),
            previous_level=previous,
        )  # fmt: skip


def _sums(codes: NDArray[np.int32], cents: NDArray) -> dict[int, int]:
    """Cents per code, exact."""
    uniq, inverse = np.unique(codes, return_inverse=True)
    per = np.zeros(len(uniq), dtype=cents.dtype)
    np.add.at(per, inverse.reshape(-1), cents)
    return {int(c): int(v) for c, v in zip(uniq.tolist(), per.tolist(), strict=True)}
