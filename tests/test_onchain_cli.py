"""`liqguard fetch-onchain` writes a unified CSV that the file source reads back."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import yaml
from typer.testing import CliRunner

from bot.cli import app
from bot.events import Liquidation
from bot.sources.files import open_tape
from bot.sources.onchain.history import LogReader
from tests.chain.anvil import Anvil
from tests.chain.fixtures import anvil, anvil_world  # noqa: F401
from tests.chain.world import World


def write_config(path: Path, world: World, rpc_http: str) -> Path:
    chain = world.chain_config(rpc_http=rpc_http).model_dump(mode="json", exclude_defaults=True)
    path.write_text(yaml.safe_dump({"chains": {"local": chain}}))
    return path


async def test_fetch_onchain_writes_a_tape_the_file_source_reads(
    anvil: Anvil, anvil_world: World, tmp_path: Path,  # noqa: F811
) -> None:  # fmt: skip
    w = anvil_world
    start = await w.w3.eth.block_number + 1
    await w.aave_liquidation("pool_core", "WETH", 3 * 10**18)
    await w.set_price("WETH", 2000)
    await w.aave_liquidation("pool_lido", "WETH", 10**18)
    await w.comet_absorb("comet_weth", "WBTC", 10**8, 20 * 10**8, 1)
    end = await w.mine(2)
    config = write_config(tmp_path / "liqguard.yaml", w, anvil.http_url)
    out = tmp_path / "tape.csv"
    args = ["fetch-onchain", "--config", str(config), "--chain", "local",
            "--from-block", str(start), "--to", str(end), "-o", str(out)]  # fmt: skip

    result = await asyncio.to_thread(CliRunner().invoke, app, args)

    assert result.exit_code == 0, result.output
    assert f"3 liquidations in blocks {start}-{end}" in result.stderr
    expected = [
        liq async for _, liq in LogReader(w.w3, "x", w.chain_config()).liquidations(start, end)
    ]
    tape = open_tape(out)
    back = list(tape)
    assert tape.stats.rejected == 0

    def fields(liq: Liquidation) -> tuple[object, ...]:
        return (liq.ts_ms, liq.venue, liq.symbol, liq.side, liq.price, liq.quantity,
                liq.notional_usd)  # fmt: skip

    assert [fields(b) for b in back] == [fields(e) for e in expected]
    assert [b.notional_usd for b in back] == [9000.0, 2000.0, 20 * 3000.0]


async def test_fetch_onchain_since_a_time(anvil: Anvil, anvil_world: World, tmp_path: Path) -> None:  # noqa: F811
    w = anvil_world
    block = await w.aave_liquidation("pool_core", "WBTC", 10**8)
    ts = int((await w.w3.eth.get_block(block))["timestamp"])
    config = write_config(tmp_path / "liqguard.yaml", w, anvil.http_url)
    out = tmp_path / "tape.csv"
    since = datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    args = ["fetch-onchain", "--config", str(config), "--chain", "local", "--since", since,
            "-o", str(out)]  # fmt: skip
    result = await asyncio.to_thread(CliRunner().invoke, app, args)
    assert result.exit_code == 0, result.output
    assert [liq.symbol for liq in open_tape(out)] == ["WBTC"]


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    runner = CliRunner()
    both = runner.invoke(app, ["fetch-onchain", "--from-block", "1", "--since", "1d", "-o", "x"])
    assert both.exit_code == 2 and "exactly one of --from-block and --since" in both.stderr
    bad = runner.invoke(app, ["fetch-onchain", "--since", "yesterday", "-o", "x",
                              "--rpc-http", "http://127.0.0.1:9"])  # fmt: skip
    assert bad.exit_code == 2 and "not a block number, an ISO time" in bad.stderr
    (tmp_path / "empty.yaml").write_text("mode: paper\n")
    unknown = runner.invoke(app, ["fetch-onchain", "--chain", "base", "--from-block", "1",
                                  "-o", "x", "--config", str(tmp_path / "empty.yaml")])  # fmt: skip
    assert unknown.exit_code == 2 and "'base': not in the config's `chains:`" in unknown.stderr
