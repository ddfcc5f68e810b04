"""`liqguard detect FILE...`: the anomalies a risk desk would have received from recorded tapes.

Contents: detect (the command), rule assembly from config + flags, parse_duration, the
streaming run, the output (rich table or JSON lines on stdout), the summary on stderr.
Exit codes: 0 success, 1 unreadable input, 2 usage or configuration error.
"""

from __future__ import annotations

import json
import re
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from pydantic import ValidationError
from rich.console import Console

from bot.cli._group import group as app
from bot.config.errors import ConfigError, problems
from bot.config.rules import RuleConfig
from bot.detector import anomaly_to_json
from bot.events import Anomaly, Calm
from bot.sources.files import TapeError, open_tapes
from bot.sources.formats import FORMATS

if TYPE_CHECKING:
    from rich.progress import Progress

    from bot.app.detect import RunSummary

PROGRESS_MIN_BYTES = 16 * 1024 * 1024  # smaller files finish before a bar is worth drawing
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)([smhd]?)")
_UNIT_S = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
_FLAG_OF_FIELD = {
    "threshold_usd": "--threshold",
    "window_s": "--window",
    "factor": "--factor",
    "escalation_window_s": "--escalation-window",
    "sides": "--side",
    "symbols": "--symbol",
    "venues": "--venue",
}


def parse_duration(text: str) -> float:
    """Seconds in `3600`, `90m`, `1h`, `1h30m`, `2d`; ValueError otherwise."""
    s = text.strip().lower()
    if not s or _DURATION_PART.sub("", s):
        raise ValueError(f"{text!r} is not a duration (examples: 3600, 90m, 1h, 1h30m)")
    return sum(float(n) * _UNIT_S[u] for n, u in _DURATION_PART.findall(s))


def _flag_of(loc: tuple[int | str, ...]) -> str:
    name = str(loc[0]) if loc else "rule"
    return _FLAG_OF_FIELD.get(name, name)


def build_rules(config: Path | None, flags: dict[str, Any]) -> tuple[RuleConfig, ...]:
    """The rules of the config file (or the one all-venue rule), with the flags applied to each."""
    if config is None:  # Settings.rules' default, without loading every settings model
        rules: tuple[RuleConfig, ...] = (RuleConfig(),)
    else:
        from bot.config.loader import load_settings

        rules = load_settings(config).rules
    if not flags:
        return rules
    out = []
    for rule in rules:
        data = {**rule.model_dump(), **flags}
        try:
            out.append(RuleConfig.model_validate(data))
        except ValidationError as exc:
            lines = problems(exc, data, where=_flag_of)
            raise ConfigError(
                f"rule {rule.name!r}: "
                + "; ".join(line.removeprefix("  - ") for line in lines)
                + " (fix the option and run again)"
            ) from None
    return tuple(out)


