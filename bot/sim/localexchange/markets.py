"""ccxt market structures for the Bybit and OKX fakes (no REST there: markets are installed)."""

from __future__ import annotations

from typing import Any


def _market(
    venue_id: str, base: str, quote: str, contract_size: float, *, linear: bool, swap: bool
) -> dict[str, Any]:
    settle = quote if linear else base
    symbol = f"{base}/{quote}:{settle}"
    if not swap:
        symbol += "-" + venue_id.split("-")[-1]
    return {
        "id": venue_id,
        "symbol": symbol,
        "base": base,
        "quote": quote,
        "settle": settle,
        "baseId": base,
        "quoteId": quote,
        "settleId": settle,
        "type": "swap" if swap else "future",
        "spot": False,
        "margin": False,
        "swap": swap,
        "future": not swap,
        "option": False,
        "active": True,
        "contract": True,
        "linear": linear,
        "inverse": not linear,
        "contractSize": contract_size,
        "precision": {"amount": 1.0, "price": 0.1},
        "limits": {"amount": {"min": 1.0, "max": None}},
        "info": {},
    }


def bybit_markets() -> list[dict[str, Any]]:
    return [
        _market("BTCUSDT", "BTC", "USDT", 1.0, linear=True, swap=True),
        _market("ETHUSDT", "ETH", "USDT", 1.0, linear=True, swap=True),
    ]


def okx_markets() -> list[dict[str, Any]]:
    return [
        _market("BTC-USDT-SWAP", "BTC", "USDT", 0.01, linear=True, swap=True),
        _market("BTC-USD-SWAP", "BTC", "USD", 100.0, linear=False, swap=True),
        _market("BTC-USD-250328", "BTC", "USD", 100.0, linear=False, swap=False),
    ]
