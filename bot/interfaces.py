"""The small interfaces at each I/O edge. Each has a real implementation and a paper/fake one.

- Clock: wall time live, simulated time in a replay (timeouts run on it)
- LiveSource: an async stream of Liquidation / FeedStatus / PriceTick events
- Broker: portfolio in, orders out (paper or ccxt)
- Approver: may this action run? (auto, console, telegram)
- Notifier: tell people what happened (console, telegram, webhook)
- Journal: every step, durably, so a restart resumes
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any, Protocol, runtime_checkable

from bot.events import (
    ApprovalRequest,
    Decision,
    FeedStatus,
    Liquidation,
    OrderIntent,
    OrderResult,
    Portfolio,
    PriceTick,
)


@runtime_checkable
class Clock(Protocol):
    def now_ms(self) -> int:
        """Milliseconds since the epoch, wall or simulated."""
        ...

    async def sleep_until(self, ts_ms: int) -> None:
        """Return once `now_ms() >= ts_ms` (in simulated time: once the replay got there)."""
        ...


class LiveSource(Protocol):
    name: str

    def events(self) -> AsyncIterator[Liquidation | FeedStatus | PriceTick]:
        """Yield events as they arrive, forever, until `close()`."""
        ...

    async def close(self) -> None: ...


class Broker(Protocol):
    name: str  # "paper" or the ccxt exchange id

    async def portfolio(self) -> Portfolio:
        """The account as it is now (positions, balance, open orders, marks)."""
        ...

    async def submit(self, intent: OrderIntent, client_id: str) -> OrderResult:
        """Send one order (or cancel). Never blind-retried: see bot.brokers for the rules."""
        ...

    async def lookup(self, client_id: str, intent: OrderIntent) -> OrderResult | None:
        """The order with this client id, if the venue has it (after a timeout)."""
        ...

    async def close(self) -> None: ...


class Approver(Protocol):
    name: str

    async def decide(self, request: ApprovalRequest, clock: Clock) -> Decision:
        """Ask; return the decision, or the request's timeout default once the deadline passes."""
        ...


class Notifier(Protocol):
    name: str

    async def notify(self, event: object) -> None:
        """Tell people about an event of bot.events (or a Notice). Must not raise."""
        ...

    async def close(self) -> None: ...


class Journal(Protocol):
    def append(self, kind: str, ts_ms: int, payload: dict[str, Any], key: str | None = None) -> int:
        """Record one step. With `key`, a second append of the same key is a no-op."""
        ...

    def has(self, key: str) -> bool: ...

    def recent(
        self, limit: int = 50, kinds: Sequence[str] | None = None
    ) -> list[dict[str, Any]]: ...

    def get_state(self, name: str) -> dict[str, Any] | None: ...

    def put_state(self, name: str, value: dict[str, Any]) -> None: ...
