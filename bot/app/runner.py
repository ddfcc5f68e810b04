"""The runner: what `liqguard run` and `liqguard replay` do between parsing and printing.

- Display: what the runner asks of a terminal (bot.cli implements it with rich)
- Refused: a run that cannot start; the message names the fix, `exit_code` is 1 or 2
- prepare_replay: prices read, events counted, speed chosen (before the event loop starts)
- stream_names: the venues `run` streams from the flags and the config
- replay / stream: build the runtime, resume, play the events through the orchestrator,
  and hand the summary to the display
- run_async: one event loop; Ctrl-C ends cleanly (exit 130)
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

from loguru import logger

from bot.app.errors import SetupError
from bot.app.scheduling import build_scheduler
from bot.app.sessions import file_sha256, replay_identity, secret_values
from bot.app.wiring import Runtime, build, live_sources, live_start, onchain_sources
from bot.clock import SimClock
from bot.config.errors import ConfigError
from bot.config.paper import load_account
from bot.config.settings import Settings
from bot.config.venues import enabled_stream_venues
from bot.engine.orchestrator import Orchestrator
from bot.engine.summary import Summary, summarize
from bot.events import Event, Liquidation, PriceTick
from bot.journal import JournalError
from bot.logs import register_secrets, setup_logging, shown_url
from bot.ops.service import Ops
from bot.secrets import Secrets, load_secrets
from bot.sources.feeds import merged_sources
from bot.sources.files import TapeStats, open_tape
from bot.sources.prices import read_prices
from bot.sources.replay import Replayed, merge, parse_speed, replay_events, speed_for
from bot.sources.validate import TapeError

Tone = Literal["info", "dim", "bold", "warn", "error"]


@dataclass(frozen=True)
class Progress:
    """A snapshot for the live view: the orchestrator's status and how far the run is."""

    status: dict[str, Any]
    done: int
    total: int | None
    mode: str


@dataclass(frozen=True)
class RunResult:
    """What the end-of-run summary shows."""

    summary: Summary
    pnl_usd: float | None
    baseline_pnl_usd: float | None
    equity_usd: float | None
    journal_url: str
    session: str
    drawdown_usd: float | None
    baseline_drawdown_usd: float | None


class Display(Protocol):
    """The terminal, as the runner sees it."""

    def say(self, text: str, tone: Tone = "info") -> None: ...

    def banner(self, text: str, title: str) -> None: ...

    def watching(self, progress: Callable[[], Progress]) -> AbstractContextManager[object]: ...

    def finished(self, progress: Progress, result: RunResult) -> None: ...


