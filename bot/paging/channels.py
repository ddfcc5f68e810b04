"""The three pagers as delivery channels (bot.notify.delivery.Channel): one request per call.

- PagerDutyChannel: Events API v2, POST /v2/enqueue; `trigger` with the episode's dedup_key,
  `resolve` with the same key (202 {"status": "success", "dedup_key": ...} when accepted)
- OpsgenieChannel: Alert API, `Authorization: GenieKey KEY`; create = POST /v2/alerts with
  alias = the dedup key, close = POST /v2/alerts/{alias}/close?identifierType=alias (202)
- EmailChannel: SMTP with STARTTLS (or implicit TLS) through aiosmtplib, the chart attached
- Page: what a trigger or resolve call carries
"""

from __future__ import annotations

import json
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any
from urllib.parse import quote

import aiosmtplib

from bot.config.paging import EmailConfig, OpsgenieConfig, PagerDutyConfig
from bot.events import Severity
from bot.notify.delivery import Call, HttpSession, Refused, Retryable, http_error

PD_SEVERITY = {"critical": "critical", "warning": "warning", "info": "info"}
ChartSource = Callable[[], Awaitable[bytes | None]]


@dataclass(frozen=True, slots=True)
class Page:
    trigger: str  # halt, feed_blind, unhealthy, approval_expired, failure
    title: str
    text: str = ""
    severity: Severity = "critical"
    details: dict[str, Any] = field(default_factory=dict)
    chart: bool = False  # attach the anomaly chart (email)


def _page(call: Call) -> Page:
    body = call.body
    return body if isinstance(body, Page) else Page("failure", call.summary)


class _Http(HttpSession):
    name = "http"

    async def post(
        self, url: str, body: dict[str, Any], headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, Any]]:
        async with self.session().post(url, json=body, headers=headers or {}) as r:
            text = await r.text()
            if r.status >= 300:
                raise http_error(r.status, text, r.headers.get("Retry-After"))
            try:
                data = json.loads(text) if text else {}
            except ValueError:
                data = {}
            return r.status, data if isinstance(data, dict) else {}


class PagerDutyChannel(_Http):
    def __init__(self, config: PagerDutyConfig, routing_key: str) -> None:
        super().__init__(config.timeout_s)
        self.name = "pagerduty"
        self.config = config
        self._key = routing_key

    async def send(self, call: Call) -> str:
        page = _page(call)
        body: dict[str, Any] = {
            "routing_key": self._key,
            "event_action": call.op,
            "dedup_key": call.key[:255],
        }
        if call.op == "trigger":
            body["payload"] = {
                "summary": page.title[:1024],
                "source": self.config.source,
                "severity": PD_SEVERITY[page.severity],
                "component": "liqguard",
                "group": page.trigger,
                "class": page.trigger,
                "custom_details": {"text": page.text, **page.details},
            }
        status, data = await self.post(self.config.url, body)
        if data.get("status") not in (None, "success"):
            raise Refused(f"HTTP {status}: {data.get('message', data.get('status'))}")
        return f"HTTP {status} {data.get('message', '')}".strip()


class OpsgenieChannel(_Http):
    def __init__(self, config: OpsgenieConfig, api_key: str) -> None:
        super().__init__(config.timeout_s)
        self.name = "opsgenie"
        self.config = config
        self._auth = {"Authorization": f"GenieKey {api_key}"}

    async def send(self, call: Call) -> str:
        page = _page(call)
        base = f"{self.config.base_url}/v2/alerts"
        alias = call.key[:512]
        if call.op == "resolve":
            url = f"{base}/{quote(alias, safe='')}/close?identifierType=alias"
            body: dict[str, Any] = {"source": "liqguard", "note": page.title[:25000]}
        else:
            url = base
            body = {
                "message": page.title[:130],
                "alias": alias,
                "description": page.text[:15000],
                "priority": self.config.priority if page.severity == "critical" else "P3",
                "source": "liqguard",
                "tags": ["liqguard", page.trigger],
                "details": {k: str(v)[:8000] for k, v in page.details.items()},
            }
            if self.config.responders:
                body["responders"] = [{"name": t, "type": "team"} for t in self.config.responders]
        status, data = await self.post(url, body, self._auth)
        return f"HTTP {status} {data.get('requestId', '')}".strip()


class EmailChannel:
    def __init__(
        self,
        config: EmailConfig,
        username: str | None,
        password: str | None,
        chart: ChartSource | None = None,
    ) -> None:
        self.name = "email"
        self.config = config
        self._user = username
        self._password = password
        self._chart = chart
        try:
            self._tls = ssl.create_default_context(cafile=config.ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise ValueError(
                f"paging.email.ca_file {config.ca_file}: cannot be read as a CA ({exc}); give "
                "a PEM file or remove the setting"
            ) from None

    def message(self, call: Call, png: bytes | None) -> EmailMessage:
        page = _page(call)
        msg = EmailMessage()
        verb = "RESOLVED" if call.op == "resolve" else page.severity.upper()
        msg["Subject"] = f"[liqguard {verb}] {page.title}"[:200]
        msg["From"] = self.config.from_addr
        msg["To"] = ", ".join(self.config.to)
        msg["Date"] = formatdate(localtime=False)
        msg["Message-ID"] = make_msgid("liqguard")
        msg["X-Liqguard-Key"] = call.key
        lines = [page.text or page.title, "", f"episode {call.key}"]
        lines += [f"{k}: {v}" for k, v in page.details.items()]
        msg.set_content("\n".join(lines))
        if png:
            msg.add_attachment(png, maintype="image", subtype="png", filename="liqguard-chart.png")
        return msg

    async def send(self, call: Call) -> str:
        png = None
        if self.config.attach_chart and self._chart is not None and _page(call).chart:
            try:
                png = await self._chart()
            except Exception:  # a chart that cannot be drawn must not hold the page
                png = None
        msg = self.message(call, png)
        try:
            errors, answer = await aiosmtplib.send(
                msg,
                hostname=self.config.host,
                port=self.config.port,
                username=self._user,
                password=self._password,
                start_tls=self.config.tls == "starttls",
                use_tls=self.config.tls == "implicit",
                tls_context=self._tls,
                timeout=self.config.timeout_s,
            )
        except aiosmtplib.SMTPResponseException as exc:
            if 400 <= exc.code < 500:  # 4xx: a temporary failure, SMTP says try again
                raise Retryable(f"SMTP {exc.code}: {exc.message[:160]}") from None
            raise Refused(f"SMTP {exc.code}: {exc.message[:160]}") from None
        except aiosmtplib.SMTPException as exc:  # connect, TLS, auth: worth another try
            raise Retryable(f"SMTP: {type(exc).__name__}: {str(exc)[:160]}") from None
        if errors:
            raise Refused(f"SMTP refused {', '.join(sorted(errors))}")
        return f"SMTP {answer[:80]}" + (" +chart" if png else "")

    async def close(self) -> None:
        return None
