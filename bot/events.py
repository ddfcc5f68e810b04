"""The one vocabulary of liqguard: small frozen dataclasses that flow through the pipeline.

Contents, in pipeline order:
- market input: Liquidation, PriceTick, FeedStatus, and Event (any one of them)
- detector output: Anomaly, Calm
- portfolio: Position, Portfolio
- response: OrderIntent, Action, RiskVerdict, ApprovalRequest, Decision
- execution: OrderResult (+ outcome_unknown), Fill, TradingStateChanged, PaperLiquidation,
  OptionMark, OptionSettlement (the paper market's options)
- people: Notice and its Severity (a message that is no pipeline event)
- the journal: JournalKind, the kind of every journaled row; DeliveryOutcome (pagers, bridges)

Money is carried in integer cents where the detector sums it (`*_cents`), with `*_usd`
properties for display; everything else carries its unit in its name.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal

Side = Literal["long", "short"]  # the side of a POSITION
# a liquidation, or a dYdX DELEVERAGED trade (a profitable position closed against a bankrupt
# one): reported apart, journaled and counted, never fed to the detector
LiquidationKind = Literal["liquidation", "deleveraged"]
OrderSide = Literal["buy", "sell"]  # the side of an ORDER

# ---------------------------------------------------------------------------------------------
# Market input
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Liquidation:
    """One forced close of a leveraged position, on an exchange or on-chain.

    `side` is the side of the position that was liquidated (a venue's SELL liquidation order
    means a long was liquidated). `notional_usd` is always computed by liqguard, never taken
    from ccxt. `event_id` identifies the event at its venue for dedupe (tx hash + log index
    on-chain, venue fields on exchanges); `block_number`/`block_hash` only on-chain.
    """

    ts_ms: int
    venue: str
    symbol: str
    side: Side
    notional_usd: float
    price: float | None = None
    quantity: float | None = None
    event_id: str | None = None
    block_number: int | None = None
    block_hash: str | None = None
    # local time it arrived (live streams; ts_ms is the venue's); not part of its identity
    received_ms: int | None = field(default=None, compare=False)
    kind: LiquidationKind = "liquidation"


@dataclass(frozen=True, slots=True)
class PriceTick:
    """A mark/last price for a symbol at a time (replay prices or live marks)."""

    ts_ms: int
    symbol: str
    price: float
    venue: str | None = None


@dataclass(frozen=True, slots=True)
class FeedStatus:
    """A feed's health changed: `blind` (silent longer than allowed), or back `live`; or the
    same state again with a new count of rows the feed rejected."""

    ts_ms: int
    venue: str
    state: Literal["live", "blind", "reconnecting", "connecting"]
    silent_s: float = 0.0
    reconnects: int = 0
    clock_skew_ms: int | None = None
    detail: str = ""
    covers: tuple[str, ...] = ()  # liquidation venues this feed carries (empty: its own name)
    rejected: int = 0  # rows of this feed refused so far (malformed, unknown, unsized)
    last_rejected: str = ""  # the latest one's reason


Event = Liquidation | PriceTick | FeedStatus  # what a source yields and the orchestrator handles

# ---------------------------------------------------------------------------------------------
# Detector output
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SymbolUsd:
    """A symbol (or venue) and the USD it contributed to a window, in cents."""

    name: str
    cents: int

    @property
    def usd(self) -> float:
        return self.cents / 100


@dataclass(frozen=True, slots=True)
class Anomaly:
    """A rule's rolling-window sum reached its active threshold: see docs of the detector."""

    rule: str
    ts_ms: int
    level: int
    window_cents: int
    threshold_cents: int
    base_threshold_cents: int
    long_cents: int
    short_cents: int
    events: int
    top_symbols: tuple[SymbolUsd, ...] = ()
    top_venues: tuple[SymbolUsd, ...] = ()
    previous_level: int = 0

    @property
    def window_usd(self) -> float:
        return self.window_cents / 100

    @property
    def threshold_usd(self) -> float:
        return self.threshold_cents / 100

    @property
    def base_threshold_usd(self) -> float:
        return self.base_threshold_cents / 100

    @property
    def long_usd(self) -> float:
        return self.long_cents / 100

    @property
    def short_usd(self) -> float:
        return self.short_cents / 100


