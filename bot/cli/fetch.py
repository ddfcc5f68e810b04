"""`liqguard fetch prices` (kline CSVs from Binance's public archive, checksums verified) and
`liqguard fetch tardis` (Tardis.dev liquidations through its official client, as a unified tape).

Parses and prints; the work is bot.app.fetch_prices and bot.app.fetch_tardis. Exit codes: 0 done,
1 a download failed or did not verify (nothing written), 2 usage error or a missing/refused key.
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from bot.cli._group import group as app

fetch_app = typer.Typer(
    help="Download history: kline prices from Binance's public archive, liquidations from "
    "Tardis.dev."
)
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


@fetch_app.command("tardis")
def tardis(
    exchange: Annotated[str, typer.Option(help="Tardis exchange id, e.g. binance-futures")],
    symbols: Annotated[str, typer.Option(help="comma-separated, e.g. BTCUSDT,ETHUSDT")],
    since: Annotated[str, typer.Option("--from", help="first UTC day (2025-01-01)")],
    to: Annotated[str, typer.Option("--to", help="last UTC day, included")],
    output: Annotated[Path, typer.Option("--output", "-o", help="unified tape CSV to write")],
    endpoint: Annotated[
        str | None,
        typer.Option(help="datasets API root (default: $LIQGUARD_TARDIS_DATASETS_URL or Tardis's)"),
    ] = None,
    download_dir: Annotated[
        Path | None,
        typer.Option(help="keep Tardis's day files here (default: a temporary folder)"),
    ] = None,
    timeout: Annotated[float, typer.Option(help="give up after this many seconds")] = 600.0,
) -> None:
    """Tardis.dev `liquidations` of --symbols from --from to --to as one unified tape.

    The first day of each month is free; other days need LIQGUARD_TARDIS_API_KEY in the
    environment or .env.
    """
    from bot.app.fetch_tardis import FetchError, check_exchange, fetch_tardis
    from bot.secrets import load_secrets

    err = Console(stderr=True, highlight=False, soft_wrap=True)
    first, last = _day(since, "--from"), _day(to, "--to")
    if last < first:
        raise typer.BadParameter("must be on or after --from", param_hint="--to")
    if timeout <= 0:
        raise typer.BadParameter("must be positive", param_hint="--timeout")
    try:
        check_exchange(exchange)
        key = load_secrets().tardis_api_key
        result = fetch_tardis(
            exchange, symbols.split(","), first, last, output,
            endpoint=endpoint, api_key=key.get_secret_value() if key else "",
            download_dir=download_dir, timeout_s=timeout,
            progress=lambda text: err.print(text, style="dim"),
        )  # fmt: skip
    except FetchError as exc:
        err.print(str(exc), markup=False)
        raise typer.Exit(exc.exit_code) from None
    for name, r in result.first_rejections:
        err.print(f"  rejected {name} line {r.line}: {r.reason}", markup=False)
    venues = ", ".join(sorted(result.venues)) or "no venue"
    err.print(
        f"wrote {result.rows:,} liquidations ({venues}) from {result.files} day file(s) to "
        f"{output}; rejected: {result.rejected:,}",
        markup=False,
    )
