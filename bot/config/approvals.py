"""The `approvals:` section: who answers `confirm` steps."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class ApprovalsConfig(BaseModel):
    """`approvals:` — who answers `confirm` actions."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    channel: Literal["auto", "console", "telegram"] = Field(
        default="auto", description="auto approves everything; console asks at the terminal"
    )
