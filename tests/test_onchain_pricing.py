"""USD values of on-chain liquidations, priced at the log's block, on a real local chain."""

from __future__ import annotations

from fractions import Fraction

import pytest

from bot.events import Liquidation
from bot.sources.onchain.history import LogReader
from tests.chain.fixtures import any_world  # noqa: F401
from tests.chain.world import ORACLE_UNIT, World

pytestmark = pytest.mark.asyncio(loop_scope="module")  # one chain per backend for the module


async def read_all(world: World, start: int, **overrides: object) -> list[Liquidation]:
    """Every liquidation from block `start` (the test's own) to the head."""
    reader = LogReader(world.w3, "test", world.chain_config(**overrides))
    head = int(await world.w3.eth.block_number)
    return [liq async for _, liq in reader.liquidations(start, head)]


async def next_block(world: World) -> int:
    return int(await world.w3.eth.block_number) + 1


async def test_aave_priced_by_the_oracle_at_the_logs_block(any_world: World) -> None:  # noqa: F811
    w = any_world
    start = await next_block(w)
    amount = 2 * 10**18 + 5 * 10**17  # 2.5 WETH
    block_a = await w.aave_liquidation("pool_core", "WETH", amount)
    await w.set_price("WETH", 2400)  # the price moves between the two liquidations
    block_b = await w.aave_liquidation("pool_core", "WETH", amount)
    await w.set_price("WETH", 3000)  # back, for the other tests on this chain

    liqs = await read_all(w, start)

    assert [liq.block_number for liq in liqs] == [block_a, block_b]
    for liq, usd_price in zip(liqs, (3000, 2400), strict=True):
        expected = Fraction(amount, 10**18) * Fraction(usd_price * ORACLE_UNIT, ORACLE_UNIT)
        assert liq.notional_usd == float(expected)
        assert liq.price == usd_price and liq.quantity == 2.5
        assert (liq.venue, liq.symbol, liq.side) == ("aave-v3", "WETH", "long")
    block = await w.w3.eth.get_block(block_a)
    assert liqs[0].ts_ms == int(block["timestamp"]) * 1000
    receipt_logs = await w.w3.eth.get_logs({"fromBlock": block_a, "toBlock": block_a})
    assert liqs[0].event_id == f"0x{receipt_logs[0]['transactionHash'].hex()}:0"
    assert liqs[0].block_hash == "0x" + bytes(block["hash"]).hex()


async def test_lido_oracle_found_through_the_addresses_provider(any_world: World) -> None:  # noqa: F811
    w = any_world
    start = await next_block(w)
    await w.aave_liquidation("pool_lido", "WBTC", 3 * 10**7)  # 0.3 WBTC, 8 decimals
    await w.aave_liquidation("pool_lido", "MKR", 10**18)  # bytes32 symbol

    wbtc, mkr = await read_all(w, start)

    assert (wbtc.venue, wbtc.symbol, wbtc.notional_usd) == ("aave-v3-lido", "WBTC", 0.3 * 60000)
    assert (mkr.symbol, mkr.notional_usd) == ("MKR", 2000.0)


async def test_comet_usd_value_and_the_non_usd_base(any_world: World) -> None:  # noqa: F811
    w = any_world
    start = await next_block(w)
    # USDC Comet: usdValue (8 decimals) is USD.
    await w.comet_absorb("comet_usdc", "WBTC", 2 * 10**8, 123_456_78 * 10**6, 1)
    # WETH Comet: usdValue is in ETH; times ETH/USD from the feed at the log's block.
    await w.comet_absorb("comet_weth", "WBTC", 10**8, 20 * 10**8, 1)
    await w.set_eth_usd(2500)
    await w.comet_absorb("comet_weth", "WBTC", 10**8, 20 * 10**8, 1)
    await w.set_eth_usd(3000)

    usdc, weth_a, weth_b = await read_all(w, start)

    assert (usdc.venue, usdc.symbol, usdc.quantity) == ("compound-v3-usdc", "WBTC", 2.0)
    assert usdc.notional_usd == 123_456_78 / 100 and usdc.price == usdc.notional_usd / 2
    assert (weth_a.venue, weth_a.notional_usd, weth_b.notional_usd) == (
        "compound-v3-weth", 20 * 3000.0, 20 * 2500.0,
    )  # fmt: skip


async def test_comet_measured_by_debt(any_world: World) -> None:  # noqa: F811
    w = any_world
    start = await next_block(w)
    await w.comet_absorb(
        "comet_usdc", "WBTC", 10**8, 61_000 * 10**8, 55_000 * 10**8, 55_000 * 10**6
    )

    (liq,) = await read_all(w, start, comet_measure="debt", aave={})

    assert (liq.symbol, liq.quantity, liq.notional_usd) == ("USDC", 55_000.0, 55_000.0)


@pytest.mark.parametrize("measure", ["collateral", "debt"])
async def test_only_one_comet_event_per_absorb(any_world: World, measure: str) -> None:  # noqa: F811
    start = await next_block(any_world)
    await any_world.comet_absorb("comet_usdc", "WETH", 10**18, 3000 * 10**8, 2900 * 10**8)
    liqs = await read_all(any_world, start, comet_measure=measure)
    assert len(liqs) == 1
