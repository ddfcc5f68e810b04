"""Public liquidation websockets: Bybit (`allLiquidation.<SYM>`), OKX (`liquidation-orders`),
Deribit (`trades.*`, JSON-RPC), Gate (`futures.public_liquidates`), dYdX (`v4_trades`), Bitget UTA
(`liquidation`) and HTX (`public.*.liquidation_orders`, gzip binary frames, server pings).

Enough of each protocol for ccxt.pro: subscribe acks, the venues' text pings, and `play()` to
push messages to the sockets subscribed to their topic; `drop()` cuts every socket.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import time
from typing import Any

from aiohttp import WSMsgType, web


class LocalWs:
    """A venue's websocket: the sockets and their topics, `play()` to push to the subscribed
    ones, `drop()` to cut them all; a venue says how it answers a client frame (`on_text`, or
    `on_frame` when one frame gets several replies)."""

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

    async def on_frame(self, ws: web.WebSocketResponse, text: str) -> None:
        """Handle a client frame and send what it gets (by default on_text's one reply)."""
        reply = self.on_text(ws, text)
        if reply is not None:
            await self.send_text(ws, reply)

    def topics(self) -> set[str]:
        return set().union(*self.subs.values()) if self.subs else set()

    async def play(self, messages: list[dict[str, Any]]) -> int:
        sent = 0
        for msg in messages:
            topic = self.topic_of(msg)
            for ws, topics in list(self.subs.items()):
                if topic in topics and not ws.closed:
                    await self.send(ws, msg)
                    sent += 1
        return sent

    async def send(self, ws: web.WebSocketResponse, msg: dict[str, Any]) -> None:
        await ws.send_str(json.dumps(msg))

    async def send_text(self, ws: web.WebSocketResponse, text: str) -> None:
        await ws.send_str(text)

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
                    await self.on_frame(ws, msg.data)
        finally:
            self.subs.pop(ws, None)
        return ws


class LocalBybit(LocalWs):
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


class LocalOkx(LocalWs):
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


class LocalDeribitTrades(LocalWs):
    """`wss://www.deribit.com/ws/api/v2` as far as public `trades.*` go (JSON-RPC 2.0)."""

    path = "/ws/api/v2"

    def topic_of(self, msg: dict[str, Any]) -> str:
        return str(msg["params"]["channel"])

    def on_text(self, ws: web.WebSocketResponse, text: str) -> str | None:
        data = json.loads(text)
        method, rid = data.get("method"), data.get("id")
        if method == "public/test":
            return json.dumps({"jsonrpc": "2.0", "id": rid, "result": {"version": "1.2.26"}})
        if method == "public/subscribe":
            channels = list(data.get("params", {}).get("channels", []))
            self.subscribe_requests.append(data)
            self.subs[ws].update(channels)
            self.subscribed.set()
            return json.dumps({"jsonrpc": "2.0", "id": rid, "result": channels})
        return None


class LocalGateFutures(LocalWs):
    """`wss://fx-ws.gateio.ws/v4/ws/usdt` as far as `futures.public_liquidates` goes, and
    `GET /api/v4/futures/usdt/contracts` (every contract's `quanto_multiplier`) from
    `contracts`, which a test may change (a new listing)."""

    path = "/v4/ws/usdt"

    def __init__(self) -> None:
        super().__init__()
        self.contracts: dict[str, str] = {"BTC_USDT": "0.0001", "ETH_USDT": "0.01"}
        self.contract_requests = 0
        self.app.router.add_get("/api/v4/futures/usdt/contracts", self._contracts)

    async def _contracts(self, request: web.Request) -> web.Response:
        self.contract_requests += 1
        return web.json_response([gate_contract(n, m) for n, m in self.contracts.items()])

    def topic_of(self, msg: dict[str, Any]) -> str:
        return "!all"  # every update reaches an `!all` subscriber

    def on_text(self, ws: web.WebSocketResponse, text: str) -> str | None:
        data = json.loads(text)
        channel, now_s = data.get("channel"), int(time.time())
        if channel == "futures.ping":
            return json.dumps(
                {"time": now_s, "channel": "futures.pong", "event": "", "result": None}
            )
        if channel == "futures.public_liquidates" and data.get("event") == "subscribe":
            self.subscribe_requests.append(data)
            self.subs[ws].update(data.get("payload", []))
            self.subscribed.set()
            return json.dumps(
                {
                    "time": now_s,
                    "time_ms": now_s * 1000,
                    "channel": channel,
                    "event": "subscribe",
                    "result": {"status": "success"},
                }
            )
        return None


def gate_contract(name: str, quanto_multiplier: str) -> dict[str, Any]:
    """One entry of Gate's `GET /futures/{settle}/contracts` (the fields liqguard reads, and
    a few beside them as Gate sends them)."""
    return {
        "name": name,
        "type": "direct",
        "quanto_multiplier": quanto_multiplier,
        "leverage_min": "1",
        "leverage_max": "100",
        "mark_type": "index",
        "mark_price": "0",
        "order_size_min": 1,
        "order_size_max": 1000000,
        "in_delisting": False,
    }


def deribit_trades_message(channel: str, trades: list[dict[str, Any]]) -> dict[str, Any]:
    """A `trades.*` notification (docs.deribit.com: subscriptions, trades.{kind}.{currency})."""
    return {
        "jsonrpc": "2.0",
        "method": "subscription",
        "params": {"channel": channel, "data": trades},
    }


def deribit_trade(
    instrument: str,
    direction: str,
    amount: float,
    price: float,
    ts_ms: int,
    liquidation: str | None = None,
    trade_id: str = "1",
) -> dict[str, Any]:
    trade: dict[str, Any] = {
        "trade_seq": 1,
        "trade_id": trade_id,
        "timestamp": ts_ms,
        "tick_direction": 0,
        "price": price,
        "mark_price": price,
        "instrument_name": instrument,
        "index_price": price,
        "direction": direction,
        "amount": amount,
    }
    if liquidation is not None:
        trade["liquidation"] = liquidation
    return trade


def gate_liquidates_message(entries: list[tuple[str, str | int, str, int]]) -> dict[str, Any]:
    """entries: (contract, signed order size, price, time_ms), as Gate pushes since 2026-08-20."""
    now_s = int(time.time())
    return {
        "channel": "futures.public_liquidates",
        "event": "update",
        "time": now_s,
        "time_ms": now_s * 1000,
        "result": [
            {"price": price, "size": size, "time": ts_ms, "contract": contract}
            for contract, size, price, ts_ms in entries
        ],
    }


class LocalDydxIndexer(LocalWs):
    """`wss://indexer.dydx.trade/v4/ws` as far as `v4_trades` goes (pings: control frames)."""

    path = "/v4/ws"

    def topic_of(self, msg: dict[str, Any]) -> str:
        return str(msg["id"])

    def on_text(self, ws: web.WebSocketResponse, text: str) -> str | None:
        data = json.loads(text)
        if data.get("type") == "subscribe" and data.get("channel") == "v4_trades":
            self.subscribe_requests.append(data)
            self.subs[ws].add(str(data.get("id")))
            self.subscribed.set()
            return json.dumps(dydx_trades_message(str(data["id"]), [], kind="subscribed"))
        return None


def dydx_trades_message(
    market: str, trades: list[dict[str, Any]], kind: str = "channel_data"
) -> dict[str, Any]:
    """A `v4_trades` message (docs.dydx.exchange, Indexer Websocket)."""
    return {
        "type": kind,
        "connection_id": "c1",
        "message_id": 1,
        "channel": "v4_trades",
        "id": market,
        "version": "2.1.0",
        "contents": {"trades": trades},
    }


def dydx_trade(
    trade_id: str, side: str, size: str, price: str, created_at: str, kind: str = "LIMIT"
) -> dict[str, Any]:
    return {
        "id": trade_id,
        "size": size,
        "price": price,
        "side": side,
        "createdAt": created_at,
        "type": kind,
    }


class LocalBitgetUta(LocalWs):
    """`wss://ws.bitget.com/v3/ws/public` as far as the `liquidation` topic goes."""

    path = "/v3/ws/public"

    def __init__(self) -> None:
        super().__init__()
        self.pinged = asyncio.Event()
        self.refuse: dict[str, tuple[str, str]] = {}  # instType -> (code, msg) it refuses

    def topic_of(self, msg: dict[str, Any]) -> str:
        return str(msg["arg"]["instType"])

    def on_text(self, ws: web.WebSocketResponse, text: str) -> str | None:
        if text == "ping":
            self.pinged.set()
            return "pong"
        data = json.loads(text)
        if data.get("op") == "subscribe":
            self.subscribe_requests.append(data)
            for arg in data.get("args", []):
                refused = self.refuse.get(str(arg.get("instType")))
                if refused is not None:  # Bitget's error event (code, msg) for that arg
                    code, why = refused
                    error = {"event": "error", "arg": arg, "code": code, "msg": why}
                    return json.dumps({**error, "op": "subscribe"})
                if arg.get("topic") == "liquidation":
                    self.subs[ws].add(str(arg.get("instType")))
            self.subscribed.set()
            return json.dumps({"event": "subscribe", "arg": data["args"][0], "connId": "c1"})
        return None


def bitget_liquidation_message(
    inst_type: str, entries: list[tuple[str, str, str, str, int]]
) -> dict[str, Any]:
    """entries: (symbol, side, price, amount, ts_ms), as the Liquidation Channel pushes them."""
    return {
        "data": [
            {"symbol": sym, "side": side, "price": px, "amount": amt, "ts": str(ts)}
            for sym, side, px, amt, ts in entries
        ],
        "arg": {"instType": inst_type, "topic": "liquidation"},
        "action": "update",
        "ts": max(e[4] for e in entries),
    }


class LocalHtxLinearSwap(LocalWs):
    """`wss://api.hbdm.com/linear-swap-notification` as far as `liquidation_orders` goes.

    Every frame it sends is gzip-compressed binary, as HTX's; `ping()` sends HTX's
    `{"op": "ping"}` and `pongs` keeps the client's answers.
    """

    path = "/linear-swap-notification"

    def __init__(self) -> None:
        super().__init__()
        self.pongs: list[dict[str, Any]] = []
        self.ponged = asyncio.Event()
        self.refuse: dict[str, tuple[int, str]] = {}  # topic -> (err-code, err-msg) it refuses

    def topic_of(self, msg: dict[str, Any]) -> str:
        return str(msg["topic"])

    async def play(self, messages: list[dict[str, Any]]) -> int:
        sent = 0
        for msg in messages:
            wanted = {self.topic_of(msg), "public.*.liquidation_orders"}  # `*`: every contract
            for ws, topics in list(self.subs.items()):
                if wanted & topics and not ws.closed:
                    await self.send(ws, msg)
                    sent += 1
        return sent

    async def send(self, ws: web.WebSocketResponse, msg: dict[str, Any]) -> None:
        await ws.send_bytes(gzip.compress(json.dumps(msg).encode()))

    async def send_text(self, ws: web.WebSocketResponse, text: str) -> None:
        await ws.send_bytes(gzip.compress(text.encode()))

    async def ping(self) -> None:
        for ws in list(self.subs):
            if not ws.closed:
                await self.send(ws, {"op": "ping", "ts": str(int(time.time() * 1000))})

    def on_text(self, ws: web.WebSocketResponse, text: str) -> str | None:
        data = json.loads(text)
        if data.get("op") == "pong":
            self.pongs.append(data)
            self.ponged.set()
            return None
        if data.get("op") == "sub":
            self.subscribe_requests.append(data)
            topic = str(data.get("topic", ""))
            answer = {"op": "sub", "cid": data.get("cid"), "topic": topic}
            refused = self.refuse.get(topic)
            if refused is not None:  # HTX's refusal: a non-zero err-code and its err-msg
                code, why = refused
                ts = int(time.time() * 1000)
                return json.dumps({**answer, "ts": ts, "err-code": code, "err-msg": why})
            self.subs[ws].add(topic)
            self.subscribed.set()
            return json.dumps({**answer, "ts": int(time.time() * 1000), "err-code": 0})
        return None


def htx_liquidation_message(
    topic: str, entries: list[tuple[str, str, int, str, str, str, int]]
) -> dict[str, Any]:
    """entries: (contract_code, direction, volume, amount, trade_turnover, price, created_at)."""
    return {
        "op": "notify",
        "topic": topic,
        "ts": max(e[6] for e in entries) + 40,
        "data": [
            {
                "symbol": code.split("-")[0],
                "contract_code": code,
                "direction": direction,
                "offset": "close",
                "volume": volume,
                "price": float(price),
                "created_at": created,
                "amount": float(amount),
                "trade_turnover": float(turnover),
                "contract_type": "swap",
                "pair": code,
                "business_type": "swap",
            }
            for code, direction, volume, amount, turnover, price, created in entries
        ],
    }
