"""`liqguard run` with `ha:` (or `--standby`): one leader per account, a warm standby.

The process loops between two roles on the group's lease (bot.ha.lease):
- standby: watches the feeds and runs the detector warm (its windows stay full), remembers
  the anomalies it saw, journals nothing but its role, sends nothing; every `renew_s` it tries
  to take the lease (only an expired or released lease can be taken)
- leader: builds the runtime as a restart does (journal reloaded, unsettled orders looked up
  at the venue, unfinished actions finished with their own client ids), answers the
  anomalies the standby saw that the journal does not hold, and trades; every journal commit
  is fenced by the term in the database; it renews every `renew_s` and steps down (back to
  standby) when a renewal fails or the lease can no longer be proven
A clean stop (Ctrl-C, SIGTERM, the feeds ending) releases the lease for the standby.

`--http` / `--metrics` (http.listen, metrics.listen) are bound once for the whole run and show
the role: the leader serves the run's status page and metrics (bot.ops) plus the role; a
standby serves its role only, and refuses every button (409: the leader answers). Telegram
lives in the leader's runtime only: a standby polls nothing and answers nothing, so exactly one
bot answers the buttons and commands of one account (one bot token cannot be polled twice).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

from loguru import logger
from sqlalchemy import create_engine
from sqlalchemy.exc import SQLAlchemyError

from bot.app.errors import SetupError
from bot.app.scheduling import build_scheduler
from bot.app.wiring import Runtime, build, live_sources, live_start
from bot.config.errors import ConfigError
from bot.config.ha import HaConfig
from bot.config.ops import parse_listen
from bot.config.settings import Settings
from bot.detector import Detector
from bot.events import Anomaly, Calm, Event, Liquidation
from bot.ha.lease import Lease
from bot.ha.schema import ensure_schema
from bot.journal import JournalError, SqlJournal, default_journal_url
from bot.ops import http
from bot.ops.metrics import CONTENT_TYPE, RoleMetrics
from bot.ops.service import Ops
from bot.secrets import Secrets
from bot.sources.feeds import merged_sources

ROLE_KIND = "ha_role"  # journal rows of role changes (never fenced: they lead to no order)
SEEN_KEEP = 10_000  # anomalies a standby remembers for the takeover


class _Remembering(Detector):
    """The detector, noting what it finds: a takeover answers what the journal lacks."""

    def __init__(self, rules: Any, seen: list[Anomaly | Calm]) -> None:
        super().__init__(rules)
        self.seen = seen

    def on_liquidation(self, liq: Liquidation) -> list[Anomaly | Calm]:
        out = super().on_liquidation(liq)
        if out:
            self.seen.extend(out)
            del self.seen[:-SEEN_KEEP]
        return out


class LostLease(Exception):
    """The leader's term ended (renewal refused, or not provable in time)."""


class _LeaderOps(Ops):
    """The run's status page and metrics (bot.ops.service), with the role added."""

    def __init__(self, rt: Runtime, say: Any, role: Any) -> None:
        super().__init__(rt, say)
        self.role = role

    async def start(self) -> None:
        await super().start()
        if self.metrics is not None:
            r = self.role()
            RoleMetrics(self.metrics.registry).set(r["group"], True, r["term"])

    async def snapshot(self) -> dict[str, Any]:
        return {**await super().snapshot(), "ha": self.role()}


