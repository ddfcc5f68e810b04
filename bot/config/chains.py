"""On-chain liquidation sources (Aave v3, Compound v3) per chain."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class ChainsConfig(BaseModel):
    """Placeholder: on-chain sources per chain."""

    model_config = ConfigDict(extra="allow", frozen=True)
