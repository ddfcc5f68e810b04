"""Stub contracts for the on-chain tests, in Vyper, compiled offline (shanghai bytecode).

They emit the exact event signatures of the real protocols (Aave v3 Pool `LiquidationCall`,
Compound v3 Comet `AbsorbCollateral` / `AbsorbDebt`) and answer the calls liqguard makes
(AaveOracle `getAssetPrice` / `BASE_CURRENCY_UNIT`, PoolAddressesProvider `getPriceOracle`,
ERC-20 `symbol` / `decimals`, Chainlink `latestRoundData` / `decimals`). The oracle reverts
for an asset without a price, and BrokenERC20 reverts on every call: unpriceable logs.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

POOL = """
# pragma version ~=0.4.3
event LiquidationCall:
    collateralAsset: indexed(address)
    debtAsset: indexed(address)
    user: indexed(address)
    debtToCover: uint256
    liquidatedCollateralAmount: uint256
    liquidator: address
    receiveAToken: bool

ADDRESSES_PROVIDER: public(address)

@deploy
def __init__(provider: address):
    self.ADDRESSES_PROVIDER = provider

@external
def liquidate(collateral: address, debt: address, user: address, debt_to_cover: uint256,
              collateral_amount: uint256):
    log LiquidationCall(collateralAsset=collateral, debtAsset=debt, user=user,
                        debtToCover=debt_to_cover, liquidatedCollateralAmount=collateral_amount,
                        liquidator=msg.sender, receiveAToken=False)
"""

ADDRESSES_PROVIDER = """
# pragma version ~=0.4.3
oracle: address

@deploy
def __init__(oracle: address):
    self.oracle = oracle

@view
@external
def getPriceOracle() -> address:
    return self.oracle
"""

AAVE_ORACLE = """
# pragma version ~=0.4.3
BASE_CURRENCY_UNIT: public(uint256)
prices: HashMap[address, uint256]

@deploy
def __init__(unit: uint256):
    self.BASE_CURRENCY_UNIT = unit

@external
def setAssetPrice(asset: address, price: uint256):
    self.prices[asset] = price

@view
@external
def getAssetPrice(asset: address) -> uint256:
    assert self.prices[asset] != 0, "no price source"  # Aave's fallback oracle reverts too
    return self.prices[asset]
"""

ERC20 = """
# pragma version ~=0.4.3
symbol: public(String[32])
decimals: public(uint8)

@deploy
def __init__(symbol: String[32], decimals: uint8):
    self.symbol = symbol
    self.decimals = decimals
"""

# MKR-style token whose symbol() returns bytes32, not string.
ERC20_BYTES32 = """
# pragma version ~=0.4.3
symbol: public(bytes32)
decimals: public(uint8)

@deploy
def __init__(symbol: bytes32, decimals: uint8):
    self.symbol = symbol
    self.decimals = decimals
"""

# A token whose every call reverts (a broken or self-destructed token).
BROKEN_ERC20 = """
# pragma version ~=0.4.3
@view
@external
def decimals() -> uint8:
    raise "broken token"

@view
@external
def symbol() -> String[32]:
    raise "broken token"
"""

COMET = """
# pragma version ~=0.4.3
event AbsorbDebt:
    absorber: indexed(address)
    borrower: indexed(address)
    basePaidOut: uint256
    usdValue: uint256

event AbsorbCollateral:
    absorber: indexed(address)
    borrower: indexed(address)
    asset: indexed(address)
    collateralAbsorbed: uint256
    usdValue: uint256

baseToken: public(address)

@deploy
def __init__(base: address):
    self.baseToken = base

@external
def absorb(borrower: address, asset: address, collateral_absorbed: uint256,
           collateral_usd: uint256, base_paid_out: uint256, debt_usd: uint256):
    log AbsorbCollateral(absorber=msg.sender, borrower=borrower, asset=asset,
                         collateralAbsorbed=collateral_absorbed, usdValue=collateral_usd)
    log AbsorbDebt(absorber=msg.sender, borrower=borrower, basePaidOut=base_paid_out,
                   usdValue=debt_usd)
"""

CHAINLINK_FEED = """
# pragma version ~=0.4.3
decimals: public(uint8)
answer: int256

@deploy
def __init__(decimals: uint8, answer: int256):
    self.decimals = decimals
    self.answer = answer

@external
def setAnswer(answer: int256):
    self.answer = answer

@view
@external
def latestRoundData() -> (uint80, int256, uint256, uint256, uint80):
    return (1, self.answer, block.timestamp, block.timestamp, 1)
"""

SOURCES = {
    "Pool": POOL,
    "AddressesProvider": ADDRESSES_PROVIDER,
    "AaveOracle": AAVE_ORACLE,
    "ERC20": ERC20,
    "ERC20Bytes32": ERC20_BYTES32,
    "BrokenERC20": BROKEN_ERC20,
    "Comet": COMET,
    "ChainlinkFeed": CHAINLINK_FEED,
}


@dataclass(frozen=True)
class Compiled:
    abi: list[dict[str, Any]]
    bytecode: str


@cache
def compiled(name: str) -> Compiled:
    """Compile one stub (cached per test session)."""
    import vyper
    from vyper.compiler.settings import Settings

    out = vyper.compile_code(
        SOURCES[name],
        output_formats=["abi", "bytecode"],
        settings=Settings(evm_version="shanghai"),
    )
    return Compiled(abi=out["abi"], bytecode=out["bytecode"])
