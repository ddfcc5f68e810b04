"""Logging through loguru only: readable in the terminal, JSON lines to a file if configured.

One redaction filter sees every record; the stdlib loggers of libraries (ccxt, httpx,
telegram, web3, apscheduler) are routed into loguru so they pass through it too.
`redact` removes registered secrets; `scrub` also removes every URL (error texts of ccxt,
aiohttp and web3 carry signed or keyed URLs).
"""

from __future__ import annotations

import logging
import re
import sys
import traceback
from collections.abc import Iterable
from typing import Any

from loguru import logger

REDACTED = "***"
_secrets: set[str] = set()
# Telegram bot tokens in URLs (bot123456:ABC...) even when not registered as a secret.
_TOKEN_PATTERNS = [re.compile(r"bot\d{5,}:[A-Za-z0-9_-]{20,}")]


def register_secrets(values: Iterable[str]) -> None:
    """Add values that must never be printed (keys, tokens, RPC URLs)."""
    for v in values:
        if v and len(v) >= 4:
            _secrets.add(v)


def redact(text: str) -> str:
    """Replace every registered secret and every token-looking string with ***."""
    for secret in sorted(_secrets, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, REDACTED)
    for pattern in _TOKEN_PATTERNS:
        text = pattern.sub("bot" + REDACTED, text)
    return text


# Any URL: RPC and webhook URLs embed keys in the path, signed venue URLs in the query.
_URL = re.compile(r"\b[a-z][a-z0-9+.-]*://[^\s'\"<>]+", re.IGNORECASE)


MASK = "***"


def mask_url(url: str) -> str:
    """scheme://user:pw@host:port/path?q -> scheme://host:port/*** (tokens live in all three)."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    netloc, _, tail = rest.partition("/")
    host = netloc.rsplit("@", 1)[-1]
    host, _, _query = host.partition("?")
    return f"{scheme}://{host}/{MASK}" if tail or "@" in netloc or _query else f"{scheme}://{host}"


def shown_url(url: str) -> str:
    """A URL as a person may see it: with credentials masked (mask_url), else as given."""
    return mask_url(url) if "@" in url else url


def scrub(text: str) -> str:
    """Text that leaves the process (journal, notices): no registered secret and no URL."""
    return _URL.sub("<url>", redact(text))


def _redaction_filter(record: Any) -> bool:
    message = record["message"]
    exc = record["exception"]
    if exc is not None:
        # The traceback text carries the exception message: fold it in redacted, drop the raw one.
        formatted = "".join(traceback.format_exception(exc.type, exc.value, exc.traceback))
        message = f"{message}\n{formatted.rstrip()}"
        record["exception"] = None
    record["message"] = redact(message)
    for key, value in list(record["extra"].items()):
        if isinstance(value, str):
            record["extra"][key] = redact(value)
    return True


class _InterceptHandler(logging.Handler):
    """Send stdlib logging records to loguru (and so through the redaction filter)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            level: str | int = logger.level(record.levelname).name
        except ValueError:
            level = record.levelno
        logger.opt(depth=6, exception=record.exc_info).log(level, record.getMessage())


_QUIET = {"httpx": logging.WARNING, "httpcore": logging.WARNING, "apscheduler": logging.WARNING}


def setup_logging(level: str = "INFO", json_file: str | None = None, stream: Any = None) -> None:
    """Configure loguru sinks and route library loggers into it. Safe to call twice."""
    logger.remove()
    logger.configure(patcher=None)
    logger.add(
        stream or sys.stderr,
        level=level,
        filter=_redaction_filter,
        backtrace=False,
        diagnose=False,  # diagnose would print local variables: secrets among them
        format="<green>{time:HH:mm:ss}</green> <level>{level: <7}</level> {message}",
    )
    if json_file:
        logger.add(
            json_file,
            level=level,
            serialize=True,
            filter=_redaction_filter,
            backtrace=False,
            diagnose=False,
        )
    # stdlib records below the sinks' level are not even made: ccxt formats every request and
    # response (the whole body) for a debug line, ~30 us each on the order's path
    logging.basicConfig(handlers=[_InterceptHandler()], level=logger.level(level).no, force=True)
    for name, lib_level in _QUIET.items():
        logging.getLogger(name).setLevel(lib_level)
