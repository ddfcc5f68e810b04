"""`liqguard backtest [EPISODE...]`: the response pipeline over recorded episodes x settings.

Parses and prints; the work is bot.app.backtest, the outputs bot.app.backtest_report.
Exit codes: 0 done, 1 unreadable input or output, 2 usage or configuration error.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from bot.cli._group import group as app
from bot.cli.detect import parse_duration
from bot.config.errors import ConfigError
from bot.config.loader import load_settings
from bot.notify.format import usd

DEFAULT_REPORT = Path("backtest-report.html")


@app.command()
def backtest(
    episodes: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="[EPISODE]...",
            help="TAPE:PRICES or a manifest .yaml/.toml (none: the bundled episodes)",
        ),
    ] = None,
    config: Annotated[Path | None, typer.Option(help="liqguard.yaml (default: defaults)")] = None,
    sweep: Annotated[
        list[str] | None,
        typer.Option(help="PATH=V1,V2,... over any config path (repeat: the grid is the product)"),
    ] = None,
    objective: Annotated[
        str, typer.Option(help="pnl | pnl_vs_untouched | drawdown_saved | saved_per_pnl")
    ] = "pnl",
    jobs: Annotated[int | None, typer.Option(help="worker processes (default: all cores)")] = None,
    report: Annotated[Path, typer.Option(help="the HTML report")] = DEFAULT_REPORT,
    results: Annotated[Path | None, typer.Option(help="also write the figures as CSV")] = None,
    charts: Annotated[
        Path | None, typer.Option(help="also write the report's episode charts (PNG) here")
    ] = None,
    assume: Annotated[
        str | None,
        typer.Option(
            help="answer confirm steps: approve | reject (default: on_timeout at the deadline)"
        ),
    ] = None,
    move_pct: Annotated[
        float, typer.Option(help="false alarm: price moved less than this %")
    ] = 2.0,
    horizon: Annotated[str, typer.Option(help="false alarm: within this long (6h)")] = "6h",
) -> None:
    """Backtest the policy on recorded episodes and a grid of settings; an HTML report."""
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    from bot.app import backtest as bt

    if objective not in bt.OBJECTIVES:
        raise typer.BadParameter(f"use one of {', '.join(bt.OBJECTIVES)}", param_hint="--objective")
    if assume is not None and assume not in ("approve", "reject"):
        raise typer.BadParameter("use approve or reject", param_hint="--assume")
    if jobs is not None and jobs < 1:
        raise typer.BadParameter("must be 1 or more", param_hint="--jobs")
    if move_pct <= 0:
        raise typer.BadParameter("must be above 0", param_hint="--move-pct")
    try:
        horizon_s = parse_duration(horizon)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--horizon") from None
    try:
        settings = load_settings(config)
        eps = [bt.parse_episode(e) for e in episodes] if episodes else bt.bundled_episodes()
        grid = bt.settings_grid(settings, [bt.parse_sweep(s) for s in sweep or []])
    except ConfigError as exc:
        err.print(str(exc), markup=False)
        raise typer.Exit(2) from None
    for ep in eps:
        for what, path in (("tape", ep.tape), ("prices", ep.prices), ("portfolio", ep.portfolio)):
            if path is not None and not path.is_file():
                err.print(f"episode {ep.name}: the {what} file {path} cannot be read.")
                raise typer.Exit(1)
    options = bt.Options(assume=assume, move_pct=move_pct, horizon_s=horizon_s)  # type: ignore[arg-type]
    workers = jobs or os.cpu_count() or 1
    err.print(
        f"{len(eps)} episode(s) x {len(grid)} setting(s) = {len(eps) * len(grid)} runs "
        f"on {min(workers, len(eps) * len(grid))} process(es)"
    )
    bar = Progress(
        TextColumn("runs"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=err, transient=True, disable=not err.is_terminal,
    )  # fmt: skip
    try:
        with bar:
            task = bar.add_task("runs", total=len(eps) * len(grid))
            runs = bt.run_backtest(
                eps, grid, options, jobs, lambda n, _t: bar.update(task, completed=n)
            )
    except (ValueError, OSError) as exc:  # a tape or price file the sources refuse
        err.print(str(exc), markup=False)
        raise typer.Exit(1) from None
    from bot.app.backtest_report import (
        best_runs,
        chart_name,
        episode_chart,
        ranked,
        report_html,
        results_csv,
    )

    _print_table(runs, objective, ranked)
    outputs: list[tuple[Path, Any]] = [(report, lambda: report_html(runs, objective))]
    if results is not None:
        outputs.append((results, lambda: results_csv(runs)))
    if charts is not None:
        for run in best_runs(runs, objective):
            outputs.append((charts / chart_name(run), lambda r=run: episode_chart(r)))
    for path, make in outputs:
        try:
            if charts is not None and path.parent == charts:
                charts.mkdir(parents=True, exist_ok=True)
            data = make()
            if isinstance(data, bytes):
                path.write_bytes(data)
            else:
                path.write_text(data, encoding="utf-8")
        except OSError as exc:
            err.print(f"{path}: cannot write it ({exc.strerror}).", markup=False)
            raise typer.Exit(1) from None
        err.print(f"wrote {path}")


def _print_table(runs: list[Any], objective: str, ranked: Any) -> None:
    import json

    out = Console(highlight=False)
    if not out.is_terminal:
        out = Console(highlight=False, width=160)
    order = {k: i for i, (k, _) in enumerate(ranked(runs, objective))}
    table = Table(title=f"backtest (best setting first by {objective})", header_style="bold")
    for name in ("setting", "episode"):
        table.add_column(name)
    for name in ("PnL", "untouched", "drawdown", "untouched dd", "fees", "slippage",
                 "puts paid", "puts back", "anomalies", "false alarms", "fills",
                 "liq. avoided"):  # fmt: skip
        table.add_column(name, justify="right")
    for r in sorted(runs, key=lambda r: (order[json.dumps(r.setting, sort_keys=True)], r.episode)):
        table.add_row(
            # the last step of each path: a narrow terminal still tells the settings apart
            ", ".join(f"{k.rsplit('.', 1)[-1]}={v}" for k, v in r.setting.items()) or "as given",
            r.episode,
            usd(r.pnl_usd),
            usd(r.untouched_pnl_usd),
            usd(r.drawdown_usd),
            usd(r.untouched_drawdown_usd),
            usd(r.fees_usd),
            usd(r.slippage_usd),
            usd(r.option_premium_usd),
            usd(r.option_returned_usd),
            str(r.anomalies),
            str(r.false_alarms),
            str(r.fills),
            str(r.liquidations_avoided),
            style="bold green" if order[json.dumps(r.setting, sort_keys=True)] == 0 else None,
        )
    out.print(table)
