"""Response policy, approvals, paper account and journal sections of `liqguard.yaml`.

Contents:
- ActionConfig / PolicyConfig: which strategies run at each escalation level, per rule, on calm
- check_policy: resolve strategy names and validate their params (errors carry the file path)
- PaperPositionConfig / PaperConfig: the simulated account
- JournalConfig, ApprovalsConfig
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from bot.events import ApprovalMode, Side, TimeoutDefault


class ActionConfig(BaseModel):
    """One step of the policy: a strategy, its params and how a person approves it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    strategy: str = Field(min_length=1, description="registered strategy name")
    params: dict[str, Any] = Field(default_factory=dict, description="the strategy's Params")
    approval: ApprovalMode = Field(default=ApprovalMode.AUTO, description="auto|confirm|notify")
    timeout_s: float = Field(default=300.0, gt=0, description="confirm: time to answer")
    on_timeout: TimeoutDefault = Field(
        default=TimeoutDefault.CANCEL, description="confirm: execute|cancel|execute_if_reducing"
    )


def _default_levels() -> dict[int, tuple[ActionConfig, ...]]:
    return {
        1: (ActionConfig(strategy="stop_loss"),),
        2: (
            ActionConfig(strategy="reduce_exposure", params={"fraction": 0.25}),
            ActionConfig(
                strategy="hedge",
                params={"hedge_ratio": 0.5, "venue": "bybit"},
                approval=ApprovalMode.CONFIRM,
                timeout_s=300,
                on_timeout=TimeoutDefault.CANCEL,
            ),
        ),
        3: (
            ActionConfig(
                strategy="reduce_exposure",
                params={"fraction": 0.5, "slices": 3, "slice_interval_s": 60},
                approval=ApprovalMode.CONFIRM,
                timeout_s=120,
                on_timeout=TimeoutDefault.EXECUTE_IF_REDUCING,
            ),
        ),
        # REDUCING first: stops, cuts and unhedging still pass; HALTED stops everything.
        4: (ActionConfig(strategy="halt", params={"state": "REDUCING"}),),
        5: (ActionConfig(strategy="halt", params={"state": "HALTED"}),),
    }


def _default_calm() -> tuple[ActionConfig, ...]:
    return (
        ActionConfig(
            strategy="unhedge",
            approval=ApprovalMode.CONFIRM,
            timeout_s=900,
            on_timeout=TimeoutDefault.CANCEL,
        ),
    )


