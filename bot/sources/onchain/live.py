"""A chain's liquidations, live: counted at confirmation depth, gapless across drops/restarts.

Contents: Cursor (what has been released, journaled), OnchainSource (a LiveSource):
events() -> Liquidation | FeedStatus, close().

Design ("the websocket is the doorbell, eth_getLogs is the ledger"):
- Counting: a block's logs are released to the detector once the block has `confirmations`
  confirmations, read by `eth_getLogs` over (cursor, head - confirmations + 1]: the node
  answers from its canonical chain, so what is released is canonical at the configured
  depth, complete, and never twice (the cursor moves past it). The detector never sees an
  unconfirmed log, so it needs no `withdraw()`.
- Waking up: a websocket `newHeads` subscription rings at each block; without a websocket
  (or while it is down and reconnecting) the loop polls every `poll_interval_s`. A drop, a
  restart, a slow consumer: the next release reads from the journaled cursor, so no gap.
- Reorgs: websocket `logs` are held as pending (priced and reported at once, marked
  unconfirmed, if `alert_unconfirmed`); when their block reaches the depth, a pending log
  whose (tx, log index, block hash) is not among the canonical logs is withdrawn: journaled
  (`onchain_withdrawn`), logged, reported. A reorg deeper than `confirmations` that replaces
  the cursor's own block is journaled (`onchain_deep_reorg`): choose the depth accordingly.
- Restart: the cursor is journaled before each event is handed over (state `onchain.<chain>`:
  last released block and hash, and the last event handed over inside an unfinished range),
  so a restart resumes after the last event delivered: none twice; at most the one event
  being handled when the process died is lost to the detector's window.
- Failures never end the stream: a log that cannot be read or valued (malformed, a token or
  oracle that reverts) is rejected, counted and journaled (`onchain_rejected`) and the range
  goes on; a node down or throttling is `reconnecting` (the range is read again later); any
  other failure of the loop (garbage answers, a bad key, a bug) is `blind` with its reason,
  retried with backoff; a newest block older than `max_head_age_s` is `blind` too
  (bot.sources.feeds.ChainHealth). Every reason is scrubbed of URLs (they embed API keys).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from loguru import logger
from web3 import AsyncWeb3, WebSocketProvider
from web3.utils.subscriptions import LogsSubscription, NewHeadsSubscription

from bot.events import FeedStatus, JournalKind, Liquidation
from bot.interfaces import Journal
from bot.logs import scrub
from bot.sources.feeds import ChainHealth
from bot.sources.onchain.events import LogRef, UndecodableLog, describe_raw, log_ref
from bot.sources.onchain.history import ChainMismatch, LogReader, RejectedLog
from bot.sources.onchain.pricing import watched_markets
from bot.sources.onchain.rpc import RpcError, describe

RECENT_RELEASED = 10_000  # released log keys kept to recognise late websocket copies
LogKey = tuple[str, str]  # (event_id, block_hash)


@dataclass(frozen=True, slots=True)
class Cursor:
    block: int  # every log up to this block has been released
    hash: str | None  # that block's hash when it was released (None mid-range)
    handed_through: tuple[int, int] | None = None  # (block, log index) delivered past `block`

    def to_state(self) -> dict[str, Any]:
        return {"block": self.block, "hash": self.hash, "handed_through": self.handed_through}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Cursor:
        through = state.get("handed_through")
        return cls(int(state["block"]), state.get("hash"), tuple(through) if through else None)


class OnchainSource:
    """Liquidations of one chain's lending markets, released at confirmation depth."""

    def __init__(
        self,
        chain_name: str,
        reader: LogReader,
        journal: Journal,
        ws_url: str | None = None,
        *,
        on_unconfirmed: Callable[[Liquidation], Awaitable[None]] | None = None,
        on_withdrawn: Callable[[LogRef, Liquidation | None], Awaitable[None]] | None = None,
        now_ms: Callable[[], int] = lambda: int(time.time() * 1000),
    ) -> None:
        self.name = f"onchain-{chain_name}"
        self.chain_name = chain_name
        self.state_name = f"onchain.{chain_name}"
        self.reader = reader
        self.chain = reader.chain
        self.journal = journal
        self.cursor: Cursor | None = None
        self._ws_url = ws_url
        self._on_unconfirmed = on_unconfirmed
        self._on_withdrawn = on_withdrawn
        self._now_ms = now_ms
        self._doorbell = asyncio.Event()
        self._statuses: deque[FeedStatus] = deque()
        self._pending: dict[LogKey, tuple[LogRef, Liquidation | None]] = {}
        self._recent: deque[LogKey] = deque(maxlen=RECENT_RELEASED)
        self._recent_set: set[LogKey] = set()
        self._closed = False
        self._failures = 0  # loop failures in a row (backoff)
        self.rejected = 0  # logs left out (malformed or not valuable), journaled
        covered = tuple(sorted({m.venue for m in watched_markets(self.chain).values()}))
        self.feed_covers = {self.name: covered}  # its lending markets' venues
        self.health = ChainHealth(self.name, self.chain.head_age_limit_s(), now_ms, covered)
        self._ws_task: asyncio.Task[None] | None = None
        self.ws_connected = asyncio.Event()  # set while subscribed (tests and status)

    # ------------------------------------------------------------------ LiveSource
    async def events(self) -> AsyncGenerator[Liquidation | FeedStatus, None]:
        """Released liquidations and feed status changes, until close()."""
        try:
            while not self._closed:
                try:
                    if self.cursor is None:  # a node down at start is retried like later
                        await self.reader.check_chain_id()
                        self.cursor = await self._initial_cursor()
                        if self._ws_url:
                            self._ws_task = asyncio.create_task(self._ws_loop(), name=self.name)
                    async for liq in self._release():
                        yield liq
                    if self.health.seconds_to_stale() <= 0:  # a long catch-up: is it still?
                        await self._observe_head()
                    self._failures = 0
                    self.health.problem("rpc", None)
                    self.health.problem("loop", None)
                except ChainMismatch:
                    raise  # a config error: retrying cannot fix it
                except RpcError as exc:
                    if exc.node_trouble:
                        self.health.problem("rpc", scrub(f"node not answering: {exc}"))
                    else:
                        self._loop_failed(exc)
                except Exception as exc:  # whatever it is, say it and keep watching the chain
                    self._loop_failed(exc)
                self._check_health()
                while self._statuses:
                    yield self._statuses.popleft()
                if self._closed:
                    break
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._doorbell.wait(), self._wait_s())
                self._doorbell.clear()
        finally:
            await self._stop_ws()

    def _loop_failed(self, exc: Exception) -> None:
        self._failures += 1
        detail = scrub(f"reading the chain failed: {type(exc).__name__}: {exc}")
        logger.error("{}: {} (failure {} in a row)", self.name, detail, self._failures)
        self.health.problem("loop", detail)

    def _wait_s(self) -> float:
        """Until the next read: the poll interval (backoff while failing), or the watchdog."""
        chain = self.chain
        wait_s = chain.poll_interval_s
        if self._failures:
            wait_s = min(chain.max_backoff_s, chain.backoff_s * 2 ** min(self._failures - 1, 8))
        to_stale_s = self.health.seconds_to_stale()
        if to_stale_s > 0:  # wake up when the head gets too old, to say so
            wait_s = min(wait_s, to_stale_s + 0.01)
        return max(0.01, wait_s)

    def _check_health(self, wake: bool = False) -> None:
        """Queue the status if the state changed; `wake` the loop to yield it (websocket task)."""
        status = self.health.check()
        if status is None:
            return
        log = logger.info if status.state == "live" else logger.warning
        log("{}: {} ({})", self.name, status.state, status.detail)
        self._statuses.append(status)
        if wake:
            self._doorbell.set()

    async def close(self) -> None:
        self._closed = True
        self._doorbell.set()
        await self._stop_ws()
        await self.reader.close()

    # ------------------------------------------------------------------ release
    async def _initial_cursor(self) -> Cursor:
        state = self.journal.get_state(self.state_name)
        if state is not None:
            cursor = Cursor.from_state(state)
            logger.info("{}: resuming after block {}", self.name, cursor.block)
            return cursor
        if self.chain.start_block is not None:
            cursor = Cursor(self.chain.start_block - 1, None)
        else:
            safe = await self.reader.head() - self.chain.confirmations + 1
            cursor = Cursor(safe, await self.reader.block_hash(safe) if safe >= 0 else None)
        self._save(cursor)
        logger.info("{}: first run, reading from block {}", self.name, cursor.block + 1)
        return cursor

    def _save(self, cursor: Cursor) -> None:
        self.cursor = cursor
        self.journal.put_state(self.state_name, cursor.to_state())

    async def _observe_head(self) -> int:
        """The node's head, told to the watchdog (with its timestamp when it is new)."""
        head = await self.reader.head()
        if self.health.head is None or head > self.health.head:
            self.health.head_seen(head, await self.reader.block_timestamp_at(head))
        return head

    async def _release(self) -> AsyncIterator[Liquidation]:
        """Hand over every log of (cursor, head - confirmations + 1], in chain order."""
        assert self.cursor is not None
        safe = await self._observe_head() - self.chain.confirmations + 1
        if safe <= self.cursor.block:
            return
        await self._check_cursor_block()
        safe_hash = await self.reader.block_hash(safe)
        released: set[LogKey] = set()
        async for _first, last, logs in self.reader.log_chunks(self.cursor.block + 1, safe):
            for raw in logs:
                try:
                    ref = log_ref(raw)
                except UndecodableLog as exc:
                    self._reject(raw, None, str(exc))
                    continue
                released.add((ref.event_id, ref.block_hash))
                through = self.cursor.handed_through
                if through is not None and ref.position <= through:
                    continue  # handed over before a restart
                try:
                    item = await self.reader.price(raw)
                except RejectedLog as exc:
                    self._reject(raw, ref, exc.reason)
                    continue
                if item is None:
                    continue
                self._save(Cursor(self.cursor.block, self.cursor.hash, ref.position))
                yield item[1]
            self._save(Cursor(last, safe_hash if last == safe else None))
        await self._reconcile(safe, released)

    def _reject(self, raw: Any, ref: LogRef | None, reason: str) -> None:
        """Count and journal a log left out; the range goes on."""
        self.rejected += 1
        reason = scrub(reason)
        payload: dict[str, Any] = {"chain": self.chain_name}
        if ref is not None:
            payload.update(
                tx_hash=ref.tx_hash, log_index=ref.log_index, event_id=ref.event_id,
                block_number=ref.block_number, block_hash=ref.block_hash, contract=ref.contract,
            )  # fmt: skip
            what, where = ref.event_id, f"{ref.event_id}:{ref.block_hash}"
        else:
            payload.update(describe_raw(raw))
            digest = hashlib.sha1(repr(sorted(payload.items())).encode(), usedforsecurity=False)
            what, where = "without position", digest.hexdigest()[:16]  # keyed by what it says
        payload["reason"] = reason
        logger.error("{}: log {} rejected: {}", self.name, what, reason)
        self.journal.append(JournalKind.ONCHAIN_REJECTED, self._now_ms(), payload,
                            key=f"onchain-rejected:{self.chain_name}:{where}")  # fmt: skip

    async def _check_cursor_block(self) -> None:
        assert self.cursor is not None
        if self.cursor.hash is None:
            return
        canonical = await self.reader.block_hash(self.cursor.block)
        if canonical != self.cursor.hash:
            logger.error(
                "{}: block {} was replaced after release (reorg deeper than {} confirmations)",
                self.name, self.cursor.block, self.chain.confirmations,
            )  # fmt: skip
            self.journal.append(
                JournalKind.ONCHAIN_DEEP_REORG,
                self._now_ms(),
                {"chain": self.chain_name, "block": self.cursor.block,
                 "released_hash": self.cursor.hash, "canonical_hash": canonical},
                key=f"onchain-deep-reorg:{self.chain_name}:{self.cursor.block}:{canonical}",
            )  # fmt: skip

    async def _reconcile(self, safe: int, released: set[LogKey]) -> None:
        """Pending websocket logs at or below `safe`: confirmed, or withdrawn if not canonical."""
        for key in released:
            if key not in self._recent_set:
                if len(self._recent) == self._recent.maxlen:
                    self._recent_set.discard(self._recent[0])
                self._recent.append(key)
                self._recent_set.add(key)
        for key, (ref, liq) in list(self._pending.items()):
            if ref.block_number > safe:
                continue
            del self._pending[key]
            if key not in released and key not in self._recent_set:
                await self._withdraw(ref, liq, "its block is no longer canonical")

    async def _withdraw(self, ref: LogRef, liq: Liquidation | None, reason: str) -> None:
        logger.warning("{}: log {} in block {} ({}) withdrawn: {}", self.name, ref.event_id,
                       ref.block_number, ref.block_hash, reason)  # fmt: skip
        payload: dict[str, Any] = {
            "chain": self.chain_name, "event_id": ref.event_id, "block_number": ref.block_number,
            "block_hash": ref.block_hash, "contract": ref.contract, "reason": reason,
            "alerted": liq is not None and self.chain.alert_unconfirmed,
        }  # fmt: skip
        if liq is not None:
            payload.update(venue=liq.venue, symbol=liq.symbol, notional_usd=liq.notional_usd)
        self.journal.append(
            JournalKind.ONCHAIN_WITHDRAWN, self._now_ms(), payload,
            key=f"onchain-withdrawn:{self.chain_name}:{ref.event_id}:{ref.block_hash}",
        )  # fmt: skip
        if self._on_withdrawn is not None:
            await self._on_withdrawn(ref, liq)

    # ------------------------------------------------------------------ websocket
    async def _ws_loop(self) -> None:
        failures = 0
        while not self._closed:
            try:
                async with AsyncWeb3(
                    WebSocketProvider(self._ws_url, max_connection_retries=1)
                ) as w3:
                    await w3.subscription_manager.subscribe([
                        NewHeadsSubscription(handler=self._on_head, label="heads"),
                        LogsSubscription(address=self.reader.addresses,  # type: ignore[arg-type]
                                         topics=[self.reader.topics],
                                         handler=self._on_log, label="logs"),
                    ])  # fmt: skip
                    self.ws_connected.set()
                    self.health.problem("ws", None)
                    self._check_health(wake=True)
                    failures = 0
                    self._doorbell.set()  # catch up on what happened while down
                    await w3.subscription_manager.handle_subscriptions(run_forever=True)
                raise ConnectionError("subscription ended")
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.ws_connected.clear()
                failures += 1
                self.health.problem("ws", scrub(
                    f"websocket down ({describe(exc)}); eth_getLogs every "
                    f"{self.chain.poll_interval_s:g}s meanwhile"
                ))  # fmt: skip
                self._check_health(wake=True)
            delay_s = min(self.chain.max_backoff_s, self.chain.backoff_s * 2 ** min(failures, 8))
            await asyncio.sleep(delay_s)

    async def _on_head(self, _ctx: Any) -> None:
        self._doorbell.set()

    async def _on_log(self, ctx: Any) -> None:
        raw = ctx.result
        try:
            ref = log_ref(raw)
        except UndecodableLog as exc:  # eth_getLogs rejects it (journaled) when confirmed
            logger.warning("{}: websocket log ignored: {}", self.name, scrub(str(exc)))
            return
        key = (ref.event_id, ref.block_hash)
        if raw.get("removed"):  # geth announces reorged logs; anvil does not
            entry = self._pending.pop(key, None)
            if entry is not None:
                await self._withdraw(entry[0], entry[1], "the node announced it removed")
            return
        if self.cursor is not None and ref.block_number <= self.cursor.block:
            return  # already released through eth_getLogs
        liq = None
        if self.chain.alert_unconfirmed:
            try:
                item = await self.reader.price(raw)
                liq = item[1] if item is not None else None
            except (RejectedLog, RpcError) as exc:  # judged again at confirmation depth
                logger.warning("{}: unconfirmed log {} not alerted: {}", self.name,
                               ref.event_id, scrub(str(exc)))  # fmt: skip
        self._pending[key] = (ref, liq)
        if liq is not None:
            self.journal.append(
                JournalKind.ONCHAIN_UNCONFIRMED, self._now_ms(),
                {"chain": self.chain_name, "event_id": ref.event_id,
                 "block_number": ref.block_number, "block_hash": ref.block_hash,
                 "venue": liq.venue, "symbol": liq.symbol, "notional_usd": liq.notional_usd},
                key=f"onchain-unconfirmed:{self.chain_name}:{ref.event_id}:{ref.block_hash}",
            )  # fmt: skip
            if self._on_unconfirmed is not None:
                await self._on_unconfirmed(liq)

    async def _stop_ws(self) -> None:
        task, self._ws_task = self._ws_task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.ws_connected.clear()
