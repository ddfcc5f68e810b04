"""`liqguard run`, `replay`, `journal`, `init`: the response pipeline from the terminal.

- run: no arguments = paper mode on the bundled 2024-12-05 crash replay; `--source` = paper on
  live venue streams; `--live` (plus `mode: live` in the file) = real orders
- replay FILE --prices FILE: the same pipeline on any recorded tape
- journal: recent history, readable
- init: write a commented liqguard.yaml with the default policy
Exit codes: 0 done, 1 runtime failure, 2 configuration error, 130 interrupted (journal consistent).
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Iterator
from contextlib import AbstractContextManager, contextmanager
from importlib.resources import files
from pathlib import Path
from typing import Annotated, Any, ClassVar

import typer
from pydantic import ValidationError
from rich.console import Console, RenderableType
from rich.live import Live
from rich.panel import Panel

from bot.app import runner
from bot.cli._group import group as app
from bot.cli.journal_view import print_journal, reading_journal
from bot.cli.view import status_view, summary_view
from bot.config import ConfigError, load_settings
from bot.config.ops import HttpConfig, MetricsConfig
from bot.config.settings import Settings
from bot.config.template import TEMPLATE
from bot.journal import JournalError

BUNDLED_TAPE = "binance-btcusdt_2024-12-04_06.csv"
BUNDLED_PRICES = "BTCUSDT-5m_2024-12-04_06.csv"
BUNDLED_CONFIG = "demo.yaml"  # the demo's book and policy (docs/modes.md, "The demo")

err = Console(stderr=True, soft_wrap=True)  # a sentence stays one line (logs, grep)
out = Console()


def _settings(config: Path | None, demo: bool = False) -> tuple[Settings, str]:
    path = config
    if path is None and Path("liqguard.yaml").is_file():
        path = Path("liqguard.yaml")
        err.print("[dim]using ./liqguard.yaml[/]")
    elif path is None and demo:  # `liqguard run` alone: the demo, not the general defaults
        path = _bundled(BUNDLED_CONFIG)
        err.print("[dim]the demo's book and policy: bot/data/demo.yaml (docs/modes.md)[/]")
    try:
        return load_settings(path), str(path or "defaults")
    except ConfigError as exc:
        err.print(str(exc), markup=False, highlight=False)
        raise typer.Exit(2) from None


def _listening(settings: Settings, http: str | None, metrics: str | None) -> Settings:
    """--http / --metrics override the file's http.listen / metrics.listen."""
    try:
        if http is not None:
            section = HttpConfig(listen=http, token_env=settings.http.token_env)
            settings = settings.model_copy(update={"http": section})
        if metrics is not None:
            settings = settings.model_copy(update={"metrics": MetricsConfig(listen=metrics)})
    except ValidationError as exc:
        err.print(
            "; ".join(str(e["msg"]).removeprefix("Value error, ") for e in exc.errors()),
            markup=False,
            highlight=False,
        )
        raise typer.Exit(2) from None
    return settings


def _plain(text: str) -> None:
    err.print(text, markup=False, highlight=False)


def _bundled(name: str) -> Path:
    return Path(str(files("bot").joinpath("data", name)))


Config = Annotated[Path | None, typer.Option("--config", "-c", help="liqguard.yaml to use")]
JournalOpt = Annotated[str | None, typer.Option("--journal", help="SQLite path or SQLAlchemy URL")]
Approvals = Annotated[
    str | None, typer.Option("--approvals", help="who answers confirm: auto | console | telegram")
]
Fresh = Annotated[bool, typer.Option("--fresh", help="start over instead of resuming")]
HttpOpt = Annotated[
    str | None, typer.Option("--http", help="serve the status page on HOST:PORT (127.0.0.1:8088)")
]
MetricsOpt = Annotated[
    str | None, typer.Option("--metrics", help="serve /metrics on HOST:PORT (127.0.0.1:9464)")
]
Speed = "tape seconds per wall second, max (no pacing), or auto (about a minute)"


@app.command()
def run(
    config: Config = None,
    journal: JournalOpt = None,
    speed: Annotated[str, typer.Option("--speed", help=Speed)] = "auto",
    source: Annotated[
        str | None, typer.Option("--source", help="paper on live streams: binance,bybit,okx")
    ] = None,
    live: Annotated[
        bool, typer.Option("--live", help="REAL orders (also needs mode: live)")
    ] = False,
    approvals: Approvals = None,
    fresh: Fresh = False,
    http: HttpOpt = None,
    metrics: MetricsOpt = None,
    standby: Annotated[
        bool, typer.Option("--standby", help="high availability: lead or stand by (ha:)")
    ] = False,
) -> None:
    """Run the bot: paper mode on the bundled crash replay unless told otherwise."""
    settings, origin = _settings(config, demo=not (source or live or standby))
    settings = _listening(settings, http, metrics)
    display = TerminalDisplay()
    with _refusals():
        runner.check_switches(settings, live)
        if standby or settings.ha is not None:  # docs/high-availability.md
            names = runner.stream_names(settings, source)
            work = runner.stream_ha(
                settings, origin, names, live, display, journal=journal, approvals=approvals,
                console=err,
            )  # fmt: skip
            _exit(runner.run_async(work, display))
            return
        if live or source or settings.chains:  # `chains:` alone: watch the chains only
            names = runner.stream_names(settings, source)
            work = runner.stream(
                settings, origin, names, live, display, journal=journal, approvals=approvals,
                console=err,
            )  # fmt: skip
            _exit(runner.run_async(work, display))
            return
        tape, prices = _bundled(BUNDLED_TAPE), _bundled(BUNDLED_PRICES)
        plan = runner.prepare_replay(tape, prices, speed, origin, display, settings)
    _exit(runner.run_async(_replay(settings, origin, plan, journal, approvals, fresh), display))