def _iso(ts_ms: int) -> str:
    return datetime.fromtimestamp(ts_ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _duration(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"


def _dollars(cents: int) -> str:
    return f"{round(cents / 100):,}"


def _usd(cents: int) -> str:
    return f"${cents / 100:,.2f}"


def _progress(err: Console) -> Progress:
    # rich's progress and table modules load only when used: a --json run into a pipe skips them
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=True,
    )


def _print_table(out: Console, events: list[Anomaly | Calm]) -> None:
    if not events:
        out.print("No anomalies.")
        return
    from rich.table import Table

    table = Table(title="Liquidation anomalies (USD)", header_style="bold")
    table.add_column("time (UTC)")
    table.add_column("rule")
    for name in ("level", "window", "threshold", "long", "short", "events"):
        table.add_column(name, justify="right")
    table.add_column("top symbols")
    for ev in events:
        when = _iso(ev.ts_ms)[:-4]
        if isinstance(ev, Calm):
            table.add_row(
                when, ev.rule, "calm", "", "", "", "", "", f"was level {ev.previous_level}"
            )
            continue
        top = ", ".join(f"{s.name} {_dollars(s.cents)}" for s in ev.top_symbols[:2])
        table.add_row(
            when,
            ev.rule,
            str(ev.level),
            _dollars(ev.window_cents),
            _dollars(ev.threshold_cents),
            _dollars(ev.long_cents),
            _dollars(ev.short_cents),
            f"{ev.events:,}",
            top,
        )
    out.print(table)


def _print_summary(err: Console, summary: RunSummary, rules: tuple[RuleConfig, ...]) -> None:
    err.print(
        f"events read: {summary.read:,} from {summary.files} file(s); "
        f"rejected: {summary.rejected:,}; late: {sum(summary.late.values()):,}"
        + (f"; control messages skipped: {summary.skipped:,}" if summary.skipped else ""),
        highlight=False,
    )
    for path, rej in summary.rejections:
        err.print(f"  rejected {Path(path).name} line {rej.line}: {rej.reason}", highlight=False)
    if summary.rejected > len(summary.rejections):
        err.print(f"  ... and {summary.rejected - len(summary.rejections):,} more", highlight=False)
    anomalies = sum(summary.levels.values())
    by_level = ", ".join(f"level {k}: {v}" for k, v in sorted(summary.levels.items()))
    err.print(
        f"anomalies: {anomalies}"
        + (f" ({by_level})" if by_level else "")
        + f"; calm: {summary.calms}",
        highlight=False,
    )
    for rule in rules:
        if rule.name in summary.peaks:
            cents, ts_ms = summary.peaks[rule.name]
            err.print(
                f"largest {_duration(rule.window_s)} window sum (rule {rule.name}): "
                f"{_usd(cents)} at {_iso(ts_ms)}",
                highlight=False,
            )
    err.print(
        "note: Binance streams push at most one liquidation per symbol per second, "
        "so sums from them are a floor.",
        style="dim",
        highlight=False,
    )


@app.command()
def detect(
    files: Annotated[
        list[Path], typer.Argument(metavar="FILE", help="recorded tapes (plain or gzip)")
    ],
    threshold: Annotated[
        float | None, typer.Option(help="base threshold T0 in USD (default 1000000)")
    ] = None,
    window: Annotated[
        str | None, typer.Option(help="rolling window W: 3600, 90m, 1h (default 1h)")
    ] = None,
    factor: Annotated[float | None, typer.Option(help="threshold factor per level")] = None,
    escalation_window: Annotated[
        str | None, typer.Option(help="E: calm after this long without anomaly (default 2h)")
    ] = None,
    side: Annotated[str | None, typer.Option(help="count only this side: long or short")] = None,
    symbol: Annotated[
        list[str] | None, typer.Option(help="count only this symbol or base asset (repeat)")
    ] = None,
    venue: Annotated[list[str] | None, typer.Option(help="count only this venue (repeat)")] = None,
    config: Annotated[Path | None, typer.Option(help="liqguard.yaml with the rules")] = None,
    json_lines: Annotated[
        bool, typer.Option("--json", help="JSON lines on stdout, nothing else there")
    ] = False,
    fmt: Annotated[
        str | None,
        typer.Option("--format", help="unified, binance-csv, jsonl or tardis (default: detect)"),
    ] = None,
) -> None:
    """Find liquidation anomalies in recorded tapes (docs: detector.md semantics)."""
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    if fmt is not None and fmt not in FORMATS:
        raise typer.BadParameter(f"use one of {', '.join(FORMATS)}", param_hint="--format")
    if side is not None and side not in ("long", "short"):
        raise typer.BadParameter("use long or short", param_hint="--side")
    flags: dict[str, Any] = {}
    for name, text in (("window_s", window), ("escalation_window_s", escalation_window)):
        if text is not None:
            try:
                flags[name] = parse_duration(text)
            except ValueError as exc:
                raise typer.BadParameter(str(exc), param_hint=_FLAG_OF_FIELD[name]) from None
    for name, value in (("threshold_usd", threshold), ("factor", factor)):
        if value is not None:
            flags[name] = value
    if side is not None:
        flags["sides"] = (side,)
    if symbol:
        flags["symbols"] = tuple(symbol)
    if venue:
        flags["venues"] = tuple(venue)
    try:
        rules = build_rules(config, flags)
    except ConfigError as exc:
        err.print(str(exc), markup=False)
        raise typer.Exit(2) from None
    found: list[Anomaly | Calm] = []

    def emit(event: Anomaly | Calm) -> None:
        if json_lines:  # as found, so a pipe sees anomalies while a long file is read
            sys.stdout.write(json.dumps(anomaly_to_json(event)) + "\n")
        else:
            found.append(event)

    from bot.app.detect import run_detect  # numpy and the columnar reader: only when detecting

    try:
        tapes, reordered = open_tapes(files, fmt)
        if reordered:
            err.print(
                "note: tapes read in time order: " + ", ".join(t.path.name for t in tapes),
                markup=False,
            )
        total = sum(t.size_bytes for t in tapes)
        if total < PROGRESS_MIN_BYTES or not err.is_terminal:
            summary = run_detect(tapes, rules, emit)
        else:
            with _progress(err) as bar:
                task = bar.add_task("reading", total=total)

                def progress(name: str, done: int) -> None:
                    bar.update(task, description=name, completed=done)

                summary = run_detect(tapes, rules, emit, progress)
    except TapeError as exc:
        sys.stdout.flush()
        err.print(str(exc), markup=False)
        raise typer.Exit(1) from None
    if not json_lines:
        out = Console(highlight=False)
        _print_table(out if out.is_terminal else Console(highlight=False, width=140), found)
    sys.stdout.flush()  # the table before the summary when both go to one terminal
    _print_summary(err, summary, rules)
