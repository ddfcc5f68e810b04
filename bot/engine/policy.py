"""Policy resolution: every configured step's strategy found in the registry, its params
validated, before anything runs (errors name the place in the file).

- ResolvedAction: an ActionConfig whose strategy exists and whose params validated
- check_policy(policy, source) -> {path: ResolvedAction}
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel, ValidationError

from bot.config.errors import ConfigError
from bot.config.errors import problems as describe
from bot.config.policy import ActionConfig, PolicyConfig, iter_actions
from strategies.base import Strategy
from strategies.registry import available, get_strategy


@dataclass(frozen=True)
class ResolvedAction:
    """An ActionConfig whose strategy exists and whose params validated."""

    path: str  # where it sits in the file, e.g. policy.levels.2[0]
    config: ActionConfig
    strategy: type[Strategy]
    params: BaseModel


def check_policy(policy: PolicyConfig, source: str = "liqguard.yaml") -> dict[str, ResolvedAction]:
    """Resolve every action's strategy and params; raise ConfigError naming each bad path."""
    resolved: dict[str, ResolvedAction] = {}
    problems: list[str] = []
    for path, _rule, _level, _i, action in iter_actions(policy):
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
            problems += describe(exc, action.params, prefix=f"{path}.params")
            continue
        resolved[path] = ResolvedAction(path, action, strategy, params)
    if problems:
        lines = [f"{source}: invalid policy ({len(problems)} problem(s))", *problems]
        lines.append(
            "Fix the policy (every setting: docs/configuration.md, linked from the README) and "
            "start again."
        )
        raise ConfigError("\n".join(lines))
    return resolved
