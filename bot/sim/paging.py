"""Local look-alikes of the pagers on 127.0.0.1: what tests and rehearsals page.

- FakePagerDuty: Events API v2, `POST /v2/enqueue` (no auth header: the integration key is the
  body's `routing_key`); checks the documented fields (event_action trigger / acknowledge /
  resolve, dedup_key, payload.summary / source / severity on a trigger) and answers
  202 {"status": "success", "message": "Event processed", "dedup_key": ...}, or 400
  {"status": "invalid event", ...}; keeps one alert per dedup key (triggered -> resolved)
- FakeOpsgenie: Alert API, `POST /v2/alerts` and `POST /v2/alerts/{alias}/close
  ?identifierType=alias`, `Authorization: GenieKey KEY` required (401 otherwise); `message`
  required and at most 130 characters (422 otherwise); 202 {"result": "Request will be
  processed", "took": ..., "requestId": ...}
- FakeSmtp: aiosmtpd in this event loop; STARTTLS required before MAIL and AUTH (a
  certificate made at start by trustme), LOGIN/PLAIN checked against one user
- both HTTP fakes take `fail_with`: statuses answered to the next requests (500, 429 ...)
"""

from __future__ import annotations

import asyncio
import ssl
import uuid
from collections import deque
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from pathlib import Path
from typing import Any

from aiohttp import web

from bot.sim.http import start_local

SEVERITIES = {"critical", "error", "warning", "info"}


class _HttpFake:
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []  # every request: path, headers, json
        self.fail_with: deque[int] = deque()  # statuses to answer next, in order
        self.retry_after_s: str | None = "0"
        self._runner: web.AppRunner | None = None
        self.url = ""

    def app(self) -> web.Application:
        raise NotImplementedError

    async def start(self) -> str:
        self._runner, self.url = await start_local(self.app())
        return self.url

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _record(self, request: web.Request) -> tuple[dict[str, Any], web.Response | None]:
        try:
            body = await request.json()
        except ValueError:
            body = None
        self.requests.append(
            {"path": request.path_qs, "headers": dict(request.headers), "json": body}
        )
        if self.fail_with:
            status = self.fail_with.popleft()
            headers = (
                {"Retry-After": self.retry_after_s} if status == 429 and self.retry_after_s else {}
            )
            # the request echoed back, as some proxies do: an error text may carry a key
            echo = {"message": "injected", "request": body}
            return {}, web.json_response(echo, status=status, headers=headers)
        if not isinstance(body, dict):
            return {}, web.json_response({"message": "body is not a JSON object"}, status=400)
        return body, None


class FakePagerDuty(_HttpFake):
    def __init__(self, routing_key: str) -> None:
        super().__init__()
        self.routing_key = routing_key
        self.alerts: dict[str, str] = {}  # dedup_key -> triggered | acknowledged | resolved

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v2/enqueue", self._enqueue)
        return app

    @property
    def enqueue_url(self) -> str:
        return f"{self.url}/v2/enqueue"

    async def _enqueue(self, request: web.Request) -> web.Response:
        body, failed = await self._record(request)
        if failed is not None:
            return failed
        errors = []
        if body.get("routing_key") != self.routing_key:
            errors.append("'routing_key' is invalid")
        action = body.get("event_action")
        if action not in ("trigger", "acknowledge", "resolve"):
            errors.append("'event_action' is missing or blank")
        key = body.get("dedup_key")
        if action != "trigger" and not key:
            errors.append("'dedup_key' is required for acknowledge and resolve")
        if action == "trigger":
            payload = body.get("payload") or {}
            for name in ("summary", "source", "severity"):
                if not payload.get(name):
                    errors.append(f"'payload.{name}' is missing or blank")
            if payload.get("severity") and payload["severity"] not in SEVERITIES:
                errors.append("'payload.severity' is invalid")
            if len(str(payload.get("summary", ""))) > 1024:
                errors.append("'payload.summary' is too long")
        if errors:
            return web.json_response(
                {"status": "invalid event", "message": "Event object is invalid", "errors": errors},
                status=400,
            )
        key = key or uuid.uuid4().hex
        if action == "trigger" or key in self.alerts:
            self.alerts[key] = {"trigger": "triggered", "acknowledge": "acknowledged"}.get(
                str(action), "resolved"
            )
        return web.json_response(
            {"status": "success", "message": "Event processed", "dedup_key": key}, status=202
        )


