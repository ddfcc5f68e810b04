"""Binance kline CSVs -> PriceTicks: a price path through each candle.

`path="ohlc"` (default) walks each candle open -> first extreme -> second extreme -> close at
its open time, one third and two thirds in, and its close time; the extreme nearer the open
comes first (high first in a falling candle, low first in a rising one), the usual backtest
convention. Stops and paper liquidations then see a wick that a close-only path hides (the
2024-12-05 flash crash dipped to 90,500 inside a candle that closed at 95,480).
`path="close"` gives one tick per candle, its close at its close time.
Accepts Binance Vision's 12-column layout (open times in ms, or µs as in files from 2025),
the bundled 6-column excerpt (`open_time_ms,open,high,low,close,volume`), header optional,
plain or gzip. Without a close-time column the close time is open time + interval - 1 ms,
the interval read from the file name (`-5m`) or else from the first two open times.

`read_vol` reads a recorded volatility index (Deribit DVOL as its API gives candles:
`timestamp_ms,open,high,low,close`, or two columns `timestamp_ms,vol`), in percent as DVOL is
published (55.3 = 55.3%), header optional, plain or gzip. A candle counts from its timestamp at
its open value: what was known then, so a replay never prices with a vol from its future.
"""

from __future__ import annotations

import gzip
import math
import re
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

from bot.events import PriceTick
from bot.sources.files import TapeError, open_binary

__all__ = ["read_prices", "read_vol"]

_INTERVAL = re.compile(r"-(\d+)([smhdw])[-_.]")
_UNIT_MS = {"s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}
_US_ABOVE = 10**14  # epoch ms stay below this until year 5138; µs are above it since 1973


def _to_ms(value: int) -> int:
    return value // 1000 if value >= _US_ABOVE else value


def _interval_ms(path: Path) -> int | None:
    match = _INTERVAL.search(path.name + ".")
    return int(match.group(1)) * _UNIT_MS[match.group(2)] if match else None


Candle = tuple[int, int | None, float, float, float, float]  # open/close ms, o, h, l, c


def _csv_rows(p: Path) -> Iterator[tuple[int, list[str]]]:
    """(line number, fields) of each non-blank line of a CSV file, plain or gzip."""
    reader, raw = open_binary(p)
    number = 0
    try:
        for number, blob in enumerate(reader, start=1):
            text = blob.decode("utf-8", errors="replace").strip()
            if text:
                yield number, text.split(",")
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise TapeError(f"{p} is a damaged gzip file (after line {number}): {exc}.") from None
    finally:
        reader.close()
        raw.close()


def _candle_problem(open_: float, high: float, low: float, close: float) -> str | None:
    """Why a candle cannot be a price path (NaN, not positive, high/low not enclosing), or None."""
    values = {"open": open_, "high": high, "low": low, "close": close}
    for name, value in values.items():
        if not math.isfinite(value) or value <= 0:
            return f"{name} is {value!r}, not a positive price"
    if not low <= min(open_, close) <= max(open_, close) <= high:
        return f"low {low!r} / high {high!r} do not enclose open {open_!r} and close {close!r}"
    return None


def read_prices(
    path: str | Path,
    symbol: str | None = None,
    venue: str | None = "binance",
    walk: Literal["ohlc", "close"] = "ohlc",
) -> list[PriceTick]:
    """PriceTicks of a kline CSV; `symbol` defaults to the file name's prefix (BTCUSDT-5m...)."""
    p = Path(path)
    name = symbol or p.name.split("-")[0].split("_")[0].upper()
    rows: list[Candle] = []
    for number, fields in _csv_rows(p):
        try:
            open_ms = _to_ms(int(fields[0]))
            open_, high, low, close = (float(x) for x in fields[1:5])
            close_ms = _to_ms(int(fields[6])) if len(fields) >= 7 else None
        except (ValueError, IndexError):
            if number == 1:
                continue  # a header
            raise TapeError(
                f"{p} line {number} is not a kline row (open_time,open,high,low,close,...)."
            ) from None
        if problem := _candle_problem(open_, high, low, close):
            raise TapeError(f"{p} line {number}: {problem}; fix or drop that candle.")
        rows.append((open_ms, close_ms, open_, high, low, close))
    interval = _interval_ms(p)
    if interval is None and len(rows) >= 2:
        interval = rows[1][0] - rows[0][0]
    ticks = []
    for open_ms, close_ms, open_, high, low, close in rows:
        if close_ms is None:
            close_ms = open_ms + (interval or 1) - 1
        if walk == "ohlc":
            third_ms = max(1, (close_ms - open_ms) // 3)
            first, second = (high, low) if close < open_ else (low, high)
            for ts_ms, price in (
                (open_ms, open_),
                (open_ms + third_ms, first),
                (open_ms + 2 * third_ms, second),
            ):
                ticks.append(PriceTick(ts_ms=ts_ms, symbol=name, price=price, venue=venue))
        ticks.append(PriceTick(ts_ms=close_ms, symbol=name, price=close, venue=venue))
    return ticks


_VOL_MIN_PCT, _VOL_MAX_PCT = 1.0, 1000.0  # outside: a fraction or a typo, not a DVOL level


def read_vol(path: str | Path) -> list[tuple[int, float]]:
    """(timestamp_ms, annualised vol as a fraction) of a DVOL-style CSV, sorted by time."""
    p = Path(path)
    out: list[tuple[int, float]] = []
    for number, fields in _csv_rows(p):
        try:
            ts_ms = _to_ms(int(float(fields[0])))
            pct = float(fields[1])
        except (ValueError, IndexError):
            if number == 1:
                continue  # a header
            raise TapeError(
                f"{p} line {number} is not a vol row (timestamp_ms,open,high,low,close "
                "or timestamp_ms,vol, in percent)."
            ) from None
        if not _VOL_MIN_PCT <= pct <= _VOL_MAX_PCT:
            raise TapeError(
                f"{p} line {number}: vol {pct:g} is not a percentage between "
                f"{_VOL_MIN_PCT:g} and {_VOL_MAX_PCT:g}; give DVOL's percent (55.3 = 55.3%)."
            )
        out.append((ts_ms, pct / 100.0))
    if not out:
        raise TapeError(f"{p} holds no vol row (timestamp_ms,open,high,low,close in percent).")
    out.sort()
    return out
