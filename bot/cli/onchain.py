"""`liqguard fetch-onchain`: past on-chain liquidations as a unified CSV tape.

Contents: fetch_onchain (the command), parse_when (block number, ISO time or duration ago),
the chain lookup (config or mainnet defaults), the async fetch, the summary on stderr.
Exit codes: 0 success, 1 the node failed, 2 usage or configuration error.

Pricing at each log's block needs an archive node for anything older than ~128 blocks.
"""

from __future__ import annotations

import asyncio
import csv
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TextIO

import typer

from bot.cli import app
from bot.cli.detect import parse_duration
from bot.config.chains import ChainConfig
from bot.config.loader import ConfigError, load_settings
from bot.events import Liquidation
from bot.secrets import load_secrets

if TYPE_CHECKING:  # web3 costs ~1 s to import: only `fetch-onchain` pays for it
    from bot.sources.onchain.history import LogReader

CSV_COLUMNS = ["ts_ms", "venue", "symbol", "side", "price", "quantity", "notional_usd"]


def _err(message: str) -> None:
    print(message, file=sys.stderr)


def parse_when(text: str, now_s: float) -> tuple[str, int]:
    """("block", n) for `123`, ("time", epoch_s) for `2025-10-10T21:00` (UTC) or `3d` ago."""
    s = text.strip()
    if s.isdigit():
        return "block", int(s)
    try:
        when = datetime.fromisoformat(s.replace("Z", "+00:00"))
    except ValueError:
        try:
            return "time", int(now_s - parse_duration(s))
        except ValueError:
            raise ValueError(
                f"{text!r} is not a block number, an ISO time (2025-10-10T21:00) "
                "or a duration ago (90m, 12h, 3d)"
            ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return "time", int(when.timestamp())


def _chain(config: Path | None, name: str) -> ChainConfig:
    chains = dict(load_settings(config).chains.items())
    if name in chains:
        return chains[name]
    if name == "ethereum":
        return ChainConfig()  # mainnet defaults
    known = ", ".join(chains) or "none configured"
    raise ConfigError(f"--chain {name!r}: not in the config's `chains:` ({known})")


def _row(liq: Liquidation) -> list[str]:
    def num(x: float | None) -> str:
        return "" if x is None else repr(x)

    return [str(liq.ts_ms), liq.venue, liq.symbol, liq.side, num(liq.price), num(liq.quantity),
            num(liq.notional_usd)]  # fmt: skip


async def _fetch(
    reader: LogReader, start: tuple[str, int], end: tuple[str, int] | None, out: TextIO
) -> tuple[int, int, int]:
    await reader.check_chain_id()
    first = start[1] if start[0] == "block" else await reader.block_at(start[1])
    if end is None:
        last = await reader.head() - reader.chain.confirmations + 1
    elif end[0] == "block":
        last = end[1]
    else:
        last = await reader.block_at(end[1] + 1) - 1  # the last block at or before the time
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    rows = 0
    async for _, liq in reader.liquidations(first, last):
        writer.writerow(_row(liq))
        rows += 1
    return first, last, rows


async def _fetch_and_close(
    reader: LogReader, start: tuple[str, int], end: tuple[str, int] | None, out: TextIO
) -> tuple[int, int, int]:
    try:
        return await _fetch(reader, start, end, out)
    finally:
        await reader.close()


@app.command("fetch-onchain")
def fetch_onchain(
    output: Annotated[Path, typer.Option("-o", "--output", help="CSV file to write ('-': stdout)")],
    chain: Annotated[str, typer.Option(help="chain name in the config's `chains:`")] = "ethereum",
    from_block: Annotated[int | None, typer.Option(help="first block", min=0)] = None,
    since: Annotated[
        str | None, typer.Option(help="first block by time: ISO time (UTC) or duration ago (3d)")
    ] = None,
    to: Annotated[
        str | None,
        typer.Option(
            help="last block: number, ISO time or duration ago (default: the last confirmed block)"
        ),
    ] = None,
    config: Annotated[Path | None, typer.Option(help="liqguard.yaml with `chains:`")] = None,
    rpc_http: Annotated[
        str | None, typer.Option(help="HTTP RPC URL (default: LIQGUARD_ETH_RPC_HTTP / config)")
    ] = None,
) -> None:
    """Write the chain's Aave v3 and Compound v3 liquidations between two points as a tape."""
    if (from_block is None) == (since is None):
        _err("give exactly one of --from-block and --since")
        raise typer.Exit(2)
    from bot.sources.onchain.factory import rpc_urls
    from bot.sources.onchain.history import ChainMismatch, LogReader
    from bot.sources.onchain.rpc import RpcError, http_web3

    now_s = time.time()
    try:
        start = ("block", from_block) if from_block is not None else parse_when(since or "", now_s)
        end = parse_when(to, now_s) if to is not None else None
        chain_config = _chain(config, chain)
        if rpc_http is not None:
            chain_config = chain_config.model_copy(update={"rpc_http": rpc_http})
        http, _ = rpc_urls(chain, chain_config, None if rpc_http else load_secrets())
    except (ValueError, ConfigError) as exc:
        _err(str(exc))
        raise typer.Exit(2) from None
    reader = LogReader(http_web3(http, chain_config.timeout_s), chain, chain_config)
    out = sys.stdout if str(output) == "-" else output.open("w", encoding="utf-8", newline="")
    try:
        first, last, rows = asyncio.run(_fetch_and_close(reader, start, end, out))
    except ChainMismatch as exc:
        _err(str(exc))
        raise typer.Exit(2) from None
    except RpcError as exc:
        _err(f"{chain}: the node failed: {exc}")
        raise typer.Exit(1) from None
    finally:
        if out is not sys.stdout:
            out.close()
    s = reader.stats
    _err(
        f"{chain}: {rows} liquidations in blocks {first}-{last} -> {output} "
        f"({s.chunks} eth_getLogs calls, {s.refusals} refused ranges, {s.unpriced} unpriced)"
    )
