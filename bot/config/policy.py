"""The `policy:` section of `liqguard.yaml`: which steps answer each level and calm.

Contents:
- ActionConfig / PolicyConfig: which strategies run at each escalation level, per rule, on calm
- iter_actions: every configured step with its path in the file (resolved by bot.engine.policy)
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from bot.events import ApprovalMode, TimeoutDefault


class ActionConfig(BaseModel):
    """One step of the policy: a strategy, its params and how a person approves it."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

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

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

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


def iter_actions(policy: PolicyConfig) -> Iterator[tuple[str, str, int | None, int, ActionConfig]]:
    """(path, rule-or-'*', level-or-None-for-calm, index, action) for every configured action."""
    blocks: list[tuple[str, str, LevelsPolicy]] = [("policy", "*", policy)]
    blocks += [(f"policy.rules.{name}", name, lp) for name, lp in policy.rules.items()]
    for prefix, rule, block in blocks:
        for level, actions in sorted(block.levels.items()):
            for i, action in enumerate(actions):
                yield f"{prefix}.levels.{level}[{i}]", rule, level, i, action
        for i, action in enumerate(block.calm):
            yield f"{prefix}.calm[{i}]", rule, None, i, action