class HaOps:
    """http.listen / metrics.listen of an ha process, for both roles (ports kept across)."""

    def __init__(self, run: HaRun) -> None:
        self.run = run
        s = run.settings
        self.listen = {"metrics": s.metrics.listen, "http": s.http.listen}
        self.servers: list[Any] = []
        self.leader: _LeaderOps | None = None
        self.metrics = RoleMetrics()
        self.token = os.environ.get(s.http.token_env) or None

    @property
    def wanted(self) -> bool:
        return any(self.listen.values())

    def settings(self) -> Settings:
        """The settings with the ports bound first (port 0 stays the port the system gave)."""
        s = self.run.settings
        if self.listen["http"]:
            s = s.model_copy(
                update={"http": s.http.model_copy(update={"listen": self.listen["http"]})}
            )
        if self.listen["metrics"]:
            section = s.metrics.model_copy(update={"listen": self.listen["metrics"]})
            s = s.model_copy(update={"metrics": section})
        return s

    async def standby(self) -> None:
        """Serve the role only; every button is refused (the leader answers)."""
        await self.stop_leader()
        if not self.wanted or self.servers:
            return
        health = self._health
        if self.listen["metrics"]:
            app = http.metrics_app(self._scrape, CONTENT_TYPE, health)
            await self._serve(app, "metrics")
        if self.listen["http"]:
            controls = http.Controls(None, self._no_state, self._note, _now_ms)
            app = http.status_app(
                self._snapshot,
                health,
                self.token,
                controls,
                self._refuse,
                allowed_hosts=self.run.settings.http.allowed_hosts,
            )
            await self._serve(app, "http")

    async def lead(self, rt: Runtime) -> None:
        """The run's own status page and metrics, on the same ports, with the role."""
        await self._stop_standby()
        self.leader = _LeaderOps(rt, self.run.display.say, self.run.role_now)
        try:
            await self.leader.start()
        except SetupError as exc:  # a port taken meanwhile: trading matters more than a page
            self.run.display.say(f"{exc}; this leader serves no status page", "error")

    async def close(self) -> None:
        await self.stop_leader()
        await self._stop_standby()

    async def stop_leader(self) -> None:
        if self.leader is not None:
            leader, self.leader = self.leader, None
            await leader.close()

    async def _stop_standby(self) -> None:
        for server in self.servers:
            await server.cleanup()
        self.servers.clear()

    async def _serve(self, app: Any, which: str) -> None:
        listen = str(self.listen[which])
        field = f"{which}.listen"
        server, host, bound = await http.serve_listen(app, listen, field)
        self.servers.append(server)
        if parse_listen(listen, field)[1] == 0:  # the leader's page comes back on the same port
            self.listen[which] = f"[{host}]:{bound}" if ":" in host else f"{host}:{bound}"
            shown = f"[{host}]" if ":" in host else host
            self.run.display.say(f"ha {which} on http://{shown}:{bound}/")

    def _scrape(self) -> bytes:
        r = self.run.role_now()
        self.metrics.set(r["group"], r["role"] == "leader", r["term"])
        return self.metrics.scrape()

    def _health(self) -> tuple[bool, str]:
        r = self.run.role_now()
        return True, f"{r['role']} of ha.group {r['group']} (leader {r['leader'] or 'unknown'})"

    def _refuse(self) -> str:
        r = self.run.role_now()
        return (
            f"this process is the standby of ha.group {r['group']}: it acts on nothing; the "
            f"leader ({r['leader'] or 'none now'}) answers, on its own status page"
        )

    async def _no_state(self, state: str, reason: str, by: str) -> None:
        raise AssertionError("a standby refuses every button before it acts")  # _refuse

    def _note(self, kind: str, ts_ms: int, payload: dict[str, Any]) -> None:
        logger.info("ha standby: {} {}", kind, payload)  # a standby journals its role only

    async def _snapshot(self) -> dict[str, Any]:
        run = self.run
        return {
            "mode": run.mode,
            "session": session_of(run.ha.group),
            "now_ms": _now_ms(),
            "ladder": "STANDBY",
            "events": run.events_seen,
            "rules": [],
            "feeds": {},
            "positions": [],
            "pnl_usd": None,
            "equity_usd": None,
            "anomalies": [],
            "actions": [],
            "pending": [],
            "controls": False,
            "votes": False,
            "ha": run.role_now(),
        }


def check_ha(settings: Settings, journal_url: str) -> HaConfig:
    """The `ha:` section against the journal: SQLite is refused with the fix named."""
    if settings.ha is None:
        raise SetupError(
            "--standby needs an ha: section (ha: {group: NAME}) and a PostgreSQL journal.url; "
            "add them to the config (docs/high-availability.md)"
        )
    if not journal_url.startswith("postgresql"):
        raise SetupError(
            f"ha.group {settings.ha.group}: high availability needs a PostgreSQL journal, and "
            f"the journal is {journal_url} (SQLite, one host); set journal.url: "
            "postgresql+psycopg://USER@HOST/DB or remove ha:"
        )
    return settings.ha


def session_of(group: str) -> str:
    """Every term of a group writes one session: action ids (and client ids) match."""
    return f"ha-{group}"


