"""Response plugins: pure planners from (trigger, portfolio, prices) to order intents.

Built-ins: reduce_exposure, stop_loss, hedge, unhedge, halt. Plugins add more through the
entry-point group `liqguard.strategies` (see strategies.registry).
"""

from strategies.base import (
    Plan,
    PlanRejected,
    PluginError,
    Strategy,
    StrategyContext,
    StrategyError,
    UnknownStrategyError,
    run_plan,
)
from strategies.registry import (
    ENTRY_POINT_GROUP,
    available,
    check_strategy,
    get_strategy,
    register,
)

__all__ = [
    "ENTRY_POINT_GROUP",
    "Plan",
    "PlanRejected",
    "PluginError",
    "Strategy",
    "StrategyContext",
    "StrategyError",
    "UnknownStrategyError",
    "available",
    "check_strategy",
    "get_strategy",
    "register",
    "run_plan",
]
