"""`liqguard calibrate TAPE...`: base thresholds that fit the flow, with their alert budget.

Parses the options and prints; the work is bot.app.calibrate. Exit codes as `detect`:
0 success, 1 unreadable input or an output file that cannot be written, 2 usage or config.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, cast

import typer
from rich.console import Console
from rich.table import Table

from bot.cli._group import group as app
from bot.cli.detect import _dollars, _duration, _iso, build_rules, parse_duration
from bot.config.errors import ConfigError
from bot.events import Anomaly, Calm
from bot.sources.files import TapeError, open_tapes
from bot.sources.formats import FORMATS

if TYPE_CHECKING:
    from bot.app.calibrate import CalibrateResult, GroupReport
    from bot.detector.calibrate import Candidate

SHOWN_GAPS = 3
SHOWN_PREVIEW = 40  # preview rows printed per group; the count is always given


def parse_time(text: str, flag: str) -> int:
    """Epoch ms of `2025-01-27`, `2025-01-27T16:00`, an ISO time with offset, or epoch ms."""
    s = text.strip()
    if s.isdigit():
        return int(s)
    try:
        dt = datetime.fromisoformat(s.replace("Z", "+00:00"))
    except ValueError:
        raise typer.BadParameter(
            f"{text!r} is not a time (examples: 2025-01-27, 2025-01-27T16:00, epoch ms)",
            param_hint=flag,
        ) from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)  # times without an offset are UTC, like the tapes
    return int(dt.timestamp() * 1000)


def _usd_short(usd: float) -> str:
    for unit, size in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(usd) >= size:
            return f"${usd / size:.4g}{unit}"
    return f"${usd:,.0f}"


def _pcts(values: dict[float, int]) -> str:
    return ", ".join(f"p{p:g} {_usd_short(c / 100)}" for p, c in values.items())


def _hour_text(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M")


def _rate(c: Candidate) -> str:
    return "n/a" if math.isnan(c.per_month) else f"{c.per_month:.1f}"


def _shown_candidates(g: GroupReport) -> list[Candidate]:
    """A readable subset: 1-2-5 steps, the recommendation and its neighbours, the first and last."""
    cands = g.candidates
    keep = {0, len(cands) - 1}
    for i, c in enumerate(cands):
        mantissa = c.threshold_usd / 10 ** math.floor(math.log10(c.threshold_usd))
        if round(mantissa, 6) in (1.0, 2.0, 5.0):
            keep.add(i)
        if g.recommended is not None and c.threshold_usd == g.recommended.threshold_usd:
            keep |= {max(0, i - 1), i, min(len(cands) - 1, i + 1)}
    return [cands[i] for i in sorted(keep)]


def _print_group(out: Console, g: GroupReport, result: CalibrateResult) -> None:
    rule = g.rule
    out.print(f"\n[bold]rule {rule.name}[/bold]", highlight=False)
    if g.window is None:
        out.print("  no event of the tapes passes this rule's filter; nothing to calibrate.")
        return
    hours = len(g.hours.gap)
    observed = g.hours.observed_hours
    out.print(
        f"  {g.events:,} events, {_usd_short(g.usd_cents / 100)} from {', '.join(g.venues)}; "
        f"{observed:,} of {hours:,} hours observed",
        highlight=False,
    )
    if g.gaps:
        gap_hours = hours - observed
        runs = ", ".join(
            f"{_hour_text(a)} -> {_hour_text(b)} ({(b - a) // 3_600_000} h)"
            for a, b in sorted(g.gaps, key=lambda s: s[0] - s[1])[:SHOWN_GAPS]
        )
        more = f", and {len(g.gaps) - SHOWN_GAPS} more" if len(g.gaps) > SHOWN_GAPS else ""
        out.print(
            f"  gaps: {gap_hours:,} hours in {len(g.gaps)} run(s) where the source was silent "
            f"(not counted as calm): {runs}{more}",
            highlight=False,
        )
    if note := g.floor_note:
        out.print(f"  floor: {note}", highlight=False)
    w = _duration(rule.window_s)
    peak_cents, peak_ms = g.window.peak
    out.print(
        f"  {w} window sum at events: {_pcts(g.window_percentiles)}; "
        f"max {_usd_short(peak_cents / 100)} at {_iso(peak_ms)}",
        highlight=False,
    )
    out.print(
        f"  hourly maxima of the window sum: {_pcts(g.hourly_max_percentiles)}", highlight=False
    )
    out.print(f"  hourly sums: {_pcts(g.hourly_sum_percentiles)}", highlight=False)
    table = Table(
        title=f"candidates ({len(g.candidates)} on the grid, some shown)", header_style="bold"
    )
    for name in ("base threshold", "alerts", "per month", "highest level", "by level", "calm"):
        table.add_column(name, justify="right")
    for c in _shown_candidates(g):
        mark = g.recommended is not None and c.threshold_usd == g.recommended.threshold_usd
        levels = " ".join(f"L{k}:{v}" for k, v in c.by_level.items())
        table.add_row(
            _dollars(round(c.threshold_usd * 100)),
            f"{c.alerts:,}",
            _rate(c),
            str(c.max_level),
            levels,
            f"{c.calms:,}",
            style="bold green" if mark else None,
        )
    out.print(table)
    rec = g.recommended
    if rec is None:
        out.print("  no recommendation: no candidate meets the target.")
        return
    if g.percentile_level_cents is not None:
        why = (
            f"the lowest candidate at or above the p{result.request.percentile:g} of hourly "
            f"maxima ({_usd_short(g.percentile_level_cents / 100)})"
        )
    else:
        why = f"the lowest with at most {result.request.target_per_month:g} alerts per 30-day month"
    out.print(
        f"  [bold]recommended base threshold: ${rec.threshold_usd:,.0f}[/bold] ({why}): "
        f"{rec.alerts} alert(s), {_rate(rec)} per month, highest level {rec.max_level}",
        highlight=False,
    )
    if observed < 24 * 7:
        out.print(
            f"  note: only {observed} hours observed; the monthly rates extrapolate from them. "
            "Calibrate on a longer recording.",
            highlight=False,
        )
    _print_preview(out, g)


def _print_preview(out: Console, g: GroupReport) -> None:
    anomalies = [e for e in g.preview if isinstance(e, Anomaly)]
    calms = len(g.preview) - len(anomalies)
    if not anomalies:
        out.print("  trigger preview: 0 anomalies would have fired on these tapes.")
        return
    table = Table(
        title=f"trigger preview: {len(anomalies)} anomalies, {calms} calm, at "
        f"${g.recommended_rule.threshold_usd:,.0f}",
        header_style="bold",
    )
    table.add_column("time (UTC)")
    for name in ("level", "window", "threshold", "long", "short"):
        table.add_column(name, justify="right")
    rows = [e for e in g.preview][:SHOWN_PREVIEW]
    for ev in rows:
        when = _iso(ev.ts_ms)[:-4]
        if isinstance(ev, Calm):
            table.add_row(when, "calm", "", "", "", "", style="dim")
            continue
        table.add_row(
            when,
            str(ev.level),
            _dollars(ev.window_cents),
            _dollars(ev.threshold_cents),
            _dollars(ev.long_cents),
            _dollars(ev.short_cents),
        )
    out.print(table)
    if len(g.preview) > SHOWN_PREVIEW:
        out.print(f"  ... and {len(g.preview) - SHOWN_PREVIEW} more rows", highlight=False)


def _print_result(out: Console, err: Console, result: CalibrateResult) -> None:
    read = sum(s.read for s in result.stats)
    rejected = sum(s.rejected for s in result.stats)
    err.print(
        f"events read: {read:,} from {len(result.stats)} file(s); rejected: {rejected:,}",
        highlight=False,
    )
    if not result.groups:
        out.print("No events in the tapes (or between --since and --to); nothing to calibrate.")
        return
    out.print(
        f"span {_hour_text(result.start_ms)} -> {_hour_text(result.end_ms)} UTC "
        f"({result.hours:,} hours)",
        highlight=False,
    )
    for venue, spans in result.venue_gaps.items():
        if spans:
            hours = sum(b - a for a, b in spans) // 3_600_000
            out.print(
                f"gaps: {venue} silent for {hours:,} hours in {len(spans)} run(s) "
                f"(--gap {_duration(result.request.gap_s)}: silences this long are the feed, "
                "not calm)",
                highlight=False,
            )
    for g in result.groups:
        _print_group(out, g, result)
    if result.left_out:
        out.print(f"\n{result.left_out} smaller group(s) left out (--top to show more).")


@app.command()
def calibrate(
    files: Annotated[
        list[Path], typer.Argument(metavar="TAPE", help="recorded tapes (plain or gzip)")
    ],
    config: Annotated[Path | None, typer.Option(help="liqguard.yaml with the rules")] = None,
    by: Annotated[
        str, typer.Option(help="one recommendation per rule, venue, symbol or source")
    ] = "rule",
    alerts_per_month: Annotated[
        float | None,
        typer.Option(help="target alerts per 30-day month (default 4)"),
    ] = None,
    percentile: Annotated[
        float | None,
        typer.Option(help="instead: the lowest candidate at this percentile of hourly maxima"),
    ] = None,
    since: Annotated[str | None, typer.Option(help="only events at or after (UTC)")] = None,
    to: Annotated[str | None, typer.Option(help="only events before (UTC)")] = None,
    gap: Annotated[
        str, typer.Option(help="an exchange stream silent this long is a gap, not calm")
    ] = "1h",
    top: Annotated[int, typer.Option(help="groups shown with --by venue|symbol|source")] = 20,
    write: Annotated[
        Path | None, typer.Option(help="write the recommended rules (YAML for --config)")
    ] = None,
    chart: Annotated[Path | None, typer.Option(help="write a PNG chart")] = None,
    fmt: Annotated[
        str | None,
        typer.Option("--format", help="unified, binance-csv, jsonl or tardis (default: detect)"),
    ] = None,
) -> None:
    """Choose base thresholds from history: alerts per month for each candidate, a preview."""
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    from bot.app.calibrate import GROUP_BY, CalibrateRequest, GroupBy, rules_yaml, run_calibrate

    if by not in GROUP_BY:
        raise typer.BadParameter(f"use one of {', '.join(GROUP_BY)}", param_hint="--by")
    if fmt is not None and fmt not in FORMATS:
        raise typer.BadParameter(f"use one of {', '.join(FORMATS)}", param_hint="--format")
    if alerts_per_month is not None and percentile is not None:
        raise typer.BadParameter("give --alerts-per-month or --percentile, not both")
    if alerts_per_month is not None and alerts_per_month < 0:
        raise typer.BadParameter("must be 0 or more", param_hint="--alerts-per-month")
    if percentile is not None and not 0 <= percentile <= 100:
        raise typer.BadParameter("must be between 0 and 100", param_hint="--percentile")
    if top < 1:
        raise typer.BadParameter("must be 1 or more", param_hint="--top")
    try:
        gap_s = parse_duration(gap)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--gap") from None
    since_ms = None if since is None else parse_time(since, "--since")
    to_ms = None if to is None else parse_time(to, "--to")
    if since_ms is not None and to_ms is not None and to_ms <= since_ms:
        raise typer.BadParameter("must be after --since", param_hint="--to")
    try:
        rules = build_rules(config, {})
    except ConfigError as exc:
        err.print(str(exc), markup=False)
        raise typer.Exit(2) from None
    request = CalibrateRequest(
        by=cast(GroupBy, by),
        alerts_per_month=alerts_per_month,
        percentile=percentile,
        since_ms=since_ms,
        to_ms=to_ms,
        gap_s=gap_s,
        top=top,
    )
    try:
        tapes, reordered = open_tapes(files, fmt)
        if reordered:
            err.print(
                "note: tapes read in time order: " + ", ".join(t.path.name for t in tapes),
                markup=False,
            )
        result = run_calibrate(tapes, rules, request)
    except TapeError as exc:
        err.print(str(exc), markup=False)
        raise typer.Exit(1) from None
    out = Console(highlight=False)
    _print_result(out if out.is_terminal else Console(highlight=False, width=140), err, result)
    for path, make, what in (
        (write, lambda: rules_yaml(result).encode(), "rules"),
        (chart, lambda: _chart_png(result), "chart"),
    ):
        if path is None or not result.groups:
            continue
        try:
            path.write_bytes(make())
        except OSError as exc:
            err.print(f"{path}: cannot write the {what} ({exc.strerror}).", markup=False)
            raise typer.Exit(1) from None
        err.print(f"wrote {what} to {path}", highlight=False)


def _chart_png(result: CalibrateResult) -> bytes:
    from bot.app.calibrate_chart import render_calibration

    return render_calibration(result)
