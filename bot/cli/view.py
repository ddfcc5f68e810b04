"""What `liqguard run` shows: the live status while it runs, the summary at the end."""

from __future__ import annotations

from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from bot.app.telegram_control import feed_text
from bot.engine.summary import Summary
from bot.notify.format import usd, utc


def status_view(status: dict[str, Any], done: int, total: int | None, title: str) -> RenderableType:
    """One compact table: progress, tape time, levels, ladder, positions, PnL."""
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold")
    table.add_column()
    pct = f" ({100 * done / total:.0f}%)" if total else ""
    table.add_row(title, f"{done:,}{'/' + format(total, ',') if total else ''} events{pct}")
    if status.get("ts_ms"):
        table.add_row("time", utc(int(status["ts_ms"])))
    for r in status.get("rules", []):
        table.add_row(
            f"rule {r['rule']}",
            f"level {r['level']}  window {usd(r['window_usd'])} / next {usd(r['threshold_usd'])}",
        )
    table.add_row("ladder", str(status.get("ladder", "")))
    for name, feed in sorted((status.get("feeds") or {}).items()):
        table.add_row(f"feed {name}", feed_text(feed))
    for p in status.get("positions", []):
        liq = f"  liq {p['liq']:,.0f}" if p.get("liq") else ""
        table.add_row("position", f"{p['side']} {p['size']:.4g} {p['symbol']}{liq}")
    if not status.get("positions") and "positions" in status:
        table.add_row("position", "flat")
    if "pnl_usd" in status:
        base = status.get("baseline_pnl_usd")
        vs = f"   untouched {usd(base)}" if base is not None else ""
        table.add_row("PnL", f"{usd(status['pnl_usd'])}{vs}")
    table.add_row(
        "actions", f"{status.get('actions', 0)} ({status.get('running_actions', 0)} running)"
    )
    return table


def summary_view(
    summary: Summary,
    pnl_usd: float | None,
    baseline_pnl_usd: float | None,
    equity_usd: float | None,
    journal_url: str,
    session: str,
    drawdown_usd: float | None = None,
    baseline_drawdown_usd: float | None = None,
) -> RenderableType:
    parts: list[RenderableType] = [Text("Run summary", style="bold underline")]
    anomalies = Table(title="Anomalies by level", title_justify="left")
    anomalies.add_column("level", justify="right")
    anomalies.add_column("count", justify="right")
    for level in sorted(summary.anomalies_by_level):
        anomalies.add_row(str(level), str(summary.anomalies_by_level[level]))
    anomalies.add_row("calm", str(summary.calms))
    parts.append(anomalies)
    actions = Table(title="Actions", title_justify="left")
    actions.add_column("strategy")
    actions.add_column("status")
    actions.add_column("count", justify="right")
    for (strategy, status), n in sorted(summary.actions_by_status.items()):
        actions.add_row(strategy, status, str(n))
    parts.append(actions)
    orders = Table.grid(padding=(0, 2))
    orders.add_column(style="bold")
    orders.add_column()
    orders.add_row("orders sent", str(summary.orders_sent))
    orders.add_row(
        "fills", f"{summary.fills} ({usd(summary.filled_usd)} traded, fees {usd(summary.fees_usd)})"
    )
    orders.add_row("orders refused by risk", str(summary.refused_orders))
    orders.add_row("failures", str(summary.failures))
    orders.add_row("paper liquidations", str(summary.paper_liquidations))
    if summary.deleveraged:  # dYdX: closed against bankrupt positions, not liquidations
        orders.add_row(
            "deleveraged (not liquidations)",
            ", ".join(
                f"{venue} {n} ({usd(summary.deleveraged_usd[venue])})"
                for venue, n in sorted(summary.deleveraged.items())
            ),
        )
    if summary.ladder:
        orders.add_row("ladder", ", ".join(summary.ladder))
    if summary.decisions_by:
        orders.add_row("decided by", ", ".join(f"{k} {v}" for k, v in summary.decisions_by.items()))
    parts.append(orders)
    if summary.has_options:
        parts.append(_options_view(summary))
    if pnl_usd is not None:
        pnl = Table(title="Portfolio PnL", title_justify="left")
        pnl.add_column("portfolio")
        pnl.add_column("PnL", justify="right")
        pnl.add_column("worst drawdown", justify="right")
        pnl.add_row("with the response", usd(pnl_usd), _maybe_usd(drawdown_usd))
        if baseline_pnl_usd is not None:
            pnl.add_row("untouched", usd(baseline_pnl_usd), _maybe_usd(baseline_drawdown_usd))
            diff = pnl_usd - baseline_pnl_usd
            style = "green" if diff >= 0 else "red"
            saved = (  # response minus untouched, like the PnL: negative = drawdown avoided
                Text(usd(drawdown_usd - baseline_drawdown_usd))
                if drawdown_usd is not None and baseline_drawdown_usd is not None
                else Text("")
            )
            pnl.add_row("difference", Text(usd(diff), style=style), saved)
        parts.append(pnl)
        if equity_usd is not None:
            parts.append(Text(f"equity now {usd(equity_usd)}"))
    parts.append(
        Text(f"journal: {journal_url} (session {session}); see `liqguard journal`", style="dim")
    )
    return Group(*parts)


def _options_view(s: Summary) -> RenderableType:
    """What the options cost and returned, priced by the paper model (not a market)."""
    table = Table(title="Options (paper model, not a market)", title_justify="left")
    for name in ("bought", "premium", "sold back", "settled", "held at model", "fees", "PnL"):
        table.add_column(name, justify="right")
    pnl = s.option_pnl_usd
    table.add_row(
        f"{s.option_bought:g}",
        usd(s.option_premium_usd),
        f"{s.option_sold:g} for {usd(s.option_sold_usd)}",
        usd(s.option_settled_usd),
        usd(s.option_held_usd),
        usd(s.option_fees_usd),
        Text(usd(pnl), style="green" if pnl >= 0 else "red"),
    )
    return table


def _maybe_usd(value: float | None) -> str:
    return usd(value) if value is not None else ""
