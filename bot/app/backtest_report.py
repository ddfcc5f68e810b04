"""`liqguard backtest`'s outputs: one self-contained HTML report (PNG charts embedded as data
URIs, no network) and the same figures as CSV.

- ranked(results, objective): settings ordered by the objective summed over episodes
- figures_row(run): the CSV/table columns of one episode x setting
- results_csv(results), report_html(results, objective)
"""

from __future__ import annotations

import base64
import csv
import html
import io
import json
import math
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.dates import AutoDateLocator, ConciseDateFormatter, date2num
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from bot.app.backtest import RunFigures
from bot.detector._rule import Thresholds


def _dt(ts_ms: int) -> float:
    return float(date2num(datetime.fromtimestamp(ts_ms / 1000, tz=UTC)))


def _usd_axis(value: float, _pos: int = 0) -> str:
    for scale, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= scale:
            return f"${value / scale:g}{suffix}"
    return f"${value:g}"


def setting_text(setting: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in setting.items()) or "(the config as given)"


def ranked(results: Sequence[RunFigures], objective: str) -> list[tuple[str, float]]:
    """(setting, objective summed over its episodes), best first."""
    totals: dict[str, float] = {}
    for r in results:
        key = json.dumps(r.setting, sort_keys=True)
        totals[key] = totals.get(key, 0.0) + r.objective(objective)
    return sorted(totals.items(), key=lambda kv: -kv[1] if not math.isnan(kv[1]) else math.inf)


def best_runs(results: Sequence[RunFigures], objective: str) -> list[RunFigures]:
    """The runs of the best setting, one per episode."""
    order = ranked(results, objective)
    best = order[0][0] if order else None
    return [r for r in results if json.dumps(r.setting, sort_keys=True) == best]


def chart_name(r: RunFigures) -> str:
    """A file name for an episode's chart: its name, lowercase, dashes."""
    slug = "".join(c if c.isalnum() else "-" for c in r.episode.lower()).strip("-")
    return f"{'-'.join(p for p in slug.split('-') if p)}.png"


def figures_row(r: RunFigures) -> dict[str, Any]:
    lead = r.lead_time_s
    return {
        "episode": r.episode,
        "setting": setting_text(r.setting),
        "pnl_usd": round(r.pnl_usd, 2),
        "untouched_pnl_usd": round(r.untouched_pnl_usd, 2),
        "pnl_vs_untouched_usd": round(r.pnl_vs_untouched_usd, 2),
        "worst_drawdown_usd": round(r.drawdown_usd, 2),
        "untouched_worst_drawdown_usd": round(r.untouched_drawdown_usd, 2),
        "drawdown_saved_usd": round(r.drawdown_saved_usd, 2),
        "drawdown_saved_per_pnl_given_up": r.saved_per_pnl,
        "fees_usd": round(r.fees_usd, 2),
        "slippage_usd": round(r.slippage_usd, 2),
        "option_premium_usd": round(r.option_premium_usd, 2),
        "option_returned_usd": round(r.option_returned_usd, 2),
        "anomalies": r.anomalies,
        "anomalies_by_level": " ".join(f"L{k}:{v}" for k, v in r.anomalies_by_level.items()),
        "calms": r.calms,
        "false_alarms": r.false_alarms,
        "actions": "; ".join(f"{k}: {v}" for k, v in r.actions.items()),
        "decided_by": " ".join(f"{k}:{v}" for k, v in r.decisions_by.items()),
        "orders_sent": r.orders_sent,
        "fills": r.fills,
        "paper_liquidations": r.paper_liquidations,
        "liquidations_avoided": r.liquidations_avoided,
        "lead_time_s": "" if lead is None else round(lead),
        "ladder": ", ".join(r.ladder),
    }


