"""The root of `liqguard.yaml`: one section per part of the bot."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from bot.config.approvals import ApprovalsConfig
from bot.config.bridges import Bridge
from bot.config.chains import ChainsConfig
from bot.config.ha import HaConfig
from bot.config.journal import JournalConfig
from bot.config.ops import HealthcheckConfig, HttpConfig, MetricsConfig
from bot.config.paging import PagingConfig
from bot.config.paper import PaperConfig
from bot.config.policy import PolicyConfig
from bot.config.risk import RiskLimits
from bot.config.rules import RuleConfig, default_rules
from bot.config.telegram import TelegramConfig, WebhookConfig
from bot.config.venues import ExchangesConfig


class LoggingConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    level: Literal["TRACE", "DEBUG", "INFO", "SUCCESS", "WARNING", "ERROR"] = "INFO"
    json_file: str | None = Field(default=None, description="also write JSON lines here")


class Settings(BaseModel):
    """Everything liqguard.yaml may say. Unknown keys are refused, with the key named."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    mode: Literal["paper", "live"] = Field(
        default="paper", description="paper (default) or live; live also needs --live"
    )
    rules: tuple[RuleConfig, ...] = Field(default_factory=default_rules, min_length=1)
    policy: PolicyConfig = Field(default_factory=PolicyConfig)
    risk: RiskLimits = Field(default_factory=RiskLimits)
    paper: PaperConfig = Field(default_factory=PaperConfig)
    journal: JournalConfig = Field(default_factory=JournalConfig)
    approvals: ApprovalsConfig = Field(default_factory=ApprovalsConfig)
    exchanges: ExchangesConfig = Field(default_factory=ExchangesConfig)
    telegram: TelegramConfig | None = None
    webhooks: tuple[WebhookConfig, ...] = Field(default=(), description="alert webhooks")
    chains: ChainsConfig = Field(default_factory=ChainsConfig)
    logging: LoggingConfig = Field(default_factory=LoggingConfig)
    metrics: MetricsConfig = Field(default_factory=MetricsConfig)
    http: HttpConfig = Field(default_factory=HttpConfig)
    healthcheck: HealthcheckConfig = Field(default_factory=HealthcheckConfig)
    paging: PagingConfig = Field(default_factory=PagingConfig)
    bridges: tuple[Bridge, ...] = Field(default=(), description="the desk's other bots")
    ha: HaConfig | None = Field(default=None, description="active-standby (PostgreSQL only)")

    @model_validator(mode="after")
    def _unique_rule_names(self) -> Settings:
        names = [r.name for r in self.rules]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"rule names must be unique; repeated: {', '.join(dupes)}")
        return self
