"""A sliver of Bybit's REST API v5 for real ccxt: a unified (UTA) account trading linear perps.

`X-BAPI-API-KEY` and the HMAC-SHA256 `X-BAPI-SIGN` (hex of timestamp + key + recvWindow +
query or body) are checked, and the recvWindow is enforced. Routes: user/query-api and
account/info (ccxt asks whether the account is unified), position list, wallet balance, order
create (an ack only, as Bybit answers), realtime (open orders only, Bybit's default),
history (the rest), cancel by `orderLinkId`. Market orders fill at the mark at once.
Knobs: `delay_next_orders` (accept, answer late), `http_errors` (path -> statuses first).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import json
import time
from typing import Any

from aiohttp import web

BYBIT_KEYS = ("bybit-key", "bybit-secret")


class LocalBybitRest:
    def __init__(self) -> None:
        self.key, self.secret = BYBIT_KEYS
        self.marks: dict[str, float] = {"BTCUSDT": 95_000.0, "ETHUSDT": 3_600.0}
        self.positions: dict[str, float] = {}  # symbol -> signed base units (contractSize 1)
        self.orders: list[dict[str, Any]] = []
        self.requests: list[tuple[str, str, dict[str, Any]]] = []
        self.delay_next_orders: list[float] = []
        self.http_errors: dict[str, list[int]] = {}
        self._ids = itertools.count(7000)
        self.app = web.Application(middlewares=[self._gate])
        r = self.app.router
        r.add_get("/v5/user/query-api", self._query_api)
        r.add_get("/v5/account/info", self._account_info)
        r.add_get("/v5/position/list", self._positions)
        r.add_get("/v5/account/wallet-balance", self._wallet)
        r.add_post("/v5/order/create", self._create)
        r.add_get("/v5/order/realtime", self._realtime)
        r.add_get("/v5/order/history", self._history)
        r.add_post("/v5/order/cancel", self._cancel)

    def creates(self) -> list[dict[str, Any]]:
        return [p for m, path, p in self.requests if path == "/v5/order/create"]

    def paths(self) -> list[str]:
        return [path for _m, path, _p in self.requests]

    @staticmethod
    def _ok(result: Any) -> web.Response:
        body = {"retCode": 0, "retMsg": "OK", "result": result, "time": int(time.time() * 1000)}
        return web.json_response(body)

    @staticmethod
    def _err(code: int, msg: str) -> web.Response:
        return web.json_response({"retCode": code, "retMsg": msg, "result": {}})

    @web.middleware
    async def _gate(self, request: web.Request, handler: Any) -> web.StreamResponse:
        body = await request.text()
        params: dict[str, Any] = dict(request.query)
        if body:
            params.update(json.loads(body))
        self.requests.append((request.method, request.path, params))
        pending = self.http_errors.get(request.path)
        if pending:
            return web.Response(status=pending.pop(0), text="Service Unavailable")
        h = request.headers
        ts, window = h.get("X-BAPI-TIMESTAMP", "0"), h.get("X-BAPI-RECV-WINDOW", "5000")
        payload = body if request.method == "POST" else request.query_string
        auth = ts + h.get("X-BAPI-API-KEY", "") + window + payload
        expected = hmac.new(self.secret.encode(), auth.encode(), hashlib.sha256).hexdigest()
        if h.get("X-BAPI-API-KEY") != self.key:
            return self._err(10003, "API key is invalid.")
        if not hmac.compare_digest(expected, h.get("X-BAPI-SIGN", "")):
            return self._err(10004, "error sign!")
        if int(time.time() * 1000) > int(ts) + int(window):
            return self._err(10002, "invalid request, please check your server timestamp")
        return await handler(request)

    async def _query_api(self, _r: web.Request) -> web.Response:
        perms = {"ContractTrade": ["Order", "Position"], "Wallet": []}
        return self._ok({"readOnly": 0, "permissions": perms, "unified": 0, "uta": 1})

    async def _account_info(self, _r: web.Request) -> web.Response:
        return self._ok({"unifiedMarginStatus": 6, "marginMode": "REGULAR_MARGIN"})

    async def _positions(self, _r: web.Request) -> web.Response:
        rows = [
            {
                "symbol": s,
                "side": "Buy" if size > 0 else "Sell",
                "size": repr(abs(size)),
                "avgPrice": repr(self.marks[s]),
                "markPrice": repr(self.marks[s]),
                "positionValue": repr(abs(size) * self.marks[s]),
                "leverage": "10",
                "liqPrice": "",
                "positionIdx": 0,
                "tradeMode": 0,
                "unrealisedPnl": "0",
                "createdTime": "1700000000000",
                "updatedTime": str(int(time.time() * 1000)),
            }
            for s, size in self.positions.items()
            if size
        ]
        return self._ok({"category": "linear", "list": rows, "nextPageCursor": ""})

    async def _wallet(self, _r: web.Request) -> web.Response:
        coin = {"coin": "USDT", "equity": "25000", "walletBalance": "25000", "locked": "0"}
        coin.update(availableToWithdraw="25000", usdValue="25000")
        account = {"accountType": "UNIFIED", "totalEquity": "25000", "coin": [coin]}
        return self._ok({"list": [account]})

    async def _create(self, request: web.Request) -> web.Response:
        p = await request.json()
        symbol, side, qty = p["symbol"], p["side"], float(p["qty"])
        link = p.get("orderLinkId", "")
        if any(o["orderLinkId"] == link for o in self.orders):
            return self._err(110072, "OrderLinkedID is duplicate")
        pos = self.positions.get(symbol, 0.0)
        if p.get("reduceOnly") in (True, "true"):
            closes = (pos > 0 and side == "Sell") or (pos < 0 and side == "Buy")
            if not closes or qty > abs(pos) + 1e-9:
                return self._err(110017, "current position is zero, cannot fix reduce-only order")
        mark = self.marks[symbol]
        price = float(p["price"]) if p.get("price") else None
        fills = (
            price is None or (side == "Buy" and price >= mark) or (side == "Sell" and price <= mark)
        )
        now = str(int(time.time() * 1000))
        order = {
            "orderId": str(next(self._ids)),
            "orderLinkId": link,
            "symbol": symbol,
            "side": side,
            "orderType": p["orderType"],
            "price": p.get("price", "0"),
            "qty": p["qty"],
            "timeInForce": p.get("timeInForce", "GTC"),
            "orderStatus": "New",
            "avgPrice": "",
            "cumExecQty": "0",
            "cumExecValue": "0",
            "cumExecFee": "0",
            "leavesQty": p["qty"],
            "reduceOnly": p.get("reduceOnly") in (True, "true"),
            "positionIdx": 0,
            "triggerPrice": "",
            "createdTime": now,
            "updatedTime": now,
        }
        if fills:
            self.positions[symbol] = round(pos + (qty if side == "Buy" else -qty), 9)
            order.update(orderStatus="Filled", avgPrice=repr(mark), cumExecQty=p["qty"])
            order.update(cumExecValue=repr(qty * mark), leavesQty="0")
        elif order["timeInForce"] == "IOC":
            order["orderStatus"] = "Cancelled"
        self.orders.append(order)
        if self.delay_next_orders:
            await asyncio.sleep(self.delay_next_orders.pop(0))
        return self._ok({"orderId": order["orderId"], "orderLinkId": link})

    def _match(self, q: dict[str, str], open_only: bool) -> list[dict[str, Any]]:
        return [
            o
            for o in reversed(self.orders)
            if (o["orderStatus"] == "New") == open_only
            and q.get("symbol") in (None, o["symbol"])
            and q.get("orderLinkId") in (None, o["orderLinkId"])
        ]

    async def _realtime(self, request: web.Request) -> web.Response:
        rows = self._match(dict(request.query), open_only=True)
        return self._ok({"category": "linear", "list": rows, "nextPageCursor": ""})

    async def _history(self, request: web.Request) -> web.Response:
        rows = self._match(dict(request.query), open_only=False)
        return self._ok({"category": "linear", "list": rows, "nextPageCursor": ""})

    async def _cancel(self, request: web.Request) -> web.Response:
        p = await request.json()
        hit = [o for o in self._match(p, open_only=True) if p.get("orderLinkId")]
        if not hit:
            return self._err(110001, "order not exists or too late to cancel")
        hit[0]["orderStatus"] = "Cancelled"
        return self._ok({"orderId": hit[0]["orderId"], "orderLinkId": hit[0]["orderLinkId"]})
