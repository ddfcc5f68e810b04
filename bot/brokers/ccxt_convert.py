"""ccxt's unified structures -> liqguard's events (positions, open orders, order results).

Pure functions; `market` is the ccxt market of the structure's symbol, `venue` the name events
carry (binance-usdm, bybit, okx, deribit).

Units: liqguard speaks base units (BTC) for perps and contracts for options; ccxt speaks the
venue's contracts (OKX BTC-USDT-SWAP: 0.01 BTC each; Binance, Bybit linear: 1 BTC). Linear
contracts convert with `contractSize`; inverse contracts are USD face value (`contracts *
contractSize / price` BTC). Every amount crossing the boundary goes through base_to_contracts
or contracts_to_base, nowhere else.
"""

from __future__ import annotations

import time
from typing import Any, Literal

from bot.events import Fill, OpenOrder, OrderResult, Position

_DONE = ("closed", "canceled", "expired", "rejected")


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def contract_size(market: dict[str, Any]) -> float:
    return float(market.get("contractSize") or 1.0)


def is_inverse(market: dict[str, Any]) -> bool:
    return bool(market.get("inverse")) and not market.get("option")


def base_to_contracts(amount: float, market: dict[str, Any]) -> float:
    """An order's amount in the venue's contracts (options: already contracts).

    Raises ValueError for inverse contracts: sized in USD face value, which a base amount
    only fixes at one price; liqguard refuses them rather than guess."""
    if market.get("option"):
        return amount
    if is_inverse(market):
        raise ValueError(
            f"{market.get('symbol')} is an inverse contract (sized in USD face value of "
            f"{contract_size(market):g} each); liqguard orders linear contracts only"
        )
    return amount / contract_size(market)


def contracts_to_base(contracts: float, market: dict[str, Any], price: float | None) -> float:
    """The venue's contracts in base units (options stay contracts); inverse needs a price."""
    if market.get("option"):
        return contracts
    if is_inverse(market):
        return contracts * contract_size(market) / price if price else 0.0
    return contracts * contract_size(market)


def position_from_ccxt(raw: dict[str, Any], market: dict[str, Any], venue: str) -> Position | None:
    """A ccxt position, sized in base units (options: contracts); None when flat."""
    contracts = abs(float(raw.get("contracts") or 0.0))
    if contracts == 0 or raw.get("side") not in ("long", "short"):
        return None
    mark = float(raw.get("markPrice") or raw.get("entryPrice") or 0.0)
    liq = raw.get("liquidationPrice")
    option = bool(market.get("option"))
    return Position(
        venue=venue,
        symbol=market["symbol"] if option else market["id"],  # puts: the unified name
        side=raw["side"],
        size=contracts_to_base(contracts, market, mark),
        entry_price=float(raw.get("entryPrice") or mark),
        mark_price=mark,
        liquidation_price=float(liq) if liq else None,
        leverage=float(raw.get("leverage") or 1.0),
        instrument="option" if option else "perp",
    )


def open_order_from_ccxt(raw: dict[str, Any], market: dict[str, Any], venue: str) -> OpenOrder:
    stop = raw.get("triggerPrice") or raw.get("stopPrice") or raw.get("stopLossPrice")
    kind: Literal["market", "limit", "stop"] = (
        "stop" if stop else ("market" if raw.get("type") == "market" else "limit")
    )
    price = float(raw["price"]) if raw.get("price") else None
    remaining = raw.get("remaining")
    contracts = float(remaining if remaining is not None else raw.get("amount") or 0.0)
    return OpenOrder(
        venue=venue,
        symbol=market["symbol"] if market.get("option") else market["id"],
        client_id=str(raw.get("clientOrderId") or _label(raw) or raw.get("id")),
        side=raw["side"],
        kind=kind,
        amount=contracts_to_base(contracts, market, price or (float(stop) if stop else None)),
        price=price,
        stop_price=float(stop) if stop else None,
        reduce_only=bool(raw.get("reduceOnly")),
    )


def _label(raw: dict[str, Any]) -> str | None:
    """Deribit carries our client id as the order's label."""
    info = raw.get("info") or {}
    return info.get("label") or None if isinstance(info, dict) else None


def takes_now(order: dict[str, Any]) -> bool:
    """A market or IOC/FOK order: it fills at once or not at all, never rests."""
    tif = str(order.get("timeInForce") or "").upper()
    return order.get("type") == "market" or tif in ("IOC", "FOK")


def result_from_ccxt(
    client_id: str, order: dict[str, Any], market: dict[str, Any], venue: str
) -> OrderResult:
    """A ccxt order as the broker's answer: filled / open / canceled, with its fill.

    A market or IOC order that ended with less than asked filled is `failed` (its partial
    fill kept): an expired IOC is an order that did not happen, not a cancel someone asked."""
    raw_status = str(order.get("status"))
    status = {"closed": "filled", "open": "open", "canceled": "canceled"}.get(raw_status, "open")
    if raw_status in ("rejected", "expired"):
        status = "canceled"
    ts = int(order.get("timestamp") or now_ms())
    price = float(order.get("average") or order.get("price") or 0.0)
    filled = float(order.get("filled") or 0.0)
    asked = float(order.get("amount") or 0.0)
    error = ""
    if raw_status in _DONE and takes_now(order) and asked > 0 and filled < asked * (1 - 1e-9):
        status = "failed"
        error = (
            f"{order.get('type')} {order.get('timeInForce') or ''} order ended {raw_status} "
            f"with {filled:g} of {asked:g} contracts filled (price moved past the cap?)"
        ).replace("  ", " ")
    fills: tuple[Fill, ...] = ()
    if filled > 0:
        fee = order.get("fee") or {}
        fills = (
            Fill(
                client_id=client_id,
                venue=venue,
                symbol=market["symbol"] if market.get("option") else market["id"],
                side=order["side"],
                amount=contracts_to_base(filled, market, price),
                price=price,
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
        error=error,
    )
