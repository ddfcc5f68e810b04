"""A JSON-RPC proxy on 127.0.0.1 in front of anvil that behaves like a stingy provider.

- eth_getLogs over more than `max_range_blocks` blocks: refused with a provider's wording
- `rate_limit_next` requests answered HTTP 429 (and `rpc_rate_limit_next` with JSON-RPC -32005)
- the websocket (`/`, upgraded) is relayed to anvil; `drop_websockets()` cuts every
  connection and `ws_down = True` refuses new ones, as a provider restarting would
- `get_logs_garbage_next` eth_getLogs answered with a body that is not JSON; `mangle_logs`
  rewrites the logs of eth_getLogs answers (malformed logs)
- any path is served (`key_path`: an API key in the URL, as providers do)
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

from tests.chain.anvil import free_port

REFUSALS = [
    (-32005, "query returned more than 10000 results"),  # Infura
    (-32600, "block range is too wide"),  # Ankr and others
    (-32602, "Log response size exceeded. You can make eth_getLogs requests with up to a 2K block range"),  # noqa: E501  Alchemy
]  # fmt: skip


@dataclass
class RpcProxy:
    upstream_http: str
    upstream_ws: str
    max_range_blocks: int = 10**9
    rate_limit_next: int = 0
    rpc_rate_limit_next: int = 0
    ws_down: bool = False
    refuse_http_status: int = 200  # some providers send the refusal as HTTP 400
    get_logs_garbage_next: int = 0
    mangle_logs: Callable[[list[Any]], list[Any]] | None = None
    key_path: str = ""  # e.g. "/v3/<api key>"
    port: int = 0
    get_logs_ok: list[tuple[int, int]] = field(default_factory=list)
    get_logs_refused: list[tuple[int, int]] = field(default_factory=list)
    rate_limited: int = 0
    _sockets: set[web.WebSocketResponse] = field(default_factory=set)
    _runner: web.AppRunner | None = None
    _session: aiohttp.ClientSession | None = None

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.key_path}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}{self.key_path}"

    async def start(self) -> RpcProxy:
        self._session = aiohttp.ClientSession()
        app = web.Application()
        app.router.add_route("*", "/{path:.*}", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        self.port = free_port()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        return self

    async def close(self) -> None:
        await self.drop_websockets()
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    async def drop_websockets(self) -> None:
        for ws in list(self._sockets):
            await ws.close(code=1012, message=b"service restart")

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if request.headers.get("Upgrade", "").lower() == "websocket":
            return await self._relay_ws(request)
        body = await request.json()
        if self.rate_limit_next > 0:
            self.rate_limit_next -= 1
            self.rate_limited += 1
            return web.Response(status=429, text="Too Many Requests")
        if self.rpc_rate_limit_next > 0:
            self.rpc_rate_limit_next -= 1
            self.rate_limited += 1
            return _error(body, -32005, "project ID request rate exceeded")
        if body.get("method") == "eth_getLogs":
            params = body["params"][0]
            first, last = int(params["fromBlock"], 16), int(params["toBlock"], 16)
            if last - first + 1 > self.max_range_blocks:
                self.get_logs_refused.append((first, last))
                code, message = REFUSALS[len(self.get_logs_refused) % len(REFUSALS)]
                return _error(body, code, message, self.refuse_http_status)
            if self.get_logs_garbage_next > 0:
                self.get_logs_garbage_next -= 1
                return web.Response(text="<html>502 Bad Gateway", content_type="application/json")
            self.get_logs_ok.append((first, last))
        assert self._session is not None
        async with self._session.post(self.upstream_http, json=body) as upstream:
            answer = await upstream.read()
        if body.get("method") == "eth_getLogs" and self.mangle_logs is not None:
            decoded = json.loads(answer)
            decoded["result"] = self.mangle_logs(decoded["result"])
            answer = json.dumps(decoded).encode()
        return web.Response(body=answer, content_type="application/json")

    async def _relay_ws(self, request: web.Request) -> web.StreamResponse:
        if self.ws_down:
            return web.Response(status=503, text="restarting")
        client = web.WebSocketResponse()
        await client.prepare(request)
        self._sockets.add(client)
        assert self._session is not None
        try:
            async with self._session.ws_connect(self.upstream_ws) as upstream:

                async def up() -> None:
                    async for msg in client:
                        if msg.type == aiohttp.WSMsgType.TEXT:
                            await upstream.send_str(msg.data)
                        elif msg.type == aiohttp.WSMsgType.BINARY:
                            await upstream.send_bytes(msg.data)
                    await upstream.close()

                async def down() -> None:
                    async for msg in upstream:
                        if msg.type == aiohttp.WSMsgType.TEXT:
                            await client.send_str(msg.data)
                        elif msg.type == aiohttp.WSMsgType.BINARY:
                            await client.send_bytes(msg.data)
                    await client.close()

                tasks = [asyncio.create_task(up()), asyncio.create_task(down())]
                await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
                for task in tasks:
                    task.cancel()
        finally:
            self._sockets.discard(client)
            await client.close()
        return client


def _error(body: dict[str, Any], code: int, message: str, status: int = 200) -> web.Response:
    payload = {"jsonrpc": "2.0", "id": body.get("id"), "error": {"code": code, "message": message}}
    return web.Response(text=json.dumps(payload), status=status, content_type="application/json")
