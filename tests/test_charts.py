"""The alert chart: the window series it draws, and a real PNG out of matplotlib's Agg canvas."""

from __future__ import annotations

import csv
import struct
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from bot.events import Anomaly, Liquidation, PriceTick
from bot.notify.charts import PNG_SIGNATURE, ChartInput, render_chart, window_series

DATA = Path(__file__).resolve().parents[1] / "bot" / "data"


def brute_window_sum(liqs: list[Liquidation], t_ms: int, window_ms: int) -> float:
    return sum(x.notional_usd for x in liqs if t_ms - window_ms < x.ts_ms <= t_ms)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 20_000), st.floats(1, 1e6, allow_nan=False)),
        max_size=40,
    ),
    st.integers(1, 5_000),
)
def test_window_series_matches_brute_force(events: list[tuple[int, float]], window_ms: int) -> None:
    liqs = [Liquidation(ts, "binance", "BTCUSDT", "long", usd) for ts, usd in events]
    series = window_series(liqs, window_ms / 1000)
    for ts, value in series:
        assert abs(value - brute_window_sum(liqs, ts, window_ms)) <= 1e-6 * max(1.0, value)
    assert [t for t, _ in series] == sorted({t for t, _ in series})


def png_size(png: bytes) -> tuple[int, int]:
    width, height = struct.unpack(">II", png[16:24])  # IHDR follows the signature
    return width, height


def test_chart_of_the_bundled_crash_is_a_png() -> None:
    with (DATA / "binance-btcusdt_2024-12-04_06.csv").open() as f:
        rows = list(csv.DictReader(f))
    liqs = [
        Liquidation(int(r["ts_ms"]), r["venue"], r["symbol"], r["side"], float(r["notional_usd"]))  # type: ignore[arg-type]
        for r in rows
    ]
    with (DATA / "BTCUSDT-5m_2024-12-04_06.csv").open() as f:
        prices = [PriceTick(int(r[0]), "BTCUSDT", float(r[4])) for r in csv.reader(f)]
    series = window_series(liqs, 3600)
    peak_ts, peak = max(series, key=lambda p: p[1])
    anomaly = Anomaly("all", peak_ts, 3, round(peak * 100), 400_000_000, 100_000_000, 0, 0, 9)
    data = ChartInput(
        now_ms=max(x.ts_ms for x in liqs),
        window_s=3600,
        base_threshold_usd=1e6,
        points=liqs,
        anomalies=[anomaly],
        prices=prices,
        hours=24,
        width_px=900,
        height_px=500,
    )
    png = render_chart(data)
    assert png.startswith(PNG_SIGNATURE)
    assert png_size(png) == (900, 500)
    assert len(png) > 20_000  # a drawn chart, not an empty canvas


def test_chart_without_data_still_renders() -> None:
    png = render_chart(ChartInput(now_ms=1_733_380_000_000, window_s=3600, base_threshold_usd=1e6))
    assert png.startswith(PNG_SIGNATURE) and png_size(png) == (1000, 550)
