"""JSON-RPC errors mapped once, and the one retry loop of the on-chain code.

Contents:
- RpcError (give up; `.kind` says why), RangeRefused (eth_getLogs range too wide / too many
  results: halve it); RpcError.node_trouble: the node is down or throttling (retry later),
  not answering nonsense or a revert (which retrying won't fix)
- classify(exc): "rate" | "refused" | "transient" | "fatal" (providers' wording differs, so
  JSON-RPC errors are read by code first, then by message; nothing else reads messages)
- RetryPolicy, call(): retry rate limits (429, -32005, "rate limit") and transient failures
  with exponential backoff; raise RangeRefused at once; raise RpcError otherwise
- http_web3(url): an AsyncWeb3 over HTTP without web3's own retries (ours are the only ones)

RPC URLs often carry an API key: no message here ever includes one.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import aiohttp
from loguru import logger
from web3 import AsyncHTTPProvider, AsyncWeb3
from web3.exceptions import ContractLogicError, Web3RPCError

from bot.logs import scrub

T = TypeVar("T")
ErrorClass = Literal["rate", "refused", "transient", "fatal"]

_RATE = re.compile(
    r"rate.?limit|too many requests|request rate|requests per|exceeded .*capacity|"
    r"compute units|daily request count|throughput|credits",
    re.IGNORECASE,
)
# Wordings of Infura, Alchemy, QuickNode, Ankr, geth/erigon/reth for a range or result cap.
_REFUSED = re.compile(
    r"block range|range limit|range is too|range too|too wide|max(imum)? range|"
    r"more than \d+ (results|logs|blocks)|too many (results|logs|blocks)|response size|"
    r"limited to|query timeout|exceeds? (the )?(max|limit)|log.* limit",
    re.IGNORECASE,
)
_TRANSIENT = re.compile(r"header not found|unknown block|timeout|temporarily|try again", re.I)


class RpcError(RuntimeError):
    """An RPC call failed for good (after the retries, or a refusal that retrying won't fix)."""

    def __init__(self, message: str, kind: ErrorClass = "fatal") -> None:
        super().__init__(message)
        self.kind = kind

    @property
    def node_trouble(self) -> bool:
        """Down, throttling or refusing ranges: the same call may work later."""
        return self.kind != "fatal"


class RangeRefused(RpcError):
    """The node refused an eth_getLogs range (too many blocks or results): ask for less."""

    def __init__(self, message: str) -> None:
        super().__init__(message, "refused")


def _rpc_error(exc: Web3RPCError) -> tuple[int | None, str]:
    response = exc.rpc_response or {}
    error = response.get("error") if isinstance(response, dict) else None
    if isinstance(error, dict):
        code = error.get("code")
        return (code if isinstance(code, int) else None), str(error.get("message", ""))
    return None, str(exc)


def classify(exc: BaseException) -> ErrorClass:
    """What to do about one failed RPC call."""
    if isinstance(exc, aiohttp.ClientResponseError):
        if exc.status == 429:
            return "rate"
        if exc.status == 413:
            return "refused"
        return "transient" if exc.status >= 500 else "fatal"
    if isinstance(exc, Web3RPCError):
        code, message = _rpc_error(exc)
        if code == 429 or _RATE.search(message):
            return "rate"
        if _REFUSED.search(message):
            return "refused"
        if code == -32005:  # EIP-1474 "limit exceeded": Infura's rate limit
            return "rate"
        if _TRANSIENT.search(message):
            return "transient"
        return "fatal"
    if isinstance(exc, TimeoutError | aiohttp.ClientConnectionError | ConnectionError):
        return "transient"
    return "fatal"


def describe(exc: BaseException) -> str:
    """A one-line description without URLs (aiohttp puts the request URL in its messages)."""
    if isinstance(exc, aiohttp.ClientResponseError):
        return f"HTTP {exc.status}"
    if isinstance(exc, Web3RPCError):
        code, message = _rpc_error(exc)
        return scrub(f"JSON-RPC error {code}: {message[:200]}")
    if isinstance(exc, ContractLogicError):  # a revert: its reason says which call and why
        return scrub(f"reverted: {str(exc)[:200]}")
    return type(exc).__name__


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    backoff_s: float = 1.0
    max_backoff_s: float = 30.0
    max_retries: int = 8


async def call(
    make: Callable[[], Awaitable[T]],
    what: str,
    policy: RetryPolicy,
    sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
) -> T:
    """Await `make()`, retrying rate limits and transient failures with backoff."""
    attempt = 0
    while True:
        try:
            return await make()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            kind = classify(exc)
            if kind == "refused":
                raise RangeRefused(f"{what}: refused by the node ({describe(exc)})") from exc
            if kind == "fatal" or attempt >= policy.max_retries:
                raise RpcError(f"{what}: {describe(exc)}", kind) from exc
            wait_s = min(policy.max_backoff_s, policy.backoff_s * 2**attempt)
            attempt += 1
            logger.warning(
                "{}: {} ({}), retry {}/{} in {:.2f}s",
                what, kind, describe(exc), attempt, policy.max_retries, wait_s,
            )  # fmt: skip
            await sleep(wait_s)


def http_web3(url: str, timeout_s: float = 30.0) -> AsyncWeb3:
    """AsyncWeb3 over HTTP; web3's built-in retries are off so `call` is the one retry loop."""
    provider = AsyncHTTPProvider(
        url,
        request_kwargs={"timeout": aiohttp.ClientTimeout(total=timeout_s)},
        exception_retry_configuration=None,
    )
    return AsyncWeb3(provider)
