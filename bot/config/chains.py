"""On-chain liquidation sources (Aave v3, Compound v3), one entry per chain.

Contents: Address (a checksummed contract address), AaveMarket, CometMarket, ChainConfig
(RPC endpoints, markets, confirmations, eth_getLogs limits, the head-age watchdog),
ChainsConfig (the `chains:` section: chain name -> ChainConfig; empty = no on-chain source).

The defaults of ChainConfig are Ethereum mainnet's (chain id 1); for another chain set
`chain_id` and its markets, or the chain-id check at start refuses the mismatch. RPC URLs
often embed an API key: put them in LIQGUARD_ETH_RPC_HTTP / LIQGUARD_ETH_RPC_WS (the chain
named `ethereum` takes them), never in a log line.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, RootModel, model_validator


def _checksum(value: str) -> str:
    from eth_utils import is_hex_address, to_checksum_address  # heavy: only when a chain is set

    if not is_hex_address(value):
        raise ValueError("not a contract address: expected 0x followed by 40 hex digits")
    return str(to_checksum_address(value))


Address = Annotated[str, AfterValidator(_checksum)]


class AaveMarket(BaseModel):
    """One Aave v3 Pool. Its events become Liquidations of venue `venue`."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    pool: Address = Field(description="the Pool contract (emits LiquidationCall)")
    oracle: Address | None = Field(
        default=None,
        description="AaveOracle; empty = Pool.ADDRESSES_PROVIDER().getPriceOracle()",
    )
    venue: str = Field(default="aave-v3", min_length=1, description="venue of its events")


class CometMarket(BaseModel):
    """One Compound v3 Comet. Its events become Liquidations of venue `compound-v3-<name>`."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    address: Address = Field(description="the Comet proxy (emits AbsorbCollateral/AbsorbDebt)")
    base_usd_feed: Address | None = Field(
        default=None,
        description="Chainlink base/USD feed when the base is not USD (WETH Comet: ETH/USD); "
        "Comet's usdValue is in base units then",
    )


# Built when a chain is configured, not at import: validating addresses loads eth_utils.
def _aave_mainnet() -> dict[str, AaveMarket]:
    return {
        "core": AaveMarket(pool="0x87870Bca3F3fD6335C3F4ce8392D69350B4fA4E2",
                           oracle="0x54586bE62E3c3580375aE3723C145253060Ca0C2"),
        "lido": AaveMarket(pool="0x4e033931ad43597d96D6bcc25c280717730B58B1"),
    }  # fmt: skip


def _comet_mainnet() -> dict[str, CometMarket]:
    return {
        "usdc": CometMarket(address="0xc3d688B66703497DAA19211EEdff47f25384cdc3"),
        "usdt": CometMarket(address="0x3Afdc9BCA9213A35503b077a6072F3D0d5AB0840"),
        "weth": CometMarket(address="0xA17581A9E3356d9A858b789D68B4d866e593aE94",
                            base_usd_feed="0x5f4eC3Df9cbd43714FE2740f5E3616155c5b8419"),
    }  # fmt: skip


# Ethereum: 12 s slots, 5 missed in a row is an incident; L2s (OP, Base, Arbitrum, Polygon,
# BSC, Avalanche, Gnosis): blocks every 0.25-5 s; unknown chains get more room.
DEFAULT_MAX_HEAD_AGE_S: dict[int, float] = {
    1: 60.0, 10: 30.0, 8453: 30.0, 42161: 30.0, 137: 30.0, 56: 30.0, 43114: 30.0, 100: 30.0,
}  # fmt: skip
FALLBACK_MAX_HEAD_AGE_S = 120.0


class ChainConfig(BaseModel):
    """One chain: where to read it, which markets, and when an event counts."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    chain_id: int = Field(default=1, ge=1, description="checked against the node at start")
    rpc_http: str | None = Field(
        default=None, description="HTTP JSON-RPC URL; for `ethereum` LIQGUARD_ETH_RPC_HTTP wins"
    )
    rpc_ws: str | None = Field(
        default=None, description="websocket URL (optional: without it, eth_getLogs polling)"
    )
    aave: dict[str, AaveMarket] = Field(default_factory=_aave_mainnet)
    compound: dict[str, CometMarket] = Field(default_factory=_comet_mainnet)
    comet_measure: Literal["collateral", "debt"] = Field(
        default="collateral",
        description="count Comet absorbs by AbsorbCollateral (symbol = collateral) or by "
        "AbsorbDebt (symbol = market); never both, they describe the same absorb",
    )
    confirmations: int = Field(
        default=12, ge=1, le=1024, description="count a log once its block has this many "
        "confirmations (a log in the head block has 1)",
    )  # fmt: skip
    alert_unconfirmed: bool = Field(
        default=False, description="also report websocket logs at once, marked unconfirmed"
    )
    get_logs_chunk_blocks: int = Field(
        default=2000, ge=1, le=1_000_000, description="eth_getLogs range; halved on refusal"
    )
    poll_interval_s: float = Field(
        default=12.0, gt=0, description="eth_getLogs cursor poll when the websocket is quiet/down"
    )
    start_block: int | None = Field(
        default=None, ge=0, description="first run without a journaled cursor: start here "
        "(empty = at the current confirmed block: no history)",
    )  # fmt: skip
    backoff_s: float = Field(default=1.0, gt=0, description="first wait after a 429 / refusal")
    max_backoff_s: float = Field(default=30.0, gt=0)
    max_retries: int = Field(default=8, ge=0, description="rate-limit/transient retries per call")
    timeout_s: float = Field(default=30.0, gt=0, description="per JSON-RPC request")
    max_head_age_s: float | None = Field(
        default=None, gt=0, description="the feed is blind when the node's newest block is "
        "older than this (stuck or lagging node); empty = per chain: 60 on Ethereum, 30 on "
        "L2s with blocks of seconds, 120 elsewhere",
    )  # fmt: skip

    @model_validator(mode="after")
    def _some_market(self) -> ChainConfig:
        if not self.aave and not self.compound:
            raise ValueError("no market to watch: set `aave:` and/or `compound:`")
        for url in (self.rpc_http, self.rpc_ws):
            if url is not None and "://" not in url:
                raise ValueError("an RPC URL needs a scheme (https://, wss://, http://, ws://)")
        return self

    def head_age_limit_s(self) -> float:
        """`max_head_age_s`, or the default of the chain id (a few missed blocks' worth)."""
        if self.max_head_age_s is not None:
            return self.max_head_age_s
        return DEFAULT_MAX_HEAD_AGE_S.get(self.chain_id, FALLBACK_MAX_HEAD_AGE_S)


class ChainsConfig(RootModel[dict[str, ChainConfig]]):
    """`chains:` chain name -> ChainConfig. Empty (the default): no on-chain source."""

    model_config = ConfigDict(frozen=True)

    root: dict[str, ChainConfig] = Field(default_factory=dict)

    def items(self) -> list[tuple[str, ChainConfig]]:
        return list(self.root.items())

    def __bool__(self) -> bool:
        return bool(self.root)
