"""Reading a chain's liquidation logs over a block range: chunked, refusal-proof, priced.

Contents:
- ChunkSizer: the eth_getLogs range, halved on each refusal, regrown after a run of successes
- ReaderStats: chunks, refusals, logs, unpriced
- ChainMismatch; RejectedLog (a log that cannot be read or valued: reason, position if any)
- LogReader: chain checks (chain id, head, block hashes), log_chunks(from, to), price(raw)
  (one log: Liquidation, None for another event, or RejectedLog), liquidations(from, to)
  (decoded and priced, in chain order, rejected ones logged and counted), block_at(ts_s)

A node down or throttling (RpcError.node_trouble) is never a rejection: it propagates, so the
caller retries the range later instead of losing the event.

Providers refuse wide ranges differently (a block cap, Infura's 10,000-result cap, free tiers
allowing 5-10 blocks): every refusal halves the range of the same request, so the reader
walks any provider without knowing its limit; rate limits back off (bot.sources.onchain.rpc).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
from loguru import logger
from web3 import AsyncWeb3

from bot.config.chains import ChainConfig
from bot.events import Liquidation
from bot.logs import scrub
from bot.sources.onchain.events import LogRef, UndecodableLog, decode_log
from bot.sources.onchain.pricing import Pricer, PricingError, log_filter_topics, watched_markets
from bot.sources.onchain.rpc import RangeRefused, RetryPolicy, RpcError, call

REGROW_AFTER = 8  # successes in a row before trying a range twice as wide again


class ChunkSizer:
    """The eth_getLogs range in blocks: halves on refusal, regrows slowly up to the maximum."""

    def __init__(self, max_blocks: int) -> None:
        self.max_blocks = max_blocks
        self.blocks = max_blocks
        self._ok_in_a_row = 0

    def refused(self, span: int) -> int:
        """The range to try after `span` blocks were refused; 0 if one block was refused."""
        self._ok_in_a_row = 0
        self.blocks = max(1, min(self.blocks, span) // 2) if span > 1 else 1
        return 0 if span <= 1 else self.blocks

    def succeeded(self) -> None:
        self._ok_in_a_row += 1
        if self._ok_in_a_row >= REGROW_AFTER and self.blocks < self.max_blocks:
            self.blocks = min(self.max_blocks, self.blocks * 2)
            self._ok_in_a_row = 0


@dataclass(slots=True)
class ReaderStats:
    chunks: int = 0
    refusals: int = 0
    logs: int = 0
    unpriced: int = 0  # rejected: malformed or not valuable (RejectedLog)


class ChainMismatch(RuntimeError):
    """The node serves another chain than the config says."""


class RejectedLog(ValueError):
    """A log left out: malformed, or it cannot be valued (a token or oracle that reverts)."""

    def __init__(self, reason: str, ref: LogRef | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.ref = ref


def _position(log: Any) -> tuple[int, int]:
    """Sort key of a raw log; a malformed one sorts first (and is rejected when read)."""
    try:
        return int(log["blockNumber"]), int(log["logIndex"])
    except (KeyError, TypeError, ValueError):
        return -1, -1


class LogReader:
    """One chain's liquidation logs over HTTP JSON-RPC (or any AsyncWeb3, e.g. eth-tester)."""

    def __init__(
        self,
        w3: AsyncWeb3,
        chain_name: str,
        chain: ChainConfig,
    ) -> None:
        self.w3 = w3
        self.chain_name = chain_name
        self.chain = chain
        self.policy = RetryPolicy(chain.backoff_s, chain.max_backoff_s, chain.max_retries)
        self.markets = watched_markets(chain)
        self.addresses = list(self.markets)
        self.topics = log_filter_topics(chain)
        self.pricer = Pricer(w3, self.markets, self.policy)
        self.sizer = ChunkSizer(chain.get_logs_chunk_blocks)
        self.stats = ReaderStats()
        self._timestamps: OrderedDict[str, int] = OrderedDict()  # block hash -> seconds

    async def close(self) -> None:
        """Close the HTTP session (AsyncWeb3 providers without one have nothing to close)."""
        disconnect = getattr(self.w3.provider, "disconnect", None)
        if disconnect is not None:
            await disconnect()

    async def check_chain_id(self) -> None:
        chain_id = await call(lambda: self.w3.eth.chain_id, "eth_chainId", self.policy)
        if chain_id != self.chain.chain_id:
            raise ChainMismatch(
                f"chains.{self.chain_name}: the node serves chain id {chain_id}, the config says "
                f"{self.chain.chain_id}; set chains.{self.chain_name}.chain_id and that chain's "
                "contract addresses (the defaults are Ethereum mainnet's)"
            )

    async def head(self) -> int:
        return int(await call(lambda: self.w3.eth.block_number, "eth_blockNumber", self.policy))

    async def block_timestamp_at(self, number: int) -> int:
        return int((await self._block(number))["timestamp"])

    async def _block(self, ident: int | str) -> Any:
        what = f"eth_getBlock({ident})"
        return await call(lambda: self.w3.eth.get_block(ident), what, self.policy)  # type: ignore[arg-type]

    async def block_hash(self, number: int) -> str:
        return "0x" + bytes((await self._block(number))["hash"]).hex()

    async def block_timestamp_s(self, ref: LogRef) -> int:
        if ref.block_timestamp_s is not None:
            return ref.block_timestamp_s
        if ref.block_hash not in self._timestamps:
            self._timestamps[ref.block_hash] = int((await self._block(ref.block_hash))["timestamp"])
            if len(self._timestamps) > 4096:
                self._timestamps.popitem(last=False)
        return self._timestamps[ref.block_hash]

    async def _get_logs(self, start: int, end: int) -> list[Any]:
        params: Any = {
            "fromBlock": start, "toBlock": end, "address": self.addresses, "topics": [self.topics]
        }  # fmt: skip
        what = f"eth_getLogs({start}-{end})"
        try:
            return list(await call(lambda: self.w3.eth.get_logs(params), what, self.policy))
        except RpcError as exc:
            cause = exc.__cause__
            if isinstance(cause, aiohttp.ClientResponseError) and cause.status == 400:
                raise RangeRefused(
                    str(exc)
                ) from cause  # some providers send range caps as HTTP 400
            raise

    async def log_chunks(self, start: int, end: int) -> AsyncIterator[tuple[int, int, list[Any]]]:
        """(first, last, logs) for consecutive ranges covering [start, end], logs in chain order."""
        block = start
        while block <= end:
            last = min(end, block + self.sizer.blocks - 1)
            try:
                logs = await self._get_logs(block, last)
            except RangeRefused as exc:
                self.stats.refusals += 1
                if self.sizer.refused(last - block + 1) == 0:
                    raise RpcError(f"{exc}; even a single block is refused") from exc
                logger.debug("{}: eth_getLogs {}-{} refused; now {} blocks",
                             self.chain_name, block, last, self.sizer.blocks)  # fmt: skip
                continue
            self.sizer.succeeded()
            self.stats.chunks += 1
            self.stats.logs += len(logs)
            logs.sort(key=_position)
            yield block, last, logs
            block = last + 1

    async def liquidations(self, start: int, end: int) -> AsyncIterator[tuple[LogRef, Liquidation]]:
        """Every watched liquidation in [start, end], priced at its block, in chain order."""
        async for _, _, logs in self.log_chunks(start, end):
            for raw in logs:
                item = await self.liquidation(raw)
                if item is not None:
                    yield item

    async def liquidation(self, raw: Any) -> tuple[LogRef, Liquidation] | None:
        """One raw log as a Liquidation (None, logged and counted, if rejected)."""
        try:
            return await self.price(raw)
        except RejectedLog as exc:
            what = exc.ref.event_id if exc.ref is not None else "(no position)"
            reason = scrub(exc.reason)
            logger.error("{}: liquidation {} left out: {}", self.chain_name, what, reason)
            return None

    async def price(self, raw: Any) -> tuple[LogRef, Liquidation] | None:
        """One raw log as a Liquidation; None for another event or contract.

        Raises RejectedLog (counted) for a log that cannot be read or valued, RpcError only
        for node trouble (retry later)."""
        try:
            decoded = decode_log(raw)
        except UndecodableLog as exc:
            self.stats.unpriced += 1
            raise RejectedLog(str(exc)) from exc
        if decoded is None or decoded.ref.contract not in self.markets:
            return None
        try:
            ts_ms = await self.block_timestamp_s(decoded.ref) * 1000
            return decoded.ref, await self.pricer.to_liquidation(decoded, ts_ms)
        except RpcError as exc:
            if exc.node_trouble:
                raise
            reason = str(exc)
        except PricingError as exc:
            reason = str(exc)
        except Exception as exc:  # a contract answering nonsense must not stop the chain
            reason = f"{type(exc).__name__}: {exc}"
        self.stats.unpriced += 1
        raise RejectedLog(reason, decoded.ref)

    async def block_at(self, ts_s: int) -> int:
        """The first block with a timestamp >= ts_s (the head + 1 if none yet)."""
        low, high = 0, await self.head()
        if int((await self._block(high))["timestamp"]) < ts_s:
            return high + 1
        while low < high:  # ~25 calls for Ethereum's height
            mid = (low + high) // 2
            if int((await self._block(mid))["timestamp"]) < ts_s:
                low = mid + 1
            else:
                high = mid
        return low
