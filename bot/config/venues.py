"""Exchanges: liquidation streams and live brokers through ccxt."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class ExchangesConfig(BaseModel):
    """Placeholder: live venues and endpoints (filled by the live-venues work)."""

    model_config = ConfigDict(extra="allow", frozen=True)
