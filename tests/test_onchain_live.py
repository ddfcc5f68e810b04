"""The live on-chain source on anvil: websocket doorbell, confirmations, drops, restarts, reorgs."""

from __future__ import annotations

import asyncio
from pathlib import Path

from bot.events import Liquidation
from bot.journal import SqlJournal
from bot.sources.onchain.history import LogReader
from bot.sources.onchain.live import OnchainSource
from bot.sources.onchain.rpc import http_web3
from tests.chain.anvil import Anvil
from tests.chain.fixtures import anvil, anvil_world, proxy  # noqa: F401
from tests.chain.proxy import RpcProxy
from tests.chain.tap import STEP_S, Tap, make_source
from tests.chain.world import World


async def test_websocket_rings_and_events_count_at_confirmation_depth(
    anvil: Anvil, anvil_world: World, tmp_path: Path,  # noqa: F811
) -> None:  # fmt: skip
    w = anvil_world
    journal = SqlJournal(f"sqlite:///{tmp_path / 'j.sqlite'}")
    # A poll interval far beyond the test: only the websocket can wake the source up.
    source = make_source(w, anvil.http_url, anvil.ws_url, journal, confirmations=3,
                         poll_interval_s=3600)  # fmt: skip
    tap = Tap(source)
    await asyncio.wait_for(source.ws_connected.wait(), STEP_S)
    block = await w.aave_liquidation("pool_core", "WETH", 10**18)
    await w.mine(1)  # 2 confirmations: not yet
    await w.mine(1)  # 3: released
    liq = await tap.next_liquidation()
    assert (liq.block_number, liq.notional_usd) == (block, 3000.0)
    assert journal.get_state("onchain.test")["block"] == block  # type: ignore[index]
    await tap.stop()


async def test_unconfirmed_events_are_not_released_early(
    anvil: Anvil, anvil_world: World, tmp_path: Path,  # noqa: F811
) -> None:  # fmt: skip
    w = anvil_world
    journal = SqlJournal(f"sqlite:///{tmp_path / 'j.sqlite'}")
    alerts: list[Liquidation] = []

    async def alert(liq: Liquidation) -> None:
        alerts.append(liq)

    chain = w.chain_config(confirmations=5, alert_unconfirmed=True, poll_interval_s=3600)
    source = OnchainSource("test", LogReader(http_web3(anvil.http_url), "test", chain), journal,
                           anvil.ws_url, on_unconfirmed=alert)  # fmt: skip
    tap = Tap(source)
    await asyncio.wait_for(source.ws_connected.wait(), STEP_S)
    first = await w.aave_liquidation("pool_core", "WETH", 10**18)
    second = await w.aave_liquidation("pool_core", "WBTC", 10**8)  # first has 2 confirmations
    await w.mine(2)  # first: 4 confirmations, second: 3
    for _ in range(100):  # the alerts come from the websocket
        if len(alerts) == 2:
            break
        await asyncio.sleep(0.05)
    assert [a.block_number for a in alerts] == [first, second]
    assert journal.get_state("onchain.test")["block"] < first  # type: ignore[index]
    await w.mine(1)
    assert (await tap.next_liquidation()).block_number == first
    await w.mine(1)
    assert (await tap.next_liquidation()).block_number == second
    kinds = [e["kind"] for e in journal.recent(10)]
    assert kinds.count("onchain_unconfirmed") == 2
    await tap.stop()


async def test_catch_up_after_a_dropped_websocket(
    proxy: RpcProxy, anvil_world: World, tmp_path: Path,  # noqa: F811
) -> None:  # fmt: skip
    w = anvil_world
    journal = SqlJournal(f"sqlite:///{tmp_path / 'j.sqlite'}")
    source = make_source(w, proxy.http_url, proxy.ws_url, journal, poll_interval_s=3600,
                         backoff_s=0.05, max_backoff_s=0.1)  # fmt: skip
    tap = Tap(source)
    await asyncio.wait_for(source.ws_connected.wait(), STEP_S)
    before = await w.aave_liquidation("pool_core", "WETH", 10**18)
    assert (await tap.next_liquidation()).block_number == before

    proxy.ws_down = True
    await proxy.drop_websockets()
    await tap.next_status("reconnecting")
    while_down = [await w.aave_liquidation("pool_core", "WETH", n * 10**18) for n in (2, 3, 4)]
    assert tap.drained() == []  # no doorbell while down, poll is an hour away
    proxy.ws_down = False
    await asyncio.wait_for(source.ws_connected.wait(), STEP_S)
    caught_up = [(await tap.next_liquidation()).block_number for _ in while_down]
    assert caught_up == while_down
    await tap.next_status("live")
    after = await w.aave_liquidation("pool_core", "WETH", 10**18)
    assert (await tap.next_liquidation()).block_number == after
    await tap.stop()
    assert [i for i in tap.drained() if isinstance(i, Liquidation)] == []  # nothing twice