@dataclass(frozen=True, slots=True)
class Calm:
    """A rule's level fell back to 0: no anomaly for the escalation window."""

    rule: str
    ts_ms: int
    previous_level: int = 0


DetectorEvent = Anomaly | Calm

# ---------------------------------------------------------------------------------------------
# Portfolio
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Position:
    """An open position. `size` is in base units (or contracts for options), always > 0."""

    venue: str
    symbol: str
    side: Side
    size: float
    entry_price: float
    mark_price: float
    liquidation_price: float | None = None
    leverage: float = 1.0
    instrument: Literal["perp", "spot", "option"] = "perp"

    @property
    def notional_usd(self) -> float:
        return abs(self.size) * self.mark_price

    @property
    def unrealized_pnl_usd(self) -> float:
        sign = 1.0 if self.side == "long" else -1.0
        return sign * self.size * (self.mark_price - self.entry_price)

    @property
    def liquidation_distance(self) -> float | None:
        """Fraction of the mark the price must move to liquidate this position."""
        if self.liquidation_price is None or self.mark_price <= 0:
            return None
        return abs(self.mark_price - self.liquidation_price) / self.mark_price


@dataclass(frozen=True, slots=True)
class OpenOrder:
    """An order resting at the venue (entry, stop, or hedge)."""

    venue: str
    symbol: str
    client_id: str
    side: OrderSide
    kind: Literal["market", "limit", "stop"]
    amount: float
    price: float | None = None
    stop_price: float | None = None
    reduce_only: bool = False


@dataclass(frozen=True, slots=True)
class Portfolio:
    """What the account holds at a moment: the input of every strategy planner."""

    ts_ms: int
    balance_usd: float
    positions: tuple[Position, ...] = ()
    open_orders: tuple[OpenOrder, ...] = ()
    prices: dict[str, float] = field(default_factory=dict)
    unpriced: tuple[str, ...] = ()  # symbols held that have no price yet (not in positions)

    @property
    def gross_exposure_usd(self) -> float:
        return sum(p.notional_usd for p in self.positions)

    @property
    def net_exposure_usd(self) -> float:
        return sum(p.notional_usd if p.side == "long" else -p.notional_usd for p in self.positions)


# ---------------------------------------------------------------------------------------------
# Response
# ---------------------------------------------------------------------------------------------


class TradingState(StrEnum):
    """The risk ladder (after NautilusTrader): what kind of order may pass."""

    ACTIVE = "ACTIVE"  # everything passes the limits
    REDUCING = "REDUCING"  # only orders that reduce exposure
    HALTED = "HALTED"  # only cancels


class ApprovalMode(StrEnum):
    AUTO = "auto"
    CONFIRM = "confirm"
    NOTIFY = "notify"


class TimeoutDefault(StrEnum):
    """What a `confirm` action does when nobody answers in time."""

    EXECUTE = "execute"
    CANCEL = "cancel"
    EXECUTE_IF_REDUCING = "execute_if_reducing"


@dataclass(frozen=True, slots=True)
class OrderIntent:
    """An order a strategy wants: a command, not yet checked, approved or sent.

    `amount` is in base units (contracts for options); `leg` numbers the intents of one
    action so that `client_id = f"{action_id}-{leg}"` is deterministic.
    """

    venue: str
    symbol: str
    side: OrderSide
    kind: Literal["market", "limit", "stop", "cancel"]
    amount: float
    reduce_only: bool
    leg: int = 0
    price: float | None = None
    stop_price: float | None = None
    instrument: Literal["perp", "spot", "option"] = "perp"
    reason: str = ""
    slice_index: int = 0
    slice_count: int = 1
    not_before_ms: int | None = None  # TWAP slices: earliest time to send
    cancel_client_id: str | None = None  # kind == "cancel": which order

    def notional_usd(self, price: float) -> float:
        return abs(self.amount) * price


