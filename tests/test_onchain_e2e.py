"""An on-chain cascade on anvil drives an anomaly and a paper response, through bot.app.wiring.

anvil (Aave + Compound stubs) -> OnchainSource (websocket, confirmations) -> Orchestrator
(Detector, policy, risk, auto approval, journal) -> PaperBroker.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

from bot.app.wiring import build
from bot.config.loader import load_settings
from bot.events import FeedStatus, Liquidation, PriceTick
from bot.sources.onchain.factory import create_onchain_sources
from bot.sources.onchain.live import OnchainSource
from tests.chain.anvil import Anvil
from tests.chain.fixtures import anvil, anvil_world  # noqa: F401
from tests.chain.world import World

THRESHOLD_USD = 60_000.0
AAVE_USD, COMET_USD = 6 * 3000, 20_000


async def test_onchain_cascade_to_paper_order(
    anvil: Anvil, anvil_world: World, tmp_path: Path,  # noqa: F811
) -> None:  # fmt: skip
    w = anvil_world
    chain = w.chain_config(rpc_http=anvil.http_url, rpc_ws=anvil.ws_url, confirmations=2,
                           poll_interval_s=3600)  # fmt: skip
    rule = {"name": "defi", "threshold_usd": THRESHOLD_USD,
            "venues": ["aave-v3", "compound-v3-usdc", "compound-v3-weth"]}  # fmt: skip
    reduce = {"strategy": "reduce_exposure", "params": {"fraction": 0.5}}
    settings = load_settings(
        overrides={
            "rules": [rule],
            "policy": {"levels": {1: [reduce]}, "calm": []},
            "chains": {"local": chain.model_dump(mode="json")},
            "paper": {"positions": [{"symbol": "ETHUSDT", "size": 10, "entry_price": 3000}]},
        }
    )
    runtime = build(
        settings,
        None,  # type: ignore[arg-type]
        mode="paper",
        identity="onchain-e2e",
        journal_url=str(tmp_path / "journal.sqlite"),
        approvals="auto",
        notifiers=[],
    )
    (source,) = create_onchain_sources(settings, None, runtime.journal)
    assert isinstance(source, OnchainSource)

    async def stream() -> AsyncIterator[Liquidation | PriceTick | FeedStatus]:
        # Paper fills need a mark; live, the exchange streams bring it. On-chain has none.
        yield PriceTick(ts_ms=0, symbol="ETHUSDT", price=3000.0, venue="binance-usdm")
        async for event in source.events():
            yield event

    runner = asyncio.create_task(runtime.orchestrator.run(stream()))
    journal = runtime.journal
    try:
        await asyncio.wait_for(source.ws_connected.wait(), 10)
        # The cascade: 3 x 6 WETH on Aave at $3000 and a $20k Comet absorb.
        for _ in range(3):
            await w.aave_liquidation("pool_core", "WETH", 6 * 10**18)
        # 2 confirmations: the last one is not counted yet ($36k < $60k), nor the next.
        await w.comet_absorb("comet_usdc", "WETH", 7 * 10**18, COMET_USD * 10**8, 1)
        await asyncio.sleep(0.3)
        assert journal.find(kinds=["anomaly"]) == []
        await w.mine(1)  # now all four: $74k

        for _ in range(500):  # the order goes out right after the release; 10 s at most
            if journal.find(kinds=["fill"]):
                break
            await asyncio.sleep(0.02)
    finally:
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)
        await source.close()
    (anomaly,) = journal.find(kinds=["anomaly"])
    payload = anomaly["payload"]
    assert payload["rule"] == "defi" and payload["level"] == 1
    assert (payload["window_cents"], payload["events"]) == ((3 * AAVE_USD + COMET_USD) * 100, 4)
    (fill,) = journal.find(kinds=["fill"])
    assert fill["payload"]["reduce_only"] is True
    assert (fill["payload"]["symbol"], fill["payload"]["side"]) == ("ETHUSDT", "sell")
    assert fill["payload"]["amount"] == 5.0  # half of the 10 ETH long
    await runtime.close()
