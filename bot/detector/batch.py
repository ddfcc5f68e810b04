"""The columnar batch detector: the streaming detector's output, computed with numpy over columns.

Contents: detect_batch, detect_columns (over parsed columns; bot.app.detect reads the files);
rule_window + escalate (the two halves, apart: calibrate escalates many thresholds over one window).

Per rule (detector.md, W window, E escalation window), over the events that pass its filter:
- the clock c_i is the running maximum of ts_ms; with x_i = c_i - W, event j leaves the window
  at the first i >= j with x_i >= ts_j (a late event leaves at its own index), so the window
  sum S_i = cumsum(cents)_i - cumsum(cents leaving at or before i) - exact, in int64 cents;
- in arrival order (sorted ts_ms, the usual tape) the window at i is the run [lo_i, i], so
  S_i = P_i - P_(lo_i - 1) from one prefix sum P and one searchsorted, with no late events;
- the level loop then visits only threshold crossings and calm times: for level L the next
  anomaly is the first i with S_i >= T0 f^L before the first i with c_i >= t_last + E.
Events are merged in the streaming order: event index, then rule order, Calm before Anomaly.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
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
_FEW_CODES = 32  # names: up to this many, an anomaly's top list is picked in Python
_PARALLEL_MIN = 1 << 18  # events: below this, a second rule thread costs more than it saves


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
    big = len(columns) >= _PARALLEL_MIN
    if len(rules) > 1 and big:  # numpy releases the GIL: 2 rules at once
        with ThreadPoolExecutor(2, thread_name_prefix="rule") as pool:
            runs = list(pool.map(lambda rule: _run_rule(columns, rule), rules))
    else:  # one rule: its window sums by halves on 2 threads
        runs = [_run_rule(columns, rule, threads=2 if big else 1) for rule in rules]
    for k, (rule, run) in enumerate(zip(rules, runs, strict=True)):
        merged += [(i, k, order, ev) for i, order, ev in run.events]
        late[rule.name] = run.late
        if run.peak is not None:
            peaks[rule.name] = run.peak
    merged.sort(key=lambda m: m[:3])
    return [m[3] for m in merged], late, peaks


# -- one rule ----------------------------------------------------------------------------------


def _mask(columns: TapeColumns, rule: RuleConfig) -> NDArray[np.bool_] | None:
    """Which events pass the rule's filter; None when all do (no pass over the columns)."""
    sym_ok = np.array(
        [not rule.symbols or any(symbol_matches(t, s) for t in rule.symbols)
         for s in columns.symbols] or [False], dtype=np.bool_)  # fmt: skip
    ven_ok = np.array(
        [not rule.venues or any(venue_matches(t, v) for t in rule.venues)
         for v in columns.venues] or [False], dtype=np.bool_)  # fmt: skip
    mask: NDArray[np.bool_] | None = None
    for ok, codes in ((sym_ok, columns.symbol_codes), (ven_ok, columns.venue_codes)):
        if not ok.all():
            mask = ok[codes] if mask is None else mask & ok[codes]
    if "long" not in rule.sides or "short" not in rule.sides:
        side = columns.is_long if "long" in rule.sides else ~columns.is_long
        mask = side if mask is None else mask & side
    return mask


def _chunks(start: int, stop: int, step: int = 1 << 16) -> list[tuple[int, int]]:
    return [(a, min(stop, a + step)) for a in range(start, stop, step)]


def _first_inside(ts: NDArray[np.int64], a: int, b: int, w_ms: int) -> NDArray[np.intp]:
    """For each event in [a, b) of sorted ts, the first index inside its window."""
    keys = ts[a:b] - w_ms
    s = int(np.searchsorted(ts[:b], keys[0], side="right"))
    return np.searchsorted(ts[s:b], keys, side="right") + s


