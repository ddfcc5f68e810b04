"""The small interfaces at each I/O edge. Each has a real implementation and a paper/fake one.

- Clock: wall time live, simulated time in a replay (timeouts run on it)
- LiveSource: an async stream of Liquidation / FeedStatus / PriceTick events
- Broker: portfolio in, orders out (paper or ccxt)
- Approver: may this action run? (auto, console, telegram)
- Notifier: tell people what happened (console, telegram, webhook)
- Journal: every step, durably, so a restart resumes (bot.journal: SqlJournal, MemoryJournal)
- PaperMarket: the simulated account a paper run drives on the price path (the paper broker)
- ReactionRecorder: the stage times of each order sent for a live anomaly (bot.ops.metrics);
  none by default, and then no stamp is taken
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from bot.events import (
    ApprovalRequest,
    Decision,
    Event,
    JournalKind,
    OptionMark,
    OptionSettlement,
    OrderIntent,
    OrderResult,
    PaperLiquidation,
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

    def events(self) -> AsyncIterator[Event]:
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


class ReactionRecorder(Protocol):
    def reaction(
        self, received_ns: int, detected_ns: int, committed_ns: int, submitted_ns: int,
        answered_ns: int,
    ) -> None:  # fmt: skip
        """One order's time.perf_counter_ns stamps: the orchestrator took the liquidation, the
        detector answered, the journal committed, the broker was called, the venue answered."""
        ...


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
    """What the engine (bot.engine) and the edges (sources, Telegram) call of the journal.

    Steps are rows (a kind, a time, a JSON payload, an optional unique key); states are named
    JSON snapshots. An entry read back is a dict: id, ts_ms, kind, key, payload.
    """

    def append(
        self, kind: JournalKind, ts_ms: int, payload: dict[str, Any], key: str | None = None
    ) -> int:
        """Record one step now (staged steps first); a repeated `key` is a no-op (first id)."""
        ...

    def stage(
        self, kind: JournalKind, ts_ms: int, payload: dict[str, Any], key: str | None = None
    ) -> None:
        """Queue one step for the next commit; `has(key)` is true at once."""
        ...

    def flush(self) -> None:
        """Commit the staged steps in ONE transaction (all or none after a crash)."""
        ...

    def has(self, key: str) -> bool: ...

    def find_key(self, key: str) -> dict[str, Any] | None:
        """The entry with this key, or None."""
        ...

    def find(
        self,
        kinds: Sequence[JournalKind] | None = None,
        since_id: int = 0,
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        """Entries in write order (oldest first), optionally of some kinds only."""
        ...

    def get_state(self, name: str) -> dict[str, Any] | None: ...

    def put_state(self, name: str, value: dict[str, Any]) -> None: ...

    def checkpoint(self, values: Mapping[str, dict[str, Any]]) -> None:
        """Write several named states, and the staged steps, in ONE transaction."""
        ...

    def compact(self, every_commits: int = 200) -> bool:
        """Housekeeping while idle (SQLite: fold the WAL) once enough commits piled up."""
        ...


class PaperPosition(Protocol):
    """A simulated position as the live view reads it (entry unknown until the first price)."""

    @property
    def symbol(self) -> str: ...

    @property
    def side(self) -> str: ...

    @property
    def size(self) -> float: ...

    @property
    def entry_price(self) -> float | None: ...

    @property
    def liquidation_price(self) -> float | None: ...


class PaperOption(Protocol):
    """A held paper option as the live view reads it (what was paid per contract, in USD)."""

    @property
    def symbol(self) -> str: ...

    @property
    def size(self) -> float: ...

    @property
    def entry_usd(self) -> float: ...


class PaperMarket(Protocol):
    """A simulated account on the price path: the orchestrator feeds it every price tick and
    the detector's stress, journals what it fills or liquidates, and checkpoints it."""

    @property
    def positions(self) -> Mapping[tuple[str, str, str], PaperPosition]:
        """(venue, symbol, side) -> the open position."""
        ...

    @property
    def options(self) -> Mapping[tuple[str, str], PaperOption]:
        """(venue, symbol) -> the held option."""
        ...

    @property
    def max_drawdown_usd(self) -> float: ...

    def set_stress(self, window_usd: float) -> None:
        """The detector's window sum now (fills slip more in a cascade)."""
        ...

    def on_price(
        self, tick: PriceTick
    ) -> Sequence[OrderResult | PaperLiquidation | OptionMark | OptionSettlement]:
        """Move the mark: the resting orders it filled, the positions it liquidated, the
        options it marked or settled."""
        ...

    def equity_usd(self) -> float: ...

    def pnl_usd(self) -> float: ...

    def snapshot(self) -> dict[str, Any]: ...

    def restore(self, state: dict[str, Any]) -> None: ...
