"""The `bridges:` list: tell the desk's other bots when liqguard's ladder leaves ACTIVE.

Credentials come from the environment only: each bridge names its variables.

- FreqtradeBridge: REST API, Basic or JWT
- HummingbotBridge: hummingbot-api, Basic
- WebhookBridge: a signed JSON POST for everything else
- Bridge: any one of them (by `kind`)
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator

from bot.config.paging import DeliveryLimits, _env_name, _http_url


class _Bridge(DeliveryLimits):
    name: str = Field(min_length=1, max_length=60, description="shown in alerts and the journal")
    url: str = Field(description="base URL of the other bot's API")

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return _http_url(value, "bridges[].url")


class FreqtradeBridge(_Bridge):
    """REDUCING -> pause (no new entries; exits still work); HALTED -> pause, and forceexit of
    every trade if `forceexit_on_halt`; back to ACTIVE -> start, only when a person resumes.
    `/stop` is never called."""

    kind: Literal["freqtrade"]
    auth: Literal["jwt", "basic"] = Field(default="jwt", description="token login or Basic")
    username_env: str = Field(default="FREQTRADE_USERNAME")
    password_env: str = Field(default="FREQTRADE_PASSWORD")
    forceexit_on_halt: bool = Field(default=False, description="HALTED also exits all trades")
    start_on_resume: bool = Field(default=True, description="a person's resume starts it again")

    @field_validator("username_env", "password_env")
    @classmethod
    def _env(cls, value: str) -> str:
        return _env_name(value)


class HummingbotBridge(_Bridge):
    """hummingbot-api: stop the named bots (their orders cancelled) once the ladder reaches
    `stop_on`; they are started again by a person (a start needs their script and config)."""

    kind: Literal["hummingbot"]
    bots: tuple[str, ...] = Field(min_length=1, description="bot_name of each bot to stop")
    stop_on: Literal["REDUCING", "HALTED"] = "REDUCING"
    skip_order_cancellation: bool = Field(default=False, description="leave their orders resting")
    username_env: str = Field(default="HUMMINGBOT_API_USERNAME")
    password_env: str = Field(default="HUMMINGBOT_API_PASSWORD")

    @field_validator("username_env", "password_env")
    @classmethod
    def _env(cls, value: str) -> str:
        return _env_name(value)


class WebhookBridge(_Bridge):
    """Every ladder change as JSON (state, previous, reason, by, time), signed with HMAC-SHA256
    of the raw body under the secret in `secret_env`."""

    kind: Literal["webhook"]
    secret_env: str = Field(default="LIQGUARD_BRIDGE_SECRET")

    @field_validator("secret_env")
    @classmethod
    def _env(cls, value: str) -> str:
        return _env_name(value)


Bridge = Annotated[FreqtradeBridge | HummingbotBridge | WebhookBridge, Field(discriminator="kind")]
