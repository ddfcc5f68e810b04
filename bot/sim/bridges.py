"""Local look-alikes of the desk's other bots on 127.0.0.1: what bridge tests talk to.

- FakeFreqtrade: Freqtrade's REST API as documented (`/api/v1/...`): `GET /ping` (no auth);
  `POST /token/login` (Basic) -> {"access_token", "refresh_token"}; every other endpoint takes
  Basic auth or `Authorization: Bearer <access token>` (401 {"detail": "Unauthorized"}
  otherwise). `POST /pause` (`legacy=True`: 404, as up to API 2.40; then `/stopentry` and
  `/stopbuy` set max_open_trades 0, undone by `/reload_config`; `/start` of a running bot
  answers "already running"), `/stop`, `/forceexit` {"tradeid": "all" | id} (502 "trader is
  not running" once stopped), `GET /status` (open trades). The bot's state: running,
  paused (no entries; exits work), stopped.
- FakeHummingbot: hummingbot-api `POST /bot-orchestration/stop-bot` {"bot_name",
  "skip_order_cancellation", "async_backend"} behind Basic auth, and `GET
  /bot-orchestration/status`
- SignedReceiver: a webhook that checks liqguard's HMAC signature (401 when it is wrong)
- each takes `fail_with` (statuses answered next) and `hold` (an Event requests wait on)
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import secrets
from collections import deque
from typing import Any

from aiohttp import web

from bot.notify.webhook import SIGNATURE_HEADER, TIMESTAMP_HEADER
from bot.sim.http import start_local


class _Fake:
    def __init__(self) -> None:
        self.calls: list[str] = []  # "METHOD /path" of every request, in order
        self.fail_with: deque[int] = deque()
        self.hold: asyncio.Event | None = None  # set: requests go on; unset: they wait
        self._runner: web.AppRunner | None = None
        self.url = ""

    def routes(self, app: web.Application) -> None:
        raise NotImplementedError

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        self.calls.append(f"{request.method} {request.path}")
        if self.hold is not None:
            await self.hold.wait()
        if self.fail_with:
            return web.json_response({"detail": "injected"}, status=self.fail_with.popleft())
        return await handler(request)

    async def start(self) -> str:
        app = web.Application(middlewares=[self._middleware])
        self.routes(app)
        self._runner, self.url = await start_local(app, shutdown_timeout_s=0.1)
        return self.url

    async def close(self) -> None:
        if self.hold is not None:
            self.hold.set()
        if self._runner is not None:
            await self._runner.cleanup()


def _basic(request: web.Request) -> tuple[str, str] | None:
    head = request.headers.get("Authorization", "")
    if not head.startswith("Basic "):
        return None
    try:
        user, _, password = base64.b64decode(head[6:]).decode().partition(":")
    except ValueError:
        return None
    return user, password


UNAUTHORIZED = {"detail": "Unauthorized"}


class FakeFreqtrade(_Fake):
    def __init__(self, username: str, password: str, legacy: bool = False) -> None:
        super().__init__()
        self.username, self.password, self.legacy = username, password, legacy
        self.state = "running"
        self.entries_allowed = True
        self.trades: dict[int, dict[str, Any]] = {
            1: {"trade_id": 1, "pair": "BTC/USDT:USDT", "is_open": True},
            2: {"trade_id": 2, "pair": "ETH/USDT:USDT", "is_open": True},
        }
        self.tokens: set[str] = set()

    @property
    def open_trades(self) -> list[dict[str, Any]]:
        return [t for t in self.trades.values() if t["is_open"]]

    def expire_tokens(self) -> None:
        self.tokens.clear()

    def routes(self, app: web.Application) -> None:
        r = app.router
        r.add_get("/api/v1/ping", self._ping)
        r.add_post("/api/v1/token/login", self._login)
        if not self.legacy:
            r.add_post("/api/v1/pause", self._pause)
        r.add_post("/api/v1/stopentry", self._stopentry)
        r.add_post("/api/v1/stopbuy", self._stopentry)
        r.add_post("/api/v1/start", self._start)
        r.add_post("/api/v1/reload_config", self._reload_config)
        r.add_post("/api/v1/stop", self._stop)
        r.add_post("/api/v1/forceexit", self._forceexit)
        r.add_get("/api/v1/status", self._status)

    async def _ping(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "pong"})

    def _authorized(self, request: web.Request) -> bool:
        head = request.headers.get("Authorization", "")
        if head.startswith("Bearer "):
            return head[7:] in self.tokens
        return _basic(request) == (self.username, self.password)

    async def _login(self, request: web.Request) -> web.Response:
        if _basic(request) != (self.username, self.password):
            return web.json_response(UNAUTHORIZED, status=401)
        token = "eyJ" + secrets.token_urlsafe(24)
        self.tokens.add(token)
        return web.json_response({"access_token": token, "refresh_token": "eyJ" + token[3:9]})

    def _guard(self, request: web.Request) -> web.Response | None:
        return None if self._authorized(request) else web.json_response(UNAUTHORIZED, status=401)

    async def _pause(self, request: web.Request) -> web.Response:
        if (refused := self._guard(request)) is not None:
            return refused
        self.state, self.entries_allowed = "paused", False
        return web.json_response(
            {"status": "paused, no more entries will occur from now. Run /start to enable entries."}
        )

    async def _stopentry(self, request: web.Request) -> web.Response:
        if (refused := self._guard(request)) is not None:
            return refused
        if self.state == "running":  # the old way: max_open_trades 0
            self.entries_allowed = False
        return web.json_response(
            {"status": "No more entries will occur from now. Run /reload_config to reset."}
        )

    async def _start(self, request: web.Request) -> web.Response:
        if (refused := self._guard(request)) is not None:
            return refused
        if self.state == "running":  # as Freqtrade: /start does not undo /stopentry
            return web.json_response({"status": "already running"})
        self.state, self.entries_allowed = "running", True
        return web.json_response({"status": "starting trader ..."})

    async def _reload_config(self, request: web.Request) -> web.Response:
        if (refused := self._guard(request)) is not None:
            return refused
        self.entries_allowed = True  # max_open_trades from the file again
        return web.json_response({"status": "Reloading config ..."})

    async def _stop(self, request: web.Request) -> web.Response:
        if (refused := self._guard(request)) is not None:
            return refused
        self.state = "stopped"  # open trades left without anyone managing their exits
        return web.json_response({"status": "stopping trader ..."})

    async def _forceexit(self, request: web.Request) -> web.Response:
        if (refused := self._guard(request)) is not None:
            return refused
        if self.state == "stopped":
            return web.json_response(
                {"error": "Error querying /api/v1/forceexit: trader is not running"}, status=502
            )
        body = await request.json()
        tradeid = str(body.get("tradeid", ""))
        if tradeid == "all":
            for t in self.trades.values():
                t["is_open"] = False
            return web.json_response({"result": "Created exit orders for all open trades."})
        trade = self.trades.get(int(tradeid)) if tradeid.isdigit() else None
        if trade is None:
            return web.json_response({"detail": "invalid argument"}, status=400)
        trade["is_open"] = False
        return web.json_response({"result": f"Created exit order for trade {tradeid}."})

    async def _status(self, request: web.Request) -> web.Response:
        if (refused := self._guard(request)) is not None:
            return refused
        return web.json_response(self.open_trades)


class FakeHummingbot(_Fake):
    def __init__(self, username: str, password: str, bots: list[str]) -> None:
        super().__init__()
        self.username, self.password = username, password
        self.bots = {b: {"status": "running", "orders_cancelled": False} for b in bots}
        self.bodies: list[dict[str, Any]] = []

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/bot-orchestration/stop-bot", self._stop_bot)
        app.router.add_get("/bot-orchestration/status", self._all_status)

    async def _stop_bot(self, request: web.Request) -> web.Response:
        if _basic(request) != (self.username, self.password):
            return web.json_response({"detail": "Incorrect username or password"}, status=401)
        body = await request.json()
        self.bodies.append(body)
        if not isinstance(body.get("bot_name"), str):
            return web.json_response({"detail": "bot_name: field required"}, status=422)
        bot = self.bots.get(body["bot_name"])
        if bot is None:
            answer = {"success": False, "message": f"Bot {body['bot_name']} not found"}
        else:
            bot["status"] = "stopped"
            bot["orders_cancelled"] = not body.get("skip_order_cancellation", False)
            answer = {"success": True, "message": "Stop command sent"}
        return web.json_response({"status": "success", "response": answer})

    async def _all_status(self, request: web.Request) -> web.Response:
        if _basic(request) != (self.username, self.password):
            return web.json_response({"detail": "Incorrect username or password"}, status=401)
        return web.json_response({"status": "success", "data": self.bots})


class SignedReceiver(_Fake):
    def __init__(self, secret: str) -> None:
        super().__init__()
        self.secret = secret
        self.received: list[dict[str, Any]] = []

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/ladder", self._post)

    async def _post(self, request: web.Request) -> web.Response:
        raw = await request.read()
        ts = request.headers.get(TIMESTAMP_HEADER, "")
        mac = hmac.new(self.secret.encode(), f"{ts}.".encode() + raw, hashlib.sha256)
        if not hmac.compare_digest(
            request.headers.get(SIGNATURE_HEADER, ""), "sha256=" + mac.hexdigest()
        ):
            return web.json_response({"message": "bad signature"}, status=401)
        self.received.append(json.loads(raw))
        return web.json_response({"ok": True})
