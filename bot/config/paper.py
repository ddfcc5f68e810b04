"""The `paper:` section: the simulated account, and the portfolio file that can replace it.

- PaperPositionConfig / PaperConfig: holdings, slippage, fees, margin
- load_account: balance and positions from `paper.portfolio_file` when set, else the section
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bot.config.errors import ConfigError, explain
from bot.events import Side


class PaperPositionConfig(BaseModel):
    """A position the paper account starts with."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

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

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

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


class _AccountFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    balance_usd: float = Field(ge=0)
    positions: tuple[PaperPositionConfig, ...] = ()


def load_account(config: PaperConfig) -> tuple[float, tuple[PaperPositionConfig, ...]]:
    """Balance and positions: the portfolio file when set, else the `paper:` section."""
    if config.portfolio_file is None:
        return config.balance_usd, config.positions
    path = Path(config.portfolio_file)
    try:
        text = path.read_text(encoding="utf-8")
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (OSError, ValueError, yaml.YAMLError) as exc:
        raise ConfigError(f"paper.portfolio_file {path}: cannot read it: {exc}") from exc
    try:
        account = _AccountFile.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(explain(exc, data, str(path))) from None
    return account.balance_usd, account.positions
