"""ccxt's unified structures -> liqguard's events (positions, open orders, order results).

Pure functions; `market` is the ccxt market of the structure's symbol, `venue` the name events
carry (binance-usdm, bybit, okx, deribit).
"""

from __future__ import annotations

import time
from typing import Any, Literal

from bot.events import Fill, OpenOrder, OrderResult, Position


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def position_from_ccxt(raw: dict[str, Any], market: dict[str, Any], venue: str) -> Position | None:
    """A ccxt position, sized in base units; None when flat."""
    contracts = float(raw.get("contracts") or 0.0)
    if contracts == 0 or raw.get("side") not in ("long", "short"):
        return None
    size = contracts * float(market.get("contractSize") or 1.0)
    mark = float(raw.get("markPrice") or raw.get("entryPrice") or 0.0)
    liq = raw.get("liquidationPrice")
    return Position(
        venue=venue,
        symbol=market["id"],
        side=raw["side"],
        size=size,
        entry_price=float(raw.get("entryPrice") or mark),
        mark_price=mark,
        liquidation_price=float(liq) if liq else None,
        leverage=float(raw.get("leverage") or 1.0),
    )


def open_order_from_ccxt(raw: dict[str, Any], market: dict[str, Any], venue: str) -> OpenOrder:
    stop = raw.get("triggerPrice") or raw.get("stopPrice") or raw.get("stopLossPrice")
    kind: Literal["market", "limit", "stop"] = (
        "stop" if stop else ("market" if raw.get("type") == "market" else "limit")
    )
    return OpenOrder(
        venue=venue,
        symbol=market["id"],
        client_id=str(raw.get("clientOrderId") or raw.get("id")),
        side=raw["side"],
        kind=kind,
        amount=float(raw.get("amount") or 0.0),
        price=float(raw["price"]) if raw.get("price") else None,
        stop_price=float(stop) if stop else None,
        reduce_only=bool(raw.get("reduceOnly")),
    )


def result_from_ccxt(
    client_id: str, order: dict[str, Any], market: dict[str, Any], venue: str
) -> OrderResult:
    """A ccxt order as the broker's answer: filled / open / canceled, with its fill."""
    status = {"closed": "filled", "open": "open", "canceled": "canceled"}.get(
        str(order.get("status")), "open"
    )
    if order.get("status") in ("rejected", "expired"):
        status = "canceled"
    ts = int(order.get("timestamp") or now_ms())
    fills: tuple[Fill, ...] = ()
    filled = float(order.get("filled") or 0.0)
    if filled > 0:
        fee = order.get("fee") or {}
        fills = (
            Fill(
                client_id=client_id,
                venue=venue,
                symbol=market["id"],
                side=order["side"],
                amount=filled,
                price=float(order.get("average") or order.get("price") or 0.0),
                fee_usd=float(fee.get("cost") or 0.0),
                ts_ms=ts,
                reduce_only=bool(order.get("reduceOnly")),
            ),
        )
    return OrderResult(
        client_id=client_id,
        status=status,  # type: ignore[arg-type]
        ts_ms=ts,
        exchange_order_id=str(order.get("id")) if order.get("id") else None,
        fills=fills,
    )
