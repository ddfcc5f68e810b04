"""Wiring: build the runtime for a mode from settings and secrets. The only place that knows
which implementation sits behind each interface.

Contents:
- factories of the edges: live_sources, ccxt_broker (after the live gate's checks),
  telegram_parts, webhook_notifiers, onchain_sources (each imported when used)
- open_session: the session id of a run (resume an unfinished one, show a finished one, or
  start the next)
- Runtime, build: clock, journal, detector, risk gate, broker (+ untouched baseline), approver,
  notifiers, orchestrator
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from rich.console import Console

from bot.app.errors import SetupError
from bot.app.overrides import OverrideDesk, start_overlay
from bot.approvals import AutoApprover, ConsoleApprover
from bot.brokers.paper import PaperBroker
from bot.clock import SimClock, WallClock
from bot.config.settings import Settings
from bot.detector import Detector
from bot.engine.orchestrator import Orchestrator
from bot.engine.policy import ResolvedAction, check_policy
from bot.interfaces import Approver, Broker, Clock, LiveSource, Notifier
from bot.journal import SqlJournal, default_journal_url
from bot.notify import FanOut
from bot.notify.background import EXIT_DELIVERY_S
from bot.notify.console import ConsoleNotifier
from bot.risk import RiskGate
from bot.secrets import Secrets
from bot.sources.feeds import FeedBook

Mode = Literal["replay", "paper", "live"]
APPROVAL_CHANNELS = ("auto", "console", "telegram")


# -- factories of the edges (imported when used: web3, ccxt.pro and Telegram load slowly) ------
def live_sources(settings: Settings, secrets: Secrets, names: Sequence[str]) -> list[LiveSource]:
    """Live liquidation streams of `names` (binance, bybit, okx) through ccxt."""
    from bot.app.live import create_live_sources

    try:
        return list(create_live_sources(settings, secrets, list(names)))
    except ValueError as exc:  # the factory's setup errors name the fix
        raise SetupError(str(exc)) from None


def ccxt_broker(
    settings: Settings, secrets: Secrets, resolved: dict[str, ResolvedAction] | None = None
) -> Broker:
    """The real-money broker (live mode only); `resolved`: the policy, whose instruments that
    are traded without being held are priced at every account read."""
    from bot.app.live import create_ccxt_broker

    priced = sorted(
        {
            str(symbol)
            for action in (resolved or {}).values()
            if (symbol := getattr(action.params, "instrument_symbol", None))
        }
    )
    try:
        broker: Broker = create_ccxt_broker(settings, secrets, price_symbols=priced)
    except ValueError as exc:
        raise SetupError(str(exc)) from None
    return broker


async def live_start(settings: Settings, broker: Broker, journal: SqlJournal, echo: Any) -> None:
    """Before anything trades live: the venue's side of the gate (keys that can withdraw
    refused, a banner of the account), then the journal's unsettled orders looked up."""
    from bot.app.live import start_live

    await start_live(settings, broker, journal, echo=echo)  # type: ignore[arg-type]


def telegram_parts(
    settings: Settings, secrets: Secrets, journal: SqlJournal, clock: Clock, report: Any = None
) -> Any:
    """The Telegram parts (.approver, .notifier, .commands, start(), close()).

    `report(event)` tells the other channels what Telegram cannot (it is unreachable)."""
    from bot.telegram.factory import create_telegram

    return create_telegram(settings, secrets, journal, clock=clock, report=report)


def webhook_notifiers(settings: Settings, secrets: Secrets) -> list[Notifier]:
    """One notifier per configured webhook (none configured: none)."""
    if not settings.webhooks:
        return []
    from bot.notify.webhook import WebhookNotifier

    return [WebhookNotifier(h, secrets) for h in settings.webhooks]


def outbound(
    settings: Settings,
    journal: SqlJournal,
    clock: Clock,
    session: str,
    fan: FanOut,
    orchestrator: Orchestrator,
    broker: Broker,
    env: Mapping[str, str] | None,
) -> dict[str, Any]:
    """Pagers and bridges (each only when configured), in the fan-out after the notifiers they
    alert when one of them fails; keys from the environment (and .env)."""
    from dotenv import dotenv_values

    from bot.notify.delivery import FailureAlerts
    from bot.paging.factory import build_pagers

    if env is None:
        env = {k: v for k, v in dotenv_values(".env").items() if v is not None} | dict(os.environ)
    alerts = FailureAlerts(clock.now_ms)
    alerts.notifiers = list(fan.notifiers)
    chart = None
    if settings.paging.email is not None and settings.paging.email.attach_chart:
        chart = _chart_source(orchestrator, broker, journal, settings)
    out: dict[str, Any] = {}
    try:
        pagers = build_pagers(settings.paging, journal, clock.now_ms, session, env, alerts, chart)
    except ValueError as exc:  # a key missing from the environment: named, exit 2
        raise SetupError(str(exc)) from None
    if pagers is not None:
        fan.notifiers.append(pagers)
        out["paging"] = pagers
    if settings.bridges:
        from bot.bridges.factory import build_bridges

        try:
            bridges = build_bridges(settings.bridges, journal, clock.now_ms, session, env, alerts)
        except ValueError as exc:
            raise SetupError(str(exc)) from None
        if bridges is not None:
            fan.notifiers.append(bridges)
            out["bridges"] = bridges
    return out