class Refused(Exception):
    """The run cannot start; the message says what to change."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass(frozen=True)
class ReplayPlan:
    tape: Path
    ticks: list[PriceTick]
    total: int
    speed: float | None
    identity: str  # content hashes of the tape and the prices (never their paths)
    prices: Path | None = None


def prepare_replay(
    tape: Path,
    prices: Path | None,
    speed_text: str,
    origin: str,
    display: Display,
    settings: Settings | None = None,
) -> ReplayPlan:
    """Read prices, count events, pick the speed (before the event loop starts)."""
    try:
        speed = parse_speed(speed_text)
    except ValueError as exc:
        raise Refused(str(exc), 2) from None
    try:
        ticks = read_prices(prices) if prices is not None else []
        total, span, stats = _scan(tape, ticks)
    except (TapeError, ValueError, OSError) as exc:
        raise Refused(str(exc), 1) from None
    if stats.rejected:
        first = stats.first_rejections[0]
        display.say(
            f"{tape}: {stats.rejected:,} of {stats.lines:,} rows rejected and not replayed "
            f"(first: line {first.line}: {first.reason})",
            "warn",
        )
    if stats.read == 0:
        display.say(f"{tape} holds no liquidation", "warn")
    if prices is not None and settings is not None:
        try:
            _, positions = load_account(settings.paper)
        except ConfigError as exc:
            raise Refused(str(exc), 2) from None
        _check_price_symbols(prices, ticks, sorted({p.symbol for p in positions}))
    if speed == "auto":
        speed = speed_for(span)
    identity = f"replay|{file_sha256(tape)}|{file_sha256(prices) if prices else ''}"
    pace = speed if isinstance(speed, float) else None
    return ReplayPlan(tape, ticks, total, pace, identity, prices)


def stream_names(settings: Settings, source: str | None) -> list[str]:
    """`--source a,b` or, without it, the enabled venues (none when only chains are watched)."""
    if source:
        return [s.strip() for s in source.split(",") if s.strip()]
    if settings.chains:
        return []
    names = enabled_stream_venues(settings.exchanges)
    if not names:
        raise Refused(
            "every venue is disabled (exchanges.venues.<name>.enabled: false) and no chain is "
            "configured: enable one, or name one with --source",
            2,
        )
    return names


def check_switches(settings: Settings, live: bool) -> None:
    """`run`: either live switch alone refuses to start (exit 2)."""
    from bot.app.gate import check_live_switches  # loads ccxt: slow, and only a check here

    try:
        check_live_switches(settings, live)
    except SetupError as exc:
        raise Refused(str(exc), 2) from None


def run_async(coro: Coroutine[Any, Any, int], display: Display) -> int:
    try:
        return asyncio.run(coro)
    except Refused as exc:
        display.say(str(exc), "error")
        return exc.exit_code
    except JournalError as exc:  # outside a run's own loop (a resume that cannot read back)
        display.say(str(exc), "error")
        return 1
    except KeyboardInterrupt:
        display.say("interrupted; the journal is consistent: run again to resume", "warn")
        return 130


def setup(settings: Settings) -> Secrets:
    """Secrets loaded and registered for redaction before any log line is written."""
    secrets = load_secrets()
    register_secrets(secrets.all_secret_values())
    register_secrets(secret_values(settings))  # webhook and RPC URLs written in the config
    try:
        setup_logging(settings.logging.level, settings.logging.json_file)
    except OSError as exc:
        raise ConfigError(
            f"logging.json_file {settings.logging.json_file}: cannot be written "
            f"({exc.strerror or exc}); give a path in a writable folder or remove the setting"
        ) from None
    return secrets


def _build(settings: Settings, origin: str, **kw: Any) -> Runtime:
    try:
        return build(settings, setup(settings), source=origin, **kw)
    except (ConfigError, SetupError) as exc:
        raise Refused(str(exc), 2) from None
    except JournalError as exc:
        raise Refused(str(exc), 1) from None


async def run_replay(
    orchestrator: Orchestrator,
    clock: SimClock,
    events: Iterable[Replayed],
    speed: float | None,
    resuming: bool,
    on_event: Callable[[int, Replayed], None] | None = None,
) -> int:
    """Play `events` through the orchestrator; resume after the checkpoint if `resuming`.

    Returns how many events were skipped (handled before the restart).
    """
    skip = 0
    if resuming and (cursor := orchestrator.restore()) is not None:
        skip, ts_ms = int(cursor["events"]), int(cursor["ts_ms"])  # checked by restore
        await clock.advance_to(ts_ms)
        await orchestrator.resume()
    else:
        orchestrator.checkpoint()  # on disk before any action can be sent: a crash resumes
    await orchestrator.run(replay_events(events, clock, speed, skip, on_event))
    return skip


async def replay(
    settings: Settings,
    origin: str,
    plan: ReplayPlan,
    display: Display,
    *,
    journal: str | None = None,
    approvals: str | None = None,
    fresh: bool = False,
    console: Any = None,
) -> int:
    who = replay_identity(plan.tape, plan.prices, settings)
    rt = _build(
        settings,
        origin,
        mode="replay",
        identity=who.text,
        identity_record=who.record,
        journal_url=journal,
        approvals=approvals,
        fresh=fresh,
        console=console,
    )
    orch, clock = rt.orchestrator, rt.clock
    assert isinstance(clock, SimClock)
    if rt.finished:  # killed after its end, or simply run again: its summary, not a new run
        orch.restore()
        display.say(
            f"session {rt.session} replayed this tape with these settings to the end before; "
            "its summary follows (--fresh replays it again as a new session)",
            "bold",
        )
        display.finished(
            Progress(orch.status(), orch.counters.events, plan.total, "replay"), _result(rt)
        )
        await rt.close()
        return 0
    if not plan.ticks:
        display.say("no --prices: the paper account cannot trade on this replay", "warn")
    pace = "max" if plan.speed is None else f"x{plan.speed:,.0f}"
    display.say(f"replaying {plan.tape.name} ({plan.total:,} events with prices) at speed {pace}")
    done = [0]
    ops = Ops(rt, display.say)

    def on_event(n: int, event: Replayed) -> None:
        done[0] = n
        ops.on_event(event)

    if rt.resuming:
        display.say(f"resuming session {rt.session} from its last checkpoint", "bold")
    recorded = open_tape(plan.tape)
    ops.count_rejected("tape", lambda: recorded.stats.rejected)
    stream = merge(recorded, plan.ticks)
    return await _drive(
        rt,
        run_replay(orch, clock, stream, plan.speed, rt.resuming, on_event),
        lambda: Progress(orch.status(), done[0], plan.total, "replay"),
        display,
        ops=ops,
    )


async def stream(
    settings: Settings,
    origin: str,
    names: Sequence[str],
    live: bool,
    display: Display,
    *,
    journal: str | None = None,
    approvals: str | None = None,
    console: Any = None,
) -> int:
    mode = "live" if live else "paper"
    rt = _build(
        settings,
        origin,
        mode=mode,
        identity=f"{mode}|{origin}",
        journal_url=journal,
        approvals=approvals,
        console=console,
    )
    if live:
        display.banner(
            "LIVE TRADING: real orders will be sent with your exchange keys.\n"
            f"sources {', '.join(names)}; journal {shown_url(rt.journal.url)}; "
            "Ctrl-C stops cleanly.",
            "LIVE",
        )
        try:
            await live_start(settings, rt.broker, rt.journal, lambda text: display.say(text))
        except SetupError as exc:
            display.say(str(exc), "error")
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
        display.say(str(exc), "error")
        await rt.close()
        return 1
    seen = [0]
    ops = Ops(rt, display.say)

    async def counted() -> AsyncIterator[Event]:
        merged = merged_sources(
            sources, rt.clock.now_ms, dedupe_capacity=settings.exchanges.dedupe_memory
        )
        async for event in merged:
            seen[0] += 1
            ops.on_event(event)
            yield event

    return await _drive(
        rt,
        orch.run(counted()),
        lambda: Progress(orch.status(), seen[0], None, mode),
        display,
        live=True,
        ops=ops,
    )


async def _drive(
    rt: Runtime,
    work: Awaitable[Any],
    progress: Callable[[], Progress],
    display: Display,
    live: bool = False,
    ops: Ops | None = None,
) -> int:
    orch = rt.orchestrator
    scheduler = build_scheduler(orch, live=live)
    await rt.start()
    if ops is not None:  # metrics, status page, watchdog: each only when configured
        try:
            await ops.start()
        except SetupError as exc:  # a port taken: said in one sentence, nothing replayed
            display.say(str(exc), "error")
            if asyncio.iscoroutine(work):
                work.close()
            await ops.close()
            await rt.close()
            return 2
    scheduler.start()
    stop_hup = _reload_on_sighup(rt, display)
    try:
        with display.watching(progress):
            await work
    except JournalError as exc:
        display.say(str(exc), "error")
        return 1
    except TapeError as exc:  # a tape that changed or broke while it was replayed
        display.say(f"{exc} The journal is consistent: fix the file and run again.", "error")
        orch.checkpoint()
        return 1
    except Exception as exc:
        logger.exception("run failed: {}", exc)
        orch.checkpoint()
        return 1
    finally:
        stop_hup()
        scheduler.shutdown(wait=False)
        display.finished(progress(), _result(rt))
        if ops is not None:
            await ops.close()
        await rt.close()
    return 0


def _reload_on_sighup(rt: Runtime, display: Display) -> Callable[[], None]:
    """SIGHUP reloads the config file (bot.app.overrides); returns how to stop listening."""
    desk = rt.extras.get("overrides")
    if desk is None or not hasattr(signal, "SIGHUP"):
        return lambda: None
    loop = asyncio.get_running_loop()
    tasks: set[asyncio.Task[None]] = set()

    async def reload() -> None:
        text = await desk.reload()
        display.say(text, "warn" if text.startswith("reload refused") else "info")

    def on_hup() -> None:
        task = loop.create_task(reload())
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    try:
        loop.add_signal_handler(signal.SIGHUP, on_hup)
    except (ValueError, RuntimeError):  # not the main thread (an embedding caller): no reload
        return lambda: None

    def stop() -> None:
        loop.remove_signal_handler(signal.SIGHUP)

    return stop


def _result(rt: Runtime) -> RunResult:
    paper = rt.orchestrator.paper
    return RunResult(
        summarize(rt.journal, rt.session),
        paper.pnl_usd() if paper else None,
        rt.baseline.pnl_usd() if rt.baseline else None,
        paper.equity_usd() if paper else None,
        shown_url(rt.journal.url),
        rt.session,
        paper.max_drawdown_usd if paper else None,
        rt.baseline.max_drawdown_usd if rt.baseline else None,
    )


def _check_price_symbols(path: Path, ticks: list[PriceTick], held: Sequence[str]) -> None:
    """A prices file that prices none of the held symbols would replay a book that never
    trades: refuse it (the symbol comes from the file name, e.g. BTCUSDT-5m-2024-12.csv)."""
    priced = {t.symbol for t in ticks}
    missing = [s for s in held if s not in priced]
    if missing:
        raise Refused(
            f"--prices {path}: gives prices for {', '.join(sorted(priced)) or 'nothing'} "
            f"(the symbol is read from the file name), but the paper account holds "
            f"{', '.join(missing)}; name the file like {missing[0]}-5m-2024-12.csv",
            2,
        )


def _scan(tape: Path, ticks: list[PriceTick]) -> tuple[int, tuple[int, int] | None, TapeStats]:
    """How many events the replay will have, the tape's time span, and what reading it found."""
    total = 0
    first = last = None
    recorded = open_tape(tape)
    for event in merge(recorded, ticks):
        total += 1
        if isinstance(event, Liquidation):
            first = event.ts_ms if first is None else first
            last = event.ts_ms if last is None else max(last, event.ts_ms)
    span = (first, last) if first is not None and last is not None else None
    return total, span, recorded.stats


async def stream_ha(
    settings: Settings,
    origin: str,
    names: Sequence[str],
    live: bool,
    display: Display,
    *,
    journal: str | None = None,
    approvals: str | None = None,
    console: Any = None,
) -> int:
    """`run` under `ha:` / `--standby`: leader or warm standby on the group's lease."""
    from bot.app.ha import stream_ha as run_ha

    try:
        secrets = setup(settings)
    except ConfigError as exc:
        raise Refused(str(exc), 2) from None
    return await run_ha(
        settings, secrets, origin, names, live, display,
        journal=journal, approvals=approvals, console=console,
    )  # fmt: skip
