"""Telegram and webhook notifications and approvals."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class TelegramConfig(BaseModel):
    """Placeholder: the Telegram chat, allow-list and approval options."""

    model_config = ConfigDict(extra="allow", frozen=True)
