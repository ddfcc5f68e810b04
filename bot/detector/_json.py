"""The machine-readable form of detector events (detector.md, `liqguard detect --json`)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from bot.events import Anomaly, Calm

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EXACT_FLOAT_CENTS = 10**15  # below this a float of cents/100 prints the exact cents


def iso_utc_ms(ts_ms: int) -> str:
    """ISO-8601 UTC with milliseconds and Z: 2024-12-05T20:44:01.123Z."""
    dt = _EPOCH + timedelta(milliseconds=ts_ms)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def cents_json(cents: int) -> float | int:
    """USD as a JSON number, cents exact (whole dollars as ints beyond float precision)."""
    if abs(cents) < _EXACT_FLOAT_CENTS or cents % 100:
        return cents / 100
    return cents // 100


def anomaly_to_json(event: Anomaly | Calm) -> dict[str, Any]:
    """The exact JSON object of detector.md for an Anomaly or a Calm."""
    if isinstance(event, Calm):
        return {
            "type": "calm",
            "rule": event.rule,
            "ts_ms": event.ts_ms,
            "time": iso_utc_ms(event.ts_ms),
        }
    return {
        "type": "anomaly",
        "rule": event.rule,
        "ts_ms": event.ts_ms,
        "time": iso_utc_ms(event.ts_ms),
        "level": event.level,
        "window_usd": cents_json(event.window_cents),
        "threshold_usd": cents_json(event.threshold_cents),
        "long_usd": cents_json(event.long_cents),
        "short_usd": cents_json(event.short_cents),
        "events": event.events,
        "top_symbols": [{"symbol": s.name, "usd": cents_json(s.cents)} for s in event.top_symbols],
    }
