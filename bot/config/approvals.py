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
    override_approvers: int = Field(
        default=1,
        ge=1,
        le=10,
        description="distinct people who confirm a runtime change (/threshold, /rule, /policy)",
    )
    override_timeout_s: float = Field(
        default=300.0, gt=0, le=3600, description="time to confirm a runtime change"
    )
