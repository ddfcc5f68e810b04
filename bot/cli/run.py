"""`liqguard run`, `replay`, `journal`, `init`: the response pipeline from the terminal.

- run: no arguments = paper mode on the bundled 2024-12-05 crash replay; `--source` = paper on
  live venue streams; `--live` (plus `mode: live` in the file) = real orders
- replay FILE --prices FILE: the same pipeline on any recorded tape
- journal: recent history, readable
- init: write a commented liqguard.yaml with the default policy
Exit codes: 0 done, 1 runtime failure, 2 configuration error, 130 interrupted (journal consistent).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Sequence
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Annotated, Any

import typer
from loguru import logger
from rich.console import Console
from rich.live import Live
from rich.panel import Panel

from bot.app.scheduling import build_scheduler
from bot.app.wiring import Runtime, SetupError, build, live_sources, live_start, onchain_sources
from bot.cli import app
from bot.cli.journal_view import print_journal
from bot.cli.view import status_view, summary_view
from bot.clock import SimClock
from bot.config import ConfigError, load_settings
from bot.config.settings import Settings
from bot.config.template import TEMPLATE
from bot.engine.summary import summarize
from bot.events import FeedStatus, Liquidation, PriceTick
from bot.journal import SqlJournal, default_journal_url
from bot.logs import register_secrets, setup_logging
from bot.secrets import load_secrets
from bot.sources.feeds import merged_sources
from bot.sources.files import open_tape
from bot.sources.prices import read_prices
from bot.sources.replay import merge, parse_speed, run_replay, speed_for

BUNDLED_TAPE = "binance-btcusdt_2024-12-04_06.csv"
BUNDLED_PRICES = "BTCUSDT-5m_2024-12-04_06.csv"

err = Console(stderr=True)
out = Console()


def _settings(config: Path | None) -> tuple[Settings, str]:
    path = config
    if path is None and Path("liqguard.yaml").is_file():
        path = Path("liqguard.yaml")
        err.print("[dim]using ./liqguard.yaml[/]")
    try:
        return load_settings(path), str(path or "defaults")
    except ConfigError as exc:
        err.print(str(exc), markup=False, highlight=False)
        raise typer.Exit(2) from None


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
) -> None:
    """Run the bot: paper mode on the bundled crash replay unless told otherwise."""
    settings, origin = _settings(config)
    if live or source or settings.chains:  # `chains:` alone: watch the chains only
        default = "" if settings.chains else "binance,bybit,okx"
        names = [s.strip() for s in (source or default).split(",") if s.strip()]
        _exit(_run_async(_stream(settings, origin, names, live, journal, approvals)))
        return
    plan = _prepare(_bundled(BUNDLED_TAPE), _bundled(BUNDLED_PRICES), speed, origin)
    _exit(_run_async(_replay(settings, origin, plan, journal, approvals, fresh)))


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
) -> None:
    """Run the response pipeline on a recorded tape (paper broker, simulated time)."""
    settings, origin = _settings(config)
    plan = _prepare(tape, prices, speed, origin)
    _exit(_run_async(_replay(settings, origin, plan, journal, approvals, fresh)))


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
    url = default_journal_url(journal or settings.journal.url)
    j = SqlJournal(url)
    try:
        print_journal(out, j.recent(limit=limit, kinds=kind or None), url)
    finally:
        j.close()


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


@dataclass(frozen=True)
class ReplayPlan:
    tape: Path
    ticks: list[PriceTick]
    total: int
    speed: float | None
    identity: str


def _prepare(tape: Path, prices: Path | None, speed_text: str, origin: str) -> ReplayPlan:
    """Read prices, count events, pick the speed (before the event loop starts)."""
    try:
        speed = parse_speed(speed_text)
    except ValueError as exc:
        err.print(f"[red]{exc}[/]")
        raise typer.Exit(2) from None
    try:
        ticks = read_prices(prices) if prices is not None else []
        total, span = _scan(tape, ticks)
    except (ValueError, OSError) as exc:
        err.print(f"[red]{exc}[/]")
        raise typer.Exit(1) from None
    if speed == "auto":
        speed = speed_for(span)
    identity = f"replay|{tape.resolve()}|{tape.stat().st_size}|{prices}|{origin}"
    return ReplayPlan(tape, ticks, total, speed if isinstance(speed, float) else None, identity)


# -- runners ----------------------------------------------------------------------------------
def _run_async(coro: Any) -> int:
    try:
        result: int = asyncio.run(coro)
        return result
    except KeyboardInterrupt:
        err.print("[yellow]interrupted; the journal is consistent: run again to resume[/]")
        return 130


def _exit(code: int) -> None:
    if code:
        raise typer.Exit(code)


def _setup(settings: Settings) -> Any:
    secrets = load_secrets()
    register_secrets(secrets.all_secret_values())
    setup_logging(settings.logging.level, settings.logging.json_file)
    return secrets


def _build(settings: Settings, origin: str, **kw: Any) -> Runtime | None:
    try:
        return build(settings, _setup(settings), console=err, source=origin, **kw)
    except ConfigError as exc:
        err.print(str(exc), markup=False, highlight=False)
    except SetupError as exc:
        err.print(f"[red]{exc}[/]")
    return None


async def _replay(
    settings: Settings,
    origin: str,
    plan: ReplayPlan,
    journal: str | None,
    approvals: str | None,
    fresh: bool,
) -> int:
    rt = _build(
        settings,
        origin,
        mode="replay",
        identity=f"{plan.identity}|{settings.model_dump_json()}",
        journal_url=journal,
        approvals=approvals,
        fresh=fresh,
    )
    if rt is None:
        return 2
    orch, clock = rt.orchestrator, rt.clock
    assert isinstance(clock, SimClock)
    if not plan.ticks:
        err.print("[yellow]no --prices: the paper account cannot trade on this replay[/]")
    pace = "max" if plan.speed is None else f"x{plan.speed:,.0f}"
    err.print(f"replaying {plan.tape.name} ({plan.total:,} events with prices) at speed {pace}")
    done = [0]

    def on_event(n: int, _event: Liquidation | PriceTick) -> None:
        done[0] = n

    if rt.resuming:
        err.print(f"[bold]resuming session {rt.session} from its last checkpoint[/]")
    stream = merge(open_tape(plan.tape), plan.ticks)
    total = plan.total
    return await _drive(
        rt,
        run_replay(orch, clock, stream, plan.speed, rt.resuming, on_event),
        lambda: status_view(orch.status(), done[0], total, "replay"),
    )


async def _stream(
    settings: Settings,
    origin: str,
    names: Sequence[str],
    live: bool,
    journal: str | None,
    approvals: str | None,
) -> int:
    mode = "live" if live else "paper"
    if settings.mode == "live" and not live:
        err.print(
            "[red]liqguard.yaml says mode: live but --live was not given: refusing to start. "
            "Add --live to trade for real, or set mode: paper.[/]"
        )
        return 2
    rt = _build(
        settings,
        origin,
        mode=mode,
        identity=f"{mode}|{origin}",
        journal_url=journal,
        approvals=approvals,
    )
    if rt is None:
        return 2
    if live:
        err.print(
            Panel(
                "LIVE TRADING: real orders will be sent with your exchange keys.\n"
                f"sources {', '.join(names)}; journal {rt.journal.url}; Ctrl-C stops cleanly.",
                title="[bold red]LIVE[/]",
                border_style="bold red",
            )
        )
        try:
            await live_start(settings, rt.broker, rt.journal, _plain)
        except SetupError as exc:
            err.print(f"[red]{exc}[/]", highlight=False)
            await rt.close()
            return 2
    orch = rt.orchestrator
    if rt.resuming or orch.restore() is not None:
        await orch.resume()
    try:
        secrets = load_secrets()
        sources = live_sources(settings, secrets, names) if names else []
        if settings.chains:
            sources += onchain_sources(settings, secrets, rt.journal)
    except (SetupError, ConfigError) as exc:
        err.print(f"[red]{exc}[/]")
        await rt.close()
        return 1
    seen = [0]

    async def counted() -> AsyncIterator[Liquidation | PriceTick | FeedStatus]:
        async for event in merged_sources(sources, rt.clock.now_ms):
            seen[0] += 1
            yield event

    return await _drive(
        rt, orch.run(counted()), lambda: status_view(orch.status(), seen[0], None, mode), live=True
    )


async def _drive(rt: Runtime, work: Awaitable[Any], view: Any, live: bool = False) -> int:
    orch = rt.orchestrator
    scheduler = build_scheduler(orch, live=live)
    await rt.start()
    scheduler.start()
    try:
        with Live(get_renderable=view, console=err, refresh_per_second=4, transient=True):
            await work
    except Exception as exc:
        logger.exception("run failed: {}", exc)
        orch.checkpoint()
        return 1
    finally:
        scheduler.shutdown(wait=False)
        err.print(view())
        summary = summarize(rt.journal, rt.session)
        paper = orch.paper
        out.print(
            summary_view(
                summary,
                paper.pnl_usd() if paper else None,
                rt.baseline.pnl_usd() if rt.baseline else None,
                paper.equity_usd() if paper else None,
                rt.journal.url,
                rt.session,
                paper.max_drawdown_usd if paper else None,
                rt.baseline.max_drawdown_usd if rt.baseline else None,
            )
        )
        await rt.close()
    return 0


def _scan(tape: Path, ticks: list[PriceTick]) -> tuple[int, tuple[int, int] | None]:
    """How many events the replay will have, and the tape's time span."""
    total = 0
    first = last = None
    for event in merge(open_tape(tape), ticks):
        total += 1
        if isinstance(event, Liquidation):
            first = event.ts_ms if first is None else first
            last = event.ts_ms if last is None else max(last, event.ts_ms)
    if total == 0:
        err.print(f"[yellow]{tape} holds no liquidation[/]")
    return total, (first, last) if first is not None and last is not None else None
