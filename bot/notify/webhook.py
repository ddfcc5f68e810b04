"""WebhookNotifier: alerts as a JSON POST, so they do not depend on Telegram.

Payload shapes: `generic` (liqguard's own JSON, with the event's fields), `slack`
(`{"text": ...}` of an incoming webhook) and `discord` (`{"content": ...}`). When
LIQGUARD_WEBHOOK_SECRET is set, every request is signed:

    X-Liqguard-Timestamp: <unix seconds>
    X-Liqguard-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>." + raw body)>

A receiver recomputes the HMAC over the raw body and refuses old timestamps (replays).
429 (Retry-After) and 5xx answers and network errors are retried `retries` times; the
webhook URL is registered as a secret (Slack/Discord URLs are credentials) so no log shows it.

- sign(secret, ts_s, body) -> header value ; payload(kind, event) -> dict
- WebhookNotifier(config, secrets).notify(event) / close()
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from typing import Any

import aiohttp
from loguru import logger

from bot.config.telegram import WebhookConfig
from bot.journal import to_payload
from bot.logs import register_secrets
from bot.notify.format import render
from bot.secrets import Secrets

SIGNATURE_HEADER = "X-Liqguard-Signature"
TIMESTAMP_HEADER = "X-Liqguard-Timestamp"
_DISCORD_LIMIT = 2000
_SLACK_LIMIT = 3000


def sign(secret: str, ts_s: int, body: bytes) -> str:
    """The signature header value for a body sent at `ts_s`."""
    mac = hmac.new(secret.encode(), f"{ts_s}.".encode() + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def payload(kind: str, event: object) -> dict[str, Any]:
    """The JSON body for one event in the shape the receiving service expects."""
    msg = render(event)
    if kind == "slack":
        return {"text": f"*{msg.title}*\n{msg.body}"[:_SLACK_LIMIT] if msg.body else msg.title}
    if kind == "discord":
        return {"content": msg.text[:_DISCORD_LIMIT], "allowed_mentions": {"parse": []}}
    try:
        data: dict[str, Any] = to_payload(event)
    except (TypeError, ValueError):
        data = {"repr": repr(event)}
    return {
        "source": "liqguard",
        "type": type(event).__name__,
        "severity": msg.severity,
        "page": msg.page,
        "title": msg.title,
        "text": msg.body,
        "ts_ms": getattr(event, "ts_ms", None) or int(time.time() * 1000),
        "event": data,
    }


def _retry_after_s(response: aiohttp.ClientResponse, attempt: int) -> float:
    header = response.headers.get("Retry-After", "")
    try:
        return max(0.0, min(60.0, float(header)))
    except ValueError:
        return min(30.0, 0.5 * 2**attempt)


class WebhookNotifier:
    name = "webhook"

    def __init__(
        self,
        config: WebhookConfig,
        secrets: Secrets,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        self.config = config
        self.name = f"webhook:{config.kind}"
        register_secrets([config.url])
        secret = secrets.webhook_secret
        self._secret = secret.get_secret_value() if secret is not None else ""
        self._session = session
        self._own_session = session is None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            timeout = aiohttp.ClientTimeout(total=self.config.timeout_s)
            self._session = aiohttp.ClientSession(timeout=timeout)
            self._own_session = True
        return self._session

    async def notify(self, event: object) -> None:
        body = json.dumps(payload(self.config.kind, event), default=str).encode()
        for attempt in range(self.config.retries + 1):
            headers = {"Content-Type": "application/json", "User-Agent": "liqguard"}
            if self._secret:
                ts_s = int(time.time())
                headers[TIMESTAMP_HEADER] = str(ts_s)
                headers[SIGNATURE_HEADER] = sign(self._secret, ts_s, body)
            try:
                async with self._client().post(self.config.url, data=body, headers=headers) as r:
                    if r.status < 300:
                        return
                    if r.status != 429 and r.status < 500:
                        logger.warning("{} refused an alert: HTTP {}", self.name, r.status)
                        return  # a 4xx will not get better by retrying
                    wait_s = _retry_after_s(r, attempt)
                    problem = f"HTTP {r.status}"
            except (aiohttp.ClientError, TimeoutError) as exc:
                wait_s, problem = min(30.0, 0.5 * 2**attempt), type(exc).__name__
            if attempt < self.config.retries:
                await asyncio.sleep(wait_s)
        logger.error("{} gave up on an alert after {} tries: {}", self.name, attempt + 1, problem)

    async def close(self) -> None:
        if self._own_session and self._session is not None and not self._session.closed:
            await self._session.close()
