"""The python-telegram-bot Application, run inside liqguard's own event loop.

`initialize/start/updater.start_polling` (never `run_polling`, which owns the loop and its
signals); stopped in reverse order. If Telegram cannot be reached at start, a background task
keeps trying; `available` says whether the bot is up, so approvals can fall back at once.

- TelegramApp(token, config): build, on_callback / on_command registration, start(), stop()
- send_text / send_photo / edit: Bot API calls with "message is not modified" treated as done
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from loguru import logger
from telegram import InlineKeyboardMarkup, Message, Update
from telegram.error import BadRequest, TelegramError
from telegram.ext import (
    AIORateLimiter,
    Application,
    ApplicationBuilder,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
)

from bot.config.telegram import TelegramConfig
from bot.logs import register_secrets

UpdateHandler = Callable[[Update], Awaitable[None]]
_RETRY_START_S = 30.0


def quiet_http_loggers() -> None:
    """httpx logs request URLs, which hold the bot token, at INFO: keep them at WARNING."""
    for name in ("httpx", "httpcore", "telegram", "telegram.ext"):
        logging.getLogger(name).setLevel(logging.WARNING)


class TelegramApp:
    """One PTB Application: the bot, its polling loop and the handlers liqguard registers."""

    def __init__(self, token: str, config: TelegramConfig) -> None:
        register_secrets([token])
        quiet_http_loggers()
        self.config = config
        builder = (
            ApplicationBuilder()
            .token(token)
            .rate_limiter(AIORateLimiter(max_retries=3))
            .connect_timeout(config.connect_timeout_s)
            .get_updates_read_timeout(config.poll_timeout_s + 5)
            .concurrent_updates(False)
        )
        if config.base_url:
            builder = builder.base_url(config.base_url)
        if config.base_file_url or config.base_url:
            builder = builder.base_file_url(config.base_file_url or config.base_url or "")
        self.application: Application[Any, Any, Any, Any, Any, Any] = builder.build()
        self.application.add_error_handler(self._on_error)
        self.available = False
        self._retry_task: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------ handlers
    def on_callback(self, handler: UpdateHandler) -> None:
        async def run(update: Update, _ctx: ContextTypes.DEFAULT_TYPE) -> None:
            await handler(update)

        self.application.add_handler(CallbackQueryHandler(run))

    def on_command(self, names: list[str], handler: UpdateHandler) -> None:
        async def run(update: Update, _ctx: ContextTypes.DEFAULT_TYPE) -> None:
            await handler(update)

        self.application.add_handler(CommandHandler(names, run))

    async def _on_error(self, update: object, ctx: ContextTypes.DEFAULT_TYPE) -> None:
        err = ctx.error
        logger.warning("telegram handler failed: {}: {}", type(err).__name__, err)

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> bool:
        """Connect and start polling; on failure keep retrying in the background."""
        if await self._try_start():
            return True
        self._retry_task = asyncio.create_task(self._retry_start(), name="telegram-start")
        return False

    async def _try_start(self) -> bool:
        app = self.application
        try:
            await app.initialize()
            await app.start()
            assert app.updater is not None
            await app.updater.start_polling(
                timeout=timedelta(seconds=self.config.poll_timeout_s),
                poll_interval=0.0,
                drop_pending_updates=False,  # presses made while we were down still count
                error_callback=self._polling_error,
            )
        except TelegramError as exc:
            logger.warning("telegram unreachable at start: {}: {}", type(exc).__name__, exc)
            with contextlib.suppress(TelegramError, RuntimeError):
                await self._stop_app()
            return False
        self.available = True
        logger.info("telegram bot @{} polling", app.bot.username)
        return True

    async def _retry_start(self) -> None:
        for attempt in itertools.count(1):
            await asyncio.sleep(min(_RETRY_START_S, 2.0 * attempt))
            if await self._try_start():
                return

    def _polling_error(self, exc: TelegramError) -> None:
        logger.warning("telegram polling: {}: {}", type(exc).__name__, exc)

    async def stop(self) -> None:
        """Stop polling, the application and the HTTP clients (each step even if one fails)."""
        if self._retry_task is not None:
            self._retry_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._retry_task
        await self._stop_app()
        self.available = False

    async def _stop_app(self) -> None:
        app = self.application
        if app.updater is not None and app.updater.running:
            await app.updater.stop()
        if app.running:
            await app.stop()
        await app.shutdown()

    # ------------------------------------------------------------------ sending
    async def send_text(self, text: str, markup: InlineKeyboardMarkup | None = None) -> Message:
        return await self.application.bot.send_message(
            chat_id=self.config.chat_id,
            text=text[:4096],
            message_thread_id=self.config.topic_id,
            reply_markup=markup,
        )

    async def send_photo(self, png: bytes, caption: str) -> Message:
        return await self.application.bot.send_photo(
            chat_id=self.config.chat_id,
            photo=png,
            caption=caption[:1024],
            message_thread_id=self.config.topic_id,
        )

    async def edit(
        self, message_id: int, text: str | None, markup: InlineKeyboardMarkup | None
    ) -> None:
        """Edit text and/or buttons; Telegram's "not modified" means it already looks so."""
        bot = self.application.bot
        try:
            if text is None:
                await bot.edit_message_reply_markup(
                    chat_id=self.config.chat_id, message_id=message_id, reply_markup=markup
                )
            else:
                await bot.edit_message_text(
                    chat_id=self.config.chat_id,
                    message_id=message_id,
                    text=text[:4096],
                    reply_markup=markup,
                )
        except BadRequest as exc:
            # The Bot API has no error code for it; its text is the only signal.
            if "not modified" not in str(exc).lower():
                raise
