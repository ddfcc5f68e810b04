"""What each venue needs that ccxt's unified calls do not give: client ids, lookups, cancels.

- client_id_params: the create params carrying our id (`clientOrderId`; Deribit `label`)
- find_order: the raw ccxt order with our client id, or None when the venue has none.
  Binance / OKX: `fetch_order(None, symbol, {"clientOrderId": cid})` (stops: `trigger`);
  Bybit: ccxt's fetch_order refuses on unified accounts (ArgumentsRequired) and ignores the
  client id, so `/v5/order/realtime` then `/v5/order/history` with `orderLinkId`;
  Deribit: `get_order_state_by_label`.
- cancel_by_client_id: Binance / OKX `clientOrderId` (a plain order, else a stop); Bybit
  `orderLinkId`; Deribit `cancel_by_label`. Raises ccxt.OrderNotFound when nothing matched.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import ccxt

Read = Callable[[Callable[[], Awaitable[Any]]], Awaitable[Any]]


def client_id_params(venue: str, cid: str) -> dict[str, Any]:
    return {"label": cid} if venue == "deribit" else {"clientOrderId": cid}


def bybit_category(market: dict[str, Any]) -> str:
    if market.get("option"):
        return "option"
    return "linear" if market.get("linear") else "inverse"


async def find_order(
    ex: Any, venue: str, market: dict[str, Any], cid: str, *, stop: bool, read: Read
) -> dict[str, Any] | None:
    """The order with client id `cid` as a ccxt order, or None if the venue has none."""
    if venue == "deribit":  # no client ids there: the order carries our id as its label
        query = {"currency": market["base"], "label": cid}
        found = await read(lambda: ex.private_get_get_order_state_by_label(query))
        rows = found.get("result") or []
        return ex.parse_order(rows[-1], market) if rows else None
    if venue == "bybit":
        query = {"category": bybit_category(market), "symbol": market["id"], "orderLinkId": cid}
        for call in (ex.private_get_v5_order_realtime, ex.private_get_v5_order_history):
            found = await read(_bound(call, dict(query)))
            rows = (found.get("result") or {}).get("list") or []
            if rows:
                parsed: dict[str, Any] = ex.parse_order(rows[0], market)
                return parsed
        return None
    params: dict[str, Any] = {"clientOrderId": cid}
    if stop:
        params["trigger"] = True
    try:
        order: dict[str, Any] = await read(lambda: ex.fetch_order(None, market["symbol"], params))
    except ccxt.OrderNotFound:
        return None
    return order


async def cancel_by_client_id(
    ex: Any, venue: str, market: dict[str, Any], cid: str, *, read: Read
) -> dict[str, Any]:
    """Cancel our order `cid` (plain or stop); the ccxt order answered. OrderNotFound if none."""
    symbol = market["symbol"]
    if venue == "deribit":
        query = {"currency": market["base"], "label": cid}
        done = await read(lambda: ex.private_get_cancel_by_label(query))
        if not int(done.get("result") or 0):
            raise ccxt.OrderNotFound(f"deribit: no open order labelled {cid}")
        return {"id": None, "symbol": symbol, "status": "canceled", "clientOrderId": cid}
    if venue == "bybit":
        answer: dict[str, Any] = await read(
            _bound(ex.cancel_order, None, symbol, {"orderLinkId": cid})
        )
        return answer
    last: ccxt.OrderNotFound | None = None
    extras: tuple[dict[str, Any], ...] = ({}, {"trigger": True})  # a plain order, else a stop
    for extra in extras:
        try:
            answer = await read(
                _bound(ex.cancel_order, None, symbol, {"clientOrderId": cid, **extra})
            )
            return answer
        except ccxt.OrderNotFound as exc:
            last = exc
    assert last is not None
    raise last


def _bound(call: Callable[..., Awaitable[Any]], *args: Any) -> Callable[[], Awaitable[Any]]:
    """`call(*args)` as a thunk for `read` (which may call it again on a transient error)."""
    return lambda: call(*args)
