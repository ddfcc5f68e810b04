"""`liqguard fetch-onchain`: past on-chain liquidations as a unified CSV tape.

Contents: fetch_onchain (the command), parse_when (block number, ISO time or duration ago),
the summary on stderr; the fetch itself is bot.app.onchain_fetch.
Exit codes: 0 success, 1 the node failed, 2 usage or configuration error.

Pricing at each log's block needs an archive node for anything older than ~128 blocks.
"""

from __future__ import annotations

import asyncio
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from bot.app import onchain_fetch
from bot.cli._group import group as app
from bot.cli.detect import parse_duration
from bot.config.errors import ConfigError
from bot.secrets import load_secrets


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
        chain_config = onchain_fetch.chain_config(config, chain)
        if rpc_http is not None:
            chain_config = chain_config.model_copy(update={"rpc_http": rpc_http})
        http, _ = rpc_urls(chain, chain_config, None if rpc_http else load_secrets())
    except (ValueError, ConfigError) as exc:
        _err(str(exc))
        raise typer.Exit(2) from None
    reader = LogReader(http_web3(http, chain_config.timeout_s), chain, chain_config)
    out = sys.stdout if str(output) == "-" else output.open("w", encoding="utf-8", newline="")
    try:
        first, last, rows = asyncio.run(onchain_fetch.fetch_and_close(reader, start, end, out))
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
