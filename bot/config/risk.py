"""Risk limits: what the risk gate lets through, whatever a strategy plans."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator


class RiskLimits(BaseModel):
    """Caps checked on every action before approval (see bot.risk.RiskGate)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    max_order_usd: float = Field(
        default=500_000.0, gt=0, description="largest notional of one order (stops: at stop)"
    )
    max_action_usd: float = Field(
        default=1_000_000.0, gt=0, description="largest notional of all orders of one action"
    )
    max_actions_per_hour: int = Field(
        default=20, ge=1, description="actions with orders allowed in any sliding hour"
    )
    hedge_when_reducing: bool = Field(
        default=True,
        description="in REDUCING, let a non-reduce-only order pass if it lowers |net exposure|",
    )
    size_tolerance: float = Field(
        default=1e-9, ge=0, lt=0.01, description="relative slack when comparing to a size"
    )

    @model_validator(mode="after")
    def _order_cap_within_action_cap(self) -> RiskLimits:
        if self.max_order_usd > self.max_action_usd:
            raise ValueError(
                f"max_order_usd ({self.max_order_usd:g}) is above max_action_usd "
                f"({self.max_action_usd:g}); lower it or raise max_action_usd"
            )
        return self
