"""The hooks the runner calls: Ops(runtime, say), start(), on_event(event), close().

Nothing is started unless asked for (metrics.listen, http.listen, healthcheck.ping_url, or
$NOTIFY_SOCKET from systemd): a plain `liqguard run` opens no port and runs no extra task.
"""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from aiohttp import web

from bot.config.ops import parse_listen
from bot.events import Event, FeedStatus, JournalKind, Liquidation, TradingState
from bot.logs import register_secrets
from bot.ops import http
from bot.ops.journal_tail import JournalTail, Row
from bot.ops.metrics import CONTENT_TYPE, Metrics
from bot.ops.watchdog import Watchdog

RECENT = 12  # anomalies and actions shown on the page
LEVELS_DRAWN = 3  # threshold lines per rule chart


class Ops:
    def __init__(self, rt: Any, say: Callable[[str], None], env: dict[str, str] | None = None):
        self.rt = rt
        self.say = say
        self.env = dict(os.environ if env is None else env)
        s = rt.settings
        self.wanted = bool(s.metrics.listen or s.http.listen or s.healthcheck.ping_url) or bool(
            self.env.get("NOTIFY_SOCKET") or "paging" in rt.extras  # paging: the watchdog pages
        )
        self.last_event_s: dict[str, float] = {}
        self.rejected: dict[str, Callable[[], int]] = {}
        self._rejected_seen: dict[str, int] = {}
        self.metrics: Metrics | None = None
        self.tail: JournalTail | None = None
        self.watchdog: Watchdog | None = None
        self.servers: list[web.AppRunner] = []
        self.urls: dict[str, str] = {}
        self.anomalies: deque[dict[str, Any]] = deque(maxlen=RECENT)
        self.actions: deque[dict[str, Any]] = deque(maxlen=RECENT)
        self.strategies: dict[str, str] = {}
        self.asked: dict[str, dict[str, Any]] = {}

    # -- hooks ----------------------------------------------------------------------------
    def on_event(self, event: Event) -> None:
        if not self.wanted:
            return
        now = time.time()
        feed = event.venue if isinstance(event, Liquidation | FeedStatus) else "prices"
        self.last_event_s[feed] = now
        if self.metrics is not None:
            self.metrics.on_event(event, now)

    def count_rejected(self, source: str, count: Callable[[], int]) -> None:
        """`count()`: rows of `source` rejected so far (read at each scrape)."""
        self.rejected[source] = count

    # -- start and stop -------------------------------------------------------------------
    async def start(self) -> None:
        if not self.wanted:
            return
        rt, s = self.rt, self.rt.settings
        self.tail = JournalTail(rt.journal)
        self.tail.listeners.append(self._on_row)
        approver = rt.approver
        if s.metrics.listen:
            self.metrics = Metrics(rt.orchestrator, self.tail, approver)
            rt.orchestrator.record_reactions(self.metrics)
        self.watchdog = Watchdog(
            s.healthcheck,
            lambda: self.tail.last_commit_s if self.tail else None,
            lambda: self.last_event_s,
            self.env,
            on_lag=self.metrics.loop_lag.set if self.metrics else None,
            on_health=getattr(rt.extras.get("paging"), "health_changed", None),
        )
        if s.healthcheck.ping_url:
            register_secrets([s.healthcheck.ping_url])  # its path is often the secret part
        health = self.watchdog.health
        if s.metrics.listen:
            metrics = self.metrics
            assert metrics is not None

            def scrape() -> bytes:
                self._count_rejected(metrics)
                return metrics.scrape()

            app = http.metrics_app(scrape, CONTENT_TYPE, health)
            self.urls["metrics"] = await self._serve(app, s.metrics.listen, "metrics.listen")
            self.say(f"metrics on {self.urls['metrics']}metrics{_exposure(s.metrics.listen)}")
        if s.http.listen:
            token = self.env.get(s.http.token_env) or None
            if token:
                register_secrets([token])
            controls = self._controls()
            app = http.status_app(
                self.snapshot, health, token, controls, allowed_hosts=s.http.allowed_hosts
            )
            self.urls["http"] = await self._serve(app, s.http.listen, "http.listen")
            buttons = "buttons on (token set)" if token else f"read-only (no ${s.http.token_env})"
            self.say(f"status page on {self.urls['http']}, {buttons}{_exposure(s.http.listen)}")
        self.watchdog.start()

    async def _serve(self, app: web.Application, listen: str, field: str) -> str:
        server, host, bound = await http.serve_listen(app, listen, field)
        self.servers.append(server)
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{bound}/"

    async def close(self) -> None:
        if self.watchdog is not None:
            await self.watchdog.close()
        for server in self.servers:
            await server.cleanup()
        self.servers.clear()
        if self.tail is not None:
            self.tail.close()

    # -- the page -------------------------------------------------------------------------
    def _on_row(self, row: Row) -> None:
        kind, p = str(row["kind"]), row["payload"] or {}
        if kind == JournalKind.ANOMALY:
            self.anomalies.appendleft(
                {k: p.get(k) for k in ("ts_ms", "rule", "level", "window_usd", "threshold_usd")}
            )
        elif kind == JournalKind.ACTION_PLANNED:
            self.strategies[str(p.get("action_id"))] = str(p.get("strategy"))
        elif kind == JournalKind.ACTION_END:
            self.actions.appendleft(
                {"ts_ms": row["ts_ms"], **{k: p.get(k) for k in ("strategy", "status", "detail")}}
            )
        elif kind == JournalKind.APPROVAL_REQUEST:
            self.asked[str(p.get("action_id"))] = p
        elif kind == JournalKind.DECISION:
            self.asked.pop(str(p.get("action_id")), None)

    def _count_rejected(self, metrics: Metrics) -> None:
        for source, count in self.rejected.items():
            now = count()
            metrics.on_rejected(source, now - self._rejected_seen.get(source, 0))
            self._rejected_seen[source] = now

    def _votes(self) -> Any:
        approver = self.rt.approver
        ok = callable(getattr(approver, "vote", None)) and callable(
            getattr(approver, "pending", None)
        )
        return approver if ok else None

    def _controls(self) -> http.Controls:
        rt = self.rt
        from bot.app.telegram_control import RuntimeControl  # Telegram and charts load slowly

        control = RuntimeControl(rt.orchestrator, rt.broker, rt.journal, rt.settings)
        votes = self._votes()

        async def vote(request_id: str, approve: bool, now_ms: int) -> str:
            # the same count as a Telegram button or /approve: one code path, one journal
            from bot.telegram.auth import Voter  # the Telegram library: only when voting

            return str(await votes.vote(request_id, Voter(0, "status page"), approve, now_ms))

        async def set_state(state: str, reason: str, by: str) -> Any:
            return await control.set_state(TradingState(state), reason, by)

        desk = rt.extras.get("overrides") if isinstance(rt.extras, dict) else None
        change = confirm = None
        if desk is not None:

            async def change(command: str, who: str) -> tuple[str, str | None]:
                words = command.split()
                if not words or not words[0].startswith("/"):
                    return "give a command, e.g. /threshold all 2500000", None
                return await desk.ask(words[0][1:].lower(), words[1:], who)

            async def confirm(request_id: str, approve: bool) -> str:
                return await desk.vote(request_id, "status page", 0, approve)

        return http.Controls(
            vote if votes is not None else None,
            set_state,
            rt.journal.append,
            rt.clock.now_ms,
            change,
            confirm,
        )

    async def snapshot(self) -> dict[str, Any]:
        rt = self.rt
        if self.tail is not None:
            self.tail.poll()
        status = rt.orchestrator.status()
        rules = {r.name: r for r in rt.settings.rules}
        out_rules = []
        for r in status["rules"]:
            cfg = rules.get(r["rule"])
            steps = max(LEVELS_DRAWN, int(r["level"]) + 1)
            lines = [cfg.threshold_usd * cfg.factor**k for k in range(steps)] if cfg else []
            out_rules.append({**r, "thresholds_usd": lines})
        votes = self._votes()
        if votes is not None:
            pending = [
                {
                    "request_id": p["request_id"],
                    "action_id": p["action_id"],
                    "strategy": self.strategies.get(p["action_id"], ""),
                    "deadline_ts_ms": p["deadline_ts_ms"],
                    "needed": p.get("needed", 1),
                    "approvals": len(p.get("approvals", [])),
                }
                for p in votes.pending()
            ]
        else:
            pending = [
                {
                    "request_id": p.get("request_id"),
                    "action_id": aid,
                    "strategy": self.strategies.get(aid, ""),
                    "deadline_ts_ms": p.get("deadline_ts_ms"),
                }
                for aid, p in self.asked.items()
            ]
        token_set = bool(self.env.get(rt.settings.http.token_env))
        return {
            "mode": rt.mode,
            "session": rt.session,
            "now_ms": status["ts_ms"],
            "ladder": status["ladder"],
            "events": status["events"],
            "rules": out_rules,
            "feeds": status.get("feeds", {}),
            "positions": status.get("positions", []),
            "pnl_usd": status.get("pnl_usd"),
            "equity_usd": status.get("equity_usd"),
            "anomalies": list(self.anomalies),
            "actions": list(self.actions),
            "pending": pending,
            "controls": token_set,
            "votes": votes is not None,
        }


def _exposure(listen: str) -> str:
    host, _ = parse_listen(listen, "listen")
    if host in ("127.0.0.1", "localhost", "::1") or host.startswith("127."):
        return " (loopback only)"
    return f" (bound to {host}: reachable from the network)"
