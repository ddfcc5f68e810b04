"""Tape formats: recognise one from its first line, and turn one line into Liquidation events.

Contents: FORMATS, sniff_format, UnifiedRows, binance_csv_row, jsonl_line.
- unified: `ts_ms,venue,symbol,side,price,quantity,notional_usd` (header optional)
- binance-csv: the collectors' Binance liquidation CSV (header optional), venue binance-usdm
- jsonl: raw websocket messages, one JSON object per line, any of the three venues
- tardis: Tardis.dev's normalized `liquidations` CSV (header required; bot.sources.tardis)
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Sequence
from typing import cast

from bot.events import Liquidation, Side
from bot.sources.tardis import TARDIS_COLUMNS
from bot.sources.validate import (
    MAX_TS_MS,
    MIN_TS_MS,
    MalformedMessage,
    make_liquidation,
    to_ts_ms,
)
from bot.sources.venues import ContractSize, parse_binance_force_order, parse_raw_message

FORMATS = ("unified", "binance-csv", "jsonl", "tardis")

UNIFIED_COLUMNS = ("ts_ms", "venue", "symbol", "side", "price", "quantity", "notional_usd")
BINANCE_CSV_COLUMNS = (
    "symbol",
    "side",
    "order_type",
    "time_in_force",
    "original_quantity",
    "price",
    "average_price",
    "order_status",
    "order_last_filled_quantity",
    "order_filled_accumulated_quantity",
    "order_trade_time",
)
# forceOrder keys, in the Binance CSV's column order: a row becomes the message it came from.
_BINANCE_KEYS = ("s", "S", "o", "f", "q", "p", "ap", "X", "l", "z", "T")


def split_csv(line: str) -> list[str]:
    """Fields of one CSV line; the csv module only when quotes make it necessary."""
    if '"' in line:
        return next(csv.reader([line]), [])
    return line.split(",")


def sniff_format(first_line: str) -> str | None:
    """The format whose header or first row this is, or None."""
    text = first_line.strip().lstrip("\ufeff")
    if text.startswith("{"):
        return "jsonl"
    fields = [f.strip().lower() for f in split_csv(text)]
    if {"ts_ms", "notional_usd"} <= set(fields):
        return "unified"
    if tuple(fields) == TARDIS_COLUMNS:
        return "tardis"
    if fields[:2] == ["symbol", "side"] and "order_trade_time" in fields:
        return "binance-csv"
    if len(fields) == len(BINANCE_CSV_COLUMNS) and fields[1] in ("buy", "sell"):
        return "binance-csv"
    if (
        len(fields) == len(UNIFIED_COLUMNS)
        and fields[0].isdigit()
        and fields[3]
        in (
            "long",
            "short",
        )
    ):
        return "unified"
    return None


def is_header(fmt: str, line: str) -> bool:
    fields = [f.strip().lower() for f in split_csv(line.strip().lstrip("\ufeff"))]
    if fmt == "unified":
        return "ts_ms" in fields
    if fmt == "binance-csv":
        return fields[:1] == ["symbol"]
    if fmt == "tardis":
        return fields[:1] == ["exchange"]
    return False


class UnifiedRows:
    """Parses unified CSV rows; columns by the header's names when there is one."""

    def __init__(self, header: Sequence[str] | None = None) -> None:
        names = [h.strip().lower() for h in header] if header else list(UNIFIED_COLUMNS)
        missing = [
            c for c in ("ts_ms", "venue", "symbol", "side", "notional_usd") if c not in names
        ]
        if missing:
            raise MalformedMessage(f"the header lacks column(s) {', '.join(missing)}")
        self.width = len(names)
        self._ts, self._venue = names.index("ts_ms"), names.index("venue")
        self._symbol, self._side = names.index("symbol"), names.index("side")
        self._usd = names.index("notional_usd")
        self._price = names.index("price") if "price" in names else None
        self._qty = names.index("quantity") if "quantity" in names else None

    def parse(self, line: str) -> Liquidation:
        f = split_csv(line.rstrip("\r\n"))
        if len(f) != self.width:
            raise MalformedMessage(f"expected {self.width} fields, found {len(f)}")
        fast = self._parse_clean(f)
        return fast if fast is not None else self._parse_checked(f)

    def _parse_clean(self, f: list[str]) -> Liquidation | None:
        """The common, clean row without per-field checks; None sends it to the careful path."""
        try:
            ts_ms, usd = int(f[self._ts]), float(f[self._usd])
            price = float(f[self._price]) if self._price is not None and f[self._price] else None
            qty = float(f[self._qty]) if self._qty is not None and f[self._qty] else None
        except ValueError:
            return None
        side, venue, symbol = f[self._side], f[self._venue], f[self._symbol]
        if (
            MIN_TS_MS <= ts_ms < MAX_TS_MS
            and 0 < usd < math.inf
            and (side == "long" or side == "short")
            and (price is None or 0 <= price < math.inf)
            and (qty is None or 0 <= qty < math.inf)
            and venue
            and symbol
            and venue[0] != " "
            and symbol[0] != " "
        ):
            return Liquidation(ts_ms, venue, symbol, cast(Side, side), usd, price, qty)
        return None

    def _parse_checked(self, f: list[str]) -> Liquidation:
        try:
            ts_ms = int(f[self._ts])
        except ValueError:
            ts_ms = to_ts_ms(f[self._ts], "ts_ms")
        return make_liquidation(
            ts_ms=ts_ms,
            venue=f[self._venue].strip(),
            symbol=f[self._symbol].strip(),
            side=f[self._side].strip().lower(),
            notional_usd=_float(f[self._usd], "notional_usd"),
            price=_optional(f, self._price, "price"),
            quantity=_optional(f, self._qty, "quantity"),
        )


def _float(text: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise MalformedMessage(f"{what} is not a number: {text.strip()[:40]!r}") from None
    if math.isnan(value):
        raise MalformedMessage(f"{what} is NaN")
    return value


def _optional(fields: list[str], index: int | None, what: str) -> float | None:
    if index is None or not fields[index].strip():
        return None
    return _float(fields[index], what)


def binance_csv_row(line: str) -> Liquidation:
    """A collector's Binance liquidation CSV row, parsed by the forceOrder parser itself."""
    f = split_csv(line.rstrip("\r\n"))
    if len(f) != len(BINANCE_CSV_COLUMNS):
        raise MalformedMessage(f"expected {len(BINANCE_CSV_COLUMNS)} fields, found {len(f)}")
    order = {key: value.strip() for key, value in zip(_BINANCE_KEYS, f, strict=True)}
    return parse_binance_force_order(order)[0]


def jsonl_line(
    line: str, contract_size: ContractSize | None, errors: list[str]
) -> list[Liquidation]:
    """One recorded websocket message; bad entries go to `errors`, control frames give []."""
    try:
        msg = json.loads(line)
    except json.JSONDecodeError as exc:
        raise MalformedMessage(f"not valid JSON ({exc.msg} at column {exc.colno})") from None
    if not isinstance(msg, dict):
        raise MalformedMessage("a websocket message must be a JSON object")
    return parse_raw_message(msg, contract_size, errors)
