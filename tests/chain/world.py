"""A small lending world on a test chain: tokens, an AaveOracle, two Aave Pools, two Comets.

Prices are set by the tests; every helper returns what the chain said (block numbers),
so the tests compute expected values from their own inputs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, cast

from web3 import AsyncWeb3
from web3.contract import AsyncContract

from bot.config.chains import AaveMarket, ChainConfig, CometMarket
from tests.chain.contracts import compiled

ORACLE_UNIT = 10**8  # BASE_CURRENCY_UNIT of Aave's USD markets
FEED_DECIMALS = 8


@dataclass
class World:
    w3: AsyncWeb3
    backend: str  # "anvil" or "tester"
    sender: str
    chain_id: int
    tokens: dict[str, AsyncContract] = field(default_factory=dict)
    decimals: dict[str, int] = field(default_factory=dict)
    contracts: dict[str, AsyncContract] = field(default_factory=dict)

    async def deploy(self, name: str, *args: Any) -> AsyncContract:
        c = compiled(name)
        factory = self.w3.eth.contract(abi=c.abi, bytecode=c.bytecode)
        tx = await factory.constructor(*args).transact({"from": self.sender, "gas": 3_000_000})
        receipt = await self.w3.eth.wait_for_transaction_receipt(tx, poll_latency=0.005)
        return cast(
            AsyncContract, self.w3.eth.contract(address=receipt["contractAddress"], abi=c.abi)
        )

    async def send(self, fn: Any) -> int:
        """Send a transaction; return the block it was mined in."""
        tx = await fn.transact({"from": self.sender, "gas": 3_000_000})
        receipt = await self.w3.eth.wait_for_transaction_receipt(tx, poll_latency=0.005)
        assert receipt["status"] == 1
        return int(receipt["blockNumber"])

    async def mine(self, blocks: int) -> int:
        """Mine empty blocks; return the new head."""
        method = "anvil_mine" if self.backend == "anvil" else "evm_mine"
        await self.w3.provider.make_request(method, [blocks])  # type: ignore[arg-type,unused-ignore]
        return int(await self.w3.eth.block_number)

    @property
    def oracle(self) -> AsyncContract:
        return self.contracts["oracle"]

    def addr(self, name: str) -> str:
        return str(self.contracts[name].address)

    async def set_price(self, token: str, usd: int) -> int:
        """Set a token's oracle price in whole USD; return the block."""
        fn = self.oracle.functions.setAssetPrice(self.tokens[token].address, usd * ORACLE_UNIT)
        return await self.send(fn)

    async def set_eth_usd(self, usd: int) -> int:
        return await self.send(
            self.contracts["eth_usd"].functions.setAnswer(usd * 10**FEED_DECIMALS)
        )

    async def aave_liquidation(self, pool: str, collateral: str, amount_units: int) -> int:
        """A LiquidationCall seizing `amount_units` (raw token units) of `collateral`."""
        token = self.tokens[collateral].address
        fn = self.contracts[pool].functions.liquidate(token, self.tokens["USDC"].address,
                                                      self.sender, 1, amount_units)  # fmt: skip
        return await self.send(fn)

    async def comet_absorb(
        self, comet: str, asset: str, amount_units: int, collateral_usd_e8: int, debt_usd_e8: int,
        base_paid_units: int = 0,
    ) -> int:  # fmt: skip
        fn = self.contracts[comet].functions.absorb(
            self.sender, self.tokens[asset].address, amount_units, collateral_usd_e8,
            base_paid_units, debt_usd_e8,
        )  # fmt: skip
        return await self.send(fn)

    def chain_config(self, **overrides: Any) -> ChainConfig:
        values: dict[str, Any] = {
            "chain_id": self.chain_id,
            "rpc_http": "http://127.0.0.1:1",  # replaced by the test's own endpoint
            "aave": {
                "core": AaveMarket(pool=self.addr("pool_core"), oracle=self.addr("oracle")),
                "lido": AaveMarket(pool=self.addr("pool_lido"), venue="aave-v3-lido"),
            },
            "compound": {
                "usdc": CometMarket(address=self.addr("comet_usdc")),
                "weth": CometMarket(
                    address=self.addr("comet_weth"), base_usd_feed=self.addr("eth_usd")
                ),
            },
            "confirmations": 1,
            "backoff_s": 0.01,
            "max_backoff_s": 0.05,
            "poll_interval_s": 0.2,
        }
        values.update(overrides)
        return ChainConfig(**values)


async def build_world(w3: AsyncWeb3, backend: str) -> World:
    world = World(w3, backend, (await w3.eth.accounts)[0], await w3.eth.chain_id)
    for symbol, decimals in (("WETH", 18), ("WBTC", 8), ("USDC", 6)):
        world.tokens[symbol] = await world.deploy("ERC20", symbol, decimals)
        world.decimals[symbol] = decimals
    world.tokens["MKR"] = await world.deploy("ERC20Bytes32", b"MKR".ljust(32, b"\0"), 18)
    world.decimals["MKR"] = 18
    c = world.contracts
    c["oracle"] = await world.deploy("AaveOracle", ORACLE_UNIT)
    c["provider"] = await world.deploy("AddressesProvider", c["oracle"].address)
    c["pool_core"] = await world.deploy("Pool", c["provider"].address)
    c["pool_lido"] = await world.deploy("Pool", c["provider"].address)
    c["comet_usdc"] = await world.deploy("Comet", world.tokens["USDC"].address)
    c["comet_weth"] = await world.deploy("Comet", world.tokens["WETH"].address)
    c["eth_usd"] = await world.deploy("ChainlinkFeed", FEED_DECIMALS, 3000 * 10**FEED_DECIMALS)
    for symbol, usd in (("WETH", 3000), ("WBTC", 60000), ("USDC", 1), ("MKR", 2000)):
        await world.set_price(symbol, usd)
    return world
