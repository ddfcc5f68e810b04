"""The `metrics:`, `http:` and `healthcheck:` sections: watching liqguard from outside."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

DEFAULT_METRICS = "127.0.0.1:9464"
DEFAULT_HTTP = "127.0.0.1:8088"


def parse_listen(text: str, field: str) -> tuple[str, int]:
    """'HOST:PORT' (or ':PORT', loopback) -> (host, port); a ValueError names the field."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"{field} {text!r}: give HOST:PORT, e.g. 127.0.0.1:9464")
    return host.strip("[]") or "127.0.0.1", int(port)


def _listen(value: object, default: str) -> str | None:
    if value is True:
        return default
    if value is False or value is None:
        return None
    return str(value)


class MetricsConfig(BaseModel):
    """`metrics:` — Prometheus metrics at http://LISTEN/metrics (off unless set)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    listen: str | None = Field(
        default=None, description=f"HOST:PORT, or true for {DEFAULT_METRICS}; off by default"
    )

    @field_validator("listen", mode="before")
    @classmethod
    def _on(cls, value: object) -> str | None:
        out = _listen(value, DEFAULT_METRICS)
        if out is not None:
            parse_listen(out, "metrics.listen")
        return out


class HttpConfig(BaseModel):
    """`http:` — the status page (read-only unless LIQGUARD_HTTP_TOKEN is set)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    listen: str | None = Field(
        default=None, description=f"HOST:PORT, or true for {DEFAULT_HTTP}; off by default"
    )
    token_env: str = Field(
        default="LIQGUARD_HTTP_TOKEN",
        min_length=1,
        description="the environment variable holding the token that enables the buttons",
    )
    allowed_hosts: tuple[str, ...] = Field(
        default=(),
        description="host names the page may be opened by, besides IP addresses and localhost",
    )

    @field_validator("allowed_hosts")
    @classmethod
    def _names(cls, names: tuple[str, ...]) -> tuple[str, ...]:
        out = tuple(n.strip().lower() for n in names)
        bad = [n for n in out if not n or any(c in n for c in " /:@[]")]
        if bad:
            raise ValueError(f"give names without port or scheme, e.g. bot.lan (got {bad[0]!r})")
        return out

    @field_validator("listen", mode="before")
    @classmethod
    def _on(cls, value: object) -> str | None:
        out = _listen(value, DEFAULT_HTTP)
        if out is not None:
            parse_listen(out, "http.listen")
        return out


class HealthcheckConfig(BaseModel):
    """`healthcheck:` — the heartbeat, systemd's watchdog and a dead-man's-switch URL."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    ping_url: str | None = Field(
        default=None, description="GET every interval_s while healthy (healthchecks.io, ...)"
    )
    interval_s: float = Field(default=30.0, gt=0, le=3600, description="ping_url period")
    beat_s: float = Field(default=1.0, gt=0, le=60, description="heartbeat period")
    max_loop_lag_s: float = Field(
        default=5.0, gt=0, le=3600, description="unhealthy when the event loop lags more"
    )
    max_commit_age_s: float | None = Field(
        default=None,
        gt=0,
        description="unhealthy when the journal has not committed for this long (off: None)",
    )

    @field_validator("ping_url")
    @classmethod
    def _http(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError(f"healthcheck.ping_url: give an http(s):// URL, not {value[:20]!r}")
        return value
