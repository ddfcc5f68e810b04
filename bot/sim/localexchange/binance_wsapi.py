"""The local Binance USD-M WebSocket API (`/ws-fapi/v1`), as Binance documents it.

Binance, "USDⓈ-M Futures / WebSocket API General Info" and "Trade / New Order (TRADE)":
one JSON request per text frame, `{"id", "method", "params"}`; a signed request carries
`apiKey`, `timestamp` and `signature` in `params`, the signature being the HMAC-SHA256 of every
other parameter sorted by name and joined as `key=value&...`; the answer echoes `id` with
`status` 200 and `result` (the same order object as `POST /fapi/v1/order`), or an HTTP-like
`status` and `error: {code, msg}`; `rateLimits` rides along. Method here: `order.place`.

Knobs (on LocalBinance): `delay_next_orders`, `slow_next_orders` and `fail_next_orders_with`
apply as for REST; `ws_api_silent_next` swallows the next N requests after accepting their
order (the answer is lost: the client times out and must look the order up).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any

from aiohttp import WSMsgType, web

from bot.sim.localexchange.binance_account import BinanceError

RATE_LIMITS = [  # what Binance attaches to each answer (counts are not tracked here)
    {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 2400},
    {"rateLimitType": "ORDERS", "interval": "MINUTE", "intervalNum": 1, "limit": 1200},
]


def _text(value: Any) -> str:
    """A parameter as the signer wrote it (ccxt's rawencode: booleans as true/false)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class WsApi:
    """The WebSocket API handler; mixed into LocalBinance, which owns keys and orders."""

    keys: dict[str, str]
    ws_api_silent_next: int = 0
    ws_api_requests: list[tuple[int, str, dict[str, str]]]  # (t_ns, method, params)

    async def place_order(self, p: dict[str, str]) -> dict[str, Any]:
        raise NotImplementedError

    @staticmethod
    def _public(order: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError

    def _verified(self, params: dict[str, Any]) -> dict[str, str]:
        """The request's parameters as text, once its API key and signature check out."""
        secret = self.keys.get(str(params.get("apiKey", "")))
        if secret is None:
            raise BinanceError(-2015, "Invalid API-key, IP, or permissions for action.", 401)
        signature = params.get("signature")
        if not signature:
            raise BinanceError(-1102, "Mandatory parameter 'signature' was not sent.")
        fields = {k: _text(v) for k, v in params.items() if k != "signature"}
        payload = "&".join(f"{k}={fields[k]}" for k in sorted(fields))
        expected = hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, str(signature)):
            raise BinanceError(-1022, "Signature for this request is not valid.")
        return {k: v for k, v in fields.items() if k != "apiKey"}

    async def _ws_api(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        async for msg in ws:
            if msg.type != WSMsgType.TEXT:
                continue
            try:
                data = json.loads(msg.data)
            except ValueError:
                await ws.send_str(json.dumps({"id": None, "status": 400, "error": _bad_json()}))
                continue
            answer = await self._answer(data)
            if answer is not None:
                await ws.send_str(json.dumps(answer))
        return ws

    async def _answer(self, data: dict[str, Any]) -> dict[str, Any] | None:
        rid, method = data.get("id"), data.get("method")
        params = data.get("params") or {}
        self.ws_api_requests.append((time.perf_counter_ns(), str(method), dict(params)))
        try:
            if method != "order.place":
                raise BinanceError(-1020, "This operation is not supported.")
            order = await self.place_order(self._verified(params))
        except BinanceError as exc:
            error = {"code": exc.code, "msg": exc.msg}
            return {"id": rid, "status": exc.status, "error": error, "rateLimits": RATE_LIMITS}
        if self.ws_api_silent_next > 0:  # accepted, the answer lost on the way
            self.ws_api_silent_next -= 1
            return None
        return {"id": rid, "status": 200, "result": self._public(order), "rateLimits": RATE_LIMITS}


def _bad_json() -> dict[str, Any]:
    return {"code": -1013, "msg": "INVALID_MESSAGE"}
