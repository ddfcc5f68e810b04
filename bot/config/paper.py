"""The `paper:` section: the simulated account, and the portfolio file that can replace it.

- PaperPositionConfig / PaperConfig: holdings, slippage, fees, margin
- IvTable / PaperOptionsConfig: how its options are priced (Black-76, bot/brokers/options_model.py)
- load_account: balance and positions from `paper.portfolio_file` when set, else the section
"""

from __future__ import annotations

import json
from itertools import pairwise
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

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


class IvTable(BaseModel):
    """Implied vol by days to expiry (rows) and moneyness = strike / underlying (columns)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    moneyness: tuple[float, ...] = Field(min_length=1, description="increasing, e.g. 0.8..1.2")
    days: tuple[float, ...] = Field(min_length=1, description="increasing days to expiry")
    iv: tuple[tuple[float, ...], ...] = Field(
        min_length=1, description="one row per `days`, one value per `moneyness`; 0.6 = 60%"
    )

    @model_validator(mode="after")
    def _shape(self) -> IvTable:
        for name, axis in (("moneyness", self.moneyness), ("days", self.days)):
            if any(b <= a for a, b in pairwise(axis)) or axis[0] <= 0:
                raise ValueError(f"{name} {list(axis)} must be positive and increasing")
        if len(self.iv) != len(self.days) or any(len(r) != len(self.moneyness) for r in self.iv):
            raise ValueError(
                f"iv must have {len(self.days)} row(s) (one per days) of "
                f"{len(self.moneyness)} value(s) (one per moneyness)"
            )
        if any(not 0 < v <= 10 for r in self.iv for v in r):
            raise ValueError("every iv must be in (0, 10]: a fraction, 0.6 = 60%")
        return self


def _msg(text: str) -> str:
    return text.removeprefix("Value error, ")


class PaperOptionsConfig(BaseModel):
    """`paper.options:` — options in the paper market: a Black-76 model, not a market."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    iv: float | IvTable = Field(
        default=0.6, description="implied vol: a number (0.6 = 60%) or a table (see IvTable)"
    )
    vol_file: str | None = Field(
        default=None,
        description="DVOL-style CSV (percent): sets the level, scaling iv by vol / iv(1.0, 30d)",
    )
    rate: float = Field(default=0.0, ge=-0.2, le=1.0, description="continuous annual rate")
    half_spread_pct: float = Field(default=2.0, ge=0, description="% of the model premium")
    min_half_spread_coin: float = Field(
        default=0.0001, ge=0, description="at least this much (Deribit's BTC option tick)"
    )
    cascade_half_spread_pct_per_musd: float = Field(
        default=1.0, ge=0, description="extra % per $1M liquidated in the detector window"
    )
    max_half_spread_pct: float = Field(default=30.0, ge=0)
    fee_underlying_fraction: float = Field(
        default=0.0003, ge=0, lt=1, description="Deribit: 0.03% of the underlying per contract"
    )
    fee_premium_cap_fraction: float = Field(
        default=0.125, ge=0, le=1, description="Deribit: never more than 12.5% of the premium"
    )
    settlement_fee_underlying_fraction: float = Field(
        default=0.00015, ge=0, lt=1, description="Deribit delivery fee 0.015%, same cap"
    )
    contract_size: float = Field(default=1.0, gt=0, description="underlying per contract")
    expiry_hour_utc: int = Field(default=8, ge=0, le=23, description="Deribit: 08:00 UTC")
    underlyings: dict[str, str] = Field(
        default_factory=dict, description="base -> price symbol; default BASE + USDT"
    )
    mark_journal_s: float = Field(
        default=300.0, gt=0, description="journal a held option's mark at most this often"
    )

    @field_validator("iv", mode="before")
    @classmethod
    def _iv_form(cls, value: Any) -> Any:
        """One error for the form given (a number or a table), not one per possible form."""
        if isinstance(value, dict):
            try:
                return IvTable.model_validate(value)
            except ValidationError as exc:
                raise ValueError(
                    "; ".join(
                        ".".join(str(p) for p in e["loc"]) + ": " + _msg(e["msg"])
                        if e["loc"]
                        else _msg(e["msg"])
                        for e in exc.errors()
                    )
                ) from None
        if isinstance(value, IvTable):
            return value
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError("give a number (0.6 = 60%) or a table of moneyness, days and iv")
        if not 0 < value <= 10:
            raise ValueError("must be in (0, 10]: a fraction, 0.6 = 60%")
        return float(value)


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
    options: PaperOptionsConfig = Field(default_factory=PaperOptionsConfig)


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
