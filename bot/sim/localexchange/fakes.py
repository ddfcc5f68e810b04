"""Public liquidation websockets of Bybit (`allLiquidation.<SYM>`) and OKX (`liquidation-orders`).

Enough of each protocol for ccxt.pro: subscribe acks, the venues' text pings, and `play()` to
push messages to the sockets subscribed to their topic; `drop()` cuts every socket.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp import WSMsgType, web


class _LocalWs:
    path = "/ws"

    def __init__(self) -> None:
        self.subs: dict[web.WebSocketResponse, set[str]] = {}
        self.subscribe_requests: list[Any] = []
        self.subscribed = asyncio.Event()
        self.app = web.Application()
        self.app.router.add_get(self.path, self._ws)

    def topic_of(self, msg: dict[str, Any]) -> str:
        raise NotImplementedError

    def on_text(self, ws: web.WebSocketResponse, text: str) -> str | None:
        """Handle a client frame; return the reply, if any."""
        raise NotImplementedError

    def topics(self) -> set[str]:
        return set().union(*self.subs.values()) if self.subs else set()

    async def play(self, messages: list[dict[str, Any]]) -> int:
        sent = 0
        for msg in messages:
            topic = self.topic_of(msg)
            for ws, topics in list(self.subs.items()):
                if topic in topics and not ws.closed:
                    await ws.send_str(json.dumps(msg))
                    sent += 1
        return sent

    async def drop(self) -> None:
        self.subscribed.clear()
        for ws in list(self.subs):
            await ws.close(code=1001, message=b"going away")

    async def _ws(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        self.subs[ws] = set()
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    reply = self.on_text(ws, msg.data)
                    if reply is not None:
                        await ws.send_str(reply)
        finally:
            self.subs.pop(ws, None)
        return ws


class LocalBybit(_LocalWs):
    """`wss://stream.bybit.com/v5/public/linear` as far as liquidations go."""

    path = "/v5/public/linear"

    def topic_of(self, msg: dict[str, Any]) -> str:
        return str(msg["topic"])

    def on_text(self, ws: web.WebSocketResponse, text: str) -> str | None:
        data = json.loads(text)
        op = data.get("op")
        if op == "ping":
            return json.dumps({"success": True, "ret_msg": "pong", "op": "ping", "conn_id": "c1"})
        if op == "subscribe":
            self.subscribe_requests.append(data)
            self.subs[ws].update(data.get("args", []))
            self.subscribed.set()
            reply = {"success": True, "ret_msg": "", "conn_id": "c1", "op": "subscribe"}
            if "req_id" in data:
                reply["req_id"] = data["req_id"]
            return json.dumps(reply)
        return None


class LocalOkx(_LocalWs):
    """`wss://ws.okx.com:8443/ws/v5/public` as far as `liquidation-orders` goes."""

    path = "/ws/v5/public"

    def topic_of(self, msg: dict[str, Any]) -> str:
        return str(msg["arg"]["instType"])

    def on_text(self, ws: web.WebSocketResponse, text: str) -> str | None:
        if text == "ping":
            return "pong"
        data = json.loads(text)
        if data.get("op") == "subscribe":
            self.subscribe_requests.append(data)
            for arg in data.get("args", []):
                self.subs[ws].add(arg.get("instType", ""))
                if len(self.topics()) >= 1:
                    self.subscribed.set()
            arg = data["args"][0]
            return json.dumps({"event": "subscribe", "arg": arg, "connId": "c1"})
        return None


def bybit_message(symbol: str, pos_side: str, size: str, price: str, ts_ms: int) -> dict[str, Any]:
    return {
        "topic": f"allLiquidation.{symbol}",
        "type": "snapshot",
        "ts": ts_ms + 300,
        "data": [{"T": ts_ms, "s": symbol, "S": pos_side, "v": size, "p": price}],
    }


def okx_message(
    inst_type: str, inst_id: str, details: list[tuple[str, str, str, int]]
) -> dict[str, Any]:
    """details: (order side, contracts, bankruptcy price, ts_ms)."""
    family = "-".join(inst_id.split("-")[:2])
    return {
        "arg": {"channel": "liquidation-orders", "instType": inst_type},
        "data": [
            {
                "details": [
                    {
                        "bkLoss": "0",
                        "bkPx": px,
                        "ccy": "",
                        "posSide": "long" if side == "sell" else "short",
                        "side": side,
                        "sz": sz,
                        "ts": str(ts),
                    }
                    for side, sz, px, ts in details
                ],
                "instFamily": family,
                "instId": inst_id,
                "instType": inst_type,
                "uly": family,
            }
        ],
    }
