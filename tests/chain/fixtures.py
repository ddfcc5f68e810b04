"""Pytest fixtures of the on-chain tests (import them into a test module by name)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from bot.sources.onchain.rpc import http_web3
from tests.chain.anvil import Anvil, running_anvil, tester_web3
from tests.chain.proxy import RpcProxy
from tests.chain.world import World, build_world


@pytest.fixture
async def anvil() -> AsyncIterator[Anvil]:
    async with running_anvil() as node:
        yield node


@pytest.fixture
async def anvil_world(anvil: Anvil) -> AsyncIterator[World]:
    w3 = http_web3(anvil.http_url)
    yield await build_world(w3, "anvil")
    await w3.provider.disconnect()


@pytest_asyncio.fixture(params=["anvil", "tester"], scope="module", loop_scope="module")
async def any_world(request: pytest.FixtureRequest) -> AsyncIterator[World]:
    """One chain per module, on anvil and on the in-process eth-tester chain (no Node needed).

    Module-scoped (tests mark `loop_scope="module"`): each test reads only its own blocks."""
    if request.param == "tester":
        yield await build_world(tester_web3(), "tester")
        return
    async with running_anvil() as node:
        w3 = http_web3(node.http_url)
        yield await build_world(w3, "anvil")
        await w3.provider.disconnect()


@pytest.fixture
async def proxy(anvil: Anvil) -> AsyncIterator[RpcProxy]:
    p = await RpcProxy(anvil.http_url, anvil.ws_url).start()
    yield p
    await p.close()
