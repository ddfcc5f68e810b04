"""Response policy, risk limits, approvals, paper account and journal (issue: the response)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class PolicyConfig(BaseModel):
    """Placeholder: which actions run at each escalation level (filled by the response work)."""

    model_config = ConfigDict(extra="allow", frozen=True)