def _in_order_sums(
    ts: NDArray[np.int64], prefix: NDArray[np.int64], w_ms: int, threads: int = 1
) -> NDArray:
    """P_(i+1) - P_(first inside i) of sorted ts: the window sum after each event, by chunks
    of searches that stay in cache (2x faster); exact Python ints when `prefix` holds them.
    With threads > 1 the halves of int64 sums run side by side (numpy releases the GIL)."""
    out = np.empty(len(ts), dtype=prefix.dtype)

    def fill(chunks: list[tuple[int, int]]) -> None:
        for a, b in chunks:
            window = out[a:b]
            np.take(prefix, _first_inside(ts, a, b, w_ms), out=window)
            np.subtract(prefix[a + 1 : b + 1], window, out=window)

    chunks = _chunks(0, len(ts))
    if threads < 2 or prefix.dtype == object or len(ts) < _PARALLEL_MIN:
        fill(chunks)
        return out
    half = len(chunks) // 2
    with ThreadPoolExecutor(2, thread_name_prefix="window") as pool:
        list(pool.map(fill, (chunks[:half], chunks[half:])))
    return out


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


def _window_sums(
    ts: NDArray[np.int64],
    cents: NDArray,
    w_ms: int,
    in_order: bool,
    exact_float: bool,
    threads: int = 1,
) -> tuple[NDArray[np.int64], NDArray, int]:
    """(clock, window sum after each event, late count) of one rule's events."""
    n = len(ts)
    if in_order:
        # In arrival order the window at i is the run [lo_i, i]: one prefix sum, no late events.
        prefix = np.zeros(n + 1, dtype=cents.dtype)
        np.cumsum(cents, out=prefix[1:])
        return ts, _in_order_sums(ts, prefix, w_ms, threads), 0
    clock = np.maximum.accumulate(ts)
    cut = clock - w_ms
    late = int(np.count_nonzero(ts <= cut))
    leave = np.maximum(np.searchsorted(cut, ts, side="left"), np.arange(n))
    return clock, np.cumsum(cents) - _leaving_sum(leave, cents, n, exact_float), late


def _run_rule(columns: TapeColumns, rule: RuleConfig, threads: int = 1) -> RuleRun:
    run = RuleRun()
    win = rule_window(columns, rule, threads)
    if win is None:
        return run
    run.late, run.peak = win.late, win.peak
    th = Thresholds(rule.threshold_usd, rule.factor)
    rows = win.rows
    ctx = _Context(columns, rows, win.ts, win.cents, win.clock, rule, win.in_order, win.exact_float)
    for step in escalate(win, th, rule.escalation_window_ms):
        row = step.index if rows is None else int(rows[step.index])
        if step.level == 0:
            run.events.append((row, 0, Calm(rule.name, step.ts_ms, step.previous_level)))
        else:
            event = ctx.anomaly(step.index, step.window_cents, step.level, step.previous_level, th)
            run.events.append((row, 1, event))
    return run


@dataclass(frozen=True)
class RuleWindow:
    """One rule's window sum after each of its events: independent of the thresholds."""

    rows: NDArray[np.intp] | None  # tape row of each of the rule's events; None: every row
    ts: NDArray[np.int64]
    cents: NDArray
    clock: NDArray[np.int64]  # the rule's clock c after each event
    window: NDArray  # S after each event, exact cents
    late: int
    peak: tuple[int, int]  # (cents, ts_ms): the first largest window sum
    in_order: bool
    exact_float: bool

    def __len__(self) -> int:
        return len(self.ts)

    @property
    def row_index(self) -> NDArray[np.intp]:
        """The tape rows of the rule's events (an index array even when it takes every row)."""
        return np.arange(len(self.ts)) if self.rows is None else self.rows


@dataclass(frozen=True, slots=True)
class Step:
    """One detector output at event `index` of a rule: an anomaly (level >= 1) or a calm (0)."""

    index: int
    level: int
    previous_level: int
    ts_ms: int
    window_cents: int