def _chart_source(
    orchestrator: Orchestrator, broker: Broker, journal: SqlJournal, settings: Settings
) -> Any:
    """The anomaly chart as PNG bytes, drawn off the loop (matplotlib loads here: email only)."""
    import asyncio

    from bot.app.telegram_control import RuntimeControl
    from bot.notify.charts import render_chart

    control = RuntimeControl(orchestrator, broker, journal, settings)

    async def png() -> bytes | None:
        data = await control.chart_input()
        return await asyncio.to_thread(render_chart, data) if data is not None else None

    return png


def onchain_sources(settings: Settings, secrets: Secrets, journal: SqlJournal) -> list[LiveSource]:
    from bot.sources.onchain.factory import create_onchain_sources

    return list(create_onchain_sources(settings, secrets, journal))


# -- sessions -------------------------------------------------------------------------------
SessionState = Literal["new", "resume", "finished"]


def open_session(
    journal: SqlJournal,
    identity: str,
    fresh: bool = False,
    record: dict[str, Any] | None = None,
) -> tuple[str, SessionState]:
    """(session id, state): the latest session of `identity` unless it is finished (or
    `fresh`), else the next one. A session with no checkpoint yet is resumed too: its
    actions, if any reached the journal, keep their ids. `record` is what the journal keeps
    of the identity (hashes, redacted settings; never a secret)."""
    digest = hashlib.sha1(identity.encode(), usedforsecurity=False).hexdigest()[:10]
    name = f"sessions:{digest}"
    book = journal.get_state(name) or {"n": 0}
    n = int(book["n"])
    if n > 0 and not fresh:
        session = f"{digest}.{n}"
        cursor = journal.get_state(f"cursor:{session}")
        return session, "finished" if cursor is not None and cursor.get("finished") else "resume"
    n += 1
    journal.put_state(name, {"n": n, **(record or {})})
    return f"{digest}.{n}", "new"


# -- the runtime ----------------------------------------------------------------------------
@dataclass
class Runtime:
    mode: Mode
    settings: Settings
    session: str
    resuming: bool
    finished: bool  # the session ended before: its summary is shown, nothing runs
    clock: Clock
    journal: SqlJournal
    broker: Broker
    baseline: PaperBroker | None
    approver: Approver
    notifier: FanOut  # every channel; the orchestrator queues into it (BackgroundNotifier)
    orchestrator: Orchestrator
    extras: dict[str, Any] = field(default_factory=dict)

    async def start(self) -> None:
        """Connect what needs connecting (Telegram); a failure there is reported, not fatal."""
        if (tg := self.extras.get("telegram")) is not None:
            await tg.start()
        if (desk := self.extras.get("overrides")) is not None:
            await desk.start()

    async def close(self) -> int:
        """Close every part; returns how many notifications could not be delivered in time."""
        notifier = self.orchestrator.notifier
        await notifier.flush(EXIT_DELIVERY_S)  # while the channels are up
        for name in ("bridges", "paging"):  # their failures are told while Telegram is up
            if (part := self.extras.get(name)) is not None:
                await part.drain(EXIT_DELIVERY_S)
        if (desk := self.extras.get("overrides")) is not None:
            await desk.close()
        if (tg := self.extras.get("telegram")) is not None:
            await tg.close()
        close = getattr(self.approver, "close", None)
        if close is not None:
            await close()
        await notifier.close(EXIT_DELIVERY_S)
        await self.broker.close()
        self.journal.close()
        return notifier.undelivered


