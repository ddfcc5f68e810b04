"""Control routes for driving the local Binance from another process (the benchmark).

POST /_ctl/position {symbol, amount, entry_price?}; GET /_ctl/subscribed (waits);
GET /_ctl/subscribers (how many sockets are open now);
POST /_ctl/bursts {bursts: [[msg, ...], ...], wait_order_s, gap_s, restamp}: plays each burst,
waits for the order it should trigger, returns [{sent_ns, arrived_ns, client_id}] (the send time
of each burst's LAST frame, the one that crosses the threshold); with `restamp`, each frame
carries its send time (E, o.T: wall ms), as a live venue's would; GET /_ctl/orders.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import Any

from aiohttp import web

from bot.sim.localexchange.binance import LocalBinance, send_alive


def add_control(server: LocalBinance) -> None:
    async def position(request: web.Request) -> web.Response:
        body = await request.json()
        server.set_position(body["symbol"], float(body["amount"]), body.get("entry_price"))
        return web.json_response({"ok": True})

    async def subscribed(_r: web.Request) -> web.Response:
        await asyncio.wait_for(server.subscribed.wait(), 30)
        return web.json_response({"ok": True})

    async def subscribers(_r: web.Request) -> web.Response:
        return web.json_response({"n": sum(not ws.closed for ws in server.subscribers)})

    async def orders(_r: web.Request) -> web.Response:
        return web.json_response(
            [
                {"client_id": o["clientOrderId"], "arrived_ns": o["arrived_ns"]}
                for o in server.orders
            ]
        )

    async def bursts(request: web.Request) -> web.Response:
        body = await request.json()
        wait_s = float(body.get("wait_order_s", 3.0))
        restamp = bool(body.get("restamp", False))
        out: list[dict[str, Any]] = []
        for burst in body["bursts"]:
            before = len(server.orders)
            server.order_arrived.clear()
            for msg in burst[:-1]:
                await _send(server, _now(msg) if restamp else msg)
            sent_ns = await _send(server, _now(burst[-1]) if restamp else burst[-1])
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(server.order_arrived.wait(), wait_s)
            new = server.orders[before:]
            out.append(
                {
                    "sent_ns": sent_ns,
                    "arrived_ns": new[0]["arrived_ns"] if new else None,
                    "client_id": new[0]["clientOrderId"] if new else None,
                    "orders": len(new),
                }
            )
            await asyncio.sleep(float(body.get("gap_s", 0.7)))
        return web.json_response(out)

    r = server.app.router
    r.add_post("/_ctl/position", position)
    r.add_get("/_ctl/subscribed", subscribed)
    r.add_get("/_ctl/orders", orders)
    r.add_get("/_ctl/subscribers", subscribers)
    r.add_post("/_ctl/bursts", bursts)


_last_stamp_ms = [0]


def _now(msg: dict[str, Any]) -> dict[str, Any]:
    """Stamped with its send time, one millisecond apart at least: two liquidations of the
    same size and price stamped alike are one event re-sent to the bot's dedupe (the tape's
    own times were distinct)."""
    now_ms = max(time.time_ns() // 1_000_000, _last_stamp_ms[0] + 1)
    _last_stamp_ms[0] = now_ms
    return {**msg, "E": now_ms, "o": {**msg["o"], "T": now_ms}}


async def _send(server: LocalBinance, msg: dict[str, Any]) -> int:
    """Send one frame to every subscriber; return the time it left (the last send)."""
    text = json.dumps(msg)
    sent_ns = 0
    for ws in list(server.subscribers):
        if not ws.closed:
            sent_ns = time.perf_counter_ns()
            server.log.frames.append((sent_ns, msg))
            await send_alive(ws, text)
    return sent_ns