def rule_window(columns: TapeColumns, rule: RuleConfig, threads: int = 1) -> RuleWindow | None:
    """The window sums of the events passing the rule's filter; None if no event passes.
    `threads`: how many may compute the sums (2 pays off from _PARALLEL_MIN events)."""
    mask = _mask(columns, rule)
    if mask is None:  # the rule takes every event: views of the columns, no copies
        rows: NDArray[np.intp] | None = None
        ts, cents = columns.ts_ms, columns.cents
    else:
        rows = np.flatnonzero(mask)
        del mask
        ts, cents = columns.ts_ms[rows], columns.cents[rows]
    n = len(ts)
    if n == 0:
        return None
    w_ms = rule.window_ms
    largest = _largest_abs(cents)
    if cents.dtype != object and largest * n >= _INT64_SAFE:
        cents = cents.astype(object)  # sums could pass int64: exact Python ints instead
    exact_float = cents.dtype != object and largest * n < _FLOAT_EXACT
    in_order = w_ms > 0 and bool(np.all(ts[1:] >= ts[:-1]))
    clock, window, late = _window_sums(ts, cents, w_ms, in_order, exact_float, threads)
    best = int(np.argmax(window))
    peak = (int(window[best]), int(clock[best]))
    return RuleWindow(rows, ts, cents, clock, window, late, peak, in_order, exact_float)


def _largest_abs(cents: NDArray) -> int:
    """max |cents| without an array of absolute values."""
    return max(int(cents.max()), -int(cents.min()))


def escalate(win: RuleWindow, th: Thresholds, escalation_ms: int) -> list[Step]:
    """The anomalies and calms of detector.md over precomputed window sums, in order.

    Visits only threshold crossings and calm times (calibrate runs many thresholds over the
    same RuleWindow; the window sums are not recomputed).
    """
    window, clock = win.window, win.clock
    n = len(window)
    steps: list[Step] = []
    crossings = np.flatnonzero(window >= th.base_cents)
    level, t_last, pos = 0, 0, 0
    while pos < n:
        if level > 0:
            calm_at = pos + int(np.searchsorted(clock[pos:], t_last + escalation_ms, side="left"))
            hit = _first_at_least(window, pos, calm_at, th.of_level(level + 1))
            if hit is None:
                if calm_at >= n:
                    break
                steps.append(Step(calm_at, 0, level, t_last + escalation_ms, 0))
                level, pos = 0, calm_at
                continue
        else:
            j = int(np.searchsorted(crossings, pos))
            if j == len(crossings):
                break
            hit = int(crossings[j])
        sum_cents = int(window[hit])
        new = th.level_for(sum_cents, level + 1)
        steps.append(Step(hit, new, level, int(clock[hit]), sum_cents))
        level, t_last, pos = new, int(clock[hit]), hit + 1
    return steps


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