class HaRun:
    def __init__(
        self,
        settings: Settings,
        secrets: Secrets,
        origin: str,
        names: Sequence[str],
        live: bool,
        display: Any,
        journal_url: str,
        approvals: str | None,
        console: Any,
    ) -> None:
        self.settings, self.secrets, self.origin = settings, secrets, origin
        self.names, self.live, self.display = list(names), live, display
        self.url, self.approvals, self.console = journal_url, approvals, console
        self.ha = check_ha(settings, journal_url)
        self.mode = "live" if live else "paper"
        engine = create_engine(journal_url, pool_pre_ping=True, connect_args={"connect_timeout": 3})
        try:
            ensure_schema(engine)
        except SQLAlchemyError as exc:
            raise JournalError(
                f"journal {journal_url}: cannot be opened for ha ({exc.__class__.__name__}); "
                "check the server and the URL"
            ) from None
        self.lease = Lease(engine, self.ha.group, self.ha.lease_s)
        self.renew_s = self.ha.renew_every_s
        self.seen: list[Anomaly | Calm] = []  # by this process, as standby or leader
        self.detector: Detector = _Remembering(settings.rules, self.seen)
        self.stopping = False
        self.events_seen = 0
        self.state: dict[str, Any] = {
            "role": "standby",
            "group": self.ha.group,
            "holder": self.lease.holder,  # this process
            "leader": None,  # the lease's holder as last read (this process while leading)
            "term": None,
        }
        self.ops = HaOps(self)

    def role_now(self) -> dict[str, Any]:
        """{role, group, holder, leader, term}: for the status page, /metrics, Telegram."""
        return dict(self.state)

    def role_text(self) -> str:
        r = self.state
        if r["role"] == "leader":
            return f"HA leader of {r['group']}, term {r['term']} ({r['holder']})"
        return f"HA {r['role']} of {r['group']} (leader {r['leader'] or 'none'})"

    # -- roles -------------------------------------------------------------------------------
    def _role(self, role: str, **extra: Any) -> None:
        """Journal a role change; a database that is down only costs the row, logged."""
        payload = {"role": role, "group": self.ha.group, "holder": self.lease.holder, **extra}
        self.state["role"] = role
        if role == "leader":
            self.state.update(leader=self.lease.holder, term=extra.get("term"))
        logger.info("ha {}: {}", self.ha.group, payload)
        self.display.say(f"ha {self.ha.group}: {role} ({self.lease.holder})", "bold")
        try:
            j = SqlJournal(self.url, single_writer=False)  # the group shares the journal
            try:
                j.append(ROLE_KIND, int(time.time() * 1000), payload)
            finally:
                j.close()
        except JournalError as exc:
            logger.warning("ha: role change not journaled: {}", exc)

    async def run(self) -> int:
        # one subscription for the whole run: no frame is missed while the roles change
        sources = live_sources(self.settings, self.secrets, self.names) if self.names else []
        self.queue: asyncio.Queue[Event | None] = asyncio.Queue()
        pump = asyncio.create_task(self._pump(sources))
        try:
            try:
                await self.ops.standby()
            except SetupError as exc:  # a port taken: one sentence, nothing runs
                self.display.say(str(exc), "error")
                return 2
            while True:
                await self._standby(pump)
                code = await self._lead()
                if code is not None:
                    return code
        finally:
            pump.cancel()
            await asyncio.gather(pump, return_exceptions=True)
            for s in sources:
                with contextlib.suppress(Exception):
                    await s.close()
            with contextlib.suppress(SQLAlchemyError):
                self.lease.release()
            self.lease.engine.dispose()
            await self.ops.close()

    async def _pump(self, sources: Sequence[Any]) -> None:
        async for event in merged_sources(sources, _now_ms):
            self.queue.put_nowait(event)
        self.queue.put_nowait(None)  # the feeds ended

    async def _events(self) -> AsyncIterator[Event]:
        while (event := await self.queue.get()) is not None:
            self.events_seen += 1
            if self.ops.leader is not None:
                self.ops.leader.on_event(event)
            yield event

    async def _standby(self, pump: asyncio.Task[None]) -> None:
        """Feed the detector, send nothing, until the lease is ours."""
        self._role("standby")
        self.state.update(leader=None, term=None)
        try:
            await self.ops.standby()
        except SetupError as exc:  # the port was taken while we led: the page is gone
            logger.warning("ha: {}", exc)

        async def warm() -> None:
            async for event in self._events():
                if isinstance(event, Liquidation):
                    self.detector.on_liquidation(event)  # nothing is sent

        task = asyncio.create_task(warm())
        try:
            while True:
                try:
                    term = await asyncio.to_thread(self.lease.acquire)
                except SQLAlchemyError as exc:  # the database is away: nobody can lead
                    logger.warning("ha: lease not readable: {}", exc.__class__.__name__)
                    term = None
                if term is not None:
                    return
                with contextlib.suppress(SQLAlchemyError):  # who leads, for status and metrics
                    now = await asyncio.to_thread(self.lease.current)
                    if now is not None:
                        self.state.update(leader=now[1] if now[2] else None, term=now[0])
                if pump.done():
                    pump.result()  # a feed that failed for good ends the run with its error
                await asyncio.sleep(self.renew_s)
        finally:
            task.cancel()  # an event it was waiting for stays in the queue for the leader
            await asyncio.gather(task, return_exceptions=True)

    async def _lead(self) -> int | None:
        """Trade until the term ends (None: back to standby) or the run ends (exit code)."""
        term = self.lease.term
        started = time.monotonic()
        self.timing: dict[str, float] = {"started": started}
        rt = build(
            self.ops.settings(),
            self.secrets,
            mode=self.mode,  # type: ignore[arg-type]
            identity=f"{self.mode}|{self.origin}",
            journal_url=self.url,
            approvals=self.approvals,
            console=self.console,
            source=self.origin,
            session=session_of(self.ha.group),
        )
        rt.journal.fence = self.lease.fence  # from here every commit proves the term
        self.timing["runtime"] = time.monotonic() - started
        renewer = asyncio.create_task(self._renew(started))
        await asyncio.sleep(0)  # renew at once: the build took part of the lease
        self._role("leader", term=term)
        tg = rt.extras.get("telegram")
        control = getattr(getattr(tg, "commands", None), "control", None)
        if control is not None:
            control.role = self.role_text  # /status says who leads
        await self.ops.lead(rt)
        self.timing["role"] = time.monotonic() - started
        trading = asyncio.create_task(self._trade(rt))
        try:
            done, _ = await asyncio.wait({renewer, trading}, return_when=asyncio.FIRST_COMPLETED)
            if trading in done:
                exc = trading.exception()
                if exc is None:
                    return 0  # the feeds ended
                if not isinstance(exc, JournalError | LostLease):
                    raise exc
                logger.warning("ha: stepping down: {}", exc)
            else:
                logger.warning("ha: stepping down: {}", renewer.exception())
            return None
        except asyncio.CancelledError:
            self.stopping = True
            raise
        finally:
            for t in (renewer, trading):
                t.cancel()
            await asyncio.gather(renewer, trading, return_exceptions=True)
            await self.ops.stop_leader()
            await self._close(rt)
            if not self.stopping:
                self._role("stepped down", term=term)

    async def _trade(self, rt: Runtime) -> None:
        orch = rt.orchestrator
        if self.live:  # reconcile with the venue, as a restart does
            await live_start(self.settings, rt.broker, rt.journal, lambda t: self.display.say(t))
        self.timing["venue"] = time.monotonic() - self.timing["started"]
        orch.restore()
        orch.detector = self.detector  # the standby's windows, full (the same object, always)
        await orch.resume()
        for det in list(self.seen):  # what the old leader may have died before answering
            if orch.unanswered(det):
                await orch.respond(det)
        self.timing["resumed"] = time.monotonic() - self.timing["started"]
        scheduler = build_scheduler(orch, live=True)
        await rt.start()
        scheduler.start()
        t = self.timing
        logger.info(
            "ha {}: trading {:.2f} s after the takeover (runtime built {:.2f} s, role {:.2f} s, "
            "venue reconciled {:.2f} s, journal resumed {:.2f} s)",
            self.ha.group, time.monotonic() - t["started"], t["runtime"], t["role"],
            t.get("venue", t["role"]), t["resumed"],
        )  # fmt: skip
        try:
            await orch.run(self._events())
        finally:
            scheduler.shutdown(wait=False)

    async def _renew(self, started: float) -> None:
        """Renew every renew_s; a term that cannot be proven in time ends here."""
        proven_until = started + self.lease.lease_s - self.lease.margin_s
        first = True
        while True:
            # at once after the runtime is built (a slow build must not eat the lease), then
            # every renew_s
            await asyncio.sleep(0 if first else self.renew_s)
            first = False
            asked = time.monotonic()
            try:
                ok = await asyncio.to_thread(self.lease.renew)
            except SQLAlchemyError as exc:
                if time.monotonic() > proven_until:
                    raise LostLease(f"lease not renewable ({exc.__class__.__name__})") from None
                continue
            if not ok:
                raise LostLease("another process holds the lease (or it expired)")
            proven_until = asked + self.lease.lease_s - self.lease.margin_s

    async def _close(self, rt: Runtime) -> None:
        # rows a stepped-down leader staged are not committed: a newer term owns the journal
        rt.journal.discard_staged()
        rt.journal.fence = None
        with contextlib.suppress(Exception):
            await rt.close()


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


async def stream_ha(
    settings: Settings,
    secrets: Secrets,
    origin: str,
    names: Sequence[str],
    live: bool,
    display: Any,
    *,
    journal: str | None = None,
    approvals: str | None = None,
    console: Any = None,
) -> int:
    """`liqguard run` under `ha:`: standby and leader in turn until stopped."""
    try:
        url = default_journal_url(journal or settings.journal.url)
        runner = HaRun(settings, secrets, origin, names, live, display, url, approvals, console)
    except (SetupError, ConfigError) as exc:
        display.say(str(exc), "error")
        return 2
    except JournalError as exc:
        display.say(str(exc), "error")
        return 1
    return await runner.run()
