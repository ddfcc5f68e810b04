"""The bridges as delivery channels (bot.notify.delivery.Channel): one request per call.

- FreqtradeChannel: the REST API (`/api/v1/...`): `pause` (no new entries, exits still work;
  Freqtrade up to API 2.40 at least has no `/pause` but `/stopentry` (alias `/stopbuy`), which
  sets max_open_trades to 0: used when `/pause` is 404, and undone by `/reload_config`, since
  its `/start` only restarts a stopped bot), `forceexit` of every trade
  (`{"tradeid": "all"}`), `start`. Basic auth, or JWT: a
  `POST /api/v1/token/login` with Basic auth gives an access token sent as Bearer (logged in
  again on a 401). `/stop` is never called: it would leave open positions unmanaged.
- HummingbotChannel: hummingbot-api `POST /bot-orchestration/stop-bot` (Basic auth),
  `{"bot_name", "skip_order_cancellation", "async_backend"}` per bot
- WebhookChannel: the ladder change as JSON, signed like liqguard's alert webhooks
  (`X-Liqguard-Signature: sha256=HMAC-SHA256(secret, "<timestamp>." + body)`)
"""

from __future__ import annotations

import base64
import json
import time
from typing import Any, ClassVar

from bot.config.bridges import FreqtradeBridge, HummingbotBridge, WebhookBridge
from bot.notify.delivery import Call, HttpSession, Refused, http_error
from bot.notify.webhook import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign


def basic_auth(username: str, password: str) -> dict[str, str]:
    """The Authorization header of HTTP Basic auth (RFC 7617)."""
    pair = base64.b64encode(f"{username}:{password}".encode()).decode()
    return {"Authorization": f"Basic {pair}"}


class _Http(HttpSession):
    def __init__(self, name: str, timeout_s: float) -> None:
        super().__init__(timeout_s)
        self.name = name

    async def request(
        self, url: str, body: Any = None, *, data: bytes | None = None, **kw: Any
    ) -> tuple[int, Any]:
        """POST; (status, JSON answer); non-2xx raised as Refused / Retryable (401 returned)."""
        async with self.session().post(
            url, json=body if data is None else None, data=data, **kw
        ) as r:
            text = await r.text()
            if r.status == 401:
                return 401, None
            if r.status >= 300:
                raise http_error(r.status, text, r.headers.get("Retry-After"))
            try:
                return r.status, json.loads(text) if text else {}
            except ValueError:
                return r.status, {}


class FreqtradeChannel(_Http):
    OPS: ClassVar[dict[str, str]] = {
        "pause": "/api/v1/pause",
        "forceexit": "/api/v1/forceexit",
        "start": "/api/v1/start",
    }
    LEGACY_PAUSE = "/api/v1/stopentry"  # Freqtrade before /pause (and /stopbuy before that)
    LEGACY_RESUME = "/api/v1/reload_config"  # what undoes /stopentry (max_open_trades back)

    def __init__(self, config: FreqtradeBridge, username: str, password: str) -> None:
        super().__init__(f"freqtrade:{config.name}", config.timeout_s)
        self.config = config
        self._basic = basic_auth(username, password)
        self._token: str | None = None
        self._legacy: bool | None = None  # no /pause (404 seen); None: not known yet

    async def _login(self) -> str:
        status, data = await self.request(
            f"{self.config.url}/api/v1/token/login", {}, headers=self._basic
        )
        if status == 401 or not isinstance(data, dict) or not data.get("access_token"):
            raise Refused("login refused (HTTP 401): check the username and password variables")
        self._token = str(data["access_token"])
        return self._token

    async def _post(self, path: str, body: Any = None) -> tuple[int, Any]:
        url = f"{self.config.url}{path}"
        if self.config.auth == "basic":
            status, data = await self.request(url, body, headers=self._basic)
        else:
            token = self._token or await self._login()
            status, data = await self.request(
                url, body, headers={"Authorization": f"Bearer {token}"}
            )
            if status == 401:  # the access token expired: log in once more
                token = await self._login()
                headers = {"Authorization": f"Bearer {token}"}
                status, data = await self.request(url, body, headers=headers)
        if status == 401:
            raise Refused(f"{path}: HTTP 401 (credentials refused)")
        return status, data

    async def send(self, call: Call) -> str:
        if call.op not in self.OPS:  # never /stop, nor anything not written here
            raise Refused(f"freqtrade: {call.op!r} is not a bridge call")
        if call.op == "pause":
            return await self._pause_entries()
        if call.op == "start" and self._legacy:
            return await self._say(self.LEGACY_RESUME)  # /start would leave entries off
        body = {"tradeid": "all"} if call.op == "forceexit" else None
        said = await self._say(self.OPS[call.op], body)
        if call.op == "start" and self._legacy is None and "already running" in said:
            # not paused by this process (a restart since): maybe an older Freqtrade's stopentry
            said += "; " + await self._say(self.LEGACY_RESUME)
        return said

    async def _pause_entries(self) -> str:
        if not self._legacy:
            try:
                said = await self._say(self.OPS["pause"])
                self._legacy = False
                return said
            except Refused as exc:
                if "HTTP 404" not in str(exc):
                    raise
        self._legacy = True  # an older Freqtrade: /stopentry has the same effect on entries
        return await self._say(self.LEGACY_PAUSE)

    async def _say(self, path: str, body: Any = None) -> str:
        status, data = await self._post(path, body)
        said = (data.get("status") or data.get("result") or "") if isinstance(data, dict) else ""
        return f"{path} HTTP {status} {str(said)[:120]}".strip()


class HummingbotChannel(_Http):
    def __init__(self, config: HummingbotBridge, username: str, password: str) -> None:
        super().__init__(f"hummingbot:{config.name}", config.timeout_s)
        self.config = config
        self._basic = basic_auth(username, password)

    async def send(self, call: Call) -> str:
        if call.op != "stop":
            raise Refused(f"hummingbot: {call.op!r} is not a bridge call")
        body = {
            "bot_name": str(call.body),
            "skip_order_cancellation": self.config.skip_order_cancellation,
            "async_backend": False,
        }
        url = f"{self.config.url}/bot-orchestration/stop-bot"
        status, data = await self.request(url, body, headers=self._basic)
        if status == 401:
            raise Refused("stop-bot: HTTP 401 (credentials refused)")
        answer = data.get("response") if isinstance(data, dict) else None
        if isinstance(answer, dict) and answer.get("success") is False:
            raise Refused(f"stop-bot {call.body}: {str(answer.get('message', answer))[:160]}")
        return f"stop-bot {call.body} HTTP {status}"


class WebhookChannel(_Http):
    def __init__(self, config: WebhookBridge, secret: str) -> None:
        super().__init__(f"webhook:{config.name}", config.timeout_s)
        self.config = config
        self._secret = secret

    async def send(self, call: Call) -> str:
        raw = json.dumps(call.body, sort_keys=True, separators=(",", ":")).encode()
        ts_s = int(time.time())
        headers = {
            "Content-Type": "application/json",
            TIMESTAMP_HEADER: str(ts_s),
            SIGNATURE_HEADER: sign(self._secret, ts_s, raw),
        }
        status, _ = await self.request(self.config.url, data=raw, headers=headers)
        if status == 401:
            raise Refused("HTTP 401: the receiver refused the signature")
        return f"HTTP {status}"