class LevelsPolicy(BaseModel):
    """The actions of one rule: by level (a level runs the highest configured level <= it)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    levels: dict[int, tuple[ActionConfig, ...]] = Field(default_factory=_default_levels)
    calm: tuple[ActionConfig, ...] = Field(default_factory=_default_calm)

    @field_validator("levels")
    @classmethod
    def _levels_positive(
        cls, levels: dict[int, tuple[ActionConfig, ...]]
    ) -> dict[int, tuple[ActionConfig, ...]]:
        bad = sorted(k for k in levels if k < 1)
        if bad:
            raise ValueError(f"levels start at 1 (level 0 is calm: use 'calm:'); got {bad}")
        return levels

    def actions_for_level(self, level: int) -> tuple[int, tuple[ActionConfig, ...]]:
        """The configured level that applies to `level` and its actions (L4+ reuse L4)."""
        applicable = [k for k in self.levels if k <= level]
        if not applicable:
            return 0, ()
        chosen = max(applicable)
        return chosen, self.levels[chosen]


class PolicyConfig(LevelsPolicy):
    """`policy:` — default levels/calm, plus optional overrides per detector rule name."""

    rules: dict[str, LevelsPolicy] = Field(
        default_factory=dict, description="per-rule policy replacing the default for that rule"
    )

    def for_rule(self, rule: str) -> LevelsPolicy:
        return self.rules.get(rule, self)


@dataclass(frozen=True)
class ResolvedAction:
    """An ActionConfig whose strategy exists and whose params validated."""

    path: str  # where it sits in the file, e.g. policy.levels.2[0]
    config: ActionConfig
    strategy: Any  # the Strategy class (strategies.base.Strategy)
    params: BaseModel


def _iter_actions(policy: PolicyConfig) -> Iterator[tuple[str, str, int | None, int, ActionConfig]]:
    """(path, rule-or-'*', level-or-None-for-calm, index, action) for every configured action."""
    blocks: list[tuple[str, str, LevelsPolicy]] = [("policy", "*", policy)]
    blocks += [(f"policy.rules.{name}", name, lp) for name, lp in policy.rules.items()]
    for prefix, rule, block in blocks:
        for level, actions in sorted(block.levels.items()):
            for i, action in enumerate(actions):
                yield f"{prefix}.levels.{level}[{i}]", rule, level, i, action
        for i, action in enumerate(block.calm):
            yield f"{prefix}.calm[{i}]", rule, None, i, action


def check_policy(policy: PolicyConfig, source: str = "liqguard.yaml") -> dict[str, ResolvedAction]:
    """Resolve every action's strategy and params; raise ConfigError naming each bad path."""
    from bot.config.loader import ConfigError
    from strategies.registry import available, get_strategy

    resolved: dict[str, ResolvedAction] = {}
    problems: list[str] = []
    for path, _rule, _level, _i, action in _iter_actions(policy):
        try:
            strategy = get_strategy(action.strategy)
        except (KeyError, LookupError, ValueError) as exc:
            problems.append(
                f"  - {path}.strategy: value {action.strategy!r}: unknown strategy "
                f"({exc}); known: {', '.join(available())}"
            )
            continue
        try:
            params = strategy.Params.model_validate(action.params)
        except ValidationError as exc:
            for err in exc.errors():
                loc = ".".join(str(p) for p in err["loc"])
                where = f"{path}.params" + (f".{loc}" if loc else "")
                value = _lookup(action.params, err["loc"])
                given = (
                    f"unknown parameter {err['loc'][-1]!r}"
                    if err["type"] == "extra_forbidden"
                    else f"value {value!r}"
                )
                problems.append(f"  - {where}: {given}: {err['msg']}")
            continue
        resolved[path] = ResolvedAction(path, action, strategy, params)
    if problems:
        lines = [f"{source}: invalid policy ({len(problems)} problem(s))", *problems]
        lines.append("Fix the policy (see the README's configuration reference) and start again.")
        raise ConfigError("\n".join(lines))
    return resolved


def _lookup(data: Any, loc: tuple[int | str, ...]) -> Any:
    for part in loc:
        try:
            data = data[part]
        except (KeyError, IndexError, TypeError):
            return None
    return data


# ---------------------------------------------------------------------------------------------
# Paper account, journal, approvals
# ---------------------------------------------------------------------------------------------


class PaperPositionConfig(BaseModel):
    """A position the paper account starts with."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    venue: str = "binance-usdm"
    symbol: str = "BTCUSDT"
    side: Side = "long"
    size: float = Field(gt=0, description="base units")
    entry_price: float | None = Field(
        default=None, gt=0, description="None: the first price of the replay/stream"
    )
    leverage: float = Field(default=3.0, ge=1, le=125)
    liquidation_price: float | None = Field(
        default=None, gt=0, description="None: computed (isolated margin, maintenance rate)"
    )


class PaperConfig(BaseModel):
    """`paper:` — the simulated account: holdings, slippage, fees."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    balance_usd: float = Field(default=100_000.0, ge=0, description="cash collateral")
    positions: tuple[PaperPositionConfig, ...] = Field(
        default=(PaperPositionConfig(size=2.5, leverage=3.0),)
    )
    portfolio_file: str | None = Field(
        default=None, description="YAML/JSON with balance_usd and positions (replaces both)"
    )
    slippage_bps: float = Field(default=2.0, ge=0, description="market orders, calm market")
    cascade_slippage_bps_per_musd: float = Field(
        default=1.0, ge=0, description="extra bps per $1M liquidated in the detector window"
    )
    max_slippage_bps: float = Field(default=150.0, ge=0)
    fee_bps: float = Field(default=5.0, ge=0, description="taker fee")
    maintenance_margin_rate: float = Field(default=0.005, ge=0, lt=1)
    liquidation_fee_bps: float = Field(default=50.0, ge=0, description="charged on liquidation")


class JournalConfig(BaseModel):
    """`journal:` — where every step is recorded."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str | None = Field(
        default=None,
        description="SQLAlchemy URL or SQLite path; default ./var/liqguard.sqlite",
    )
    checkpoint_every_events: int = Field(default=200, ge=1, description="replay resume points")


class ApprovalsConfig(BaseModel):
    """`approvals:` — who answers `confirm` actions."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    channel: Literal["auto", "console", "telegram"] = Field(
        default="auto", description="auto approves everything; console asks at the terminal"
    )
