"""A sliver of Deribit's REST API v2 for real ccxt: buying options with a label, finding them again.

`GET /api/v2/private/buy` (and `sell`) with the `deri-hmac-sha256` Authorization header checked;
`GET /api/v2/private/get_order_state_by_label`, `cancel_by_label`, `get_positions` (from
`positions`: instrument -> signed contracts), `get_open_orders_by_currency`; a knob to answer
an accepted order late; and `option_market()`, the ccxt market of one BTC put (markets are
installed, not fetched).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import time
from typing import Any

from aiohttp import web

PUT_ID = "BTC-27DEC24-90000-P"
PUT_SYMBOL = "BTC/USD:BTC-241227-90000-P"


def option_market() -> dict[str, Any]:
    return {
        "id": PUT_ID,
        "symbol": PUT_SYMBOL,
        "base": "BTC",
        "quote": "USD",
        "settle": "BTC",
        "baseId": "BTC",
        "quoteId": "USD",
        "settleId": "BTC",
        "type": "option",
        "spot": False,
        "margin": False,
        "swap": False,
        "future": False,
        "option": True,
        "active": True,
        "contract": True,
        "linear": None,
        "inverse": None,
        "contractSize": 1.0,
        "expiry": 1735286400000,
        "strike": 90000.0,
        "optionType": "put",
        "precision": {"amount": 0.1, "price": 0.0005},
        "limits": {"amount": {"min": 0.1, "max": None}},
        "info": {"instrument_name": PUT_ID, "kind": "option"},
    }


class LocalDeribit:
    def __init__(self, api_key: str = "deri-key", api_secret: str = "deri-secret") -> None:
        self.keys = {api_key: api_secret}
        self.orders: list[dict[str, Any]] = []
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.delay_next_orders: list[float] = []
        self.positions: dict[str, float] = {}  # instrument -> signed contracts
        self._ids = itertools.count(1)
        self.app = web.Application()
        self.app.router.add_get("/api/v2/private/buy", self._buy)
        self.app.router.add_get("/api/v2/private/sell", self._buy)
        self.app.router.add_get("/api/v2/private/get_order_state_by_label", self._by_label)
        self.app.router.add_get("/api/v2/private/cancel_by_label", self._cancel_by_label)
        self.app.router.add_get("/api/v2/private/get_positions", self._positions)
        self.app.router.add_get("/api/v2/private/get_open_orders_by_currency", self._open)

    def _check(self, request: web.Request) -> dict[str, str]:
        params = dict(request.query)
        self.requests.append((request.path, params))
        fields = dict(
            part.split("=", 1)
            for part in request.headers.get("Authorization", "")
            .removeprefix("deri-hmac-sha256 ")
            .split(",")
            if "=" in part
        )
        secret = self.keys.get(fields.get("id", ""))
        target = request.path_qs
        data = f"{fields.get('ts')}\n{fields.get('nonce')}\n{request.method}\n{target}\n\n"
        expected = hmac.new((secret or "").encode(), data.encode(), hashlib.sha256).hexdigest()
        if secret is None or not hmac.compare_digest(expected, fields.get("sig", "")):
            raise web.HTTPUnauthorized(
                text='{"jsonrpc":"2.0","error":{"message":"invalid_credentials","code":13004}}',
                content_type="application/json",
            )
        return params

    async def _buy(self, request: web.Request) -> web.Response:
        p = self._check(request)
        now = int(time.time() * 1000)
        order = {
            "order_id": f"BTC-{next(self._ids)}",
            "instrument_name": p["instrument_name"],
            "direction": "buy" if request.path.endswith("buy") else "sell",
            "amount": float(p["amount"]),
            "price": float(p["price"]) if "price" in p else "market_price",
            "order_type": p.get("type", "limit"),
            "order_state": "open",
            "label": p.get("label", ""),
            "filled_amount": 0.0,
            "average_price": 0.0,
            "creation_timestamp": now,
            "last_update_timestamp": now,
            "time_in_force": "good_til_cancelled",
            "reduce_only": p.get("reduce_only") == "true",
            "post_only": False,
            "api": True,
            "commission": 0.0,
        }
        self.orders.append(order)
        if self.delay_next_orders:
            await asyncio.sleep(self.delay_next_orders.pop(0))
        return web.json_response({"jsonrpc": "2.0", "result": {"order": order, "trades": []}})

    async def _by_label(self, request: web.Request) -> web.Response:
        p = self._check(request)
        found = [o for o in self.orders if o["label"] == p.get("label")]
        return web.json_response({"jsonrpc": "2.0", "result": found})

    async def _cancel_by_label(self, request: web.Request) -> web.Response:
        p = self._check(request)
        hit = [
            o for o in self.orders if o["label"] == p.get("label") and o["order_state"] == "open"
        ]
        for o in hit:
            o["order_state"] = "cancelled"
        return web.json_response({"jsonrpc": "2.0", "result": len(hit)})

    async def _open(self, request: web.Request) -> web.Response:
        self._check(request)
        found = [o for o in self.orders if o["order_state"] == "open"]
        return web.json_response({"jsonrpc": "2.0", "result": found})

    async def _positions(self, request: web.Request) -> web.Response:
        self._check(request)
        rows = [
            {
                "instrument_name": name,
                "kind": "option",
                "direction": "buy" if size > 0 else "sell",
                "size": abs(size),
                "average_price": 0.012,
                "mark_price": 0.011,
                "index_price": 95_000.0,
                "floating_profit_loss": 0.0,
                "settlement_price": 0.011,
                "delta": -0.3 * size,
            }
            for name, size in self.positions.items()
            if size
        ]
        return web.json_response({"jsonrpc": "2.0", "result": rows})