def results_csv(results: Sequence[RunFigures]) -> str:
    buf = io.StringIO()
    rows = [figures_row(r) for r in results]
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]) if rows else ["episode"])
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def episode_chart(r: RunFigures) -> bytes:
    """Price with every fill marked; window sum against the escalation thresholds; equity."""
    fig = Figure(figsize=(11, 8.2), dpi=90)
    FigureCanvasAgg(fig)
    ax1, ax2, ax3 = fig.subplots(3, 1, sharex=True, gridspec_kw={"height_ratios": [3, 2, 2]})
    if r.prices:
        ax1.plot(
            [_dt(t) for t, _ in r.prices], [p for _, p in r.prices], color="#2c3e50", lw=1,
            label="price",
        )  # fmt: skip
    colors = {"buy": "#27ae60", "sell": "#c0392b"}
    for side in ("buy", "sell"):
        pts = [m for m in r.marks if m[1] == side]
        if pts:
            ax1.scatter(
                [_dt(m[0]) for m in pts],
                [m[2] for m in pts],
                marker="^" if side == "buy" else "v",
                s=60,
                color=colors[side],
                zorder=5,
                label=f"{side} fills",
            )
    for ts, _side, price, strategy in r.marks:
        ax1.annotate(
            strategy, (_dt(ts), price), xytext=(4, 6), textcoords="offset points", fontsize=7
        )
    for ts, _level, _w in r.anomaly_points:
        ax1.axvline(_dt(ts), color="#e67e22", alpha=0.35, lw=0.8)
    ax1.set_ylabel("price")
    ax1.set_title(f"{r.episode}: {setting_text(r.setting)}", fontsize=10)
    ax1.legend(fontsize=7, loc="best")
    if r.window:
        ax2.plot(
            [_dt(t) for t, _ in r.window],
            [max(w, 1.0) for _, w in r.window],
            ".",
            markersize=2,
            color="#1f4e9c",
            label="window sum (first rule)",
        )
        th = Thresholds(r.base_threshold_usd, r.factor)
        top = max(w for _, w in r.window)
        k = 1
        while k == 1 or th.of_level(k) / 100 <= top:
            ax2.axhline(th.of_level(k) / 100, color="#c0392b", ls="--", lw=0.8, alpha=0.6)
            k += 1
        if r.anomaly_points:
            ax2.scatter(
                [_dt(t) for t, _, _ in r.anomaly_points],
                [w for _, _, w in r.anomaly_points],
                marker="v",
                color="#e67e22",
                s=40,
                zorder=5,
                label="anomalies",
            )
        ax2.set_yscale("log")
        ax2.yaxis.set_major_formatter(FuncFormatter(_usd_axis))
        ax2.legend(fontsize=7, loc="upper left")
    if r.equity:
        xs = [_dt(t) for t, _, _ in r.equity]
        ax3.plot(xs, [e for _, e, _ in r.equity], color="#27ae60", lw=1.2, label="with response")
        ax3.plot(xs, [b for _, _, b in r.equity], color="#7f8c8d", lw=1, ls="--", label="untouched")
        ax3.yaxis.set_major_formatter(FuncFormatter(_usd_axis))
        ax3.legend(fontsize=7, loc="best")
    ax3.set_ylabel("equity")
    locator = AutoDateLocator()
    ax3.xaxis.set_major_locator(locator)
    ax3.xaxis.set_major_formatter(ConciseDateFormatter(locator, tz=UTC))
    for ax in (ax1, ax2, ax3):
        ax.grid(alpha=0.25)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


_STYLE = """body{font-family:sans-serif;margin:2em;color:#222}table{border-collapse:collapse;
font-size:13px}td,th{border:1px solid #ccc;padding:3px 6px;text-align:right}th{background:#eee}
td.l,th.l{text-align:left}tr.best{background:#e8f6e8;font-weight:bold}img{max-width:100%}
.note{color:#666;font-size:12px}"""


def _cell(v: Any) -> str:
    if isinstance(v, float):
        if math.isinf(v):
            return "no PnL given up"
        return f"{v:,.2f}"
    return html.escape(str(v))


def report_html(results: Sequence[RunFigures], objective: str, title: str = "") -> str:
    order = ranked(results, objective)
    best = order[0][0] if order else None
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>liqguard backtest</title><style>{_STYLE}</style></head><body>",
        f"<h1>liqguard backtest{(': ' + html.escape(title)) if title else ''}</h1>",
        f"<p>{len(results)} runs: {len({r.episode for r in results})} episode(s) x "
        f"{len(order)} setting(s). Objective: <b>{objective}</b>, summed over the episodes; "
        "the best setting is highlighted.</p>",
        "<h2>Settings, best first</h2><table><tr><th class='l'>setting</th>"
        f"<th>{objective}</th></tr>",
    ]
    for key, total in order:
        cls = " class='best'" if key == best else ""
        parts.append(
            f"<tr{cls}><td class='l'>{html.escape(setting_text(json.loads(key)))}</td>"
            f"<td>{_cell(total)}</td></tr>"
        )
    parts.append("</table><h2>Every episode x setting</h2><table><tr>")
    rows = [figures_row(r) for r in results]
    cols = list(rows[0]) if rows else []
    parts += [f"<th class='l'>{html.escape(c)}</th>" for c in cols] + ["</tr>"]
    ranking = {k: i for i, (k, _) in enumerate(order)}
    for r, row in sorted(
        zip(results, rows, strict=True),
        key=lambda rr: (ranking[json.dumps(rr[0].setting, sort_keys=True)], rr[0].episode),
    ):
        cls = " class='best'" if json.dumps(r.setting, sort_keys=True) == best else ""
        cells = "".join(
            f"<td{' class=l' if isinstance(v, str) else ''}>{_cell(v)}</td>" for v in row.values()
        )
        parts.append(f"<tr{cls}>{cells}</tr>")
    parts.append("</table><h2>Episodes (best setting)</h2>")
    for r in best_runs(results, objective):
        png = base64.b64encode(episode_chart(r)).decode()
        parts.append(
            f"<h3>{html.escape(r.episode)}</h3><img alt='{html.escape(r.episode)}' "
            f"src='data:image/png;base64,{png}'>"
        )
    parts.append(
        "<p class='note'>False alarm: an anomaly after which the price did not move against the "
        "threatened side (longs liquidated: down) by the move within the horizon. Binance sums "
        "are a floor (one liquidation per symbol per second).</p></body></html>"
    )
    return "\n".join(parts)