def build(
    settings: Settings,
    secrets: Secrets,
    *,
    mode: Mode,
    identity: str,
    identity_record: dict[str, Any] | None = None,
    journal_url: str | None = None,
    approvals: str | None = None,
    console: Console | None = None,
    fresh: bool = False,
    source: str = "liqguard.yaml",
    approver: Approver | None = None,
    notifiers: Sequence[Notifier] | None = None,
    session: str | None = None,
    env: Mapping[str, str] | None = None,
) -> Runtime:
    """Everything a run needs, validated (a bad policy raises ConfigError before anything)."""
    resolved = check_policy(settings.policy, source)
    if approvals is not None and approvals not in APPROVAL_CHANNELS:
        # a typo must never fall through to auto-approval
        raise SetupError(
            f"--approvals {approvals!r}: unknown; use one of {', '.join(APPROVAL_CHANNELS)}"
        )
    if mode == "live":  # before anything is opened or journaled
        from bot.app.gate import check_live_request  # loads ccxt: live runs only

        check_live_request(settings, secrets, live_flag=True)
    console = console or Console(stderr=True)
    channel = approvals or settings.approvals.channel
    if approvals is None and settings.telegram is not None:
        # a telegram: section means Telegram, unless approvals.channel says otherwise
        channel = channel if "channel" in settings.approvals.model_fields_set else "telegram"
    if channel == "telegram" and approver is None:
        from bot.telegram.factory import telegram_credentials

        telegram_credentials(settings, secrets)  # before the journal is opened
    url = default_journal_url(journal_url or settings.journal.url)
    if settings.ha is not None and url.startswith("sqlite"):
        raise SetupError(
            f"ha.group {settings.ha.group}: high availability needs a PostgreSQL journal, and "
            f"the journal is {url} (SQLite, one host); set journal.url: "
            "postgresql+psycopg://USER@HOST/DB or remove ha:"
        )
    journal = SqlJournal(url, single_writer=settings.ha is None)  # ha: the lease decides
    try:  # a part that cannot be built leaves no session behind, and the file closed
        clock: Clock = SimClock() if mode == "replay" else WallClock()
        if mode == "live":
            broker: Broker = ccxt_broker(settings, secrets, resolved)
            market = baseline = None
        else:
            # the orchestrator drives the paper market's prices
            broker = market = PaperBroker(settings.paper, clock)
            baseline = PaperBroker(settings.paper, clock)  # the same account, never touched
        chosen: list[Notifier] = (
            list(notifiers) if notifiers is not None else [ConsoleNotifier(console)]
        )
        extras: dict[str, Any] = {}
        if approver is None and channel == "telegram":

            async def report(event: object) -> None:
                await FanOut([n for n in chosen if n is not parts.notifier]).notify(event)

            parts = telegram_parts(settings, secrets, journal, clock, report)
            approver = parts.approver
            chosen.append(parts.notifier)
            extras["telegram"] = parts
        elif approver is None and channel == "console":
            approver = ConsoleApprover(console=console)
        elif approver is None and channel == "auto":
            approver = AutoApprover()
        elif approver is None:  # unreachable: the config and the flag are both checked
            raise SetupError(f"approvals channel {channel!r} is unknown")
        chosen += webhook_notifiers(settings, secrets)
        fan = FanOut(chosen)
        settle = clock.settle if isinstance(clock, SimClock) else None
    except BaseException:
        journal.close()
        raise
    if session:  # ha: every term of a group continues one session (bot.app.ha)
        state: SessionState = "resume"
    else:
        session, state = open_session(journal, identity, fresh, identity_record)
        if state == "finished" and mode != "replay":  # a stream that ended: the next session
            session, state = open_session(journal, identity, True, identity_record)
    # the journal, not the file, is the source of the runtime overrides: applied in order
    overlay, skipped = start_overlay(settings, journal)
    if overlay.applied:
        settings = overlay.running()
        resolved = check_policy(settings.policy, source)
    orchestrator = Orchestrator(
        session=session,
        detector=Detector(settings.rules),
        risk=RiskGate(settings.risk),
        broker=broker,
        journal=journal,
        approver=approver,
        notifier=fan,
        clock=clock,
        policy=settings.policy,
        resolved=resolved,
        market=market,
        baseline=baseline,
        checkpoint_every=settings.journal.checkpoint_every_events,
        settle=settle,
        rewinds=mode == "replay",
        feeds=FeedBook(
            settings.rules,
            max_event_age_s=settings.exchanges.max_event_age_s,
            future_tolerance_s=settings.exchanges.future_tolerance_s,
            skew_alert_s=settings.exchanges.clock_skew_alert_s,
            flap_hold_s=settings.exchanges.feed_alert_hold_s,
        ),
    )
    if settings.paging.enabled or settings.bridges:
        try:
            extras.update(
                outbound(settings, journal, clock, session, fan, orchestrator, broker, env)
            )
        except BaseException:
            journal.close()
            raise
    config_path = source if source not in ("defaults", "") and Path(source).is_file() else None
    desk = OverrideDesk(orchestrator, journal, clock, overlay, approver, config_path, skipped)
    extras["overrides"] = desk
    if (tg := extras.get("telegram")) is not None:
        from bot.app.telegram_control import RuntimeControl  # charts load matplotlib: slow

        control = RuntimeControl(orchestrator, broker, journal, settings, desk)
        tg.attach(control)  # /status, charts, /threshold ...
    runtime = Runtime(
        mode,
        settings,
        session,
        state == "resume",
        state == "finished",
        clock,
        journal,
        broker,
        baseline,
        approver,
        fan,
        orchestrator,
        extras,
    )
    desk.listeners.append(lambda s: setattr(runtime, "settings", s))
    return runtime
