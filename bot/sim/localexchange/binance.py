"""A small Binance USD-M on 127.0.0.1 that real ccxt (REST) and ccxt.pro (websocket) can talk to.

Contents:
- Account / order book-keeping: balance, positions, orders, algo (stop) orders
- REST: exchangeInfo, time, leverageBracket, positionRisk (v2/v3), balance/account, order
  create/query/cancel, open orders, algo orders, sapi apiRestrictions; HMAC-SHA256 signature
  and API key checked; Binance error codes (-2019, -2022, -2015, -1022, -2013, -4116)
- WS: `/market/ws/<n>` and `/ws`: SUBSCRIBE acks; `play()` pushes forceOrder frames to the
  `!forceOrder@arr` subscribers; `drop()` cuts every socket
- WebSocket API `/ws-fapi/v1` (binance_wsapi): `order.place`, signed in its params, the same
  order book-keeping and error codes as REST
- faults: `die()` / `revive()` (a venue that goes down and refuses sockets); see also
  faults.silent_tcp (accepts, never answers) and faults.restamp (stale or fresh frames)
- knobs: `delay_next_orders` (accept, then answer late: a timeout after acceptance),
  `slow_next_orders` (take the request, accept it only later: an order still in flight when
  the client gives up; refused, as Binance does, once `timestamp + recvWindow` has passed),
  `fail_next_orders_with` (an error code), `http_errors` (a status before any effect), and
  a log of every request and frame with monotonic nanosecond times (`time.perf_counter_ns`,
  CLOCK_MONOTONIC: comparable across processes on one machine)
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import WSMsgType, web

from bot.sim.localexchange.binance_account import AccountReads, BinanceError, Position
from bot.sim.localexchange.binance_wsapi import WsApi

SNAPSHOT = Path(__file__).resolve().parent / "binanceusdm_markets_snapshot.json"


def market_infos() -> list[dict[str, Any]]:
    """exchangeInfo symbols, from the bundled ccxt markets snapshot (their raw `info`)."""
    snap = json.loads(SNAPSHOT.read_text())
    return [m["info"] for m in snap.values()]


@dataclass
class ServerLog:
    requests: list[tuple[int, str, str, dict[str, str]]] = field(default_factory=list)
    frames: list[tuple[int, dict[str, Any]]] = field(default_factory=list)  # (t_ns, message)


class LocalBinance(AccountReads, WsApi):
    """State and handlers; `app` is the aiohttp application to serve."""

    def __init__(self, api_key: str = "test-key", api_secret: str = "test-secret") -> None:
        self.keys = {api_key: api_secret}
        self.withdrawals_enabled = False
        self.balance_usdt = 100_000.0
        self.leverage = 10.0
        self.marks: dict[str, float] = {"BTCUSDT": 95_000.0, "ETHUSDT": 3_600.0}
        self.positions: dict[str, Position] = {}
        self.orders: list[dict[str, Any]] = []
        self.algo_orders: list[dict[str, Any]] = []
        self.log = ServerLog()
        self.delay_next_orders: list[float] = []  # seconds, one per next create
        self.slow_next_orders: list[float] = []  # seconds before the next creates are accepted
        self.fail_next_orders_with: list[int] = []  # Binance error codes
        self.http_errors: dict[str, list[int]] = {}  # path -> HTTP statuses, before any effect
        self.ws_api_silent_next = 0  # WebSocket API: answers swallowed (binance_wsapi)
        self.ws_api_requests: list[tuple[int, str, dict[str, str]]] = []
        self._ids = itertools.count(1000)
        self.sockets: set[web.WebSocketResponse] = set()
        self.dead = False  # die(): websockets refused until revive()
        self.subscribers: set[web.WebSocketResponse] = set()
        self.mark_subscribers: dict[web.WebSocketResponse, set[str]] = {}  # ws -> btcusdt...
        self.marks_subscribed = asyncio.Event()
        self.subscribed = asyncio.Event()
        self.order_arrived = asyncio.Event()  # set by every create (plain or algo)
        self.app = self._make_app()

    # --- setup helpers -------------------------------------------------------------------
    def set_position(self, symbol: str, amount: float, entry_price: float | None = None) -> None:
        self.positions[symbol] = Position(amount, entry_price or self.marks[symbol])

    def orders_with_client_id(self, cid: str) -> list[dict[str, Any]]:
        return [o for o in self.orders if o["clientOrderId"] == cid] + [
            o for o in self.algo_orders if o["clientAlgoId"] == cid
        ]

    def order_requests(self) -> list[tuple[int, str, str, dict[str, str]]]:
        return [r for r in self.log.requests if r[1] == "POST" and r[2].endswith("rder")]

    # --- websocket -----------------------------------------------------------------------
    async def play(self, messages: list[dict[str, Any]], interval_s: float = 0.0) -> int:
        """Send each forceOrder message to every `!forceOrder@arr` subscriber; frames sent."""
        sent = 0
        for msg in messages:
            text = json.dumps(msg)
            for ws in list(self.subscribers):
                if ws.closed:
                    continue
                self.log.frames.append((time.perf_counter_ns(), msg))
                sent += await send_alive(ws, text)
            if interval_s:
                await asyncio.sleep(interval_s)
        return sent

    async def send_marks(self) -> int:
        """One `markPriceUpdate` per subscribed symbol at the current marks (Binance: 1/s)."""
        sent, now = 0, int(time.time() * 1000)
        for ws, lows in list(self.mark_subscribers.items()):
            for symbol in sorted(s for s in self.marks if s.lower() in lows):
                msg = {"e": "markPriceUpdate", "E": now, "s": symbol, "p": repr(self.marks[symbol])}
                msg.update({"i": msg["p"], "P": msg["p"], "r": "0.0001", "T": now + 3_600_000})
                sent += await send_alive(ws, json.dumps(msg))
        return sent

    async def drop(self) -> None:
        """Cut every websocket (as a venue does at maintenance)."""
        self.subscribed.clear()
        for ws in list(self.sockets):
            await ws.close(code=1001, message=b"going away")
        self.subscribers.clear()

    async def die(self) -> None:
        """The venue goes down: every socket cut, every new one refused (503) until revive()."""
        self.dead = True
        await self.drop()

    def revive(self) -> None:
        self.dead = False

    async def _ws(self, request: web.Request) -> web.StreamResponse:
        if self.dead:
            raise web.HTTPServiceUnavailable(text="venue down")
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        self.sockets.add(ws)
        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                data = json.loads(msg.data)
                if data.get("method") == "SUBSCRIBE":
                    params = data.get("params", [])
                    if "!forceOrder@arr" in params:
                        self.subscribers.add(ws)
                        self.subscribed.set()
                    for p in params:
                        if p.endswith("@markPrice@1s"):
                            self.mark_subscribers.setdefault(ws, set()).add(p.split("@")[0])
                            self.marks_subscribed.set()
                    await ws.send_str(json.dumps({"result": None, "id": data.get("id")}))
        finally:
            self.sockets.discard(ws)
            self.subscribers.discard(ws)
            self.mark_subscribers.pop(ws, None)
        return ws

    # --- REST plumbing -------------------------------------------------------------------
    def _make_app(self) -> web.Application:
        app = web.Application(middlewares=[self._errors])
        r = app.router
        r.add_get("/ws", self._ws)
        r.add_get("/market/ws/{n}", self._ws)
        r.add_get("/ws-fapi/v1", self._ws_api)
        r.add_get("/fapi/v1/exchangeInfo", self._exchange_info)
        r.add_get("/fapi/v1/time", self._time)
        r.add_get("/fapi/v1/leverageBracket", self._brackets)
        r.add_get("/fapi/v2/positionRisk", self._position_risk)
        r.add_get("/fapi/v3/positionRisk", self._position_risk)
        r.add_get("/fapi/v2/balance", self._balance)
        r.add_get("/fapi/v3/balance", self._balance)
        r.add_get("/fapi/v2/account", self._account)
        r.add_get("/fapi/v3/account", self._account)
        r.add_post("/fapi/v1/order", self._create_order)
        r.add_get("/fapi/v1/order", self._query_order)
        r.add_delete("/fapi/v1/order", self._cancel_order)
        r.add_get("/fapi/v1/openOrders", self._open_orders)
        r.add_post("/fapi/v1/algoOrder", self._create_algo)
        r.add_get("/fapi/v1/algoOrder", self._query_algo)
        r.add_delete("/fapi/v1/algoOrder", self._cancel_algo)
        r.add_get("/fapi/v1/openAlgoOrders", self._open_algos)
        r.add_get("/sapi/v1/account/apiRestrictions", self._api_restrictions)
        r.add_get("/fapi/v1/premiumIndex", self._premium_index)
        return app

    @staticmethod
    def _json(data: Any, status: int = 200) -> web.Response:
        return web.json_response(data, status=status)

    @web.middleware
    async def _errors(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if request.path.startswith(("/fapi", "/sapi")):
            params = dict(parse_qsl(request.query_string))
            params.update(parse_qsl(await request.text()))
            self.log.requests.append((time.perf_counter_ns(), request.method, request.path, params))
        pending = self.http_errors.get(request.path)
        if pending:
            return web.Response(status=pending.pop(0), text="Service Unavailable")
        try:
            return await handler(request)
        except BinanceError as exc:
            return self._json({"code": exc.code, "msg": exc.msg}, status=exc.status)

    async def _signed(self, request: web.Request) -> dict[str, str]:
        """Check API key and HMAC signature; return the request parameters."""
        secret = self.keys.get(request.headers.get("X-MBX-APIKEY", ""))
        if secret is None:
            raise BinanceError(-2015, "Invalid API-key, IP, or permissions for action.", 401)
        body = await request.text()  # read once by the middleware, cached by aiohttp
        payload = request.query_string + body if body else request.query_string
        if "&signature=" not in payload:
            raise BinanceError(-1102, "Mandatory parameter 'signature' was not sent.")
        unsigned, signature = payload.rsplit("&signature=", 1)
        expected = hmac.new(secret.encode(), unsigned.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, signature):
            raise BinanceError(-1022, "Signature for this request is not valid.")
        return dict(parse_qsl(unsigned))

    # --- public --------------------------------------------------------------------------
    async def _exchange_info(self, _r: web.Request) -> web.Response:
        return self._json(
            {
                "timezone": "UTC",
                "serverTime": int(time.time() * 1000),
                "rateLimits": [],
                "exchangeFilters": [],
                "assets": [],
                "symbols": market_infos(),
            }
        )

    async def _time(self, _r: web.Request) -> web.Response:
        return self._json({"serverTime": int(time.time() * 1000)})

    async def _premium_index(self, request: web.Request) -> web.Response:
        now = int(time.time() * 1000)
        rows = [
            {"symbol": s, "markPrice": str(p), "indexPrice": str(p), "time": now}
            for s, p in self.marks.items()
        ]
        one = request.query.get("symbol")
        return self._json(next(r for r in rows if r["symbol"] == one) if one else rows)

    # --- orders --------------------------------------------------------------------------
    def _check_reduce_only(self, symbol: str, side: str, qty: float) -> None:
        pos = self.positions.get(symbol, Position()).amount
        closes = (pos > 0 and side == "SELL") or (pos < 0 and side == "BUY")
        if not closes or qty > abs(pos) + 1e-12:
            raise BinanceError(-2022, "ReduceOnly Order is rejected.")

    def _fill(self, symbol: str, side: str, qty: float, price: float) -> None:
        pos = self.positions.setdefault(symbol, Position())
        signed = qty if side == "BUY" else -qty
        new = pos.amount + signed
        if pos.amount == 0 or (pos.amount > 0) == (signed > 0):  # opening or adding
            total = abs(pos.amount) + qty
            pos.entry_price = (abs(pos.amount) * pos.entry_price + qty * price) / total
        elif abs(signed) > abs(pos.amount):  # flipped
            pos.entry_price = price
        else:  # reduced: realise the pnl
            sign = 1 if pos.amount > 0 else -1
            self.balance_usdt += sign * qty * (price - pos.entry_price)
        pos.amount = round(new, 12)
        if pos.amount == 0:
            pos.entry_price = 0.0

    async def _create_order(self, request: web.Request) -> web.Response:
        return self._json(self._public(await self.place_order(await self._signed(request))))

    async def place_order(self, p: dict[str, str]) -> dict[str, Any]:
        """One signed create (REST `POST /fapi/v1/order` or WebSocket API `order.place`): the
        order as kept here (with `arrived_ns`), or BinanceError."""
        if self.slow_next_orders:  # in flight: accepted later, if still within recvWindow
            await asyncio.sleep(self.slow_next_orders.pop(0))
        now_ms = int(time.time() * 1000)
        if now_ms > int(p["timestamp"]) + int(p.get("recvWindow", 5000)):
            raise BinanceError(-1021, "Timestamp for this request is outside of the recvWindow.")
        arrived_ns = time.perf_counter_ns()
        self.order_arrived.set()
        symbol, side, otype = p["symbol"], p["side"], p["type"]
        if symbol not in self.marks:
            raise BinanceError(-1121, "Invalid symbol.")
        if self.fail_next_orders_with:
            code = self.fail_next_orders_with.pop(0)
            raise BinanceError(code, {-2019: "Margin is insufficient."}.get(code, "rejected"))
        qty = float(p["quantity"])
        cid = p.get("newClientOrderId") or f"auto{next(self._ids)}"
        if any(o["clientOrderId"] == cid and o["status"] == "NEW" for o in self.orders):
            raise BinanceError(-4116, "ClientOrderId is duplicated.")
        reduce_only = p.get("reduceOnly", "false").lower() == "true"
        if reduce_only:
            self._check_reduce_only(symbol, side, qty)
        mark = self.marks[symbol]
        if not reduce_only and qty * mark / self.leverage > self._available():
            raise BinanceError(-2019, "Margin is insufficient.")
        order: dict[str, Any] = {
            "orderId": next(self._ids),
            "symbol": symbol,
            "status": "NEW",
            "clientOrderId": cid,
            "price": p.get("price", "0"),
            "avgPrice": "0",
            "origQty": p["quantity"],
            "executedQty": "0",
            "cumQuote": "0",
            "timeInForce": p.get("timeInForce", "GTC"),
            "type": otype,
            "origType": otype,
            "reduceOnly": reduce_only,
            "closePosition": False,
            "side": side,
            "positionSide": "BOTH",
            "stopPrice": "0",
            "workingType": "CONTRACT_PRICE",
            "priceProtect": False,
            "time": int(time.time() * 1000),
            "updateTime": int(time.time() * 1000),
            "arrived_ns": arrived_ns,
        }
        limit_ok = otype == "LIMIT" and (
            (side == "BUY" and float(p["price"]) >= mark)
            or (side == "SELL" and float(p["price"]) <= mark)
        )
        if otype == "MARKET" or limit_ok:
            self._fill(symbol, side, qty, mark)
            order.update(
                status="FILLED",
                avgPrice=repr(mark),
                executedQty=p["quantity"],
                cumQuote=repr(qty * mark),
            )
        elif p.get("timeInForce") in ("IOC", "FOK"):  # nothing at that price: it expires
            order.update(status="EXPIRED")
        self.orders.append(order)
        if self.delay_next_orders:  # accepted above; the answer comes late
            await asyncio.sleep(self.delay_next_orders.pop(0))
        return order

    @staticmethod
    def _public(order: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in order.items() if k != "arrived_ns"}

    def _find(self, p: dict[str, str]) -> dict[str, Any]:
        for o in reversed(self.orders):
            if o["symbol"] != p.get("symbol"):
                continue
            if str(o["orderId"]) == p.get("orderId") or (
                o["clientOrderId"] == p.get("origClientOrderId")
            ):
                return o
        raise BinanceError(-2013, "Order does not exist.")

    async def _query_order(self, request: web.Request) -> web.Response:
        return self._json(self._public(self._find(await self._signed(request))))

    async def _cancel_order(self, request: web.Request) -> web.Response:
        order = self._find(await self._signed(request))
        if order["status"] != "NEW":
            raise BinanceError(-2011, "Unknown order sent.")
        order["status"] = "CANCELED"
        return self._json(self._public(order))

    async def _open_orders(self, request: web.Request) -> web.Response:
        p = await self._signed(request)
        return self._json(
            [
                self._public(o)
                for o in self.orders
                if o["status"] == "NEW" and p.get("symbol") in (None, o["symbol"])
            ]
        )

    async def _create_algo(self, request: web.Request) -> web.Response:
        p = await self._signed(request)
        cid = p.get("clientAlgoId") or f"algo{next(self._ids)}"
        if any(o["clientAlgoId"] == cid and o["algoStatus"] == "NEW" for o in self.algo_orders):
            raise BinanceError(-4116, "ClientOrderId is duplicated.")
        reduce_only = p.get("reduceOnly", "false").lower() == "true"
        if reduce_only:
            self._check_reduce_only(p["symbol"], p["side"], float(p["quantity"]))
        now = int(time.time() * 1000)
        algo = {
            "algoId": next(self._ids),
            "clientAlgoId": cid,
            "algoType": "CONDITIONAL",
            "orderType": p.get("type", "STOP_MARKET"),
            "symbol": p["symbol"],
            "side": p["side"],
            "positionSide": "BOTH",
            "timeInForce": p.get("timeInForce", "GTC"),
            "quantity": p["quantity"],
            "algoStatus": "NEW",
            "triggerPrice": p.get("triggerPrice", "0"),
            "price": p.get("price", "0"),
            "workingType": "CONTRACT_PRICE",
            "priceMatch": "NONE",
            "closePosition": False,
            "priceProtect": False,
            "reduceOnly": reduce_only,
            "createTime": now,
            "updateTime": now,
            "triggerTime": 0,
            "goodTillDate": 0,
        }
        self.algo_orders.append(algo)
        return self._json(algo)

    def _find_algo(self, p: dict[str, str]) -> dict[str, Any]:
        for o in reversed(self.algo_orders):
            if str(o["algoId"]) == p.get("algoId") or o["clientAlgoId"] == p.get("clientAlgoId"):
                return o
        raise BinanceError(-2013, "Order does not exist.")

    async def _query_algo(self, request: web.Request) -> web.Response:
        return self._json(self._find_algo(await self._signed(request)))

    async def _cancel_algo(self, request: web.Request) -> web.Response:
        algo = self._find_algo(await self._signed(request))
        algo["algoStatus"] = "CANCELED"
        return self._json(
            {"algoId": algo["algoId"], "clientAlgoId": algo["clientAlgoId"], "code": "200"}
        )

    async def _open_algos(self, request: web.Request) -> web.Response:
        p = await self._signed(request)
        return self._json(
            [
                o
                for o in self.algo_orders
                if o["algoStatus"] == "NEW" and p.get("symbol") in (None, o["symbol"])
            ]
        )


async def send_alive(ws: web.WebSocketResponse, text: str) -> bool:
    """Send one frame; False if the subscriber went away meanwhile (a process killed
    mid-burst): a venue drops that socket and serves the others."""
    try:
        await ws.send_str(text)
    except ConnectionResetError:
        return False
    return True
