"""A sliver of OKX's REST API v5 for real ccxt: a USDT swap account sized in contracts.

`OK-ACCESS-KEY` / `-PASSPHRASE` and the HMAC-SHA256 `OK-ACCESS-SIGN` (base64 of timestamp +
method + path?query + body) are checked. Routes: account positions and balance, trade order
create (`clOrdId`) / query / cancel, pending orders (algo: always none), public mark price.
Amounts are CONTRACTS, as on OKX (`sz`; BTC-USDT-SWAP: 0.01 BTC each): market orders fill at
the mark at once.
Knobs: `delay_next_orders` (accept, answer late), `http_errors` (path -> statuses first).
Markets are installed in ccxt (okx_swap_market), not fetched.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import itertools
import json
import time
from typing import Any

from aiohttp import web

from bot.sim.localexchange.markets import okx_markets

OKX_KEYS = ("okx-key", "okx-secret", "okx-pass")


def okx_swap_market() -> dict[str, Any]:
    """BTC-USDT-SWAP as ccxt has it: 0.01 BTC a contract, 0.01-contract steps (lotSz)."""
    m = dict(okx_markets()[0])
    m["precision"] = {"amount": 0.01, "price": 0.1}
    m["limits"] = {"amount": {"min": 0.01, "max": None}}
    return m


class LocalOkx:
    def __init__(self, ct_val: float = 0.01) -> None:
        self.key, self.secret, self.passphrase = OKX_KEYS
        self.ct_val = ct_val
        self.marks: dict[str, float] = {"BTC-USDT-SWAP": 95_000.0}
        self.positions: dict[str, float] = {}  # instId -> signed contracts (net mode)
        self.entry: dict[str, float] = {}
        self.orders: list[dict[str, Any]] = []
        self.requests: list[tuple[str, str, dict[str, Any]]] = []  # (method, path, params)
        self.delay_next_orders: list[float] = []
        self.http_errors: dict[str, list[int]] = {}
        self._ids = itertools.count(500)
        self.app = web.Application(middlewares=[self._gate])
        r = self.app.router
        r.add_get("/api/v5/account/positions", self._positions)
        r.add_get("/api/v5/account/balance", self._balance)
        r.add_post("/api/v5/trade/order", self._create)
        r.add_post("/api/v5/trade/batch-orders", self._create)  # ccxt's default for one order
        r.add_post("/api/v5/trade/cancel-batch-orders", self._cancel)
        r.add_get("/api/v5/trade/order", self._query)
        r.add_post("/api/v5/trade/cancel-order", self._cancel)
        r.add_get("/api/v5/trade/orders-pending", self._pending)
        r.add_get("/api/v5/trade/orders-algo-pending", self._algo_pending)
        r.add_get("/api/v5/public/mark-price", self._mark)

    def creates(self) -> list[dict[str, Any]]:
        paths = ("/api/v5/trade/order", "/api/v5/trade/batch-orders")
        return [p for m, path, p in self.requests if path in paths and m == "POST"]

    @staticmethod
    def _ok(data: list[Any]) -> web.Response:
        return web.json_response({"code": "0", "msg": "", "data": data})

    @staticmethod
    def _err(code: str, msg: str) -> web.Response:
        return web.json_response({"code": code, "msg": msg, "data": []})

    @web.middleware
    async def _gate(self, request: web.Request, handler: Any) -> web.StreamResponse:
        body = await request.text()
        params: dict[str, Any] = dict(request.query)
        if body:
            data = json.loads(body)  # ccxt sends an order as a list of one
            params.update(data[0] if isinstance(data, list) else data)
        self.requests.append((request.method, request.path, params))
        pending = self.http_errors.get(request.path)
        if pending:
            return web.Response(status=pending.pop(0), text="Service Unavailable")
        if request.path.startswith("/api/v5/public/"):
            return await handler(request)
        h = request.headers
        auth = h.get("OK-ACCESS-TIMESTAMP", "") + request.method + request.path_qs + body
        digest = hmac.new(self.secret.encode(), auth.encode(), hashlib.sha256).digest()
        if h.get("OK-ACCESS-KEY") != self.key or h.get("OK-ACCESS-PASSPHRASE") != self.passphrase:
            return self._err("50111", "Invalid OK-ACCESS-KEY")
        if not hmac.compare_digest(base64.b64encode(digest).decode(), h.get("OK-ACCESS-SIGN", "")):
            return self._err("50113", "Invalid Sign")
        return await handler(request)

    def _public(self, o: dict[str, Any]) -> dict[str, Any]:
        return {k: (str(v) if isinstance(v, (int, float)) else v) for k, v in o.items()}

    async def _positions(self, _r: web.Request) -> web.Response:
        rows = []
        for inst, pos in self.positions.items():
            if pos == 0:
                continue
            mark = self.marks[inst]
            rows.append(
                self._public(
                    {
                        "instType": "SWAP",
                        "instId": inst,
                        "mgnMode": "cross",
                        "posSide": "net",
                        "pos": repr(pos),
                        "avgPx": repr(self.entry.get(inst, mark)),
                        "markPx": repr(mark),
                        "lever": "10",
                        "liqPx": "",
                        "notionalUsd": repr(abs(pos) * self.ct_val * mark),
                        "upl": "0",
                        "ccy": "USDT",
                        "cTime": int(time.time() * 1000),
                        "uTime": int(time.time() * 1000),
                    }
                )
            )
        return self._ok(rows)

    async def _balance(self, _r: web.Request) -> web.Response:
        detail = {"ccy": "USDT", "eq": "50000", "cashBal": "50000", "availBal": "50000"}
        detail["frozenBal"] = "0"
        return self._ok([{"details": [detail], "totalEq": "50000", "uTime": "0"}])

    async def _mark(self, request: web.Request) -> web.Response:
        inst = request.query.get("instId", "")
        now = str(int(time.time() * 1000))
        return self._ok(
            [{"instType": "SWAP", "instId": inst, "markPx": repr(self.marks[inst]), "ts": now}]
        )

    @staticmethod
    async def _body(request: web.Request) -> dict[str, Any]:
        data = await request.json()
        return dict(data[0] if isinstance(data, list) else data)

    async def _create(self, request: web.Request) -> web.Response:
        p = await self._body(request)
        inst, side, sz = p["instId"], p["side"], float(p["sz"])
        if sz <= 0 or abs(sz / 0.01 - round(sz / 0.01)) > 1e-6:
            body = {"code": "1", "msg": "", "data": [{"sCode": "51020", "sMsg": "bad sz"}]}
            return web.json_response(body)  # a per-order error, as OKX sends them
        mark = self.marks[inst]
        pos = self.positions.get(inst, 0.0)
        reduce_only = str(p.get("reduceOnly", "false")).lower() == "true"
        closes = (pos > 0 and side == "sell") or (pos < 0 and side == "buy")
        if reduce_only and (not closes or sz > abs(pos) + 1e-9):
            body = {"code": "1", "msg": "", "data": [{"sCode": "51169", "sMsg": "no position"}]}
            return web.json_response(body)
        px = float(p["px"]) if p.get("px") else None
        crosses = px is None or (side == "buy" and px >= mark) or (side == "sell" and px <= mark)
        now = int(time.time() * 1000)
        order = {
            "instType": "SWAP",
            "instId": inst,
            "ordId": str(next(self._ids)),
            "clOrdId": p.get("clOrdId", ""),
            "tag": p.get("tag", ""),
            "px": p.get("px", ""),
            "sz": p["sz"],
            "ordType": p["ordType"],
            "side": side,
            "posSide": "net",
            "tdMode": p.get("tdMode", "cross"),
            "reduceOnly": "true" if reduce_only else "false",
            "state": "live",
            "accFillSz": "0",
            "avgPx": "",
            "fillPx": "",
            "lever": "10",
            "fee": "0",
            "feeCcy": "USDT",
            "cTime": str(now),
            "uTime": str(now),
        }
        if crosses:
            signed = sz if side == "buy" else -sz
            self.positions[inst] = round(pos + signed, 9)
            self.entry.setdefault(inst, mark)
            order.update(state="filled", accFillSz=p["sz"], avgPx=repr(mark), fillPx=repr(mark))
        elif p["ordType"] in ("ioc", "fok"):
            order["state"] = "canceled"
        self.orders.append(order)
        if self.delay_next_orders:
            await asyncio.sleep(self.delay_next_orders.pop(0))
        ack = {k: order[k] for k in ("ordId", "clOrdId", "tag")}
        return self._ok([{**ack, "sCode": "0", "sMsg": "", "ts": str(now)}])

    def _find(self, p: dict[str, Any]) -> dict[str, Any] | None:
        for o in reversed(self.orders):
            if o["instId"] == p.get("instId") and (
                o["ordId"] == p.get("ordId") or (p.get("clOrdId") and o["clOrdId"] == p["clOrdId"])
            ):
                return o
        return None

    async def _query(self, request: web.Request) -> web.Response:
        found = self._find(dict(request.query))
        return self._ok([found]) if found else self._err("51603", "Order does not exist")

    async def _cancel(self, request: web.Request) -> web.Response:
        p = await self._body(request)
        found = self._find(p)
        if found is None or found["state"] != "live":
            body = {"code": "1", "msg": "", "data": [{"sCode": "51400", "sMsg": "not exist"}]}
            return web.json_response(body)
        found["state"] = "canceled"
        return self._ok([{"ordId": found["ordId"], "clOrdId": found["clOrdId"], "sCode": "0"}])

    async def _algo_pending(self, request: web.Request) -> web.Response:
        """Stop (algo) orders are not simulated: the read is answered, empty."""
        if request.query.get("ordType") != "conditional":
            return self._err("51000", "Parameter ordType error")
        return self._ok([])

    async def _pending(self, request: web.Request) -> web.Response:
        inst = request.query.get("instId")
        return self._ok(
            [o for o in self.orders if o["state"] == "live" and inst in (None, o["instId"])]
        )
