"""The liquidation-anomaly detector, exactly per docs/detector.md.

Public surface: Detector (streaming, several rules), RuleStatus, Thresholds, anomaly_to_json.
The columnar batch path for files is bot.detector.batch.detect_batch (same output).
Names load on first use: the columnar reader imports bot.detector.columns without the rule
model (pydantic) that the streaming detector needs.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bot.detector._detector import SNAPSHOT_VERSION, Detector
    from bot.detector._json import anomaly_to_json, cents_json, iso_utc_ms
    from bot.detector._rule import RuleStatus, Thresholds, top_names

_HOME = {
    "SNAPSHOT_VERSION": "_detector",
    "Detector": "_detector",
    "anomaly_to_json": "_json",
    "cents_json": "_json",
    "iso_utc_ms": "_json",
    "RuleStatus": "_rule",
    "Thresholds": "_rule",
    "top_names": "_rule",
}

__all__ = [
    "SNAPSHOT_VERSION",
    "Detector",
    "RuleStatus",
    "Thresholds",
    "anomaly_to_json",
    "cents_json",
    "iso_utc_ms",
    "top_names",
]


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"bot.detector.{_HOME[name]}"), name)
