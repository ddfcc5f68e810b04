"""The on-chain events liqguard reads, and their decoding from raw logs.

Contents:
- signatures and topic0 of Aave v3 `LiquidationCall`, Compound v3 `AbsorbCollateral` /
  `AbsorbDebt` (exact, from the protocols' public interfaces; checked against onchain.md)
- minimal ABIs of the calls made while pricing (AaveOracle, PoolAddressesProvider, ERC-20,
  Chainlink feed)
- AaveLiquidationCall, CometAbsorbCollateral, CometAbsorbDebt: decoded logs (raw integers)
- decode_log(log) -> one of them, or None for a log of another event
- UndecodableLog: a log (or its position) that does not fit; log_ref / decode_log raise only it
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from eth_abi import decode as abi_decode
from eth_utils import keccak, to_checksum_address

LIQUIDATION_CALL_SIG = "LiquidationCall(address,address,address,uint256,uint256,address,bool)"
ABSORB_COLLATERAL_SIG = "AbsorbCollateral(address,address,address,uint256,uint256)"
ABSORB_DEBT_SIG = "AbsorbDebt(address,address,uint256,uint256)"


def topic0(signature: str) -> str:
    return "0x" + keccak(text=signature).hex()


LIQUIDATION_CALL_TOPIC = topic0(LIQUIDATION_CALL_SIG)
ABSORB_COLLATERAL_TOPIC = topic0(ABSORB_COLLATERAL_SIG)
ABSORB_DEBT_TOPIC = topic0(ABSORB_DEBT_SIG)

COMET_USD_DECIMALS = 8  # Comet's usdValue: price feeds' 8 decimals


def _fn(name: str, inputs: list[str], outputs: list[str]) -> dict[str, Any]:
    return {
        "type": "function",
        "name": name,
        "stateMutability": "view",
        "inputs": [{"name": f"a{i}", "type": t} for i, t in enumerate(inputs)],
        "outputs": [{"name": f"r{i}", "type": t} for i, t in enumerate(outputs)],
    }


AAVE_ORACLE_ABI = [
    _fn("getAssetPrice", ["address"], ["uint256"]),
    _fn("BASE_CURRENCY_UNIT", [], ["uint256"]),
]
AAVE_POOL_ABI = [_fn("ADDRESSES_PROVIDER", [], ["address"])]
ADDRESSES_PROVIDER_ABI = [_fn("getPriceOracle", [], ["address"])]
ERC20_ABI = [_fn("decimals", [], ["uint8"]), _fn("symbol", [], ["string"])]
ERC20_BYTES32_SYMBOL_ABI = [_fn("symbol", [], ["bytes32"])]  # MKR and other early tokens
CHAINLINK_FEED_ABI = [
    _fn("decimals", [], ["uint8"]),
    _fn("latestRoundData", [], ["uint80", "int256", "uint256", "uint256", "uint80"]),
]


@dataclass(frozen=True, slots=True)
class LogRef:
    """Where a log sits on the chain: enough to dedupe it and to check it is still canonical."""

    contract: str
    block_number: int
    block_hash: str
    tx_hash: str
    log_index: int
    block_timestamp_s: int | None = None  # some nodes put it in the log (anvil, recent geth)

    @property
    def event_id(self) -> str:
        return f"{self.tx_hash}:{self.log_index}"

    @property
    def position(self) -> tuple[int, int]:
        return (self.block_number, self.log_index)


@dataclass(frozen=True, slots=True)
class AaveLiquidationCall:
    ref: LogRef
    collateral_asset: str
    debt_asset: str
    user: str
    debt_to_cover: int
    liquidated_collateral_amount: int
    liquidator: str
    receive_a_token: bool


@dataclass(frozen=True, slots=True)
class CometAbsorbCollateral:
    ref: LogRef
    absorber: str
    borrower: str
    asset: str
    collateral_absorbed: int
    usd_value: int  # 8 decimals, in the base's unit when the base is not USD


@dataclass(frozen=True, slots=True)
class CometAbsorbDebt:
    ref: LogRef
    absorber: str
    borrower: str
    base_paid_out: int
    usd_value: int  # 8 decimals, in the base's unit when the base is not USD


DecodedLog = AaveLiquidationCall | CometAbsorbCollateral | CometAbsorbDebt


class UndecodableLog(ValueError):
    """A log with a known topic0 whose topics/data do not fit the signature."""


def _hex(value: Any) -> str:
    if isinstance(value, bytes | bytearray):
        return "0x" + bytes(value).hex()
    text = str(value)
    return text if text.startswith("0x") else "0x" + text


def _bytes(value: Any) -> bytes:
    if isinstance(value, bytes | bytearray):
        return bytes(value)
    return bytes.fromhex(str(value).removeprefix("0x"))


def _topic_address(topic: Any) -> str:
    raw = _bytes(topic)
    if len(raw) != 32:
        raise UndecodableLog(f"indexed address topic of {len(raw)} bytes, expected 32")
    return str(to_checksum_address(raw[12:]))


def _int(value: Any) -> int:
    return value if isinstance(value, int) else int(str(value), 16)


def log_ref(log: Any) -> LogRef:
    """The position of a raw log (web3 AttributeDict or plain JSON-RPC dict)."""
    try:
        ts = log.get("blockTimestamp")
        return LogRef(
            contract=str(to_checksum_address(log["address"])),
            block_number=_int(log["blockNumber"]),
            block_hash=_hex(log["blockHash"]),
            tx_hash=_hex(log["transactionHash"]),
            log_index=_int(log["logIndex"]),
            block_timestamp_s=_int(ts) if ts is not None else None,
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:  # a node's malformed log
        raise UndecodableLog(f"log without a valid position: {type(exc).__name__}: {exc}") from exc


def describe_raw(log: Any) -> dict[str, Any]:
    """Whatever position fields a (possibly malformed) log has, as text, for the journal."""
    get = getattr(log, "get", None)
    if get is None:
        return {"raw": repr(log)[:200]}
    out: dict[str, Any] = {}
    for field, name in _RAW_FIELDS:
        value = get(name)
        if value is not None:
            out[field] = _hex(value) if isinstance(value, bytes | bytearray) else str(value)[:80]
    return out


_RAW_FIELDS = (
    ("tx_hash", "transactionHash"), ("log_index", "logIndex"), ("block_number", "blockNumber"),
    ("block_hash", "blockHash"), ("contract", "address"),
)  # fmt: skip


def decode_log(log: Any) -> DecodedLog | None:
    """Decode one raw log of the three events; None for any other topic0."""
    ref = log_ref(log)
    try:
        topics = [_hex(t) for t in log["topics"]]
        data = _bytes(log["data"])
    except (KeyError, TypeError, ValueError) as exc:
        raise UndecodableLog(f"log {ref.event_id}: malformed topics/data: {exc}") from exc
    if not topics:
        return None
    try:
        if topics[0] == LIQUIDATION_CALL_TOPIC:
            _check_topics(topics, 4)
            debt, amount, liquidator, receive = abi_decode(
                ["uint256", "uint256", "address", "bool"], data
            )
            return AaveLiquidationCall(
                ref=ref,
                collateral_asset=_topic_address(topics[1]),
                debt_asset=_topic_address(topics[2]),
                user=_topic_address(topics[3]),
                debt_to_cover=debt,
                liquidated_collateral_amount=amount,
                liquidator=str(to_checksum_address(liquidator)),
                receive_a_token=bool(receive),
            )
        if topics[0] == ABSORB_COLLATERAL_TOPIC:
            _check_topics(topics, 4)
            absorbed, usd = abi_decode(["uint256", "uint256"], data)
            return CometAbsorbCollateral(
                ref=ref,
                absorber=_topic_address(topics[1]),
                borrower=_topic_address(topics[2]),
                asset=_topic_address(topics[3]),
                collateral_absorbed=absorbed,
                usd_value=usd,
            )
        if topics[0] == ABSORB_DEBT_TOPIC:
            _check_topics(topics, 3)
            paid, usd = abi_decode(["uint256", "uint256"], data)
            return CometAbsorbDebt(
                ref=ref,
                absorber=_topic_address(topics[1]),
                borrower=_topic_address(topics[2]),
                base_paid_out=paid,
                usd_value=usd,
            )
    except UndecodableLog:
        raise
    except Exception as exc:  # eth_abi raises several types for short/odd data
        raise UndecodableLog(f"log {ref.event_id}: data does not fit the event: {exc}") from exc
    return None


def _check_topics(topics: list[str], expected: int) -> None:
    if len(topics) != expected:
        raise UndecodableLog(f"{len(topics)} topics, the event has {expected}")
