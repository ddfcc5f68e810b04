"""The HTTP side of liqguard, served in the run's own event loop (aiohttp).

- metrics_app: GET /metrics (Prometheus text) and /healthz
- status_app: the status page (/, /static/*), GET /api/status, GET /api/events (server-sent
  events, one snapshot a second), and the buttons: POST /api/approve, /api/reject, /api/pause,
  /api/resume, and the runtime changes: POST /api/change {"command": "/threshold all 2.5m"}
  (the diff and a request id), POST /api/confirm {"request_id", "approve"}.
  The buttons need `Authorization: Bearer <token>` (the token from the
  environment; never in a URL, never logged); without a token configured the page is read-only.
  A request whose Host is a name other than localhost or `http.allowed_hosts` is refused (403):
  another site's name resolved to this address (DNS rebinding) must not read the page.
- serve(app, host, port): start it; the caller says where it listens.
- serve_listen(app, listen, field): start it on a config's HOST:PORT, a taken one a SetupError.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import ipaddress
import json
from collections.abc import Awaitable, Callable
from importlib.resources import files
from typing import Any, cast

from aiohttp import web
from loguru import logger

from bot.app.errors import SetupError
from bot.config.ops import parse_listen

HTTP_PRESS = "http.press"  # a button pressed on the status page (the journal's kind)
HTTP_REFUSED = "http.refused"  # a button press refused (no or wrong token)
STATIC = ("index.html", "app.js", "style.css")
_TYPES = {"html": "text/html", "js": "text/javascript", "css": "text/css"}
SSE_PERIOD_S = 1.0

Snapshot = Callable[[], Awaitable[dict[str, Any]]]
Health = Callable[[], tuple[bool, str]]


def _static(name: str) -> bytes:
    return files("bot.ops").joinpath("static", name).read_bytes()


def metrics_app(scrape: Callable[[], bytes], content_type: str, health: Health) -> web.Application:
    app = web.Application()

    async def metrics(_request: web.Request) -> web.Response:
        body = scrape()
        return web.Response(body=body, headers={"Content-Type": content_type})

    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz_handler(health))
    return app


def healthz_handler(health: Health) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def healthz(_request: web.Request) -> web.Response:
        ok, why = health()
        return web.Response(status=200 if ok else 503, text=("ok: " if ok else "unhealthy: ") + why)

    return healthz


class Controls:
    """What the buttons do; each method returns the text shown to the person."""

    def __init__(
        self,
        vote: Callable[[str, bool, int], Awaitable[str]] | None,
        set_state: Callable[[str, str, str], Awaitable[Any]],
        journal_append: Callable[[str, int, dict[str, Any]], Any],
        now_ms: Callable[[], int],
        change: Callable[[str, str], Awaitable[tuple[str, str | None]]] | None = None,
        confirm: Callable[[str, bool], Awaitable[str]] | None = None,
    ) -> None:
        self.vote = vote
        self.set_state = set_state
        self.append = journal_append
        self.now_ms = now_ms
        self.change = change  # "/threshold all 2500000", who -> (diff text, request id)
        self.confirm = confirm  # request id, approve -> text (the same ballots as Telegram)


def host_allowed(host: str | None, allowed: tuple[str, ...] = ()) -> bool:
    """Whether a request's Host header names this page: an IP address (a browser at an address
    is on that origin), localhost, or a name of `allowed` (http.allowed_hosts). Another name is
    a site of its own whose DNS may point here (DNS rebinding). No Host (HTTP/1.0): allowed."""
    if not host:
        return True
    name = host.strip().lower()
    if name.startswith("["):  # [v6]:port
        name = name[1 : name.find("]")] if "]" in name else name
    elif name.count(":") == 1:
        name = name.rsplit(":", 1)[0]
    if name in ("localhost", *allowed) or name.endswith(".localhost"):
        return True
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def status_app(
    snapshot: Snapshot,
    health: Health,
    token: str | None,
    controls: Controls,
    refuse: Callable[[], str | None] | None = None,
    allowed_hosts: tuple[str, ...] = (),
) -> web.Application:
    """`refuse()`: why no button may act now (an ha standby: the leader answers), or None."""
    told: set[str] = set()  # the names refused so far: each logged once

    @web.middleware
    async def own_hosts(request: web.Request, handler: Any) -> web.StreamResponse:
        host = request.headers.get("Host")
        if request.path == "/healthz" or host_allowed(host, allowed_hosts):  # probes: any name
            return cast("web.StreamResponse", await handler(request))
        shown = (host or "")[:100]
        if shown not in told and len(told) < 100:
            told.add(shown)
            logger.warning("status page: a request for Host {!r} refused", shown)
        why = (
            f"Host {shown!r} is not this page's: open it by its IP address or localhost, "
            "or add the name to http.allowed_hosts"
        )
        return web.json_response({"ok": False, "message": why}, status=403)

    app = web.Application(client_max_size=16 * 1024, middlewares=[own_hosts])

    async def page(request: web.Request) -> web.Response:
        name = request.match_info.get("name", "index.html")
        if name not in STATIC:
            raise web.HTTPNotFound()
        kind = _TYPES[name.rsplit(".", 1)[1]]
        return web.Response(
            body=_static(name),
            content_type=kind,
            charset="utf-8",
            headers={"Cache-Control": "no-store", "Content-Security-Policy": _CSP},
        )

    async def status(_request: web.Request) -> web.Response:
        return web.json_response(await snapshot())

    async def events(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store"}
        )
        await resp.prepare(request)
        with contextlib.suppress(ConnectionResetError):  # the tab was closed
            while True:
                data = json.dumps(await snapshot(), separators=(",", ":"))
                await resp.write(f"data: {data}\n\n".encode())
                await asyncio.sleep(SSE_PERIOD_S)
        return resp

    def refused(request: web.Request, why: str, status: int) -> web.Response:
        # the path and the reason only: the header that carried a token is never written
        controls.append(HTTP_REFUSED, controls.now_ms(), {"path": request.path, "why": why})
        logger.warning("status page: {} refused: {}", request.path, why)
        return web.json_response({"ok": False, "message": why}, status=status)

    def allowed(request: web.Request) -> str | None:
        """None when the request carries the token, else why not."""
        if token is None:
            return "read-only: set the token in the environment to enable the buttons"
        given = request.headers.get("Authorization", "")
        if not given.startswith("Bearer "):
            return "no token: send Authorization: Bearer <token>"
        if not hmac.compare_digest(given[7:].encode(), token.encode()):
            return "wrong token"
        return None

    async def press(request: web.Request) -> web.Response:
        what = request.match_info["what"]
        if refuse is not None and (busy := refuse()) is not None:
            return refused(request, busy, 409)
        why = allowed(request)
        if why is not None:
            return refused(request, why, 403 if token is None else 401)
        try:
            body = await request.json()
        except (ValueError, UnicodeDecodeError):
            body = {}
        body = body if isinstance(body, dict) else {}
        who = f"http:{str(body.get('who') or 'status page')[:40]}"
        now = controls.now_ms()
        if what in ("approve", "reject"):
            rid = str(body.get("request_id") or "")
            if controls.vote is None:
                answer = "approvals are not answered here: this run's channel has no votes"
            elif not rid:
                answer = "which approval? request_id is missing"
            else:
                answer = await controls.vote(rid, what == "approve", now)
        elif what == "pause":
            await controls.set_state("REDUCING", str(body.get("reason") or "paused"), who)
            answer = "Paused: REDUCING (only orders that reduce exposure)."
        elif what == "halt":
            await controls.set_state("HALTED", str(body.get("reason") or "halted"), who)
            answer = "Halted: no new orders."
        elif what == "resume":
            await controls.set_state("ACTIVE", "confirmed resume", who)
            answer = "Resumed: ACTIVE."
        elif what == "change" and controls.change is not None:
            # a runtime change: the diff now, applied once confirmed (POST /api/confirm)
            answer, asked = await controls.change(str(body.get("command") or "")[:200], who)
            controls.append(HTTP_PRESS, now, {"what": what, "who": who, "answer": answer})
            ok = asked is not None
            return web.json_response({"ok": ok, "message": answer, "request_id": asked})
        elif what == "confirm" and controls.confirm is not None:
            rid = str(body.get("request_id") or "")
            approve = body.get("approve", True) is not False
            answer = await controls.confirm(rid, approve) if rid else "request_id is missing"
        else:
            raise web.HTTPNotFound()
        controls.append(
            HTTP_PRESS, now, {"what": what, "who": who, "answer": answer, **_subject(body)}
        )
        return web.json_response({"ok": True, "message": answer})

    app.router.add_get("/", page)
    app.router.add_get("/static/{name}", page)
    app.router.add_get("/api/status", status)
    app.router.add_get("/api/events", events)
    app.router.add_get("/healthz", healthz_handler(health))
    app.router.add_post("/api/{what}", press)
    return app


def _subject(body: dict[str, Any]) -> dict[str, Any]:
    return {"request_id": str(body["request_id"])} if body.get("request_id") else {}


# Everything from liqguard itself: no CDN, no inline script.
_CSP = "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'"


async def serve(app: web.Application, host: str, port: int) -> web.AppRunner:
    """Listen on host:port (access log off: nothing of a request is written)."""
    # an open tab's event stream never ends by itself: cut it at shutdown, do not wait 60 s
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, host, port, reuse_address=True)
    await site.start()
    return runner


async def serve_listen(
    app: web.Application, listen: str, field: str
) -> tuple[web.AppRunner, str, int]:
    """Serve on the config field's HOST:PORT: (runner, host, the port bound)."""
    host, port = parse_listen(listen, field)
    try:
        server = await serve(app, host, port)
    except OSError as exc:
        raise SetupError(
            f"{field} {listen}: cannot listen there ({exc.strerror or exc}); give another HOST:PORT"
        ) from None
    return server, host, bound_port(server) or port


def bound_port(runner: web.AppRunner) -> int:
    """The port actually bound (port 0 in the config: the system's choice)."""
    for site in runner.sites:
        server = getattr(site, "_server", None)
        if server is not None and server.sockets:
            return int(server.sockets[0].getsockname()[1])
    return 0
