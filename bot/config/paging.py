"""The `paging:` section: wake a person through PagerDuty, Opsgenie or email (all off by default).

Keys and passwords are never written here: each channel names the environment variable that
holds its key (`routing_key_env`, `api_key_env`, `password_env`).

- DeliveryLimits: the rate limit and retry every pager and bridge shares
- PagerDutyConfig, OpsgenieConfig, EmailConfig, PagingConfig
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

PageTrigger = Literal["halt", "feed_blind", "unhealthy", "approval_expired"]
ALL_TRIGGERS: tuple[PageTrigger, ...] = ("halt", "feed_blind", "unhealthy", "approval_expired")
OPSGENIE_URLS = {"us": "https://api.opsgenie.com", "eu": "https://api.eu.opsgenie.com"}


def _env_name(value: str) -> str:
    if not value.replace("_", "").isalnum() or value[0].isdigit():
        raise ValueError(f"{value!r} is not an environment variable name (e.g. PAGERDUTY_KEY)")
    return value


def _http_url(value: str, field: str) -> str:
    if not value.startswith(("http://", "https://")):
        raise ValueError(f"{field}: give an http(s):// URL, not {value[:30]!r}")
    return value.rstrip("/")


class DeliveryLimits(BaseModel):
    """Rate limit and retry of one outbound channel (a pager or a bridge)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    max_per_minute: int = Field(
        default=10, ge=1, le=600, description="calls per minute; more wait their turn"
    )
    retries: int = Field(default=4, ge=0, le=20, description="tries after the first (429, 5xx)")
    backoff_s: float = Field(
        default=1.0, gt=0, le=60, description="first wait between tries, doubled each time"
    )
    max_backoff_s: float = Field(default=60.0, gt=0, le=3600, description="longest wait")
    timeout_s: float = Field(default=10.0, gt=0, le=120, description="one request")


class PagerDutyConfig(DeliveryLimits):
    """PagerDuty Events API v2: trigger an alert per episode, resolve it when a person resumes."""

    routing_key_env: str = Field(
        default="PAGERDUTY_ROUTING_KEY", description="env var holding the integration key"
    )
    url: str = Field(default="https://events.pagerduty.com/v2/enqueue")
    source: str = Field(default="liqguard", min_length=1, max_length=255)

    @field_validator("routing_key_env")
    @classmethod
    def _env(cls, value: str) -> str:
        return _env_name(value)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return _http_url(value, "paging.pagerduty.url")


class OpsgenieConfig(DeliveryLimits):
    """Opsgenie Alert API: create an alert (alias = the episode), close it on resume."""

    api_key_env: str = Field(default="OPSGENIE_API_KEY", description="env var: GenieKey")
    region: Literal["us", "eu"] = Field(default="us", description="api.opsgenie.com or api.eu.")
    url: str | None = Field(default=None, description="base URL; overrides region")
    priority: Literal["P1", "P2", "P3", "P4", "P5"] = "P1"
    responders: tuple[str, ...] = Field(default=(), description="team names to notify")

    @field_validator("api_key_env")
    @classmethod
    def _env(cls, value: str) -> str:
        return _env_name(value)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        return None if value is None else _http_url(value, "paging.opsgenie.url")

    @property
    def base_url(self) -> str:
        return self.url or OPSGENIE_URLS[self.region]


class EmailConfig(DeliveryLimits):
    """Email over SMTP, STARTTLS on port 587 (or implicit TLS on 465), the chart attached."""

    host: str = Field(min_length=1)
    port: int = Field(default=587, ge=1, le=65535)
    tls: Literal["starttls", "implicit"] = Field(
        default="starttls", description="starttls (587) or implicit TLS (465); never plain"
    )
    username_env: str | None = Field(default=None, description="env var: SMTP user")
    password_env: str | None = Field(default=None, description="env var: SMTP password")
    from_addr: str = Field(min_length=3, description="From:")
    to: tuple[str, ...] = Field(min_length=1, description="To: (one or more)")
    ca_file: str | None = Field(default=None, description="trust this CA (a private relay)")
    attach_chart: bool = Field(default=True, description="attach the anomaly chart PNG")
    max_per_minute: int = Field(default=4, ge=1, le=600)

    @field_validator("username_env", "password_env")
    @classmethod
    def _env(cls, value: str | None) -> str | None:
        return None if value is None else _env_name(value)

    @field_validator("from_addr", "to")
    @classmethod
    def _addr(cls, value: str | tuple[str, ...]) -> str | tuple[str, ...]:
        for a in (value,) if isinstance(value, str) else value:
            if "@" not in a:
                raise ValueError(f"{a!r} is not an email address")
        return value


class PagingConfig(BaseModel):
    """`paging:` — each channel is off unless its section is given."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    pagerduty: PagerDutyConfig | None = None
    opsgenie: OpsgenieConfig | None = None
    email: EmailConfig | None = None
    # not `on`: YAML 1.1 reads a bare `on` key as the boolean true
    triggers: tuple[PageTrigger, ...] = Field(
        default=ALL_TRIGGERS, description="what pages: " + ", ".join(ALL_TRIGGERS)
    )

    @property
    def enabled(self) -> bool:
        return any(c is not None for c in (self.pagerduty, self.opsgenie, self.email))

    @model_validator(mode="after")
    def _some_trigger(self) -> PagingConfig:
        if self.enabled and not self.triggers:
            raise ValueError("paging.triggers is empty: nothing would page; remove paging: instead")
        return self
