"""Keys and tokens never reach the terminal log or the JSON-lines file, whoever logs them."""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path

import pytest
from loguru import logger

from bot.logs import register_secrets, setup_logging
from bot.secrets import load_secrets

API_SECRET_FAKE = "Zq9xVb7-api-secret-0123456789abcdef"
BOT_TOKEN = "7123456789:AAHk-telegram-token-ABCDEFGHIJKLMNOPQ"


@pytest.fixture
def captured(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[io.StringIO, Path]:
    monkeypatch.setenv("LIQGUARD_BINANCE_API_SECRET", API_SECRET_FAKE)
    monkeypatch.setenv("LIQGUARD_TELEGRAM_BOT_TOKEN", BOT_TOKEN)
    secrets = load_secrets(env_file=None)
    register_secrets(secrets.all_secret_values())
    stream = io.StringIO()
    json_file = tmp_path / "log.jsonl"
    setup_logging("DEBUG", json_file=str(json_file), stream=stream)
    yield stream, json_file
    setup_logging("INFO")


def test_secrets_are_loaded_as_secretstr(captured: tuple[io.StringIO, Path]) -> None:
    secrets = load_secrets(env_file=None)
    assert API_SECRET_FAKE not in repr(secrets)
    assert API_SECRET_FAKE in secrets.all_secret_values()


def test_no_secret_in_any_sink(captured: tuple[io.StringIO, Path]) -> None:
    stream, json_file = captured
    logger.info("signing with {}", API_SECRET_FAKE)
    logger.bind(url=f"https://api.telegram.org/bot{BOT_TOKEN}/getMe").warning("request failed")
    # A library logging through the stdlib, as httpx and ccxt do.
    logging.getLogger("ccxt.base.exchange").error("POST /order?signature=%s", API_SECRET_FAKE)
    logging.getLogger("telegram.ext").warning(
        "GET https://api.telegram.org/bot%s/getUpdates", BOT_TOKEN
    )
    try:
        raise RuntimeError(f"auth failed for key {API_SECRET_FAKE}")
    except RuntimeError:
        logger.exception("order failed")
    logger.complete()

    terminal = stream.getvalue()
    on_disk = json_file.read_text(encoding="utf-8")
    for text in (terminal, on_disk):
        assert API_SECRET_FAKE not in text
        assert BOT_TOKEN not in text
        assert "***" in text
    # The library records arrived (routed into loguru), only redacted.
    assert "POST /order?signature=***" in terminal
    assert all(json.loads(line)["record"]["message"] for line in on_disk.splitlines())


def test_unregistered_bot_token_in_a_url_is_still_redacted(
    captured: tuple[io.StringIO, Path],
) -> None:
    stream, _ = captured
    other = "5555555555:BBHk-another-token-ZYXWVUTSRQPONMLK"
    logger.info("calling https://api.telegram.org/bot{}/sendMessage", other)
    assert other not in stream.getvalue()
