"""The alert chart: a PNG of the rolling window sum against the escalation thresholds.

Pure: data in, PNG bytes out (matplotlib's Agg canvas on a bare Figure: no display, no
pyplot global state, safe in a worker thread). Anomalies are marked with their level; the
price, where known, is drawn on a second axis. Fonts: matplotlib's bundled DejaVu Sans.

- ChartInput: what to draw (liquidations or ready (ts_ms, window_usd) points)
- window_series(liquidations, window_s) -> [(ts_ms, window_usd)]
- render_chart(data) -> bytes (PNG)
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.dates import DateFormatter, date2num
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from bot.events import Anomaly, Liquidation, PriceTick

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@dataclass(frozen=True, slots=True)
class ChartInput:
    now_ms: int
    window_s: float
    base_threshold_usd: float
    factor: float = 2.0
    points: Sequence[Liquidation] | Sequence[tuple[int, float]] = ()
    anomalies: Sequence[Anomaly] = ()
    prices: Sequence[PriceTick] | Sequence[tuple[int, float]] = ()
    hours: float = 6.0
    title: str = "Liquidations: rolling window sum"
    price_label: str = "price"
    width_px: int = 1000
    height_px: int = 550


def window_series(liquidations: Sequence[Liquidation], window_s: float) -> list[tuple[int, float]]:
    """The window sum (events in (t - W, t]) right after each entry and each exit."""
    events = sorted((x.ts_ms, x.notional_usd) for x in liquidations)
    window_ms = round(window_s * 1000)
    changes = [(ts, usd) for ts, usd in events] + [(ts + window_ms, -usd) for ts, usd in events]
    changes.sort(key=lambda c: (c[0], c[1] > 0))  # exits before entries at the same ms
    out: list[tuple[int, float]] = []
    total = 0.0
    for ts, delta in changes:
        total = max(0.0, total + delta)
        if out and out[-1][0] == ts:
            out[-1] = (ts, total)
        else:
            out.append((ts, total))
    return out


def _dt(ts_ms: int) -> float:
    return float(date2num(datetime.fromtimestamp(ts_ms / 1000, tz=UTC)))


def _usd_axis(value: float, _pos: int) -> str:
    for scale, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= scale:
            return f"${value / scale:g}{suffix}"
    return f"${value:g}"


def _series(data: ChartInput) -> list[tuple[int, float]]:
    pts = list(data.points)
    if pts and isinstance(pts[0], Liquidation):
        return window_series([p for p in pts if isinstance(p, Liquidation)], data.window_s)
    return sorted((int(p[0]), float(p[1])) for p in pts if isinstance(p, tuple))


def render_chart(data: ChartInput) -> bytes:
    """Draw the chart and return PNG bytes."""
    start_ms = data.now_ms - round(data.hours * 3600 * 1000)
    series = _series(data)
    before = [p for p in series if p[0] < start_ms]
    shown = ([(start_ms, before[-1][1])] if before else []) + [
        p for p in series if start_ms <= p[0] <= data.now_ms
    ]
    shown.append((data.now_ms, shown[-1][1] if shown else 0.0))
    anomalies = [a for a in data.anomalies if start_ms <= a.ts_ms <= data.now_ms]

    fig = Figure(figsize=(data.width_px / 100, data.height_px / 100), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    ax.step(
        [_dt(t) for t, _ in shown],
        [v for _, v in shown],
        where="post",
        color="#1f4e9c",
        linewidth=1.6,
        label=f"window sum ({data.window_s / 3600:g} h)",
    )

    top = max([v for _, v in shown] + [a.window_usd for a in anomalies] + [0.0])
    levels = max([a.level for a in anomalies] + [0]) + 1
    for k in range(levels + 1):
        threshold = data.base_threshold_usd * data.factor**k
        if k > 1 and threshold > top * 1.5:
            break
        ax.axhline(
            threshold, color="#c0392b", alpha=0.35 + 0.5 / (k + 1), linestyle="--", linewidth=1
        )
        ax.annotate(
            f"L{k + 1} {_usd_axis(threshold, 0)}",
            (_dt(start_ms), threshold),
            xytext=(4, 3),
            textcoords="offset points",
            fontsize=8,
            color="#c0392b",
        )
    if anomalies:
        ax.scatter(
            [_dt(a.ts_ms) for a in anomalies],
            [a.window_usd for a in anomalies],
            marker="v",
            s=70,
            color="#e67e22",
            zorder=5,
            label="anomaly",
        )
        for a in anomalies:
            ax.annotate(
                f"L{a.level}",
                (_dt(a.ts_ms), a.window_usd),
                xytext=(0, 8),
                textcoords="offset points",
                ha="center",
                fontsize=8,
            )

    prices = sorted(
        (p.ts_ms, p.price) if isinstance(p, PriceTick) else (int(p[0]), float(p[1]))
        for p in data.prices
    )
    prices = [p for p in prices if start_ms <= p[0] <= data.now_ms]
    handles, labels = ax.get_legend_handles_labels()
    if prices:
        ax2 = ax.twinx()
        ax2.plot(
            [_dt(t) for t, _ in prices],
            [v for _, v in prices],
            color="#95a5a6",
            linewidth=1,
            label=data.price_label,
        )
        ax2.set_ylabel(data.price_label)
        ax.set_zorder(ax2.get_zorder() + 1)  # the window sum above the price line
        ax.patch.set_visible(False)
        h2, l2 = ax2.get_legend_handles_labels()
        handles, labels = handles + h2, labels + l2

    ax.set_xlim(_dt(start_ms), _dt(data.now_ms))
    ax.set_ylim(0, max(top, data.base_threshold_usd) * 1.15)
    ax.yaxis.set_major_formatter(FuncFormatter(_usd_axis))
    ax.xaxis.set_major_formatter(DateFormatter("%H:%M", tz=UTC))
    ax.set_xlabel(f"UTC, until {datetime.fromtimestamp(data.now_ms / 1000, tz=UTC):%Y-%m-%d %H:%M}")
    ax.set_ylabel("USD liquidated in window")
    ax.set_title(data.title)
    ax.grid(alpha=0.25)
    ax.legend(handles, labels, loc="upper right", fontsize=8, framealpha=0.9)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()
