"""WebhookNotifier against a real aiohttp receiver on 127.0.0.1."""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import socket
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from bot.config.telegram import WebhookConfig
from bot.events import Anomaly, FeedStatus, SymbolUsd
from bot.logs import setup_logging
from bot.notify.webhook import SIGNATURE_HEADER, TIMESTAMP_HEADER, WebhookNotifier
from bot.secrets import Secrets

SECRET = "whsec-test-0123456789"
ANOMALY = Anomaly(
    rule="all",
    ts_ms=1_733_380_000_000,
    level=2,
    window_cents=250_000_000,
    threshold_cents=200_000_000,
    base_threshold_cents=100_000_000,
    long_cents=200_000_000,
    short_cents=50_000_000,
    events=42,
    top_symbols=(SymbolUsd("BTCUSDT", 180_000_000),),
    top_venues=(SymbolUsd("binance", 250_000_000),),
    previous_level=1,
)


class Receiver:
    def __init__(self) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.answers: list[web.Response] = []
        self.port = 0

    async def handle(self, request: web.Request) -> web.Response:
        self.requests.append((dict(request.headers), await request.read()))
        return self.answers.pop(0) if self.answers else web.Response(text="ok")

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    rec = Receiver()
    app = web.Application()
    app.router.add_post("/{tail:.*}", rec.handle)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    rec.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield rec
    await runner.cleanup()


def secrets(secret: str | None = SECRET) -> Secrets:
    return Secrets(_env_file=None, webhook_secret=secret)  # type: ignore[call-arg]


async def test_generic_payload_is_signed(receiver: Receiver) -> None:
    hook = WebhookNotifier(WebhookConfig(url=receiver.url()), secrets())
    await hook.notify(ANOMALY)
    await hook.close()
    headers, body = receiver.requests[0]
    ts = headers[TIMESTAMP_HEADER]
    expected = hmac.new(SECRET.encode(), ts.encode() + b"." + body, hashlib.sha256).hexdigest()
    assert headers[SIGNATURE_HEADER] == f"sha256={expected}"
    data = json.loads(body)
    assert data["type"] == "Anomaly" and data["event"]["window_cents"] == ANOMALY.window_cents
    assert data["severity"] == "warning" and "L2" in data["title"]


async def test_slack_and_discord_shapes(receiver: Receiver) -> None:
    slack = WebhookNotifier(WebhookConfig(url=receiver.url("/s"), kind="slack"), secrets(None))
    discord = WebhookNotifier(WebhookConfig(url=receiver.url("/d"), kind="discord"), secrets(None))
    feed = FeedStatus(ts_ms=1_733_380_000_000, venue="bybit", state="blind", silent_s=95)
    await slack.notify(feed)
    await discord.notify(ANOMALY)
    await slack.close()
    await discord.close()
    (s_headers, s_body), (_, d_body) = receiver.requests
    assert SIGNATURE_HEADER not in s_headers  # no secret, no signature
    assert set(json.loads(s_body)) == {"text"} and "bybit is blind" in json.loads(s_body)["text"]
    d = json.loads(d_body)
    assert set(d) == {"content", "allowed_mentions"} and len(d["content"]) <= 2000
    assert "$2.50M" in d["content"]


async def test_retries_after_429_and_5xx_then_delivers(receiver: Receiver) -> None:
    receiver.answers = [
        web.Response(status=429, headers={"Retry-After": "0.05"}),
        web.Response(status=502),
    ]
    cfg = WebhookConfig(url=receiver.url(), retries=3)
    hook = WebhookNotifier(cfg, secrets())
    await hook.notify(ANOMALY)
    await hook.close()
    bodies = [b for _, b in receiver.requests]
    assert len(bodies) == 3 and len(set(bodies)) == 1  # the same alert, delivered on try 3


async def test_client_error_is_not_retried_and_never_raises(receiver: Receiver) -> None:
    receiver.answers = [web.Response(status=404)]
    hook = WebhookNotifier(WebhookConfig(url=receiver.url(), retries=3), secrets())
    await hook.notify(ANOMALY)
    await hook.close()
    assert len(receiver.requests) == 1


async def test_unreachable_webhook_gives_up_with_one_error_line_and_no_url() -> None:
    with socket.socket() as sock:  # a loopback port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/hook-T0KEN"
    hook = WebhookNotifier(WebhookConfig(url=url, retries=1, timeout_s=1), secrets())
    log = io.StringIO()
    setup_logging("INFO", stream=log)
    try:
        await hook.notify(ANOMALY)  # must not raise: an alert channel never stops the bot
        await hook.close()
    finally:
        setup_logging("INFO")
    lines = [line for line in log.getvalue().splitlines() if "webhook" in line]
    assert len(lines) == 1 and "ERROR" in lines[0]
    assert "webhook:generic gave up on an alert after 2 tries: ClientConnectorError" in lines[0]
    assert "hook-T0KEN" not in log.getvalue()  # the URL is a credential


def test_webhook_url_must_be_http() -> None:
    with pytest.raises(ValueError, match="http"):
        WebhookConfig(url="ftp://example.invalid/x")
