"""The `journal:` section: where every step is recorded."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator


class JournalConfig(BaseModel):
    """`journal:` — where every step is recorded."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    url: str | None = Field(
        default=None,
        description="SQLAlchemy URL or SQLite path; default ./var/liqguard.sqlite",
    )
    checkpoint_every_events: int = Field(default=200, ge=1, description="replay resume points")

    @field_validator("url")
    @classmethod
    def _known_scheme(cls, url: str | None) -> str | None:
        if url is not None and "://" in url:
            scheme = url.split(":", 1)[0].split("+", 1)[0]
            if scheme not in ("sqlite", "postgresql"):
                raise ValueError(
                    f"unknown scheme {scheme!r}: use a SQLite path, sqlite:///PATH or "
                    "postgresql+psycopg://USER@HOST/DB"
                )
        return url
