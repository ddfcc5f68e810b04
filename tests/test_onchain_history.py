"""eth_getLogs history against a stingy provider: refused ranges halve, rate limits back off."""

from __future__ import annotations

import itertools

import pytest

from bot.sources.onchain.history import ChunkSizer, LogReader
from bot.sources.onchain.rpc import RpcError, http_web3
from tests.chain.fixtures import anvil, anvil_world, any_world, proxy  # noqa: F401
from tests.chain.proxy import RpcProxy
from tests.chain.world import World


async def test_chunks_halve_on_refusal_and_back_off_on_rate_limits(
    proxy: RpcProxy, anvil_world: World,  # noqa: F811
) -> None:  # fmt: skip
    w = anvil_world
    start = await w.w3.eth.block_number + 1
    blocks = []
    for i in range(6):
        blocks.append(await w.aave_liquidation("pool_core", "WETH", (i + 1) * 10**17))
        await w.mine(i * 3)  # uneven gaps
    end = await w.mine(2)
    proxy.max_range_blocks = 5  # a free tier: 5 blocks per eth_getLogs
    proxy.rate_limit_next = 2  # two HTTP 429s
    proxy.rpc_rate_limit_next = 1  # one JSON-RPC -32005 "request rate exceeded"
    reader = LogReader(http_web3(proxy.http_url), "test", w.chain_config(get_logs_chunk_blocks=64))

    liqs = [liq async for _, liq in reader.liquidations(start, end)]

    assert [liq.block_number for liq in liqs] == blocks
    assert [liq.quantity for liq in liqs] == [(i + 1) / 10 for i in range(6)]
    assert proxy.rate_limited == 3 and reader.stats.refusals == len(proxy.get_logs_refused) > 0
    assert all(last - first + 1 <= 5 for first, last in proxy.get_logs_ok)
    covered = sorted(proxy.get_logs_ok)  # contiguous, no gap, no overlap
    assert covered[0][0] == start and covered[-1][1] == end
    assert all(b[0] == a[1] + 1 for a, b in itertools.pairwise(covered))
    await reader.close()


async def test_refusals_sent_as_http_400_halve_too(
    proxy: RpcProxy, anvil_world: World,  # noqa: F811
) -> None:  # fmt: skip
    w = anvil_world
    start = await w.w3.eth.block_number + 1
    blocks = [await w.aave_liquidation("pool_core", "WBTC", 10**8) for _ in range(4)]
    proxy.max_range_blocks, proxy.refuse_http_status = 2, 400
    reader = LogReader(http_web3(proxy.http_url), "test", w.chain_config())
    liqs = [liq async for _, liq in reader.liquidations(start, blocks[-1])]
    assert [liq.block_number for liq in liqs] == blocks and reader.stats.refusals > 0
    await reader.close()


async def test_a_node_refusing_a_single_block_is_an_error(
    proxy: RpcProxy, anvil_world: World,  # noqa: F811
) -> None:  # fmt: skip
    proxy.max_range_blocks = 0
    reader = LogReader(http_web3(proxy.http_url), "test", anvil_world.chain_config())
    with pytest.raises(RpcError, match="even a single block is refused"):
        [x async for x in reader.log_chunks(1, 8)]
    assert reader.stats.refusals == 4  # 8 -> 4 -> 2 -> 1 blocks, then give up
    await reader.close()


async def test_rate_limits_give_up_after_the_configured_retries(
    proxy: RpcProxy, anvil_world: World,  # noqa: F811
) -> None:  # fmt: skip
    proxy.rate_limit_next = 10
    reader = LogReader(http_web3(proxy.http_url), "test", anvil_world.chain_config(max_retries=3))
    with pytest.raises(RpcError, match="HTTP 429"):
        await reader.head()
    assert proxy.rate_limited == 4  # the call and 3 retries
    await reader.close()


@pytest.mark.asyncio(loop_scope="module")
async def test_history_on_both_backends(any_world: World) -> None:  # noqa: F811
    w = any_world
    start = await w.w3.eth.block_number + 1
    blocks = [await w.aave_liquidation("pool_core", "WBTC", 10**8) for _ in range(3)]
    blocks.append(await w.comet_absorb("comet_usdc", "WETH", 10**18, 2990 * 10**8, 1))
    end = await w.mine(3)
    reader = LogReader(w.w3, "test", w.chain_config(get_logs_chunk_blocks=2))
    liqs = [liq async for _, liq in reader.liquidations(start, end)]
    assert [liq.block_number for liq in liqs] == blocks
    assert [liq.venue for liq in liqs] == ["aave-v3"] * 3 + ["compound-v3-usdc"]
    assert reader.stats.chunks == -(-(end - start + 1) // 2)
    # block_at: the first block at or after a timestamp
    ts = int((await w.w3.eth.get_block(blocks[1]))["timestamp"])
    found = await reader.block_at(ts)
    assert int((await w.w3.eth.get_block(found))["timestamp"]) >= ts
    assert found == 0 or int((await w.w3.eth.get_block(found - 1))["timestamp"]) < ts


def test_chunk_sizer_halves_and_regrows() -> None:
    sizer = ChunkSizer(1000)
    assert sizer.refused(1000) == 500 and sizer.refused(500) == 250
    assert sizer.refused(1) == 0
    sizer = ChunkSizer(1000)
    sizer.refused(1000)
    for _ in range(8):
        sizer.succeeded()
    assert sizer.blocks == 1000