async def test_restart_resumes_from_the_journaled_block(
    anvil: Anvil, anvil_world: World, tmp_path: Path,  # noqa: F811
) -> None:  # fmt: skip
    w = anvil_world
    url = f"sqlite:///{tmp_path / 'journal.sqlite'}"
    start = await w.w3.eth.block_number + 1
    blocks = [await w.aave_liquidation("pool_core", "WETH", n * 10**18) for n in (1, 2, 3)]

    # First run: history from start_block, stopped after two events were handed over.
    source = make_source(w, anvil.http_url, None, SqlJournal(url), start_block=start)
    stream = source.events()
    got = [(await anext(stream)).block_number for _ in range(2)]  # type: ignore[union-attr]
    await stream.aclose()
    await source.close()
    assert got == blocks[:2]

    # While stopped, more liquidations; the restart hands over exactly those not yet seen.
    blocks += [await w.aave_liquidation("pool_lido", "WBTC", 10**8) for _ in range(2)]
    source = make_source(w, anvil.http_url, None, SqlJournal(url), start_block=start)
    tap = Tap(source)
    rest = [(await tap.next_liquidation()).block_number for _ in range(3)]
    assert rest == blocks[2:]
    await tap.stop()
    assert [i for i in tap.drained() if isinstance(i, Liquidation)] == []


async def test_reorg_withdraws_an_unconfirmed_event(
    anvil: Anvil, anvil_world: World, tmp_path: Path,  # noqa: F811
) -> None:  # fmt: skip
    w = anvil_world
    journal = SqlJournal(f"sqlite:///{tmp_path / 'j.sqlite'}")
    alerts: list[Liquidation] = []

    async def alert(liq: Liquidation) -> None:
        alerts.append(liq)

    chain = w.chain_config(confirmations=3, alert_unconfirmed=True, poll_interval_s=3600)
    source = OnchainSource("test", LogReader(http_web3(anvil.http_url), "test", chain), journal,
                           anvil.ws_url, on_unconfirmed=alert)  # fmt: skip
    tap = Tap(source)
    await asyncio.wait_for(source.ws_connected.wait(), STEP_S)
    doomed = await w.aave_liquidation("pool_core", "WETH", 7 * 10**18)
    for _ in range(100):
        if alerts:
            break
        await asyncio.sleep(0.05)
    assert alerts[0].block_number == doomed and alerts[0].notional_usd == 21000.0
    await w.w3.provider.make_request("anvil_reorg", [1, []])  # type: ignore[arg-type,unused-ignore]
    kept = await w.aave_liquidation("pool_core", "WBTC", 10**8)
    await w.mine(2)

    liq = await tap.next_liquidation()
    assert (liq.block_number, liq.symbol) == (kept, "WBTC")  # the reorged one never counted
    withdrawn = [e for e in journal.recent(20) if e["kind"] == "onchain_withdrawn"]
    assert len(withdrawn) == 1
    payload = withdrawn[0]["payload"]
    assert (payload["event_id"], payload["block_hash"]) == (
        alerts[0].event_id,
        alerts[0].block_hash,
    )
    assert payload["alerted"] is True and payload["notional_usd"] == 21000.0
    await tap.stop()


async def test_a_node_down_at_start_is_retried(
    proxy: RpcProxy, anvil_world: World, tmp_path: Path,  # noqa: F811
) -> None:  # fmt: skip
    w = anvil_world
    journal = SqlJournal(f"sqlite:///{tmp_path / 'j.sqlite'}")
    proxy.rate_limit_next = 10**6  # every call answered 429
    source = make_source(w, proxy.http_url, None, journal, max_retries=0, poll_interval_s=0.05)
    tap = Tap(source)
    down = await tap.next_status("reconnecting")
    assert "HTTP 429" in down.detail
    proxy.rate_limit_next = 0
    await tap.next_status("live")
    block = await w.aave_liquidation("pool_core", "WETH", 10**18)
    assert (await tap.next_liquidation()).block_number == block
    await tap.stop()


async def test_a_reorg_deeper_than_the_confirmations_is_journaled(
    anvil: Anvil, anvil_world: World, tmp_path: Path,  # noqa: F811
) -> None:  # fmt: skip
    w = anvil_world
    journal = SqlJournal(f"sqlite:///{tmp_path / 'j.sqlite'}")
    source = make_source(w, anvil.http_url, anvil.ws_url, journal, poll_interval_s=3600)
    tap = Tap(source)
    await asyncio.wait_for(source.ws_connected.wait(), STEP_S)
    counted = await w.aave_liquidation("pool_core", "WETH", 10**18)  # 1 confirmation: counted
    assert (await tap.next_liquidation()).block_number == counted
    released_hash = journal.get_state("onchain.test")["hash"]  # type: ignore[index]
    await w.w3.provider.make_request("anvil_reorg", [1, []])  # type: ignore[arg-type,unused-ignore]
    after = await w.aave_liquidation("pool_core", "WBTC", 10**8)
    assert (await tap.next_liquidation()).block_number == after
    (entry,) = journal.find(kinds=["onchain_deep_reorg"])
    assert entry["payload"]["block"] == counted
    assert entry["payload"]["released_hash"] == released_hash != entry["payload"]["canonical_hash"]
    await tap.stop()