class FakeOpsgenie(_HttpFake):
    def __init__(self, api_key: str) -> None:
        super().__init__()
        self.api_key = api_key
        self.alerts: dict[str, dict[str, Any]] = {}  # alias -> the alert (status open/closed)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v2/alerts", self._create)
        app.router.add_post("/v2/alerts/{identifier}/close", self._close)
        return app

    def _answer(self, status: int = 202) -> web.Response:
        return web.json_response(
            {"result": "Request will be processed", "took": 0.01, "requestId": str(uuid.uuid4())},
            status=status,
        )

    async def _admit(self, request: web.Request) -> tuple[Any, web.Response | None]:
        """The recorded body, and the answer instead (an injected failure, else a wrong key)."""
        body, failed = await self._record(request)
        if failed is None and request.headers.get("Authorization") != f"GenieKey {self.api_key}":
            failed = web.json_response({"message": "Could not authenticate"}, status=401)
        return body, failed

    async def _create(self, request: web.Request) -> web.Response:
        body, failed = await self._admit(request)
        if failed is not None:
            return failed
        message = body.get("message")
        if not message or len(message) > 130:
            return web.json_response({"message": "Message can not be empty or > 130"}, status=422)
        alias = str(body.get("alias") or uuid.uuid4())
        if len(alias) > 512:
            return web.json_response({"message": "Alias is too long"}, status=422)
        alert = self.alerts.get(alias)
        if alert is not None and alert["status"] == "open":
            alert["count"] += 1  # de-duplicated: one open alert per alias
        else:
            self.alerts[alias] = {**body, "status": "open", "count": 1}
        return self._answer()

    async def _close(self, request: web.Request) -> web.Response:
        _, failed = await self._admit(request)
        if failed is not None:
            return failed
        if request.query.get("identifierType") != "alias":
            return web.json_response({"message": "identifierType alias expected"}, status=422)
        alert = self.alerts.get(request.match_info["identifier"])
        if alert is not None:
            alert["status"] = "closed"
        return self._answer()  # asynchronous in Opsgenie too: 202 whatever the alias


@dataclass
class FakeSmtp:
    """SMTP on 127.0.0.1 that refuses MAIL and AUTH before STARTTLS."""

    username: str
    password: str
    messages: list[Message] = field(default_factory=list)
    envelopes: list[tuple[str, list[str]]] = field(default_factory=list)
    ca_file: str = ""
    port: int = 0
    _server: asyncio.AbstractServer | None = None

    async def start(self, folder: Path) -> int:
        import trustme  # dev only: the certificate of a test server
        from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

        ca = trustme.CA()
        cert = ca.issue_cert("127.0.0.1", "localhost")
        server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        cert.configure_cert(server_tls)
        self.ca_file = str(folder / "smtp-ca.pem")
        ca.cert_pem.write_to_path(self.ca_file)
        fake = self

        def authenticate(
            server: Any, session: Any, envelope: Any, mechanism: str, data: Any
        ) -> Any:
            ok = isinstance(data, LoginPassword) and (
                data.login.decode() == fake.username and data.password.decode() == fake.password
            )
            return AuthResult(success=ok)

        class Handler:
            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
                fake.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
                fake.messages.append(message_from_bytes(envelope.original_content))
                return "250 Message accepted for delivery"

        def factory() -> SMTP:
            return SMTP(
                Handler(),
                hostname="localhost",
                tls_context=server_tls,
                require_starttls=True,
                authenticator=authenticate,
                auth_require_tls=True,
            )

        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(factory, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
