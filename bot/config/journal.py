"""The `journal:` section: where every step is recorded."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class JournalConfig(BaseModel):
    """`journal:` — where every step is recorded."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str | None = Field(
        default=None,
        description="SQLAlchemy URL or SQLite path; default ./var/liqguard.sqlite",
    )
    checkpoint_every_events: int = Field(default=200, ge=1, description="replay resume points")
