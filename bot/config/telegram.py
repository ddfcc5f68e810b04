"""Telegram and webhook notifications and approvals: the `telegram:` and `webhooks:` sections.

- ChartConfig: what the alert chart shows
- TelegramConfig: the chat, the allow-list, two-person approval, polling and coalescing
- WebhookConfig: one incoming webhook (generic JSON, Slack or Discord)
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class ChartConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    enabled: bool = Field(default=True, description="attach a PNG chart to anomaly alerts")
    hours: float = Field(default=6.0, gt=0, le=72, description="how far back the chart looks")
    width_px: int = Field(default=1000, ge=300, le=3000)
    height_px: int = Field(default=550, ge=200, le=2000)


class TelegramConfig(BaseModel):
    """Where the bot talks, who may decide, and how approvals work."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    chat_id: int = Field(description="the group (negative id) or private chat the bot talks in")
    topic_id: int | None = Field(
        default=None, description="forum topic (message_thread_id) of the chat; None = any"
    )
    allowed_user_ids: tuple[int, ...] = Field(
        min_length=1, description="Telegram user ids allowed to decide and to send commands"
    )
    notifications: bool = Field(default=True, description="send alerts to the chat")
    two_person_above_usd: float | None = Field(
        default=None, gt=0, description="actions above this notional need `approvers_needed`"
    )
    approvers_needed: int = Field(
        default=2, ge=2, le=10, description="distinct approvers above two_person_above_usd"
    )
    coalesce_s: float = Field(
        default=2.0, ge=0, le=60, description="alerts arriving within this gather in one message"
    )
    poll_timeout_s: float = Field(default=10.0, gt=0, le=60, description="getUpdates long poll")
    connect_timeout_s: float = Field(default=5.0, gt=0, le=60)
    confirm_timeout_s: float = Field(
        default=60.0, gt=0, le=3600, description="how long a /resume confirmation button lives"
    )
    base_url: str | None = Field(
        default=None, description="Bot API base, e.g. http://127.0.0.1:8081/bot (tests, local)"
    )
    base_file_url: str | None = Field(default=None, description="file base of a local Bot API")
    chart: ChartConfig = Field(default_factory=ChartConfig)

    @field_validator("allowed_user_ids")
    @classmethod
    def _positive_ids(cls, ids: tuple[int, ...]) -> tuple[int, ...]:
        bad = [i for i in ids if i <= 0]
        if bad:
            raise ValueError(f"user ids are positive integers (found {bad}); see README")
        return ids

    @model_validator(mode="after")
    def _enough_approvers(self) -> TelegramConfig:
        if self.two_person_above_usd is not None and self.approvers_needed > len(
            set(self.allowed_user_ids)
        ):
            raise ValueError(
                f"approvers_needed={self.approvers_needed} but only "
                f"{len(set(self.allowed_user_ids))} allowed_user_ids: add users or lower it"
            )
        return self


class WebhookConfig(BaseModel):
    """An incoming webhook; the body is signed with LIQGUARD_WEBHOOK_SECRET when it is set."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    url: str = Field(description="http(s) URL of the webhook")
    kind: Literal["generic", "slack", "discord"] = "generic"
    timeout_s: float = Field(default=5.0, gt=0, le=60)
    retries: int = Field(default=3, ge=0, le=10, description="tries after 429/5xx/network errors")

    @field_validator("url")
    @classmethod
    def _http_url(cls, url: str) -> str:
        if not url.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return url
