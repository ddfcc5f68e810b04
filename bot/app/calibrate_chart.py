"""`liqguard calibrate --chart`: per group, the window sum over time (log scale) with the
candidate thresholds, the recommended ladder and the anomalies it fires, gaps shaded; and the
histogram of hourly sums. PNG bytes from matplotlib's Agg canvas (no display, no pyplot)."""

from __future__ import annotations

import io
from datetime import UTC, datetime

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.dates import AutoDateLocator, ConciseDateFormatter, date2num
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from bot.app.calibrate import CalibrateResult, GroupReport
from bot.detector._rule import Thresholds
from bot.detector.calibrate import HOUR_MS
from bot.events import Anomaly

MAX_GROUPS = 6  # rows in one picture; the rest are in the text output
MAX_POINTS = 20_000  # beyond this the series is drawn as hourly maxima


def _dt(ts_ms: int | float) -> float:
    return float(date2num(datetime.fromtimestamp(ts_ms / 1000, tz=UTC)))


def _usd_axis(value: float, _pos: int = 0) -> str:
    for scale, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= scale:
            return f"${value / scale:g}{suffix}"
    return f"${value:g}"


def _draw_series(ax: Axes, g: GroupReport) -> None:
    win = g.window
    assert win is not None
    if len(win.ts) <= MAX_POINTS:
        xs = [_dt(t) for t in win.clock.tolist()]
        ys = (win.window.astype(np.float64) / 100).tolist()
        label = f"window sum ({g.rule.window_s / 3600:g} h) at each event"
    else:
        hours = np.flatnonzero(g.hours.maxima > 0)
        xs = [_dt((g.hours.start_hour + h) * HOUR_MS) for h in hours.tolist()]
        ys = g.hours.maxima[hours].tolist()
        label = f"hourly maxima of the window sum ({g.rule.window_s / 3600:g} h)"
    ax.plot(xs, ys, ".", markersize=2, color="#1f4e9c", label=label)
    for a, b in g.gaps:
        ax.axvspan(_dt(a), _dt(b), color="#bdc3c7", alpha=0.5, linewidth=0)
    if g.gaps:
        ax.axvspan(0, 0, color="#bdc3c7", alpha=0.5, label="gap (source silent)")
    peak = win.peak[0] / 100
    for c in g.candidates[:: max(1, len(g.candidates) // 8)]:
        ax.axhline(c.threshold_usd, color="#7f8c8d", alpha=0.25, linewidth=0.7)
    rec = g.recommended
    if rec is not None:
        th = Thresholds(rec.threshold_usd, g.rule.factor)
        k = 1
        while th.of_level(k) / 100 <= max(peak, rec.threshold_usd) * 1.01 or k == 1:
            ax.axhline(
                th.of_level(k) / 100,
                color="#c0392b",
                linestyle="--",
                linewidth=1,
                alpha=0.9 if k == 1 else 0.5,
            )
            ax.annotate(
                f"L{k} {_usd_axis(th.of_level(k) / 100)}",
                (xs[0], th.of_level(k) / 100),
                xytext=(2, 2),
                textcoords="offset points",
                fontsize=7,
                color="#c0392b",
            )
            k += 1
        fired = [e for e in g.preview if isinstance(e, Anomaly)]
        if fired:
            ax.scatter(
                [_dt(a.ts_ms) for a in fired],
                [a.window_usd for a in fired],
                marker="v",
                s=40,
                color="#e67e22",
                zorder=5,
                label=f"{len(fired)} anomalies at {_usd_axis(rec.threshold_usd)}",
            )
    ax.set_yscale("log")
    ax.set_ylim(max(min(ys) if ys else 1.0, peak / 1e5, 1.0), peak * 2.5)
    ax.yaxis.set_major_formatter(FuncFormatter(_usd_axis))
    locator = AutoDateLocator()
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(ConciseDateFormatter(locator, tz=UTC))
    ax.set_title(f"rule {g.rule.name}: rolling window sum (UTC)", fontsize=10)
    ax.grid(alpha=0.25)
    ax.legend(loc="upper left", fontsize=7, framealpha=0.9)


def _draw_histogram(ax: Axes, g: GroupReport) -> None:
    sums = g.hours.sums[g.hours.observed]
    positive = sums[sums > 0]
    quiet = len(sums) - len(positive)
    if len(positive):
        lo, hi = max(float(positive.min()), 1.0), float(positive.max())
        bins: list[float] | int = np.geomspace(lo, hi * 1.01, 40).tolist() if hi > lo else 10
        ax.hist(positive, bins=bins, color="#1f4e9c", alpha=0.8)
        ax.set_xscale("log")
    if g.recommended is not None:
        ax.axvline(
            g.recommended.threshold_usd,
            color="#c0392b",
            linestyle="--",
            linewidth=1,
            label=f"recommended {_usd_axis(g.recommended.threshold_usd)}",
        )
        ax.legend(fontsize=7)
    ax.set_yscale("log")
    ax.xaxis.set_major_formatter(FuncFormatter(_usd_axis))
    ax.set_title(f"hourly sums ({len(positive):,} hours; {quiet:,} with none)", fontsize=10)
    ax.grid(alpha=0.25)


def render_calibration(result: CalibrateResult) -> bytes:
    """The PNG of up to MAX_GROUPS groups, one row each."""
    groups = [g for g in result.groups if g.window is not None][:MAX_GROUPS]
    rows = max(1, len(groups))
    fig = Figure(figsize=(13, 3.6 * rows), dpi=100)
    FigureCanvasAgg(fig)
    grid = fig.add_gridspec(rows, 3)
    for i, g in enumerate(groups):
        _draw_series(fig.add_subplot(grid[i, :2]), g)
        _draw_histogram(fig.add_subplot(grid[i, 2]), g)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()
