"""Past on-chain liquidations written as a unified CSV tape (`liqguard fetch-onchain`).

- chain_config(config, name): the chain's settings (the config's `chains:` or mainnet defaults)
- fetch_tape(reader, start, end, out) -> (first block, last block, rows)
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from bot.config.chains import ChainConfig
from bot.config.errors import ConfigError
from bot.config.loader import load_settings
from bot.events import Liquidation

if TYPE_CHECKING:  # web3 costs ~1 s to import: only `fetch-onchain` pays for it
    from bot.sources.onchain.history import LogReader

CSV_COLUMNS = ["ts_ms", "venue", "symbol", "side", "price", "quantity", "notional_usd"]


def chain_config(config: Path | None, name: str) -> ChainConfig:
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


async def fetch_tape(
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


async def fetch_and_close(
    reader: LogReader, start: tuple[str, int], end: tuple[str, int] | None, out: TextIO
) -> tuple[int, int, int]:
    try:
        return await fetch_tape(reader, start, end, out)
    finally:
        await reader.close()