@app.command()
def replay(
    tape: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="recorded tape")],
    prices: Annotated[
        Path | None, typer.Option("--prices", help="kline CSV of the same period")
    ] = None,
    config: Config = None,
    journal: JournalOpt = None,
    speed: Annotated[str, typer.Option("--speed", help=Speed)] = "max",
    approvals: Approvals = None,
    fresh: Fresh = False,
    http: HttpOpt = None,
    metrics: MetricsOpt = None,
) -> None:
    """Run the response pipeline on a recorded tape (paper broker, simulated time)."""
    settings, origin = _settings(config)
    settings = _listening(settings, http, metrics)
    display = TerminalDisplay()
    with _refusals():
        plan = runner.prepare_replay(tape, prices, speed, origin, display, settings)
    _exit(runner.run_async(_replay(settings, origin, plan, journal, approvals, fresh), display))


@app.command("journal")
def journal_cmd(
    journal: JournalOpt = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1)] = 40,
    kind: Annotated[
        list[str] | None, typer.Option("--kind", help="only these kinds (repeatable)")
    ] = None,
    config: Config = None,
) -> None:
    """List the recent history of the journal, oldest first."""
    settings, _ = _settings(config)
    try:
        with reading_journal(journal, settings.journal.url) as (j, url):
            print_journal(out, j.recent(limit=limit, kinds=kind or None), url)
    except JournalError as exc:
        err.print(str(exc), markup=False, highlight=False)
        raise typer.Exit(1) from None


@app.command()
def init(
    path: Annotated[Path, typer.Argument(help="where to write")] = Path("liqguard.yaml"),
    force: Annotated[bool, typer.Option("--force", help="overwrite an existing file")] = False,
) -> None:
    """Write a commented liqguard.yaml with the default policy, and print it."""
    if path.exists() and not force:
        err.print(f"{path} exists; pass --force to overwrite it.")
        raise typer.Exit(2)
    path.write_text(TEMPLATE, encoding="utf-8")
    out.print(TEMPLATE, markup=False, highlight=False)
    err.print(f"wrote {path}; edit it, then `liqguard run --config {path}`")


def _replay(
    settings: Settings,
    origin: str,
    plan: runner.ReplayPlan,
    journal: str | None,
    approvals: str | None,
    fresh: bool,
) -> Coroutine[Any, Any, int]:
    return runner.replay(
        settings, origin, plan, TerminalDisplay(), journal=journal, approvals=approvals,
        fresh=fresh, console=err,
    )  # fmt: skip


@contextmanager
def _refusals() -> Iterator[None]:
    try:
        yield
    except runner.Refused as exc:
        err.print(str(exc), style="red", markup=False, highlight=False)
        raise typer.Exit(exc.exit_code) from None


def _exit(code: int) -> None:
    if code:
        raise typer.Exit(code)


class TerminalDisplay:
    """bot.app.runner's Display on a rich console: notes on stderr, the summary on stdout."""

    _STYLE: ClassVar[dict[str, str]] = {
        "info": "", "dim": "dim", "bold": "bold", "warn": "yellow", "error": "red",
    }  # fmt: skip

    def say(self, text: str, tone: runner.Tone = "info") -> None:
        style = self._STYLE[tone]
        err.print(text, style=style or None, markup=False, highlight=False)

    def banner(self, text: str, title: str) -> None:
        err.print(Panel(text, title=f"[bold red]{title}[/]", border_style="bold red"))

    def watching(self, progress: Callable[[], runner.Progress]) -> AbstractContextManager[object]:
        return Live(
            get_renderable=lambda: _status(progress()),
            console=err,
            refresh_per_second=4,
            transient=True,
        )

    def finished(self, progress: runner.Progress, result: runner.RunResult) -> None:
        err.print(_status(progress))
        out.print(
            summary_view(
                result.summary,
                result.pnl_usd,
                result.baseline_pnl_usd,
                result.equity_usd,
                result.journal_url,
                result.session,
                result.drawdown_usd,
                result.baseline_drawdown_usd,
            )
        )


def _status(p: runner.Progress) -> RenderableType:
    return status_view(p.status, p.done, p.total, p.mode)
