"""`liqguard calibrate`'s work: thresholds that fit the flow of recorded tapes.

- CalibrateRequest: grouping (--by), target (alerts per month or a percentile), span, gaps
- GroupReport: one group's distribution, candidates, recommendation and trigger preview
- run_calibrate(tapes, rules, request) -> CalibrateResult
- rules_yaml(result) -> a `rules:` section that --config takes as is

Exact detector semantics: the window sums of a group are computed once (bot.detector.batch.
rule_window), each candidate threshold is one escalation over them, and the preview is the
batch detector's own output for the recommended rule, so `detect --config` with the written
rules fires exactly the previewed anomalies.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, get_args

import numpy as np
import yaml
from numpy.typing import NDArray

from bot.config.rules import RuleConfig
from bot.config.venues import VenueName
from bot.detector.batch import RuleWindow, detect_batch, rule_window
from bot.detector.calibrate import (
    HOUR_MS,
    Candidate,
    HourStats,
    candidate_grid,
    gap_hours,
    gap_spans,
    hour_stats,
    percentile_cents,
    recommend_by_level,
    recommend_by_rate,
    sweep,
)
from bot.detector.columns import TapeColumns
from bot.events import Anomaly, Calm
from bot.notify.format import floor_note
from bot.sources.columnar import UnsupportedFastPath, read_unified_columns
from bot.sources.files import RecordedTape, TapeStats

GroupBy = Literal["rule", "venue", "symbol", "source"]
GROUP_BY: tuple[str, ...] = get_args(GroupBy)
DEFAULT_ALERTS_PER_MONTH = 4.0  # about one a week: a budget a desk reads every message of
PERCENTILES = (50.0, 90.0, 99.0, 99.9)
STREAMED = (*get_args(VenueName), "bitmex")  # exchange streams (BitMEX via Tardis): silent = feed


@dataclass(frozen=True)
class CalibrateRequest:
    by: GroupBy = "rule"
    alerts_per_month: float | None = None  # the target; DEFAULT_ALERTS_PER_MONTH when neither
    percentile: float | None = None  # or: the lowest candidate at this percentile of hourly maxima
    since_ms: int | None = None
    to_ms: int | None = None  # exclusive
    gap_s: float = 3600.0  # a streamed source silent this long: its empty hours are gaps
    top: int = 20  # groups shown for --by venue/symbol/source (largest USD first)

    @property
    def target_per_month(self) -> float:
        if self.alerts_per_month is not None:
            return self.alerts_per_month
        return DEFAULT_ALERTS_PER_MONTH


@dataclass
class GroupReport:
    rule: RuleConfig  # the group's rule as configured (its own threshold)
    events: int
    usd_cents: int
    venues: tuple[str, ...]
    window: RuleWindow | None
    hours: HourStats
    gaps: list[tuple[int, int]]  # (start ms, end ms) of runs of gap hours of this group
    window_percentiles: dict[float, int] = field(default_factory=dict)  # at events, cents
    hourly_max_percentiles: dict[float, int] = field(default_factory=dict)  # observed hours
    hourly_sum_percentiles: dict[float, int] = field(default_factory=dict)
    candidates: list[Candidate] = field(default_factory=list)
    recommended: Candidate | None = None
    percentile_level_cents: int | None = None  # with --percentile: the level matched
    preview: list[Anomaly | Calm] = field(default_factory=list)

    @property
    def floor_note(self) -> str:
        return floor_note(self.venues)

    @property
    def recommended_rule(self) -> RuleConfig:
        if self.recommended is None:
            return self.rule
        return self.rule.model_copy(update={"threshold_usd": self.recommended.threshold_usd})


@dataclass
class CalibrateResult:
    request: CalibrateRequest
    stats: list[TapeStats]
    start_ms: int
    end_ms: int
    groups: list[GroupReport]
    left_out: int  # groups beyond --top
    venue_gaps: dict[str, list[tuple[int, int]]]  # streamed venue: its gap runs

    @property
    def hours(self) -> int:
        return len(self.groups[0].hours.gap) if self.groups else 0


# -- reading -----------------------------------------------------------------------------------


def read_columns(tapes: Sequence[RecordedTape]) -> tuple[TapeColumns, list[TapeStats]]:
    """All tapes as one column set, in file and row order (columnar reader where it applies)."""
    parts, stats = [], []
    for tape in tapes:
        try:
            if tape.format != "unified":
                raise UnsupportedFastPath(tape.format)
            cols, st = read_unified_columns(tape.path)
        except UnsupportedFastPath:
            cols = TapeColumns.from_liquidations(tape)
            st = tape.stats
        parts.append(cols)
        stats.append(st)
    return TapeColumns.concat(parts), stats


def between(columns: TapeColumns, since_ms: int | None, to_ms: int | None) -> TapeColumns:
    """The events with since <= ts < to (the names keep their codes)."""
    if since_ms is None and to_ms is None:
        return columns
    keep = np.ones(len(columns), dtype=np.bool_)
    if since_ms is not None:
        keep &= columns.ts_ms >= since_ms
    if to_ms is not None:
        keep &= columns.ts_ms < to_ms
    return TapeColumns(
        ts_ms=columns.ts_ms[keep],
        cents=columns.cents[keep],
        is_long=columns.is_long[keep],
        symbol_codes=columns.symbol_codes[keep],
        symbols=columns.symbols,
        venue_codes=columns.venue_codes[keep],
        venues=columns.venues,
    )


# -- groups ------------------------------------------------------------------------------------


def source_of(venue: str) -> str:
    """The venue family: binance-usdm -> binance, compound-v3-base -> compound."""
    return venue.split("-", 1)[0]


def _groups(columns: TapeColumns, rules: Sequence[RuleConfig], by: GroupBy) -> list[RuleConfig]:
    if by == "rule":
        return list(rules)
    out: list[RuleConfig] = []
    for rule in rules:
        win = rule_window(columns, rule)
        if win is None:
            continue
        rows = win.row_index
        if by == "symbol":
            names = sorted({columns.symbols[c] for c in columns.symbol_codes[rows].tolist()})
        else:
            venues = {columns.venues[c] for c in columns.venue_codes[rows].tolist()}
            names = sorted({source_of(v) for v in venues} if by == "source" else venues)
        for value in names:
            name = value if len(rules) == 1 else f"{rule.name}-{value}"
            update = {"symbols": (value,)} if by == "symbol" else {"venues": (value,)}
            out.append(rule.model_copy(update={"name": name, **update}))
    return out


def _percentiles(values: NDArray, ps: Sequence[float] = PERCENTILES) -> dict[float, int]:
    """percentile_cents of each p, from one partition of the values (not one per p)."""
    if len(values) == 0:
        return dict.fromkeys(ps, 0)
    found = np.percentile(values.astype(np.float64), list(ps))
    return {p: round(float(v)) for p, v in zip(ps, found.tolist(), strict=True)}


def _group_report(
    columns: TapeColumns,
    rule: RuleConfig,
    request: CalibrateRequest,
    start_hour: int,
    hours: int,
    venue_gap: dict[str, NDArray[np.bool_]],
) -> GroupReport:
    win = rule_window(columns, rule)
    if win is None:
        empty = HourStats(
            start_hour, np.zeros(hours), np.zeros(hours), np.zeros(hours, dtype=np.bool_)
        )
        return GroupReport(rule, 0, 0, (), None, empty, [])
    venue_codes = np.unique(columns.venue_codes[win.row_index])
    venues = tuple(columns.venues[c] for c in venue_codes.tolist())
    # An hour is unobserved only when every source of the group was silent (on-chain: never).
    gap = np.ones(hours, dtype=np.bool_)
    for v in venues:
        gap &= venue_gap.get(v, np.zeros(hours, dtype=np.bool_))
    stats = hour_stats(win, start_hour, hours, gap)
    observed = stats.observed
    report = GroupReport(
        rule=rule,
        events=len(win),
        usd_cents=int(win.cents.sum()),
        venues=venues,
        window=win,
        hours=stats,
        gaps=gap_spans(gap, start_hour),
        window_percentiles=_percentiles(win.window),
        hourly_max_percentiles=_percentiles(np.round(stats.maxima[observed] * 100)),
        hourly_sum_percentiles=_percentiles(np.round(stats.sums[observed] * 100)),
    )
    low = report.window_percentiles[50.0]
    if request.percentile is not None:
        report.percentile_level_cents = percentile_cents(
            np.round(stats.maxima[observed] * 100), request.percentile
        )
        low = min(low, report.percentile_level_cents)
    grid = candidate_grid(low, win.peak[0])
    report.candidates = sweep(
        win, grid, rule.factor, rule.escalation_window_ms, float(stats.observed_hours)
    )
    if report.percentile_level_cents is not None:
        report.recommended = recommend_by_level(report.candidates, report.percentile_level_cents)
    else:
        report.recommended = recommend_by_rate(report.candidates, request.target_per_month)
    if report.recommended is not None:
        # The batch detector's own output for the recommended rule: what `detect` will print.
        report.preview = detect_batch(columns, [report.recommended_rule])
    return report


def run_calibrate(
    tapes: Sequence[RecordedTape], rules: Sequence[RuleConfig], request: CalibrateRequest
) -> CalibrateResult:
    """Read the tapes once and calibrate every group of `request.by`."""
    columns, stats = read_columns(tapes)
    columns = between(columns, request.since_ms, request.to_ms)
    if len(columns) == 0:
        return CalibrateResult(request, stats, 0, 0, [], 0, {})
    start_ms = request.since_ms if request.since_ms is not None else int(columns.ts_ms.min())
    end_ms = request.to_ms if request.to_ms is not None else int(columns.ts_ms.max()) + 1
    start_hour = start_ms // HOUR_MS
    hours = max(1, -(-end_ms // HOUR_MS) - start_hour)
    gap_ms = max(1, round(request.gap_s * 1000))
    venue_gap: dict[str, NDArray[np.bool_]] = {}
    for code, venue in enumerate(columns.venues):
        if source_of(venue) in STREAMED:
            ts = columns.ts_ms[columns.venue_codes == code]
            venue_gap[venue] = gap_hours(ts, start_hour, hours, gap_ms)
    groups = [
        _group_report(columns, rule, request, start_hour, hours, venue_gap)
        for rule in _groups(columns, rules, request.by)
    ]
    left_out = 0
    if request.by != "rule":
        groups.sort(key=lambda g: -g.usd_cents)
        left_out = max(0, len(groups) - request.top)
        groups = groups[: request.top]
    venue_gaps = {v: gap_spans(g, start_hour) for v, g in venue_gap.items()}
    return CalibrateResult(request, stats, start_ms, end_ms, groups, left_out, venue_gaps)


# -- output ------------------------------------------------------------------------------------


def _plain(value: float) -> float | int:
    return int(value) if float(value).is_integer() else value


def rules_yaml(result: CalibrateResult) -> str:
    """A `rules:` section with each group's recommended base threshold (liqguard.yaml form)."""
    target = (
        f"the lowest candidate at or above the {result.request.percentile:g}th percentile of "
        "hourly maxima"
        if result.request.percentile is not None
        else f"the lowest candidate with at most {result.request.target_per_month:g} alerts "
        "per 30-day month"
    )
    lines = [
        "# Written by `liqguard calibrate`: " + target + ".",
        "# Recalibrate on your own history before going live.",
    ]
    rules = []
    for g in result.groups:
        rule = g.recommended_rule
        data = rule.model_dump(mode="json", exclude_defaults=True)
        data = {"name": rule.name, **data, "threshold_usd": _plain(rule.threshold_usd)}
        if g.recommended is None:
            lines.append(f"# rule {rule.name}: no events in the tapes, threshold kept")
        rules.append(data)
    return "\n".join(lines) + "\n" + yaml.safe_dump({"rules": rules}, sort_keys=False)


def month_rate_text(candidate: Candidate) -> str:
    if math.isnan(candidate.per_month):
        return "n/a"
    return f"{candidate.per_month:.1f}"
