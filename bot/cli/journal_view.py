"""`liqguard journal`: one readable line per journaled step; reading_journal opens one to read."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from bot.events import JournalKind as K
from bot.journal import JournalError, SqlJournal, default_journal_url
from bot.notify.format import usd, utc


@contextmanager
def reading_journal(
    journal: str | None, configured: str | None
) -> Iterator[tuple[SqlJournal, str]]:
    """The journal of --journal (else the configured one) opened to read, and its URL."""
    url = default_journal_url(journal or configured)
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).is_file():
        raise JournalError(f"no journal at {url.removeprefix('sqlite:///')}; give --journal")
    j = SqlJournal(url, readonly=True)  # beside a running bot: no lock, no write
    try:
        yield j, url
    finally:
        j.close()


def describe(kind: str, p: dict[str, Any]) -> str:
    """A short sentence for one journal entry."""
    aid = p.get("action_id", "")
    match kind:
        case K.ANOMALY:
            return (
                f"rule {p['rule']} L{p['level']}: window {usd(p['window_cents'] / 100)} >= "
                f"{usd(p['threshold_cents'] / 100)} (longs {usd(p['long_cents'] / 100)}, "
                f"shorts {usd(p['short_cents'] / 100)})"
            )
        case K.CALM:
            return f"rule {p['rule']} back to level 0 (was {p.get('previous_level', '?')})"
        case K.ACTION_PLANNED:
            return f"{aid} {p['strategy']} ({p['approval']}): {p.get('summary', '')}"
        case K.RISK_VERDICT:
            denied = p.get("denied", [])
            why = f"; denied {len(denied)}: {denied[0][1]}" if denied else ""
            return f"{aid} {len(p.get('allowed', []))} allowed in {p.get('state')}{why}"
        case K.APPROVAL_REQUEST:
            return f"{aid} asked {p.get('approver')}; default {p.get('on_timeout')}"
        case K.DECISION:
            verb = "approved" if p.get("approved") else "rejected"
            return f"{aid} {verb} by {p.get('by')} ({p.get('state')}) {p.get('reason', '')}"
        case K.ORDER_SENT:
            return (
                f"{p.get('client_id')} {str(p['side']).upper()} {p['amount']:.6g} {p['symbol']} "
                f"{p['kind']}" + (" reduce-only" if p.get("reduce_only") else "")
            )
        case K.ORDER_RESULT:
            return f"{p['client_id']} {p['status']} {p.get('error', '')}"
        case K.FILL:
            return (
                f"{p['client_id']} {str(p['side']).upper()} {p['amount']:.6g} {p['symbol']} @ "
                f"{p['price']:,.2f} fee {usd(p['fee_usd'])}"
            )
        case K.ACTION_END:
            return f"{aid} {p.get('strategy')} {p.get('status')} {p.get('detail', '')}"
        case K.LADDER:
            return f"{p['previous']} -> {p['state']} by {p.get('by')}: {p.get('reason', '')}"
        case K.OPTION_MARK:
            return (
                f"{p['size']:.6g} {p['symbol']} marked {p['mark_coin']:.4f} {_coin(p)} = "
                f"{usd(p['mark_usd'])} each at {p['underlying']:,.2f}, iv {p['iv']:.0%} "
                f"(paid {usd(p['entry_usd'])}; unrealized {usd(p['unrealized_usd'])})"
            )
        case K.OPTION_SETTLEMENT:
            return (
                f"{p['size']:.6g} {p['symbol']} expired at {p['underlying']:,.2f}: "
                f"{p['intrinsic_coin']:.4f} {_coin(p)} each, {usd(p['paid_usd'])} paid "
                f"(PnL {usd(p['realized_usd'])})"
            )
        case K.PAPER_LIQUIDATION:
            return f"{p['side']} {p['size']:.6g} {p['symbol']} liquidated at {p['price']:,.2f}"
        case K.CONFIG_OVERRIDE:
            return (
                f"{p.get('text')} by {p.get('by')}, confirmed by {p.get('approved_by')}: "
                + "; ".join(p.get("diff", []))
            )
        case K.CONFIG_RELOAD:
            if not p.get("ok"):
                return f"reload refused: {str(p.get('error', '')).splitlines()[0][:120]}"
            return f"reloaded {p.get('path')}: " + ("; ".join(p.get("diff", [])) or "no change")
        case K.STRATEGY_FAILED | K.FAILURE:
            return f"{aid} {p.get('error', '')}"
        case _:
            return ", ".join(f"{k}={v}" for k, v in p.items() if k != "session")[:160]


def _coin(p: dict[str, Any]) -> str:
    """The settlement coin of an option symbol (`BTC/USD:BTC-...` -> BTC)."""
    return str(p["symbol"]).partition(":")[2].split("-")[0] or "coin"


def print_journal(console: Console, entries: list[dict[str, Any]], url: str) -> None:
    if not entries:
        console.print(f"the journal {url} is empty; `liqguard run` writes one")
        return
    table = Table(title=f"journal {url}", title_justify="left", show_lines=False)
    table.add_column("#", justify="right", style="dim")
    table.add_column("time (event)")
    table.add_column("kind", style="bold")
    table.add_column("what")
    for e in entries:
        table.add_row(
            str(e["id"]), utc(int(e["ts_ms"])), e["kind"], describe(e["kind"], e["payload"])
        )
    console.print(table)
