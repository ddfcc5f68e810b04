"""`liqguard fetch prices`: kline CSVs from Binance's public archive, checksums verified.

Parses and prints; the work is bot.app.fetch_prices. Exit codes: 0 done, 1 a download failed
or did not verify (nothing written), 2 usage error.
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from bot.cli import group as app

fetch_app = typer.Typer(help="Download history: kline prices from Binance's public archive.")
app.add_typer(fetch_app, name="fetch")


def _day(text: str, flag: str) -> date:
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise typer.BadParameter(
            f"{text!r} is not a date (example: 2025-01-27)", param_hint=flag
        ) from None


@fetch_app.command("prices")
def prices(
    symbol: Annotated[str, typer.Option(help="e.g. BTCUSDT")],
    since: Annotated[str, typer.Option("--from", help="first UTC day (2025-01-26)")],
    to: Annotated[str, typer.Option("--to", help="last UTC day, included")],
    output: Annotated[Path, typer.Option("--output", "-o", help="kline CSV to write")],
    interval: Annotated[str, typer.Option(help="kline interval (5m, 1h, ...)")] = "5m",
    market: Annotated[str, typer.Option(help="spot, um (USD-M futures) or cm")] = "spot",
    endpoint: Annotated[
        str | None,
        typer.Option(help="archive root (default: $LIQGUARD_BINANCE_VISION_URL or Binance's)"),
    ] = None,
) -> None:
    """Klines of SYMBOL from --from to --to (UTC days), in the layout `replay --prices` reads."""
    from bot.app.fetch_prices import INTERVALS, MARKETS, FetchError, fetch_prices, write_rows

    err = Console(stderr=True, highlight=False, soft_wrap=True)
    if interval not in INTERVALS:
        raise typer.BadParameter(f"use one of {', '.join(INTERVALS)}", param_hint="--interval")
    if market not in MARKETS:
        raise typer.BadParameter(f"use one of {', '.join(MARKETS)}", param_hint="--market")
    first, last = _day(since, "--from"), _day(to, "--to")
    if last < first:
        raise typer.BadParameter("must be on or after --from", param_hint="--to")
    try:
        rows = fetch_prices(
            symbol, interval, first, last + timedelta(days=1), market, endpoint,
            progress=lambda name: err.print(f"fetching {name}", style="dim"),
        )  # fmt: skip
    except FetchError as exc:
        err.print(str(exc), markup=False)
        raise typer.Exit(1) from None
    try:
        write_rows(rows, str(output))
    except OSError as exc:
        err.print(f"{output}: cannot write it ({exc.strerror}).", markup=False)
        raise typer.Exit(1) from None
    err.print(f"wrote {len(rows):,} {interval} klines of {symbol.upper()} to {output}")
