"""Liquidation messages for the local exchanges: Binance forceOrder, and the bundled tape."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def force_order_message(
    symbol: str, order_side: str, qty: str, price: str, ts_ms: int
) -> dict[str, Any]:
    """A `forceOrder` websocket message as Binance sends it."""
    return {
        "e": "forceOrder",
        "E": ts_ms + 2,
        "o": {
            "s": symbol,
            "S": order_side,
            "o": "LIMIT",
            "f": "IOC",
            "q": qty,
            "p": price,
            "ap": price,
            "X": "FILLED",
            "l": qty,
            "z": qty,
            "T": ts_ms,
        },
    }


def tape_messages(path: Path, limit: int | None = None) -> list[dict[str, Any]]:
    """The bundled unified CSV tape as forceOrder messages (long liquidated = SELL order)."""
    out = []
    with path.open() as fh:
        next(fh)
        for line in fh:
            ts, _venue, symbol, side, price, qty, _usd = line.strip().split(",")
            order_side = "SELL" if side == "long" else "BUY"
            out.append(force_order_message(symbol, order_side, qty, price, int(ts)))
            if limit is not None and len(out) >= limit:
                break
    return out


def crossing_bursts(path: Path, threshold_usd: float, n: int) -> list[list[dict[str, Any]]]:
    """`n` groups of the tape's consecutive messages (cycled), each reaching `threshold_usd` at
    its last message: a cascade whose every burst crosses a rule of that threshold once."""
    from bot.sources.venues import parse_raw_message  # the USD exactly as the stream counts it

    tape = tape_messages(path)
    bursts: list[list[dict[str, Any]]] = []
    i = 0
    while len(bursts) < n:
        burst, usd = [], 0.0
        while usd < threshold_usd:
            msg = tape[i % len(tape)]
            i += 1
            usd += sum(liq.notional_usd for liq in parse_raw_message(msg))
            burst.append(msg)
        bursts.append(burst)
    return bursts
