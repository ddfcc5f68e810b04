"""Build the Telegram edge from settings and secrets: app, approver, notifier, commands.

- create_telegram(settings, secrets, journal, ...) -> TelegramParts
- TelegramParts.start() / close(): polling inside the caller's event loop, stopped in order
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from typing import Any

from telegram.error import TelegramError

from bot.config.errors import ConfigError
from bot.config.settings import Settings
from bot.config.telegram import TelegramConfig
from bot.interfaces import Clock, Journal
from bot.logs import register_secrets
from bot.notify.charts import render_chart
from bot.secrets import Secrets
from bot.telegram.app import TelegramApp
from bot.telegram.approvals import Report, TelegramApprover
from bot.telegram.commands import Commands, Control
from bot.telegram.nonce import NonceStore
from bot.telegram.notifier import ChartSource, TelegramNotifier


@dataclass
class TelegramParts:
    app: TelegramApp
    approver: TelegramApprover
    notifier: TelegramNotifier
    commands: Commands
    _sampler: Callable[[], Coroutine[Any, Any, None]] | None = None
    _sampler_task: asyncio.Task[None] | None = None

    def attach(self, control: Control) -> None:
        """Give /status, /pause, ... and the alert charts a runtime to ask."""
        self.commands.control = control
        self._sampler = getattr(control, "run_sampler", None)
        if self.notifier.chart_source is None:
            self.notifier.chart_source = control.chart_input

    async def start(self) -> bool:
        """Connect and poll; False when Telegram is unreachable (it keeps retrying)."""
        if self._sampler is not None and self._sampler_task is None:
            self._sampler_task = asyncio.create_task(self._sampler(), name="telegram-chart")
        if not await self.app.start():
            return False
        with contextlib.suppress(TelegramError):  # a menu is a nicety
            await self.commands.publish()
        return True

    async def close(self) -> None:
        if self._sampler_task is not None:
            self._sampler_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sampler_task
        await self.notifier.close()
        await self.app.stop()


def telegram_credentials(settings: Settings, secrets: Secrets) -> tuple[TelegramConfig, str, str]:
    """(section, bot token, approval HMAC key), or ConfigError naming what is missing; checked
    before anything is opened, so a missing token leaves nothing behind."""
    config = settings.telegram
    if config is None:
        raise ConfigError("telegram: the section is missing from liqguard.yaml")
    token = secrets.telegram_bot_token.get_secret_value() if secrets.telegram_bot_token else ""
    if not token:
        raise ConfigError(
            "telegram: LIQGUARD_TELEGRAM_BOT_TOKEN is not set; create a bot with @BotFather "
            "and put its token in the environment or .env (README: Telegram setup)"
        )
    key = secrets.approval_hmac_key.get_secret_value() if secrets.approval_hmac_key else ""
    if len(key) < 16:
        raise ConfigError(
            "telegram: LIQGUARD_APPROVAL_HMAC_KEY must be set (16+ characters); generate one "
            'with: python -c "import secrets; print(secrets.token_hex(32))"'
        )
    return config, token, key


def create_telegram(
    settings: Settings,
    secrets: Secrets,
    journal: Journal,
    *,
    clock: Clock | None = None,
    control: Control | None = None,
    chart_source: ChartSource | None = None,
    prices: Callable[[], Mapping[str, float]] | None = None,
    report: Report | None = None,
) -> TelegramParts:
    """The Telegram approver, notifier and command layer for `settings.telegram`.

    `report` receives what the other channels must hear (Telegram unreachable for an
    approval); `control` is the runtime behind /status, /pause, ...
    """
    config, token, key = telegram_credentials(settings, secrets)
    register_secrets([key])  # the token is registered by TelegramApp
    app = TelegramApp(token, config)
    nonces = NonceStore(key.encode(), journal)
    approver = TelegramApprover(app, nonces, journal, config, clock, prices, report)
    if chart_source is None and control is not None:
        chart_source = control.chart_input
    notifier = TelegramNotifier(app, config, chart_source)
    commands = Commands(
        app, config, journal, approver.clock, nonces, approver, control, render_chart
    )
    return TelegramParts(app, approver, notifier, commands)
