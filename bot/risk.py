"""The risk gate: every action's intents pass here between plan and approval.

Contents:
- COMMANDS: set_state (any move, e.g. a person resuming), escalate (only up the ladder)
- PRE-TRADE CHECKS: check(action, portfolio, ts_ms) -> RiskVerdict, in this order per intent:
  ladder state, actions per hour, reduce-only really reduces, net exposure in REDUCING,
  per-order cap, per-action cap. Cancels always pass.
- SEND-TIME CHECKS: still_allowed (the ladder moved up), over_budget (the hour's budget was
  used while the action waited); record_executed counts an action as its first order leaves,
  so a rejected or expired `confirm` action uses no budget
- DENIALS: plain sentences, e.g. "SELL 2 BTCUSDT when REDUCING and SHORT would increase
  exposure"; a denial is a verdict entry, never an exception.
- STATE: snapshot / restore (ladder state and the action times of the last hour)

The gate reads no clock: times come in with the calls.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bot.config.risk import RiskLimits
from bot.events import (
    Action,
    OrderIntent,
    Portfolio,
    Position,
    RiskVerdict,
    TradingState,
    TradingStateChanged,
)

HOUR_MS = 3_600_000
_RANK = {TradingState.ACTIVE: 0, TradingState.REDUCING: 1, TradingState.HALTED: 2}


def option_strike(symbol: str) -> tuple[float, str] | None:
    """(strike, "P" or "C") of a ccxt unified option symbol `BTC/USD:BTC-241213-90000-P`."""
    parts = symbol.split("-")
    if len(parts) < 4 or parts[-1] not in ("P", "C"):
        return None
    try:
        return float(parts[-2]), parts[-1]
    except ValueError:
        return None


def signed_exposure_usd(symbol: str, amount: float, price: float) -> float:
    """USD exposure of holding `amount` (negative = short) of a symbol.

    Options count at their strike per contract (delta taken as 1, one underlying unit per
    contract): a long put is a short of the underlying, a long call a long.
    """
    option = option_strike(symbol)
    if option is None:
        return amount * price
    strike, kind = option
    return -amount * strike if kind == "P" else amount * strike


def _word(amount: float) -> str:
    return f"{amount:.8g}"


def _describe(intent: OrderIntent) -> str:
    return f"{intent.side.upper()} {_word(intent.amount)} {intent.symbol}"


@dataclass
class _Book:
    """Positions as signed sizes, updated by the allowed legs of the action being checked."""

    sizes: dict[tuple[str, str], float]
    prices: dict[str, float]
    net_usd: float

    @classmethod
    def of(cls, portfolio: Portfolio) -> _Book:
        sizes: dict[tuple[str, str], float] = {}
        prices = dict(portfolio.prices)
        net = 0.0
        for p in portfolio.positions:
            signed = p.size if p.side == "long" else -p.size
            key = (p.venue, p.symbol)
            sizes[key] = sizes.get(key, 0.0) + signed
            price = _position_price(p, portfolio)
            prices.setdefault(p.symbol, price)
            net += signed_exposure_usd(p.symbol, signed, price)
        return cls(sizes, prices, net)


def _position_price(p: Position, portfolio: Portfolio) -> float:
    price = portfolio.prices.get(p.symbol)
    return price if price is not None and price > 0 else p.mark_price


class RiskGate:
    """The trading-state ladder and the limits, checked in one place."""

    def __init__(self, limits: RiskLimits, state: TradingState = TradingState.ACTIVE) -> None:
        self.limits = limits
        self.state = state
        self._action_ts_ms: dict[str, int] = {}  # actions whose orders were sent, last hour

    # -- COMMANDS ---------------------------------------------------------------------------

    def set_state(
        self, state: TradingState, reason: str, by: str = "policy", ts_ms: int = 0
    ) -> TradingStateChanged:
        """Move the ladder to `state` (up or down: a person resuming uses this)."""
        previous, self.state = self.state, TradingState(state)
        return TradingStateChanged(
            ts_ms=ts_ms, previous=previous, state=self.state, reason=reason, by=by
        )

    def escalate(
        self, state: TradingState, reason: str, by: str = "policy", ts_ms: int = 0
    ) -> TradingStateChanged | None:
        """Move up the ladder only (a halt plan never loosens it); None when nothing changes."""
        if _RANK[TradingState(state)] <= _RANK[self.state]:
            return None
        return self.set_state(state, reason, by, ts_ms)

    # -- PRE-TRADE CHECKS -------------------------------------------------------------------

    def actions_in_last_hour(self, ts_ms: int, exclude: str = "") -> int:
        """Actions whose first order was sent in (ts_ms - 1h, ts_ms]."""
        return sum(
            1
            for aid, t in self._action_ts_ms.items()
            if aid != exclude and ts_ms - HOUR_MS < t <= ts_ms
        )

    def check(self, action: Action, portfolio: Portfolio, ts_ms: int) -> RiskVerdict:
        """Split an action's intents into allowed and denied (with reasons).

        The action is not counted toward max_actions_per_hour here: see record_executed.
        """
        book = _Book.of(portfolio)
        recent = self.actions_in_last_hour(ts_ms, exclude=action.action_id)
        allowed: list[OrderIntent] = []
        denied: list[tuple[OrderIntent, str]] = []
        total_usd = 0.0
        for intent in action.intents:
            if intent.kind == "cancel":
                allowed.append(intent)  # a cancel never adds risk, in any state
                continue
            reason, notional = self._deny_reason(action, intent, book, recent, total_usd)
            if reason:
                denied.append((intent, reason))
                continue
            allowed.append(intent)
            total_usd += notional
            self._apply(intent, book)
        self._prune(ts_ms)
        summary = ""
        if denied:
            summary = (
                f"{len(denied)} of {len(action.intents)} order(s) denied in state "
                f"{self.state.value}: {denied[0][1]}"
            )
        return RiskVerdict(
            action_id=action.action_id,
            allowed=tuple(allowed),
            denied=tuple(denied),
            state=self.state,
            reason=summary,
        )

    def still_allowed(self, intent: OrderIntent, checked_in: TradingState) -> str | None:
        """Re-check one intent at send time; a denial reason if the ladder moved up since.

        An approval can arrive after a halt: what was allowed then must not slip through now.
        """
        if intent.kind == "cancel" or _RANK[self.state] <= _RANK[checked_in]:
            return None
        what = _describe(intent)
        if self.state is TradingState.HALTED:
            return f"{what} when HALTED: only cancels pass until a person resumes"
        if intent.reduce_only:
            return None  # its reduction was checked against the positions when planned
        return f"{what} when REDUCING: allowed while {checked_in.value}, not reduce-only"

    def over_budget(self, intent: OrderIntent, action_id: str, ts_ms: int) -> str | None:
        """Re-check the hourly budget at send time; a denial reason if it is used up.

        Actions count only once sent: others may have used the budget during an approval.
        """
        if intent.kind == "cancel" or action_id in self._action_ts_ms:
            return None
        recent = self.actions_in_last_hour(ts_ms)
        if recent < self.limits.max_actions_per_hour:
            return None
        return self._budget_reason(_describe(intent), recent)

    def record_executed(self, action_id: str, ts_ms: int) -> None:
        """Count an action toward max_actions_per_hour as its first order (not a cancel) leaves."""
        self._action_ts_ms.setdefault(action_id, ts_ms)  # later legs keep the first time
        self._prune(ts_ms)

    def _budget_reason(self, what: str, recent: int) -> str:
        return (
            f"{what}: {recent} actions already in the last hour, "
            f"max_actions_per_hour is {self.limits.max_actions_per_hour}"
        )

    def _deny_reason(
        self, action: Action, intent: OrderIntent, book: _Book, recent: int, total_usd: float
    ) -> tuple[str, float]:
        what = _describe(intent)
        if self.state is TradingState.HALTED:
            return f"{what} when HALTED: only cancels pass until a person resumes", 0.0
        if recent >= self.limits.max_actions_per_hour:
            return self._budget_reason(what, recent), 0.0
        reducing = self.state is TradingState.REDUCING
        if action.reduces_exposure and not intent.reduce_only:
            return (
                f"{what} is not reduce-only, but strategy {action.strategy!r} may only reduce"
            ), 0.0
        if intent.reduce_only:
            reason = self._reduce_reason(intent, book, reducing)
            if reason:
                return reason, 0.0
        elif reducing:
            reason = self._net_reason(intent, book)
            if reason:
                return reason, 0.0
        price = self._price(intent, book)
        if price is None:
            return f"{what}: no price for {intent.symbol} to check the notional caps", 0.0
        notional = intent.amount * price
        if notional > self.limits.max_order_usd:
            return (
                f"{what} is ${notional:,.0f}, over max_order_usd ${self.limits.max_order_usd:,.0f}"
            ), 0.0
        if total_usd + notional > self.limits.max_action_usd:
            return (
                f"{what} would bring this action to ${total_usd + notional:,.0f}, over "
                f"max_action_usd ${self.limits.max_action_usd:,.0f}"
            ), 0.0
        return "", notional

    def _reduce_reason(self, intent: OrderIntent, book: _Book, reducing: bool) -> str:
        what = _describe(intent)
        when = " when REDUCING" if reducing else " (reduce-only)"
        held = book.sizes.get((intent.venue, intent.symbol), 0.0)
        if held == 0.0:
            return (
                f"{what}{when} with no {intent.symbol} position on {intent.venue} would open "
                "exposure, not reduce it"
            )
        side = "LONG" if held > 0 else "SHORT"
        if (intent.side == "buy") == (held > 0):
            return f"{what}{when} and {side} would increase exposure"
        slack = abs(held) * self.limits.size_tolerance
        if intent.amount > abs(held) + slack:
            return (
                f"{what}{when} is more than the {_word(abs(held))} {intent.symbol} {side} left "
                "to reduce (earlier legs of this action counted); it would flip the position"
            )
        return ""

    def _net_reason(self, intent: OrderIntent, book: _Book) -> str:
        what = _describe(intent)
        if not self.limits.hedge_when_reducing:
            return f"{what} when REDUCING is not reduce-only (hedge_when_reducing is off)"
        price = self._price(intent, book)
        if price is None:
            return f"{what} when REDUCING: no price for {intent.symbol} to measure net exposure"
        signed = intent.amount if intent.side == "buy" else -intent.amount
        after = book.net_usd + signed_exposure_usd(intent.symbol, signed, price)
        if abs(after) >= abs(book.net_usd):
            side = "LONG" if book.net_usd >= 0 else "SHORT"
            return (
                f"{what} when REDUCING and net {side} ${abs(book.net_usd):,.0f} would not reduce "
                f"net exposure (after: ${after:,.0f})"
            )
        return ""

    @staticmethod
    def _price(intent: OrderIntent, book: _Book) -> float | None:
        for candidate in (intent.price, intent.stop_price, book.prices.get(intent.symbol)):
            if candidate is not None and candidate > 0:
                return candidate
        return None

    def _apply(self, intent: OrderIntent, book: _Book) -> None:
        signed = intent.amount if intent.side == "buy" else -intent.amount
        key = (intent.venue, intent.symbol)
        book.sizes[key] = book.sizes.get(key, 0.0) + signed
        price = self._price(intent, book)
        if price is not None:
            book.net_usd += signed_exposure_usd(intent.symbol, signed, price)

    def _prune(self, ts_ms: int) -> None:
        self._action_ts_ms = {a: t for a, t in self._action_ts_ms.items() if t > ts_ms - HOUR_MS}

    # -- STATE ------------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """JSON-ready state for the journal."""
        return {"state": self.state.value, "action_ts_ms": dict(self._action_ts_ms)}

    def restore(self, state: dict[str, Any]) -> None:
        """Resume from a snapshot() (after a restart)."""
        self.state = TradingState(state["state"])
        self._action_ts_ms = {str(a): int(t) for a, t in state.get("action_ts_ms", {}).items()}
