"""The liquidation-anomaly detector, exactly per docs/detector.md.

Public surface: Detector (streaming, several rules), RuleStatus, Thresholds, anomaly_to_json.
The columnar batch path for files is bot.detector.batch.detect_batch (same output).
"""

from bot.detector._detector import SNAPSHOT_VERSION, Detector
from bot.detector._json import anomaly_to_json, cents_json, iso_utc_ms
from bot.detector._rule import RuleStatus, Thresholds, top_names

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
