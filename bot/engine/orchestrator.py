"""The orchestrator: the one place where decisions meet side effects.

Contents, in the order an event flows:
- handle(event): Liquidation -> detector; PriceTick -> paper marks, stops, liquidations, and a
  detector tick (calm, window drain); FeedStatus -> feed book, journal and notify
- paper mode: `market` (a bot.interfaces.PaperMarket, the account the paper broker fills) and
  the untouched `baseline` are driven here by the price ticks; live runs pass neither
- _respond(anomaly | calm): journal, notify, then for each policy action: plan (strategy, fenced)
  -> risk verdict -> an ActionExecutor task (approval, ladder, orders, fills)
- hot path: an action's records (anomaly, plan, verdict, decision, order sent) are staged and
  committed in ONE transaction just before its order goes out; key lookups hit the journal's
  in-memory index; notifications are queued (bot.notify.background) and delivered once the
  order is on its way; the garbage collector waits too (HotPath)
- reaction stages (metrics served: `record_reactions`): a live liquidation is stamped as it is
  taken here and when the detector answers; the auto-approved actions it spawns carry both
  stamps to their orders (bot.engine.execute); without a recorder no stamp is taken
- resume: restore detector / ladder / paper account from the journal and finish the actions a
  crash interrupted (keys say what is done; nothing is sent twice)
- checkpoint, status, tick / expire / heartbeat (scheduler jobs)
- set_trading_state / resume_trading: the ladder moved by a person (Telegram, console)

Restart design: every step has an idempotency key derived from a deterministic action id
(session, rule, trigger time, level, index). State snapshots, the count of events consumed and
the actions running are checkpointed together, at an event boundary.
- a replay (`rewinds`): the restart restores the checkpoint, re-drives the actions that were
  running at it, and plays the events after it again: each action meets its own trigger again
  and is completed from its journaled plan, decision and orders (looked up by client id; the
  simulated account, rewound with the events, gets the same orders again under the same ids),
  so everything resumes at its own time and a journaled step is never written twice
- live streams: the account is saved after every fill, and the restart re-drives every
  unfinished action of the session
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator, Awaitable, Callable
from time import perf_counter_ns
from typing import Any

from loguru import logger

from bot.clock import yield_turns
from bot.config.policy import PolicyConfig
from bot.detector import Detector
from bot.engine import ids
from bot.engine.execute import ActionExecutor
from bot.engine.policy import ResolvedAction
from bot.engine.state import Counters, StateStore, run_status
from bot.events import (
    Action,
    Anomaly,
    ApprovalMode,
    Calm,
    Event,
    FeedStatus,
    JournalKind,
    Liquidation,
    Notice,
    OptionMark,
    OptionSettlement,
    OrderResult,
    PaperLiquidation,
    Portfolio,
    PriceTick,
    RiskVerdict,
    TradingState,
    TradingStateChanged,
)
from bot.interfaces import (
    Approver,
    Broker,
    Clock,
    Journal,
    Notifier,
    PaperMarket,
    ReactionRecorder,
)
from bot.logs import redact
from bot.notify.background import EXIT_DELIVERY_S, BackgroundNotifier
from bot.risk import RiskGate
from bot.sources.feeds import FeedBook, tick_rules
from strategies.base import StrategyContext, StrategyError, run_plan


class HotPath:
    """Held while an event is handled or an order is on its way (nestable): notifications
    wait, and so does the garbage collector, whose passes over a heap of ccxt markets stalled
    orders by milliseconds; it runs as soon as the path is free (an event is handled in well
    under a millisecond, an order takes one round trip: the garbage made meanwhile is small).
    A plain context manager (`with hot():`): taken for every frame, a generator-based one cost
    a fifth of handling a liquidation."""

    def __init__(self, notifier: BackgroundNotifier) -> None:
        self.notifier = notifier
        self.depth = 0
        self._collecting = False  # the collector was on when the path was taken (else: leave it)

    def __call__(self) -> HotPath:
        return self

    def __enter__(self) -> None:
        if self.depth == 0:
            self._collecting = gc.isenabled()
            gc.disable()
        self.depth += 1
        self.notifier.take()

    def __exit__(self, *_exc: object) -> None:
        self.notifier.release()
        self.depth -= 1
        if self.depth == 0 and self._collecting:
            gc.enable()


class Orchestrator:
    def __init__(
        self,
        *,
        session: str,
        detector: Detector,
        risk: RiskGate,
        broker: Broker,
        journal: Journal,
        approver: Approver,
        notifier: Notifier,
        clock: Clock,
        policy: PolicyConfig,
        resolved: dict[str, ResolvedAction],
        market: PaperMarket | None = None,
        baseline: PaperMarket | None = None,
        checkpoint_every: int = 200,
        settle: Callable[[], Awaitable[None]] | None = None,
        rewinds: bool = False,
        feeds: FeedBook | None = None,
    ) -> None:
        self.session = session
        self.detector = detector
        self.risk = risk
        self.broker = broker
        self.paper = market  # paper mode: the account `broker` fills, driven here by prices
        self.baseline = baseline
        self.journal = journal
        self.notifier = (
            notifier if isinstance(notifier, BackgroundNotifier) else BackgroundNotifier(notifier)
        )
        self.notifier.before_delivery = self._lull  # nobody hears what is not on disk
        self.hot = HotPath(self.notifier)
        self._checkpoint_due = False  # live: asked by the event count, written when free
        self.clock = clock
        self.policy = policy
        self.resolved = resolved
        self.checkpoint_every = checkpoint_every
        self._settle = settle or yield_turns
        self.rewinds = rewinds  # a restart replays the events after the checkpoint
        self._cursor: dict[str, Any] | None = None
        self._driven: set[str] = set()  # actions spawned by this process
        self.counters = Counters()
        self.feeds = feeds or FeedBook(detector.rules)
        self.state = StateStore(
            session, journal, detector, self.risk, self.paper, baseline, clock, rewinds
        )
        self.tasks: set[asyncio.Task[str]] = set()
        self.reactions: ReactionRecorder | None = None
        self._stamps: tuple[int, int] | None = None  # (received_ns, detected_ns) being handled
        self.executor = ActionExecutor(
            session=session,
            journal=journal,
            broker=broker,
            approver=approver,
            notifier=self.notifier,
            clock=clock,
            risk=risk,
            on_change=self._save_account,
            hold=self.hot,
            rewinds=rewinds,
        )

    # -- input --------------------------------------------------------------------------------
    async def handle(self, event: Event) -> None:
        """One input event, fully processed (its immediate actions sent) before returning.
        Its rows are committed before any order they lead to, else with its notifications
        (between bursts), a checkpoint or the next write, whichever comes first."""
        if self.reactions is not None and isinstance(event, Liquidation) and event.received_ms:
            received_ns = perf_counter_ns()  # the event carries wall ms only: ours is the take
            with self.hot():
                await self._handle(event, received_ns)
            return
        with self.hot():
            await self._handle(event)

    def record_reactions(self, recorder: ReactionRecorder | None) -> None:
        """Stamp the stages of each order sent for a live anomaly into `recorder` (metrics)."""
        self.reactions = self.executor.reactions = recorder

    async def _handle(self, event: Event, received_ns: int = 0) -> None:
        self.counters.events += 1
        if isinstance(event, Liquidation) and await self._refused(event):
            pass  # too old or from the future: journaled and counted, never acted on
        elif isinstance(event, Liquidation):
            self.counters.liquidations += 1
            self.feeds.on_liquidation(event.venue, self.clock.now_ms())
            out = self.detector.on_liquidation(event)
            if received_ns and out:
                self._stamps = (received_ns, perf_counter_ns())
            if self.paper is not None:
                self.paper.set_stress(
                    max((s.window_usd for s in self.detector.status()), default=0)
                )
            try:
                for det in out:
                    await self._respond(det)
            finally:
                self._stamps = None
        elif isinstance(event, PriceTick):
            self.counters.prices += 1
            await self._on_price(event)
            await self._tick(event.ts_ms)
        elif isinstance(event, FeedStatus):
            told = self.feeds.on_status(event)  # every change journaled, alerts debounced
            self._log(JournalKind.FEED, event)
            for alert in told:
                await self.notifier.notify(alert)
        if self.counters.events % self.checkpoint_every == 0:
            if self.rewinds:
                self.checkpoint()  # a replay's resume point, at this event boundary
            else:  # live: once the path is free (a commit here stalled the next order)
                self._checkpoint_due = True

    def _checkpoint_if_free(self) -> None:
        """The checkpoint an event asked for, now that no event or order holds the path."""
        if self._checkpoint_due and self.hot.depth == 0:
            self._checkpoint_due = False
            self.checkpoint()

    async def _refused(self, liq: Liquidation) -> bool:
        """A live liquidation too old or from the future: journaled, counted, no action."""
        refused = self.feeds.admit(liq)
        for alert in self.feeds.skew_alerts(self.clock.now_ms()):
            self._log(JournalKind.FEED, alert)
            await self.notifier.notify(alert)
        if refused is None:
            return False
        kind, reason = refused
        extra: dict[str, Any] = (
            {"counted": self.feeds.counts_deleveraged(liq)} if kind == "deleveraged" else {}
        )
        self._log(JournalKind(f"liquidation_{kind}"), liq, reason=reason, **extra)
        return True

    async def run(self, events: AsyncIterator[Event]) -> None:
        """Handle every event; on cancel (Ctrl-C) stop the actions and checkpoint, then re-raise."""
        try:
            async for event in events:
                await self.handle(event)
            await self.finish()
        except asyncio.CancelledError:
            await self.stop()
            raise

    async def finish(self) -> None:
        """Wait for running actions (TWAP tails, approvals), then checkpoint as finished."""
        while self.tasks:
            await asyncio.gather(*list(self.tasks), return_exceptions=True)
        self.checkpoint(finished=True)
        await self.notifier.flush(EXIT_DELIVERY_S)

    async def stop(self) -> None:
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*list(self.tasks), return_exceptions=True)
        self.checkpoint()
        await self.notifier.flush(EXIT_DELIVERY_S)  # what was queued is told, or reported
        logger.info("stopped; journal checkpointed at {} events", self.counters.events)

    async def _on_price(self, tick: PriceTick) -> None:
        if self.baseline is not None:
            self.baseline.on_price(tick)
        if self.paper is None:
            return
        for item in self.paper.on_price(tick):
            if isinstance(item, OrderResult):
                await self.executor.record_result(item, item.client_id.rsplit("-", 1)[0])
            elif isinstance(item, OptionMark):
                self._log(JournalKind.OPTION_MARK, item)  # staged: commits with the next write
            elif isinstance(item, OptionSettlement):
                await self._option_settled(item)
            else:
                await self._paper_liquidated(item)

    async def _option_settled(self, s: OptionSettlement) -> None:
        self._log(
            JournalKind.OPTION_SETTLEMENT, s, key=f"settle:{self.session}:{s.venue}:{s.symbol}"
        )
        self._save_account()
        text = f"{s.size:g} {s.symbol} settled at {s.underlying:,.2f}: {s.intrinsic_coin:.4f}"
        await self.notifier.notify(
            Notice(s.ts_ms, "Paper option expired", f"{text} each; PnL {s.realized_usd:,.0f}")
        )

    async def _paper_liquidated(self, liq: PaperLiquidation) -> None:
        key = f"liq:{self.session}:{liq.venue}:{liq.symbol}:{liq.side}:{liq.ts_ms}"
        new = self._log(JournalKind.PAPER_LIQUIDATION, liq, key=key)
        self._save_account()
        if not new:
            return  # replayed after a restart: told before
        text = f"{liq.size:g} {liq.symbol} {liq.side} closed at {liq.price:,.2f}"
        await self.notifier.notify(
            Notice(
                liq.ts_ms,
                "Paper position LIQUIDATED",
                f"{text}; PnL {liq.realized_usd:,.0f}",
                "critical",
                page=True,
            )
        )

    # -- response -----------------------------------------------------------------------------
    async def respond(self, event: Anomaly | Calm) -> None:
        """Answer a detection made elsewhere (an ha standby's warm detector) as if just seen."""
        with self.hot():
            await self._respond(event)

    def unanswered(self, event: Anomaly | Calm) -> bool:
        """Whether the journal lacks this detection, or a plan or end of one of its actions (a
        process that died between committing the detection and planning its actions)."""
        return not self.journal.has(self._detection_key(event)) or bool(self._unplanned(event))

    def _detection_key(self, event: Anomaly | Calm) -> str:
        if isinstance(event, Anomaly):
            return ids.anomaly_key(self.session, event.rule, event.ts_ms, event.level)
        return ids.calm_key(self.session, event.rule, event.ts_ms)

    def _unplanned(self, event: Anomaly | Calm) -> list[tuple[str, str]]:
        """(policy path, action id) of the event's actions with neither a plan nor an end."""
        out = []
        for path, index, tag in self._actions_for(event):
            aid = ids.action_id(self.session, event.rule, event.ts_ms, tag, index)
            if not (self.journal.has(ids.plan_key(aid)) or self.journal.has(ids.end_key(aid))):
                out.append((path, aid))
        return out

    async def _respond(self, event: Anomaly | Calm) -> None:
        key = self._detection_key(event)
        if isinstance(event, Anomaly):
            n = self.counters.anomalies_by_level
            n[event.level] = n.get(event.level, 0) + 1
            new = self._log(JournalKind.ANOMALY, event, key=key)
        else:
            self.counters.calms += 1
            new = self._log(JournalKind.CALM, event, key=key)
        if new:  # replayed after a restart: told before
            await self.notifier.notify(event)
        await self._answer(event, key)

    async def _answer(self, event: Anomaly | Calm, key: str) -> None:
        """Plan every action of a detection, then mark it answered (a restart's watermark)."""
        for path, index, level in self._actions_for(event):
            await self._run_action(event, path, index, level)
        self._log(JournalKind.DETECTION_ANSWERED, {"detection": key}, key=ids.answered_key(key))

    def _actions_for(self, event: Anomaly | Calm) -> list[tuple[str, int, int | str]]:
        """(resolved path, index, level tag) of the policy actions answering this event."""
        block = self.policy.for_rule(event.rule)
        prefix = f"policy.rules.{event.rule}" if event.rule in self.policy.rules else "policy"
        if isinstance(event, Calm):
            return [(f"{prefix}.calm[{i}]", i, "calm") for i in range(len(block.calm))]
        chosen, actions = block.actions_for_level(event.level)
        return [(f"{prefix}.levels.{chosen}[{i}]", i, event.level) for i in range(len(actions))]

    async def _run_action(self, trigger: Anomaly | Calm, path: str, index: int, tag: Any) -> None:
        spec = self.resolved[path]
        aid = ids.action_id(self.session, trigger.rule, trigger.ts_ms, tag, index)
        if aid in self._driven:
            return  # running already (re-driven at the restart)
        planned = self.journal.has(ids.plan_key(aid))
        if not self.rewinds and (planned or self.journal.has(ids.end_key(aid))):
            return  # planned before a restart: finished, or re-driven by resume()
        if not planned and self.journal.has(ids.end_key(aid)):
            return  # failed before it planned (account unreadable, strategy error): told
        self.counters.actions += 1
        now = self.clock.now_ms()
        if planned:  # replayed after a restart: its journaled plan is completed, never redone
            await self._complete(aid, path, now)
            return
        try:
            portfolio = await self.broker.portfolio()
        except Exception as exc:  # a venue timing out mid-cascade must not end the bot
            reason = redact(f"cannot read the account: {type(exc).__name__}: {exc}")
            self._log(
                JournalKind.ACTION_FAILED,
                {"action_id": aid, "strategy": spec.config.strategy, "error": reason},
                key=ids.end_key(aid),
                path=path,
            )
            await self.notifier.notify(
                Notice(now, f"Action {spec.config.strategy} not run", reason, "critical", page=True)
            )
            return
        ctx = StrategyContext(trigger, portfolio, dict(portfolio.prices), now, aid)
        level = trigger.level if isinstance(trigger, Anomaly) else 0
        try:
            plan = run_plan(spec.strategy(), ctx, spec.params)
        except StrategyError as exc:
            self._log(
                JournalKind.STRATEGY_FAILED,
                {"action_id": aid, "strategy": spec.config.strategy, "error": str(exc)},
                key=ids.end_key(aid),
                path=path,
            )
            await self.notifier.notify(
                Notice(now, f"Strategy {spec.config.strategy} failed", str(exc), "warning")
            )
            return
        action = ids.new_action(aid, trigger, level, spec, plan, now)
        if not action.intents and action.ladder_target is None and not plan.page_humans:
            self._log(JournalKind.ACTION_PLANNED, action, key=ids.plan_key(aid), path=path)
            if plan.missing:  # it could not act for lack of data: say exactly that
                status = f"failed: {'; '.join(plan.missing)}"
                self.executor.end(action, status, plan.summary, flush=False)
                title = f"Action {spec.config.strategy} {status}"
                await self.notifier.notify(Notice(now, title, plan.summary, "critical", page=True))
                return
            self.executor.end(action, "nothing to do", plan.summary, flush=False)
            return
        self._log(
            JournalKind.ACTION_PLANNED,
            action,
            key=ids.plan_key(aid),
            path=path,
            page_humans=plan.page_humans,
        )
        await self.notifier.notify(action)
        await self._proceed(action, portfolio, now, plan.page_humans)

    async def _proceed(
        self, action: Action, portfolio: Portfolio, now: int, page_humans: bool, told: bool = False
    ) -> None:
        """After the plan: notify-only ends, else the risk verdict, then the executor."""
        if action.approval == ApprovalMode.NOTIFY:
            self.executor.end(action, "notified", flush=False)
            return
        verdict = self.risk.check(action, portfolio, now)  # also the gate's memory of actions
        if (journaled := self.journal.find_key(ids.risk_key(action.action_id))) is not None:
            verdict = _verdict_of(action.action_id, journaled["payload"])  # what was checked
        elif not self._log(JournalKind.RISK_VERDICT, verdict, key=ids.risk_key(action.action_id)):
            told = True
        if verdict.denied and not told:
            await self.notifier.notify(verdict)
        if not verdict.allowed and action.ladder_target is None:
            self.executor.end(action, "refused", verdict.reason, flush=False)
            return
        self._spawn(action, verdict, page_humans)
        await self._settle()  # immediate effects land before the next action plans

    async def _complete(self, aid: str, path: str, now: int) -> None:
        """An action planned before a restart, met again in the replay: finish it from its
        journaled plan at its own trigger time (finished ones redo only the simulated account)."""
        entry = self.journal.find_key(ids.plan_key(aid))
        assert entry is not None
        p = entry["payload"]
        action = ids.action_from(p)
        logger.info("completing action {} ({}) from the journal", aid, action.strategy)
        if not action.intents and action.ladder_target is None and not p.get("page_humans"):
            self.executor.end(action, "nothing to do", action.summary, flush=False)
            return
        portfolio = await self.broker.portfolio()
        await self._proceed(action, portfolio, now, bool(p.get("page_humans")), told=True)

    def _spawn(self, action: Action, verdict: RiskVerdict, page_humans: bool) -> None:
        self._driven.add(action.action_id)
        if self._stamps is not None and action.approval == ApprovalMode.AUTO:
            self.executor.stamps[action.action_id] = self._stamps  # a person's wait is no stage
        task = asyncio.create_task(
            self.executor.execute(action, verdict, page_humans), name=action.action_id
        )
        self.tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[str]) -> None:
        self.tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            exc = task.exception()
            logger.error("action {} crashed: {}: {}", task.get_name(), type(exc).__name__, exc)
            self._log(JournalKind.FAILURE, {"action_id": task.get_name(), "error": repr(exc)})
            self.journal.flush()

    # -- state --------------------------------------------------------------------------------
    def checkpoint(self, finished: bool = False) -> None:
        """Detector, ladder, paper accounts and the event cursor, in one transaction."""
        self.state.checkpoint(
            self.counters, finished, running=sorted(t.get_name() for t in self.tasks)
        )

    def _save_account(self) -> None:
        self.state.save_account()

    def restore(self) -> dict[str, Any] | None:
        """Load this session's checkpoint; return the cursor (None: a fresh start)."""
        restored = self.state.restore()
        if restored is None:
            return None
        cursor, self.counters = restored
        self._cursor = cursor
        return cursor

    async def resume(self) -> int:
        """Re-drive actions planned before a restart: in a replay, those running at the
        checkpoint (the replay meets the later ones again); live, every unfinished one."""
        planned = self.journal.find(kinds=[JournalKind.ACTION_PLANNED])
        running = set((self._cursor or {}).get("running", ())) if self.rewinds else None
        resumed = 0
        for entry in planned:
            p = entry["payload"]
            if p.get("session") != self.session or p["action_id"] in self._driven:
                continue
            if running is not None and p["action_id"] not in running:
                continue
            if running is None and self.journal.has(ids.end_key(p["action_id"])):
                continue
            action = ids.action_from(p)
            risk = self.journal.find_key(ids.risk_key(action.action_id))
            if risk is None:
                portfolio = await self.broker.portfolio()
                verdict = self.risk.check(action, portfolio, self.clock.now_ms())
                self._log(JournalKind.RISK_VERDICT, verdict, key=ids.risk_key(action.action_id))
            else:
                verdict = _verdict_of(action.action_id, risk["payload"])
            logger.info("resuming action {} ({})", action.action_id, action.strategy)
            self._spawn(action, verdict, bool(p.get("page_humans")))
            resumed += 1
        await self._settle()
        if not self.rewinds:  # a replay meets its detections again; live, they are gone
            resumed += await self._answer_left()
        return resumed

    async def _answer_left(self) -> int:
        """Live: the detections journaled after the last one marked answered whose actions
        were never planned (the process died between committing the detection, with a first
        action's order, and planning the next). One still inside its rule's escalation window
        is answered now; an older one is told to a person and journaled as not run, never
        acted on late. Detections before the mark were answered in full, under the policy of
        then: a policy changed since does not reach back to them."""
        windows = {r.name: r.escalation_window_ms for r in self.detector.rules}
        kinds = [JournalKind.ANOMALY, JournalKind.CALM, JournalKind.DETECTION_ANSWERED]
        mine = self.session
        rows = [e for e in self.journal.find(kinds=kinds) if e["payload"].get("session") == mine]
        marks = [i for i, e in enumerate(rows) if e["kind"] == JournalKind.DETECTION_ANSWERED]
        answered = 0
        for entry in rows[marks[-1] + 1 :] if marks else rows:
            if entry["kind"] == JournalKind.DETECTION_ANSWERED:
                continue
            event = ids.detection_from(str(entry["kind"]), entry["payload"])
            if not self.unanswered(event):
                continue
            age_ms = self.clock.now_ms() - event.ts_ms
            window_ms = windows.get(event.rule)
            if window_ms is not None and age_ms <= window_ms:
                logger.warning("answering {} of {} at {}: not answered before the restart",
                               type(event).__name__, event.rule, event.ts_ms)  # fmt: skip
                with self.hot():
                    await self._answer(event, str(entry["key"]))
                answered += 1
            else:
                await self._too_late(event, str(entry["key"]), age_ms)
        await self._settle()
        return answered

    async def _too_late(self, event: Anomaly | Calm, key: str, age_ms: int) -> None:
        """A detection left unanswered past its escalation window: its missing actions are
        journaled as not run, and a person is paged."""
        now = self.clock.now_ms()
        reason = (
            f"not planned before the restart, and {age_ms / 60_000:.0f} min old by then (past "
            f"rule {event.rule}'s escalation window): not run"
        )
        for path, aid in self._unplanned(event):
            strategy = self.resolved[path].config.strategy
            self._log(
                JournalKind.ACTION_FAILED,
                {"action_id": aid, "strategy": strategy, "error": reason},
                key=ids.end_key(aid),
                path=path,
            )
            title = f"Action {strategy} not run"
            await self.notifier.notify(Notice(now, title, reason, "critical", page=True))
        self._log(JournalKind.DETECTION_ANSWERED, {"detection": key}, key=ids.answered_key(key))
        self.journal.flush()

    def _lull(self) -> None:
        """Between bursts, before notifications go out: commit the journal, fold its WAL."""
        self.journal.flush()
        if self.hot.depth == 0:  # a delivery forced mid-cascade (hold_max_s) folds nothing
            self._checkpoint_if_free()
            self.journal.compact()

    def _log(self, kind: JournalKind, obj: Any, key: str | None = None, **extra: Any) -> bool:
        return self.executor.log(kind, obj, key=key, **extra)

    # -- scheduler jobs and people --------------------------------------------------------------
    async def tick(self) -> None:
        """Wall-clock tick (live): advance the detector clocks, drain windows, emit calm; the
        rules that count a blind feed keep their clocks (no calm on a dead feed)."""
        with self.hot():
            await self._tick(self.clock.now_ms())
        self._checkpoint_if_free()

    async def _tick(self, now_ms: int) -> None:
        for alert in self.feeds.due(now_ms):
            await self.notifier.notify(alert)
        for calm in tick_rules(self.detector, now_ms, self.feeds.frozen_rules(now_ms)):
            await self._respond(calm)

    def expire_approvals(self) -> int:
        return self.executor.expire_overdue()

    async def refresh_portfolio(self) -> None:
        """Read the account back from the broker and keep its shape in the journal state."""
        self.state.save_portfolio(await self.broker.portfolio())

    async def heartbeat(self) -> None:
        self.state.heartbeat(self.counters.events)
        if self.hot.depth == 0:  # the WAL is folded when no event or order is on its way
            self.journal.compact(every_commits=1)

    async def set_trading_state(
        self, state: TradingState, reason: str, by: str
    ) -> TradingStateChanged:
        """A person moves the ladder (pause, halt, resume): journaled, saved, notified."""
        change = self.risk.set_state(TradingState(state), reason, by, self.clock.now_ms())
        self._log(JournalKind.LADDER, change)
        self._save_account()  # commits the ladder row with the ladder state
        await self.notifier.notify(change)
        return change

    async def resume_trading(self, by: str, reason: str = "resumed by a person") -> None:
        """A person moves the ladder back to ACTIVE (halt stays until this is called)."""
        await self.set_trading_state(TradingState.ACTIVE, reason, by)

    def status(self) -> dict[str, Any]:
        """The live view: levels and windows per rule, ladder, feeds, positions, PnL."""
        out = run_status(self.state, self.counters, len(self.tasks))
        out["feeds"] = self.feeds.view(self.clock.now_ms())
        return out


def _verdict_of(action_id: str, p: dict[str, Any]) -> RiskVerdict:
    """The journaled risk verdict (allowed intents and the ladder state they were checked in)."""
    allowed = tuple(ids.intent_from(i) for i in p["allowed"])
    return RiskVerdict(action_id, allowed, state=TradingState(p.get("state", TradingState.ACTIVE)))