@dataclass(frozen=True, slots=True)
class Action:
    """One policy step answering an anomaly or calm: a strategy's plan and how to approve it."""

    action_id: str
    rule: str
    level: int
    strategy: str
    params: dict[str, Any]
    intents: tuple[OrderIntent, ...]
    approval: ApprovalMode
    created_ts_ms: int
    trigger_ts_ms: int
    timeout_s: float = 0.0
    on_timeout: TimeoutDefault = TimeoutDefault.CANCEL
    reduces_exposure: bool = True
    ladder_target: TradingState | None = None  # halt: the state it switches the ladder to
    summary: str = ""

    def client_id(self, intent: OrderIntent) -> str:
        return f"{self.action_id}-{intent.leg}"


@dataclass(frozen=True, slots=True)
class RiskVerdict:
    """The risk gateway's answer for an action: the intents allowed and those denied, why."""

    action_id: str
    allowed: tuple[OrderIntent, ...]
    denied: tuple[tuple[OrderIntent, str], ...] = ()
    state: TradingState = TradingState.ACTIVE
    reason: str = ""

    @property
    def all_denied(self) -> bool:
        return not self.allowed and bool(self.denied)


@dataclass(frozen=True, slots=True)
class ApprovalRequest:
    """A question to a person: may this action run? Answer by `deadline_ts_ms` or the default."""

    request_id: str
    action: Action
    created_ts_ms: int
    deadline_ts_ms: int
    on_timeout: TimeoutDefault
    text: str = ""
    approvers_needed: int = 1


@dataclass(frozen=True, slots=True)
class Decision:
    """The answer to an ApprovalRequest: who decided (`timeout` or `auto` for no person)."""

    request_id: str
    action_id: str
    approved: bool
    by: str
    ts_ms: int
    reason: str = ""


# ---------------------------------------------------------------------------------------------
# Execution
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Fill:
    """A (partial) execution of an order."""

    client_id: str
    venue: str
    symbol: str
    side: OrderSide
    amount: float
    price: float
    fee_usd: float
    ts_ms: int
    reduce_only: bool = False


OUTCOME_UNKNOWN = "outcome unknown"  # the first words of the error of such a result


@dataclass(frozen=True, slots=True)
class OrderResult:
    """What the broker says of one intent: accepted (maybe filled), or rejected and why.

    `outcome_unknown`: the broker cannot tell whether the order landed (status `failed`, the
    error says why); it is never re-sent by itself, a person checks the venue.
    """

    client_id: str
    status: Literal["filled", "open", "canceled", "rejected", "failed"]
    ts_ms: int
    exchange_order_id: str | None = None
    fills: tuple[Fill, ...] = ()
    error: str = ""
    retryable: bool = False
    outcome_unknown: bool = False


def journaled_outcome_unknown(payload: Mapping[str, Any]) -> bool:
    """Whether a journaled order result has an unknown outcome (older journals say so only
    by the error text's first words)."""
    if payload.get("outcome_unknown"):
        return True
    return str(payload.get("error", "")).startswith(OUTCOME_UNKNOWN)


@dataclass(frozen=True, slots=True)
class TradingStateChanged:
    ts_ms: int
    previous: TradingState
    state: TradingState
    reason: str
    by: str = "policy"


@dataclass(frozen=True, slots=True)
class PaperLiquidation:
    """A paper position's mark crossed its liquidation price: closed there, margin lost."""

    ts_ms: int
    venue: str
    symbol: str
    side: str
    size: float
    price: float
    realized_usd: float


@dataclass(frozen=True, slots=True)
class OptionMark:
    """A held paper option valued by the model: per contract, in the coin and in USD."""

    ts_ms: int
    venue: str
    symbol: str
    size: float
    underlying: float
    iv: float
    mark_coin: float
    mark_usd: float
    entry_usd: float
    unrealized_usd: float


@dataclass(frozen=True, slots=True)
class OptionSettlement:
    """A held paper option reached its expiry: paid its intrinsic value in the coin, less fee."""

    ts_ms: int
    venue: str
    symbol: str
    size: float
    underlying: float
    intrinsic_coin: float
    fee_coin: float
    paid_usd: float
    realized_usd: float