class _Context:
    """The filtered columns of one rule, to describe the window at an anomaly.

    Anomalies come in index order. In arrival order the window at i is the run [lo, i], so the
    per-symbol and per-venue sums move from one anomaly's window to the next by adding the
    events that entered and taking out those that left (each event once in a run), or are
    counted afresh when that is shorter; never a sort per anomaly.
    """

    def __init__(
        self,
        columns: TapeColumns,
        rows: NDArray[np.intp] | None,
        ts: NDArray[np.int64],
        cents: NDArray,
        clock: NDArray[np.int64],
        rule: RuleConfig,
        in_order: bool,
        exact_float: bool,
    ) -> None:
        self.columns, self.rows, self.ts, self.cents, self.clock = columns, rows, ts, cents, clock
        self.rule, self.in_order, self.exact_float = rule, in_order, exact_float
        self.symbols, self.venues = list(columns.symbols), list(columns.venues)
        kind = np.float64 if exact_float else cents.dtype  # float sums exact below 2**53
        self._sym = np.zeros(len(self.symbols), dtype=kind)
        self._ven = np.zeros(len(self.venues), dtype=kind)
        self._long = 0
        self._lo, self._hi = 0, 0  # the window summed so far: [lo, hi)

    def _take(self, a: int, b: int) -> NDArray[np.intp] | slice:
        return slice(a, b) if self.rows is None else self.rows[a:b]

    def _add(self, a: int, b: int, sign: int) -> None:
        """Add (sign 1) or take out (sign -1) the events [a, b) of the rule."""
        if a >= b:
            return
        at = self._take(a, b)
        cents = self.cents[a:b]
        self._long += sign * int(cents[self.columns.is_long[at]].sum())
        for sums, codes in (
            (self._sym, self.columns.symbol_codes),
            (self._ven, self.columns.venue_codes),
        ):
            if self.exact_float:
                part = np.bincount(codes[at], weights=cents, minlength=len(sums))
                sums += part if sign > 0 else -part
            else:
                np.add.at(sums, codes[at], cents if sign > 0 else -cents)

    def _window_in_order(self, i: int) -> int:
        """Move the running sums to the window [lo, i]; its event count."""
        lo = int(np.searchsorted(self.ts, self.ts[i] - self.rule.window_ms, side="right"))
        hi = i + 1
        if lo >= self._hi or (hi - self._hi) + (lo - self._lo) > hi - lo:
            self._sym[:] = 0
            self._ven[:] = 0
            self._long = 0
            self._add(lo, hi, 1)
        else:
            self._add(self._hi, hi, 1)
            self._add(self._lo, lo, -1)
        self._lo, self._hi = lo, hi
        return hi - lo

    def _window_any_order(self, i: int) -> int:
        """Sum the window at i afresh: j <= i with ts_j > clock_i - W (late events are out)."""
        cut = int(self.clock[i]) - self.rule.window_ms
        lo = int(np.searchsorted(self.clock, cut, side="right"))  # none before: clock <= cut
        inside = np.flatnonzero(self.ts[lo : i + 1] > cut) + lo
        at = inside if self.rows is None else self.rows[inside]
        cents = self.cents[inside]
        self._long = int(cents[self.columns.is_long[at]].sum())
        for sums, codes in (
            (self._sym, self.columns.symbol_codes),
            (self._ven, self.columns.venue_codes),
        ):
            sums[:] = 0
            if self.exact_float:
                sums += np.bincount(codes[at], weights=cents, minlength=len(sums))
            else:
                np.add.at(sums, codes[at], cents)
        return len(inside)

    def anomaly(
        self, i: int, window_cents: int, level: int, previous: int, th: Thresholds
    ) -> Anomaly:
        events = self._window_in_order(i) if self.in_order else self._window_any_order(i)
        n = self.rule.top_n
        return Anomaly(
            rule=self.rule.name,
            ts_ms=int(self.clock[i]),
            level=level,
            window_cents=window_cents,
            threshold_cents=th.of_level(level),
            base_threshold_cents=th.base_cents,
            long_cents=self._long,
            short_cents=window_cents - self._long,
            events=events,
            top_symbols=top_names(_positive(self._sym, n), self.symbols, n),
            top_venues=top_names(_positive(self._ven, n), self.venues, n),
            previous_level=previous,
        )


def _positive(sums: NDArray, n: int) -> dict[int, int]:
    """Cents per code with a positive sum among the n largest (ties kept: top_names picks by
    name), exact."""
    if len(sums) <= _FEW_CODES:  # a few venues: a list beats six numpy calls
        return {code: int(v) for code, v in enumerate(sums.tolist()) if v > 0}
    codes = np.flatnonzero(sums > 0)
    if len(codes) > n and sums.dtype != object:
        values = sums[codes]
        nth = np.partition(values, len(values) - n)[len(values) - n]
        codes = codes[values >= nth]
    return {int(c): int(v) for c, v in zip(codes.tolist(), sums[codes].tolist(), strict=True)}
