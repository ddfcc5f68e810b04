"""Turn decoded logs into Liquidations: token facts, prices at the log's block, USD.

Contents:
- WatchedMarket, watched_markets(chain): the contracts of one chain and what they are
- log_filter_topics(chain): the topic0s to ask eth_getLogs for
- PricingError; Pricer: to_liquidation(decoded) -> Liquidation

USD, per event (all integer arithmetic until the final float):
- Aave `LiquidationCall`: collateral seized `amount * getAssetPrice(collateral) / 10**decimals
  / BASE_CURRENCY_UNIT`, the oracle called at the log's block (history needs an archive node
  for that); symbol = the collateral token; quantity = collateral seized.
- Comet `AbsorbCollateral`: `usdValue / 1e8` (Comet prices collateral when absorbing);
  symbol = the collateral; quantity = collateral absorbed. `AbsorbDebt` (comet_measure
  `debt`): `usdValue / 1e8`, symbol = the base token, quantity = base paid out.
- A Comet whose base is not USD (the WETH Comet prices in ETH: its "USD" feed is a constant
  1e8) reports `usdValue` in base units: it is multiplied by the base/USD Chainlink feed
  (`base_usd_feed`, `latestRoundData` at the log's block). Without the feed such a market
  would be counted in ETH as if it were USD: configure it (the mainnet default does).
Token decimals and symbols never change: read once at the latest block and cached.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Literal

from loguru import logger
from web3 import AsyncWeb3

from bot.config.chains import ChainConfig
from bot.events import Liquidation
from bot.sources.onchain import events as ev
from bot.sources.onchain.rpc import RetryPolicy, RpcError, call

COMET_BASE_ABI = [ev._fn("baseToken", [], ["address"])]


@dataclass(frozen=True, slots=True)
class WatchedMarket:
    kind: Literal["aave", "comet"]
    name: str
    address: str
    venue: str
    oracle: str | None = None  # aave: configured AaveOracle (None: ask the Pool)
    base_usd_feed: str | None = None  # comet: base/USD feed when the base is not USD


def watched_markets(chain: ChainConfig) -> dict[str, WatchedMarket]:
    """Contract address -> market, for every market of the chain."""
    out: dict[str, WatchedMarket] = {}
    for name, aave in chain.aave.items():
        out[aave.pool] = WatchedMarket("aave", name, aave.pool, aave.venue, oracle=aave.oracle)
    for name, comet in chain.compound.items():
        out[comet.address] = WatchedMarket(
            "comet", name, comet.address, f"compound-v3-{name}", base_usd_feed=comet.base_usd_feed
        )
    return out


def log_filter_topics(chain: ChainConfig) -> list[str]:
    topics = []
    if chain.aave:
        topics.append(ev.LIQUIDATION_CALL_TOPIC)
    if chain.compound:
        topics.append(
            ev.ABSORB_COLLATERAL_TOPIC
            if chain.comet_measure == "collateral"
            else ev.ABSORB_DEBT_TOPIC
        )
    return topics


class PricingError(RuntimeError):
    """An event could not be valued (a call failed for good, or a token answers nonsense)."""


@dataclass(frozen=True, slots=True)
class TokenInfo:
    symbol: str
    decimals: int


class Pricer:
    """Values decoded logs with calls at their block; caches what never changes."""

    def __init__(self, w3: AsyncWeb3, markets: dict[str, WatchedMarket], policy: RetryPolicy):
        self._w3 = w3
        self._markets = markets
        self._policy = policy
        self._tokens: dict[str, TokenInfo] = {}
        self._oracles: dict[str, str] = {}  # pool -> AaveOracle
        self._base_units: dict[str, int] = {}  # oracle -> BASE_CURRENCY_UNIT
        self._feed_decimals: dict[str, int] = {}
        self._comet_base: dict[str, str] = {}

    async def _call(self, address: str, abi: list[dict[str, Any]], fn: str, *args: Any,
                    block: int | str = "latest") -> Any:  # fmt: skip
        contract = self._w3.eth.contract(address=self._w3.to_checksum_address(address), abi=abi)
        what = f"{fn}() on {address} at block {block}"
        return await call(
            lambda: getattr(contract.functions, fn)(*args).call(block_identifier=block),
            what,
            self._policy,
        )

    async def token(self, address: str) -> TokenInfo:
        if address not in self._tokens:
            decimals = int(await self._call(address, ev.ERC20_ABI, "decimals"))
            if not 0 <= decimals <= 77:
                raise PricingError(f"token {address} says it has {decimals} decimals")
            self._tokens[address] = TokenInfo(await self._symbol(address), decimals)
        return self._tokens[address]

    async def _symbol(self, address: str) -> str:
        try:
            return str(await self._call(address, ev.ERC20_ABI, "symbol")).strip() or address[:10]
        except RpcError as exc:
            if exc.node_trouble:  # not the token's fault: never cache a fallback for it
                raise
        try:  # early tokens (MKR, SAI) return bytes32
            raw: bytes = await self._call(address, ev.ERC20_BYTES32_SYMBOL_ABI, "symbol")
            return raw.rstrip(b"\0").decode("utf-8", "replace").strip() or address[:10]
        except RpcError as exc:
            if exc.node_trouble:
                raise
            logger.warning("token {} has no readable symbol: using its address", address)
            return address[:10]

    async def aave_oracle(self, market: WatchedMarket) -> str:
        if market.oracle is not None:
            return market.oracle
        if market.address not in self._oracles:
            provider = await self._call(market.address, ev.AAVE_POOL_ABI, "ADDRESSES_PROVIDER")
            oracle = await self._call(provider, ev.ADDRESSES_PROVIDER_ABI, "getPriceOracle")
            self._oracles[market.address] = str(oracle)
        return self._oracles[market.address]

    async def _base_unit(self, oracle: str) -> int:
        if oracle not in self._base_units:
            unit = int(await self._call(oracle, ev.AAVE_ORACLE_ABI, "BASE_CURRENCY_UNIT"))
            if unit <= 0:
                raise PricingError(f"AaveOracle {oracle} has BASE_CURRENCY_UNIT {unit}")
            self._base_units[oracle] = unit
        return self._base_units[oracle]

    async def base_usd(self, feed: str, block: int) -> Fraction:
        """The base's USD price from a Chainlink feed at `block`."""
        if feed not in self._feed_decimals:
            self._feed_decimals[feed] = int(
                await self._call(feed, ev.CHAINLINK_FEED_ABI, "decimals")
            )
        round_data = await self._call(feed, ev.CHAINLINK_FEED_ABI, "latestRoundData", block=block)
        answer = int(round_data[1])
        if answer <= 0:
            raise PricingError(f"feed {feed} answered {answer} at block {block}")
        return Fraction(answer, 10 ** self._feed_decimals[feed])

    async def to_liquidation(self, decoded: ev.DecodedLog, ts_ms: int) -> Liquidation:
        """The Liquidation of one decoded log, priced at its block."""
        ref = decoded.ref
        market = self._markets.get(ref.contract)
        if market is None:
            raise PricingError(f"log {ref.event_id} from unwatched contract {ref.contract}")
        try:
            symbol, quantity, usd = await self._value(decoded, market)
        except RpcError as exc:
            if exc.node_trouble:
                raise  # not this log's fault: the caller retries later
            raise PricingError(f"log {ref.event_id}: {exc}") from exc
        price = usd / quantity if quantity > 0 else None
        return Liquidation(
            ts_ms=ts_ms,
            venue=market.venue,
            symbol=symbol,
            side="long",  # a lending liquidation closes a borrower's leveraged long collateral
            notional_usd=float(usd),
            price=float(price) if price is not None else None,
            quantity=float(quantity),
            event_id=ref.event_id,
            block_number=ref.block_number,
            block_hash=ref.block_hash,
        )

    async def _value(
        self, decoded: ev.DecodedLog, market: WatchedMarket
    ) -> tuple[str, Fraction, Fraction]:
        block = decoded.ref.block_number
        if isinstance(decoded, ev.AaveLiquidationCall):
            token = await self.token(decoded.collateral_asset)
            oracle = await self.aave_oracle(market)
            unit = await self._base_unit(oracle)
            raw_price = int(
                await self._call(oracle, ev.AAVE_ORACLE_ABI, "getAssetPrice",
                                 decoded.collateral_asset, block=block)
            )  # fmt: skip
            quantity = Fraction(decoded.liquidated_collateral_amount, 10**token.decimals)
            return token.symbol, quantity, quantity * Fraction(raw_price, unit)
        if isinstance(decoded, ev.CometAbsorbCollateral):
            token = await self.token(decoded.asset)
            amount = decoded.collateral_absorbed
        else:
            if market.address not in self._comet_base:
                base = await self._call(market.address, COMET_BASE_ABI, "baseToken")
                self._comet_base[market.address] = str(base)
            token = await self.token(self._comet_base[market.address])
            amount = decoded.base_paid_out
        usd = Fraction(decoded.usd_value, 10**ev.COMET_USD_DECIMALS)
        if market.base_usd_feed is not None:
            usd *= await self.base_usd(market.base_usd_feed, block)
        return token.symbol, Fraction(amount, 10**token.decimals), usd
