"""Hyperliquid as far as a fund's own liquidations go: `POST /info` (the perp markets and the
tokens ccxt loads) and the public websocket `/ws` with the `userFills` subscription, in
Hyperliquid's frames:

- {"method": "subscribe", "subscription": {"type": "userFills", "user"}} -> {"channel":
  "subscriptionResponse", "data": <the request>}, then {"channel": "userFills", "data":
  {"isSnapshot": true, "user", "fills": <history>}}
- {"method": "ping"} -> {"channel": "pong"}
- `play_fills(user, fills)` pushes {"channel": "userFills", "data": {"user", "fills"}}
- a user past `max_users` distinct ones (Hyperliquid's limit is 10) is refused:
  {"channel": "error", "data": "Cannot track more than 10 total users."}, the venue's text
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from bot.sim.localexchange.fakes import LocalWs

# two perps, as `metaAndAssetCtxs` lists them (universe, then one context per asset)
_UNIVERSE = [
    {"name": "BTC", "szDecimals": 5, "maxLeverage": 40, "onlyIsolated": False},
    {"name": "ETH", "szDecimals": 4, "maxLeverage": 25, "onlyIsolated": False},
]
_CONTEXTS = [
    {
        "funding": "0.0000125",
        "openInterest": "1000.0",
        "prevDayPx": px,
        "dayNtlVlm": "1000000.0",
        "premium": "0.0",
        "oraclePx": px,
        "markPx": px,
        "midPx": px,
        "impactPxs": [px, px],
    }
    for px in ("95000.0", "3500.0")
]


_USDC = {
    "name": "USDC",
    "szDecimals": 8,
    "weiDecimals": 8,
    "index": 0,
    "tokenId": "0x6d1e7cde53ba9467b783cb7c530ce054",
    "isCanonical": True,
    "evmContract": None,
    "fullName": None,
}


class LocalHyperliquid(LocalWs):
    """The sockets' topics are the users whose userFills they follow (lower case)."""

    path = "/ws"

    def __init__(self, max_users: int = 10) -> None:
        super().__init__()
        self.max_users = max_users
        self.users: set[str] = set()  # every user subscribed to so far, on any socket
        self.refusals = 0
        self.history: dict[str, list[dict[str, Any]]] = {}  # user -> the snapshot's fills
        self.info_requests: list[dict[str, Any]] = []
        self.pings = 0
        self.app.router.add_post("/info", self._info)

    async def _info(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.info_requests.append(body)
        kind = body.get("type")
        if kind == "metaAndAssetCtxs":
            return web.json_response([{"universe": _UNIVERSE}, _CONTEXTS])
        if kind == "meta":
            return web.json_response({"universe": _UNIVERSE})
        if kind == "spotMeta":  # ccxt reads the tokens as its currencies
            return web.json_response({"tokens": [_USDC], "universe": []})
        return web.json_response({"error": f"unknown info type {kind!r}"}, status=422)

    def topic_of(self, msg: dict[str, Any]) -> str:
        return str(msg["data"]["user"]).lower()

    async def play_fills(self, user: str, fills: list[dict[str, Any]]) -> int:
        """Push fills to every socket subscribed to `user`'s userFills; how many got them."""
        return await self.play([{"channel": "userFills", "data": {"user": user, "fills": fills}}])

    async def on_frame(self, ws: web.WebSocketResponse, text: str) -> None:
        data = json.loads(text)
        method = data.get("method")
        if method == "ping":
            self.pings += 1
            await ws.send_str(json.dumps({"channel": "pong"}))
            return
        sub = data.get("subscription") or {}
        if method != "subscribe" or sub.get("type") != "userFills":
            error = f"Error parsing JSON into valid websocket request: {json.dumps(data)}"
            await ws.send_str(json.dumps({"channel": "error", "data": error}))
            return
        user = str(sub.get("user", "")).lower()
        if user not in self.users and len(self.users) >= self.max_users:
            self.refusals += 1
            error = f"Cannot track more than {self.max_users} total users."
            await ws.send_str(json.dumps({"channel": "error", "data": error}))
            return
        self.users.add(user)
        self.subscribe_requests.append(data)
        await ws.send_str(json.dumps({"channel": "subscriptionResponse", "data": data}))
        snapshot = {"isSnapshot": True, "user": user, "fills": self.history.get(user, [])}
        await ws.send_str(json.dumps({"channel": "userFills", "data": snapshot}))
        # followed only now: a fill played before the snapshot would read as history
        self.subs[ws].add(user)
        self.subscribed.set()


def hyperliquid_fill(
    coin: str,
    side: str,
    px: str,
    sz: str,
    time_ms: int,
    tid: int,
    liquidated_user: str | None = None,
) -> dict[str, Any]:
    """A WsFill (Hyperliquid docs, websocket subscriptions); `liquidation` when one made it."""
    fill: dict[str, Any] = {
        "coin": coin,
        "px": px,
        "sz": sz,
        "side": side,
        "time": time_ms,
        "startPosition": sz if side == "A" else "0.0",
        "dir": "Close Long" if side == "A" else "Open Long",
        "closedPnl": "0.0",
        "hash": f"0x{tid:064x}",
        "oid": tid,
        "crossed": True,
        "fee": "0.0",
        "tid": tid,
        "feeToken": "USDC",
    }
    if liquidated_user is not None:
        fill["liquidation"] = {"liquidatedUser": liquidated_user, "markPx": px, "method": "market"}
    return fill