# ---------------------------------------------------------------------------------------------
# People
# ---------------------------------------------------------------------------------------------

Severity = Literal["info", "warning", "critical"]


@dataclass(frozen=True, slots=True)
class Notice:
    """A message that is no pipeline event. `page` asks notifiers to wake a human."""

    ts_ms: int
    title: str
    text: str = ""
    severity: Severity = "info"
    page: bool = False


# ---------------------------------------------------------------------------------------------
# The journal
# ---------------------------------------------------------------------------------------------


class JournalKind(StrEnum):
    """The kind of a journaled row; the value is what the journal stores (old journals too)."""

    # the detector and the feeds (orchestrator)
    ANOMALY = "anomaly"
    CALM = "calm"
    # every action of a detection planned (or ended): where a live restart looks from
    DETECTION_ANSWERED = "detection_answered"
    FEED = "feed"
    LIQUIDATION_STALE = "liquidation_stale"  # a live liquidation too old: counted, not acted on
    LIQUIDATION_FUTURE = "liquidation_future"  # stamped beyond the future tolerance
    LIQUIDATION_DELEVERAGED = "liquidation_deleveraged"  # dYdX DELEVERAGED: shown apart
    # one action (orchestrator, executor), in the order it meets them
    ACTION_PLANNED = "action_planned"
    ACTION_FAILED = "action_failed"  # the account could not be read: not planned
    STRATEGY_FAILED = "strategy_failed"
    RISK_VERDICT = "risk_verdict"
    APPROVAL_REQUEST = "approval_request"
    DECISION = "decision"
    APPROVAL = "approval"  # a confirmed action's final approval state
    LADDER = "ladder"
    ORDER_SKIPPED = "order_skipped"
    ORDER_SENT = "order_sent"
    ORDER_RESULT = "order_result"
    FILL = "fill"
    FAILURE = "failure"
    ACTION_END = "action_end"
    PAPER_LIQUIDATION = "paper_liquidation"
    OPTION_MARK = "option_mark"
    OPTION_SETTLEMENT = "option_settlement"
    # the start of a live run
    RECONCILE = "reconcile"
    # on-chain sources
    ONCHAIN_REJECTED = "onchain_rejected"
    ONCHAIN_DEEP_REORG = "onchain_deep_reorg"
    ONCHAIN_WITHDRAWN = "onchain_withdrawn"
    ONCHAIN_UNCONFIRMED = "onchain_unconfirmed"
    # Telegram
    TELEGRAM_COMMAND = "telegram.command"
    TELEGRAM_APPROVAL_SENT = "telegram.approval_sent"
    TELEGRAM_UNREACHABLE = "telegram.unreachable"
    TELEGRAM_REFUSED = "telegram.refused"
    TELEGRAM_PRESS = "telegram.press"
    TELEGRAM_DECISION = "telegram.decision"
    # outbound: pagers (PagerDuty, Opsgenie, email) and bridges to the desk's other bots
    PAGE = "page"  # one attempt to page (trigger or resolve), its outcome
    BRIDGE = "bridge"  # one call to another bot (pause, exit, start, stop, webhook)

    # runtime configuration (bot.app.overrides): the journal is the source of the overrides
    CONFIG_OVERRIDE = "config.override"  # a confirmed change: the override, who, when, the diff
    CONFIG_PROPOSED = "config.proposed"  # a change asked for, waiting for its confirmation
    CONFIG_DECLINED = "config.declined"  # asked, then rejected or timed out: nothing changed
    CONFIG_RELOAD = "config.reload"  # SIGHUP: the file reloaded, or refused and why
    CONFIG_SKIPPED = "config.skipped"  # at start: a journaled override that no longer applies


class DeliveryOutcome(StrEnum):
    """What one attempt of a pager or bridge call came to."""

    DELIVERED = "delivered"
    RETRYING = "retrying"  # failed, tried again after a wait (429, 5xx, network)
    REFUSED = "refused"  # a 4xx other than 429: retrying would not help
    FAILED = "failed"  # the last try failed: the other channels are told
