"""Detector rules: which liquidations count, the window and the escalation ladder."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from bot.events import Side
from bot.symbols import STREAM_VENUES

MAX_SPAN_S = 366 * 86400.0  # a year: longer windows are typos


class RuleConfig(BaseModel):
    """One detector rule. Defaults are those of the detector contract (1h, $1M, x2, 2h)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    name: str = Field(default="all", min_length=1, description="unique rule name")
    venues: tuple[str, ...] = Field(default=(), description="venues counted; empty = all")
    symbols: tuple[str, ...] = Field(
        default=(), description="symbols (BTCUSDT) or base assets (BTC) counted; empty = all"
    )
    sides: tuple[Side, ...] = Field(default=("long", "short"), description="position sides")
    # bounds: a window beyond a year or a threshold below a cent cannot be meant (and a
    # threshold of 0 cents would make every level cross at once)
    window_s: float = Field(
        default=3600.0, gt=0, le=MAX_SPAN_S, description="rolling window W, seconds"
    )
    threshold_usd: float = Field(default=1_000_000.0, ge=0.01, description="base threshold T0")
    factor: float = Field(default=2.0, gt=1, le=100, description="threshold multiplier per level f")
    escalation_window_s: float = Field(
        default=7200.0,
        gt=0,
        le=MAX_SPAN_S,
        description="E: level resets to 0 after this long without anomaly",
    )
    top_n: int = Field(default=5, ge=1, le=50, description="top symbols/venues carried")

    @field_validator("factor")
    @classmethod
    def _factor_steps(cls, factor: float) -> float:
        # closer to 1, a window sum would climb thousands of levels per event
        if factor < 1.01:
            raise ValueError(f"must be greater than 1 by at least 0.01 (got {factor})")
        return factor

    @field_validator("sides")
    @classmethod
    def _sides_not_empty(cls, sides: tuple[Side, ...]) -> tuple[Side, ...]:
        if not sides:
            raise ValueError("at least one of 'long', 'short' is needed")
        return sides

    @model_validator(mode="after")
    def _window_in_ms(self) -> RuleConfig:
        if self.window_s * 1000 < 1:
            raise ValueError("window_s must be at least one millisecond")
        return self

    @property
    def window_ms(self) -> int:
        return round(self.window_s * 1000)

    @property
    def escalation_window_ms(self) -> int:
        return round(self.escalation_window_s * 1000)


# The venues of on-chain lending sources (bot/config/chains.py): Aave pools (aave-v2, aave-v3)
# and Compound v3 Comets (compound-v3-<name>); a custom AaveMarket.venue must be added here.
DEFI_VENUES = ("aave", "compound")
# From `liqguard calibrate` on the bundled Binance captures at 150 alerts per month
# (docs/calibrating.md, "The default rules"): a floor-only stream, a few hours: recalibrate.
EXCHANGE_THRESHOLD_USD = 4_000_000.0


def default_rules() -> tuple[RuleConfig, ...]:
    """The default config's rules: exchange streams and on-chain lending at their own scale."""
    return (
        RuleConfig(name="exchanges", venues=STREAM_VENUES, threshold_usd=EXCHANGE_THRESHOLD_USD),
        # Santiment's Liquidations anomaly: $1M in 1 h of on-chain lending liquidations
        RuleConfig(name="defi", venues=DEFI_VENUES, threshold_usd=1_000_000.0),
    )
