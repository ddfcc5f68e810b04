"""On-chain pieces without a chain: event signatures, decoding, error mapping, config."""

from __future__ import annotations

import aiohttp
import pytest
from eth_abi import encode
from pydantic import SecretStr
from web3.exceptions import Web3RPCError

from bot.config.errors import ConfigError
from bot.config.loader import load_settings
from bot.logs import redact
from bot.secrets import Secrets
from bot.sources.onchain import events as ev
from bot.sources.onchain.factory import create_onchain_sources, rpc_urls
from bot.sources.onchain.rpc import classify


def test_topic0_are_those_of_the_protocols() -> None:
    # onchain.md: full LiquidationCall topic, Comet topics by prefix and suffix.
    assert ev.LIQUIDATION_CALL_TOPIC == (
        "0xe413a321e8681d831f4dbccbca790d2952b56f977908e45be37335533e005286"
    )
    assert ev.ABSORB_DEBT_TOPIC.startswith("0x1547a878") and ev.ABSORB_DEBT_TOPIC.endswith("f4f62f")
    assert ev.ABSORB_COLLATERAL_TOPIC.startswith("0x9850ab1a")
    assert ev.ABSORB_COLLATERAL_TOPIC.endswith("f9412e")


def _topic(address: str) -> str:
    return "0x" + "00" * 12 + address.removeprefix("0x").lower()


A, B, C, D = (f"0x{str(i) * 40}" for i in range(1, 5))


def _log(topics: list[str], data: bytes) -> dict[str, object]:
    return {
        "address": D,
        "topics": topics,
        "data": "0x" + data.hex(),
        "blockNumber": "0x10",
        "blockHash": "0x" + "ab" * 32,
        "transactionHash": "0x" + "cd" * 32,
        "logIndex": "0x3",
    }


def test_decode_liquidation_call() -> None:
    data = encode(["uint256", "uint256", "address", "bool"], [5, 7 * 10**18, C, True])
    log = _log([ev.LIQUIDATION_CALL_TOPIC, _topic(A), _topic(B), _topic(C)], data)
    decoded = ev.decode_log(log)
    assert isinstance(decoded, ev.AaveLiquidationCall)
    assert (decoded.collateral_asset.lower(), decoded.debt_asset.lower()) == (A, B)
    assert (decoded.debt_to_cover, decoded.liquidated_collateral_amount) == (5, 7 * 10**18)
    assert decoded.receive_a_token is True
    assert decoded.ref.event_id == "0x" + "cd" * 32 + ":3"
    assert decoded.ref.position == (16, 3)


def test_decode_comet_events_and_bad_logs() -> None:
    absorb = _log([ev.ABSORB_COLLATERAL_TOPIC, _topic(A), _topic(B), _topic(C)],
                  encode(["uint256", "uint256"], [10**8, 6 * 10**12]))  # fmt: skip
    decoded = ev.decode_log(absorb)
    assert isinstance(decoded, ev.CometAbsorbCollateral) and decoded.asset.lower() == C
    debt = _log([ev.ABSORB_DEBT_TOPIC, _topic(A), _topic(B)], encode(["uint256"] * 2, [1, 2]))
    assert isinstance(ev.decode_log(debt), ev.CometAbsorbDebt)
    assert ev.decode_log(_log(["0x" + "00" * 32], b"")) is None  # another event
    with pytest.raises(ev.UndecodableLog, match="topics"):
        ev.decode_log(_log([ev.ABSORB_DEBT_TOPIC, _topic(A)], b""))
    with pytest.raises(ev.UndecodableLog, match="data does not fit"):
        ev.decode_log(_log([ev.ABSORB_DEBT_TOPIC, _topic(A), _topic(B)], b"\x01"))


def _rpc(code: int, message: str) -> Web3RPCError:
    response = {"jsonrpc": "2.0", "id": 1, "error": {"code": code, "message": message}}
    return Web3RPCError(message, rpc_response=response)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (_rpc(-32005, "query returned more than 10000 results"), "refused"),  # Infura results
        (_rpc(-32005, "project ID request rate exceeded"), "rate"),  # Infura rate
        (_rpc(-32005, "limit exceeded"), "rate"),
        (_rpc(429, "Your app has exceeded its compute units per second capacity"), "rate"),
        (_rpc(-32600, "block range is too wide"), "refused"),
        (_rpc(-32602, "Log response size exceeded. up to a 2K block range"), "refused"),
        (_rpc(-32614, "eth_getLogs is limited to a 10,000 range"), "refused"),
        (_rpc(-32000, "header not found"), "transient"),
        (_rpc(-32601, "the method eth_foo does not exist"), "fatal"),
        (TimeoutError(), "transient"),
        (aiohttp.ClientConnectionError(), "transient"),
    ],
)
def test_rpc_errors_are_classified(error: BaseException, kind: str) -> None:
    assert classify(error) == kind


def test_http_statuses_are_classified() -> None:
    def status(code: int) -> aiohttp.ClientResponseError:
        return aiohttp.ClientResponseError(None, (), status=code)  # type: ignore[arg-type]

    assert [classify(status(c)) for c in (429, 413, 503, 401)] == [
        "rate", "refused", "transient", "fatal",
    ]  # fmt: skip


def test_chains_default_to_mainnet_and_refuse_unknown_keys() -> None:
    settings = load_settings(overrides={"chains": {"ethereum": {}}})
    ((name, chain),) = settings.chains.items()
    assert name == "ethereum" and chain.chain_id == 1
    assert chain.aave["core"].pool == "0x87870Bca3F3fD6335C3F4ce8392D69350B4fA4E2"
    assert chain.aave["lido"].pool == "0x4e033931ad43597d96D6bcc25c280717730B58B1"
    assert chain.compound["usdc"].address == "0xc3d688B66703497DAA19211EEdff47f25384cdc3"
    assert chain.compound["weth"].base_usd_feed is not None
    assert not load_settings().chains  # nothing configured: no on-chain source
    with pytest.raises(ConfigError, match=r"chains\.ethereum\.confirmation.*unknown key"):
        load_settings(overrides={"chains": {"ethereum": {"confirmation": 3}}})
    with pytest.raises(ConfigError, match=r"chains\.x\.aave\.core\.pool.*not a contract address"):
        load_settings(overrides={"chains": {"x": {"aave": {"core": {"pool": "0x12"}}}}})


def test_rpc_urls_come_from_secrets_and_are_redacted() -> None:
    settings = load_settings(overrides={"chains": {"ethereum": {}, "base": {"chain_id": 8453}}})
    chains = dict(settings.chains.items())
    url = "https://mainnet.example.invalid/v3/0123456789abcdef-key"
    secrets = Secrets(_env_file=None, eth_rpc_http=SecretStr(url))  # type: ignore[call-arg]
    assert rpc_urls("ethereum", chains["ethereum"], secrets) == (url, None)
    assert url not in redact(f"connecting to {url}")
    with pytest.raises(ConfigError, match="LIQGUARD_ETH_RPC_HTTP"):
        rpc_urls("ethereum", chains["ethereum"], Secrets(_env_file=None))  # type: ignore[call-arg]
    with pytest.raises(ConfigError, match=r"set chains\.base\.rpc_http"):
        create_onchain_sources(settings, secrets, journal=None)  # type: ignore[arg-type]
